"""Messages of a comparison: the progress message (edited in place, with its Cancel button),
the result (a table and a few examples side by side, each in its own code block) and what
the bot says when a comparison cannot start."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot.blocks.common import (
    SECTION_LIMIT,
    actions,
    button,
    code_block,
    context,
    hinted_message,
    section,
    text_message,
)
from bot.blocks.ids import Actions
from bot.chat_interface import Message
from client.compare import CompareResult, render_examples, render_table

# Examples shown side by side under the table: each takes a block of up to 3,000 characters.
SHOWN_EXAMPLES = 3


@dataclass(frozen=True)
class CompareRun:
    """What the progress and result messages say about one run."""

    run_id: str
    job_id: str
    user: str
    base: str  # the model ids
    tuned: str
    how: str  # where the fine-tuned model came from (client.compare.Targets.how)
    source: str  # the file's name
    examples: int
    # The file had more examples than were taken (the first `examples` are compared).
    more_in_file: bool = False


def _models(run: CompareRun) -> str:
    return f"`{run.tuned}` (fine-tuned: {run.how}) with `{run.base}` (base)"


def _examples(run: CompareRun) -> str:
    what = f"{run.examples} example{'s' if run.examples != 1 else ''}"
    return f"the first {what}" if run.more_in_file else what


def _metadata(run: CompareRun, state: str) -> dict[str, Any]:
    return {"job_id": run.job_id, "kind": "compare", "run": run.run_id, "state": state}


def _fenced(text: str) -> str:
    """Text for a code block: three backticks inside an answer would close it early."""
    return text.replace("```", "`\u200b``")


def compare_thread_message(job_id: str, user: str) -> Message:
    """The thread's parent when the job has no thread in this channel."""
    text = (
        f":chart_with_upwards_trend: <@{user}> asked to compare job `{job_id}`'s fine-tuned "
        "model with its base model; the progress and the results are in this thread."
    )
    return Message(
        text=text, blocks=[section(text)], metadata={"job_id": job_id, "kind": "compare"}
    )


def compare_progress_message(run: CompareRun, done: int, total: int) -> Message:
    """The run under way: how many answers of how many, and a Cancel button."""
    share = done / total if total else 0.0
    text = (
        f":hourglass_flowing_sand: Comparing {_models(run)} on {_examples(run)} of "
        f"`{run.source}`: {done} of {total} answers ({share:.0%})."
    )
    stop = button("Cancel", Actions.CANCEL_COMPARE, run.run_id, style="danger")
    return Message(
        text=text, blocks=[section(text), actions(stop)], metadata=_metadata(run, "running")
    )


def compare_finished_message(
    run: CompareRun, result: CompareResult, *, cancelled_by: str | None = None
) -> Message:
    """The progress message once the run has ended (no button left to press)."""
    if result.cancelled:
        who = f" by <@{cancelled_by}>" if cancelled_by else ""
        text = (
            f":no_entry_sign: Comparison of job `{run.job_id}` cancelled{who} after "
            f"{result.completed} of {result.total} examples; the results below cover those."
        )
        state = "cancelled"
    else:
        text = (
            f":white_check_mark: Compared {_models(run)} on {_examples(run)} of "
            f"`{run.source}` in {result.seconds:.0f} s; the results are below."
        )
        state = "done"
    return Message(text=text, blocks=[section(text)], metadata=_metadata(run, state))


def compare_failed_message(run: CompareRun, problem: str, hint: str | None = None) -> Message:
    text = f":x: The comparison of job `{run.job_id}` stopped: {problem}"
    return hinted_message(text, hint, _metadata(run, "failed"))


def _headline(run: CompareRun, result: CompareResult) -> str:
    scores = [
        f"{s.label} {s.chrf:.1f}" for s in result.summaries if s.chrf is not None and s.answered
    ]
    figures = f" chrF: {', '.join(scores)}." if scores else ""
    state = " (cancelled: partial results)" if result.cancelled else ""
    return f"Comparison of job {run.job_id}{state}.{figures}"


def compare_result_message(run: CompareRun, result: CompareResult) -> Message:
    """The table for all answered examples, then a few examples side by side."""
    blocks: list[dict[str, Any]] = [
        section(f":chart_with_upwards_trend: <@{run.user}> {_headline(run, result)}"),
        code_block(_fenced(render_table(result))),
    ]
    examples = render_examples(result, SHOWN_EXAMPLES) if result.completed else []
    blocks += [code_block(_fenced(example)) for example in examples]
    if examples:
        blocks.append(
            context(
                f"{len(examples)} of {result.completed} examples shown side by side; the table "
                "covers every example both models answered. Answers are greedy (temperature 0)."
            )
        )
    return Message(
        text=_headline(run, result)[:SECTION_LIMIT],
        blocks=blocks,
        metadata=_metadata(run, "result"),
    )


def compare_busy_message(job_id: str, link: str | None, channel: str | None) -> Message:
    """A second request while one runs: where the first one's progress is."""
    if link:
        where = f" (<{link}|see its progress>)"
    elif channel:
        where = f" (its progress is in a thread in <#{channel}>)"
    else:
        where = ""
    text = (
        f":hourglass_flowing_sand: A comparison of job `{job_id}` is already running{where}. "
        "Wait for its results, or press its Cancel button to start another."
    )
    return text_message(text)


def compare_not_ready_message(job_id: str, problem: str, what_to_do: str) -> Message:
    """No fine-tuned model to compare with (yet): why, in plain words, and what to do."""
    text = f":information_source: Job `{job_id}` cannot be compared yet: {problem}"
    return Message(text=f"{text}\n{what_to_do}", blocks=[section(text), context(what_to_do)])


def compare_problem_message(problem: str, hint: str | None = None) -> Message:
    """A request that cannot go ahead (a bad option, a file that cannot be used)."""
    return hinted_message(f":warning: Cannot compare: {problem}", hint)


def compare_gone_message() -> Message:
    text = (
        "That comparison is no longer running (it finished, or the bot restarted since); "
        "nothing to cancel."
    )
    return text_message(text)


def compare_button(job_id: str) -> dict[str, Any]:
    """The Compare button of a succeeded job's messages (its summary)."""
    return button("Compare", Actions.COMPARE_JOB, job_id)
