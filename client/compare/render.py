"""Plain-text views of a comparison, sized for Slack: each fits in one section block's code
block (3,000 characters, fences included) and stays readable in a terminal.

- `render_table`: one line per model (and the references, for scale), then the full model
  ids and what "shape" means.
- `render_examples`: a few examples, each on its own: the prompt, the reference, and the
  models' answers side by side in columns, long texts cut with a note of how much was left out.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from client.compare.results import Answer, CompareResult, ExampleRow, ModelSummary

# Slack's limit for a section block's text; a code block's two fences and newlines take 8.
SLACK_SECTION_CHARS = 3000
BLOCK_MAX_CHARS = SLACK_SECTION_CHARS - 8
LINE_WIDTH = 96
DEFAULT_EXAMPLES = 3
PROMPT_LINES = 3
REFERENCE_LINES = 6
ANSWER_LINES = 12
COLUMN_GAP = " | "


def _cut(line: str, width: int = LINE_WIDTH) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


def _fit(text: str, limit: int = BLOCK_MAX_CHARS) -> str:
    """At most `limit` characters, cut at a line with a note when over."""
    if len(text) <= limit:
        return text
    note = "\n… (cut to fit one Slack block)"
    kept = text[: limit - len(note)]
    return kept[: kept.rfind("\n")] + note if "\n" in kept else kept + note


def _pct(summary: ModelSummary) -> str:
    if summary.shape_share is None:
        return "-"
    return f"{summary.shape_count}/{summary.answered} {summary.shape_share * 100:.0f}%"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _heading(result: CompareResult) -> str:
    done = f"{result.completed} of {result.total}" if result.partial else f"{result.total}"
    text = f"Compare on {done} example{'s' if result.total != 1 else ''}"
    if result.source:
        text += f" of {result.source}"
    if result.cancelled:
        text += " (cancelled: the figures cover the examples answered before)"
    elif result.partial:
        text += " (partial)"
    return text


def render_table(result: CompareResult) -> str:
    """The summary table; at most BLOCK_MAX_CHARS characters."""
    headers = ["MODEL", "SHAPE", "CHRF", "CHRF/EX", "CHARS", "TOKENS", "ERRORS"]
    rows = [
        [
            s.label,
            _pct(s),
            _num(s.chrf),
            _num(s.chrf_mean),
            _num(s.mean_chars, 0),
            _num(s.mean_tokens, 0),
            str(s.errors),
        ]
        for s in result.summaries
    ]
    rows.append(
        ["reference", "-", "100.0", "100.0", _num(result.reference_mean_chars, 0), "-", "-"]
    )
    cells = [headers, *[[_cut(c, 24) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [_cut(_heading(result))]
    for row in cells:
        # The label left, the figures right-aligned.
        parts = [row[0].ljust(widths[0])] + [
            c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(parts).rstrip())
    lines.append("")
    for s in result.summaries:
        lines.append(_cut(f"{s.label}: {s.model}"))
    lines.append(_cut(f"shape: {result.shape.description}"))
    fenced = [s for s in result.summaries if s.fenced_count]
    if fenced:
        lines.append(
            _cut(
                "inside a ``` fence (not counted): "
                + ", ".join(f"{s.label} {s.fenced_count}" for s in fenced)
            )
        )
    lines.append(
        "chrF: corpus score, 0-100 (CHRF/EX: mean per answer); CHARS, TOKENS: mean answer length"
    )
    return _fit("\n".join(lines))


def _wrapped(text: str, width: int, max_lines: int) -> list[str]:
    """`text` wrapped to `width`, at most `max_lines` lines, the last one saying how many
    characters were left out."""
    lines: list[str] = []
    for paragraph in (text or "").splitlines() or [""]:
        lines.extend(textwrap.wrap(paragraph, width, break_long_words=True) or [""])
    if len(lines) <= max_lines:
        return lines
    kept = lines[: max_lines - 1]
    shown = sum(len(line) for line in kept)
    left = max(0, len(text) - shown)
    kept.append(_cut(f"… ({left} more characters)", width))
    return kept


def _answer_marks(answer: Answer | None) -> str:
    if answer is None:
        return "not answered: cancelled"
    marks = [f"chrF {answer.chrf:.1f}"]
    if answer.has_shape is not None:
        marks.append("shape ok" if answer.has_shape else "no shape")
    if answer.finish_reason == "length":
        marks.append("cut at max tokens")
    return ", ".join(marks)


def _answer_text(answer: Answer | None) -> str:
    if answer is None:
        return ""
    if answer.error:
        return f"(error: {answer.error})"
    return answer.text or "(empty answer)"


def render_example(result: CompareResult, row: ExampleRow, number: int) -> str:
    """One example: the prompt and reference across, the answers in columns side by side."""
    labels = [m.label for m in result.models]
    columns = max(1, len(labels))
    width = (LINE_WIDTH - len(COLUMN_GAP) * (columns - 1)) // columns
    lines = [f"#{number} (line {row.line})"]
    lines += [_cut(line) for line in _wrapped("prompt: " + row.question, LINE_WIDTH, PROMPT_LINES)]
    lines += _wrapped("reference: " + row.reference, LINE_WIDTH, REFERENCE_LINES)
    cells = []
    for label in labels:
        answer = row.answers.get(label)
        title = [_cut(label, width), _cut(_answer_marks(answer), width)]
        rule = "-" * max(len(line) for line in title)
        cells.append([*title, rule, *_wrapped(_answer_text(answer), width, ANSWER_LINES)])
    height = max(len(cell) for cell in cells)
    for index in range(height):
        parts = [(cell[index] if index < len(cell) else "").ljust(width) for cell in cells]
        lines.append(COLUMN_GAP.join(parts).rstrip())
    return _fit("\n".join(lines))


def render_examples(result: CompareResult, count: int = DEFAULT_EXAMPLES) -> list[str]:
    """The first `count` examples every model answered, each at most BLOCK_MAX_CHARS."""
    shown = [r for r in result.rows if all(m.label in r.answers for m in result.models)]
    return [render_example(result, row, n) for n, row in enumerate(shown[:count], start=1)]


def render_side_by_side(result: CompareResult, count: int = DEFAULT_EXAMPLES) -> str:
    """The examples one after another, for a terminal."""
    blocks: Sequence[str] = render_examples(result, count)
    return "\n\n".join(blocks)
