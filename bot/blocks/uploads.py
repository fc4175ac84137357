"""Messages about a shared JSONL file: progress, the validation report, problems."""

from typing import Any

from bot.blocks.common import (
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
from client.sizes import human_size
from client.validation import ValidationReport, format_name, render_report


def download_progress_message(name: str, done: int, total: int | None, stage: str) -> Message:
    """One message updated in place while a large file is fetched and checked."""
    if stage == "validating":
        text = f":hourglass_flowing_sand: Checking `{name}` ({human_size(done)})…"
    elif total:
        pct = min(100, int(done * 100 / total))
        text = (
            f":inbox_tray: Downloading `{name}`: {pct}% ({human_size(done)} of {human_size(total)})"
        )
    else:
        text = f":inbox_tray: Downloading `{name}`: {human_size(done)}"
    return text_message(text)


def upload_report(
    slack_file_id: str, report_data: dict[str, Any], *, reused: bool = False
) -> Message:
    """The report in the file's thread, with the buttons when the file can be used."""
    report = ValidationReport.model_validate(report_data)
    name = report.filename
    fmt = format_name(report.format)
    stats = report.stats
    as_validation = report.role == "validation"
    if report.valid:
        checked = ", checked as a validation file" if as_validation else ""
        headline = (
            f":white_check_mark: `{name}` is a valid {fmt} dataset{checked}: "
            f"{stats.examples:,} examples, about {stats.tokens.total:,} tokens."
        )
    else:
        headline = (
            f":x: `{name}` has {report.error_total:,} "
            f"{'error' if report.error_total == 1 else 'errors'} (format: {fmt}); "
            "fix them and upload the file again."
        )
    warn_total = sum(report.warning_counts.values())
    if warn_total:
        headline += f" {warn_total:,} {'warning' if warn_total == 1 else 'warnings'}."
    blocks: list[dict[str, Any]] = [section(headline), code_block(render_report(report))]
    if reused:
        blocks.append(context("Same content as an earlier upload: its report is shown again."))
    if as_validation:
        # Said because the first report (as a training file) may have warned otherwise.
        blocks.append(
            context(
                "Checked again as a validation file, since it is used as one: "
                "the warnings meant for training files do not apply to it."
            )
        )
    if report.valid:
        blocks.append(
            actions(
                button(
                    "Fine-tune with this file",
                    Actions.FINETUNE_WITH_FILE,
                    slack_file_id,
                    style="primary",
                ),
                button("Use as validation file", Actions.USE_AS_VALIDATION, slack_file_id),
            )
        )
    return Message(text=headline, blocks=blocks)


def upload_problem_message(name: str, problem: str, hint: str | None = None) -> Message:
    return hinted_message(f":warning: Could not check `{name}`: {problem}", hint)
