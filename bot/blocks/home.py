"""The Home tab as Block Kit: one person's HomeView (bot.core.home) as a `home` view.

Slack takes at most 100 blocks in a Home tab: `fit_sections` keeps the whole view within
MAX_HOME_BLOCKS, cutting the longest lists short with an "… and N more" line. The phrases
shared with the console's text (bot.console.home_text) are the functions here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.blocks.common import actions, button, clip, context, section
from bot.blocks.ids import Actions
from bot.blocks.jobs import CANCEL_CONFIRM, status_text, when

if TYPE_CHECKING:
    from bot.core.home import DeploymentRow, HomeView, JobRow


def try_value(job_id: str, model: str) -> str:
    """The Home's Try it button carries the job (for its thread) and the model's full name
    (which holds no spaces: Nebius's names are letters, digits and `._-/:`)."""
    return f"{job_id} {model}"


MAX_HOME_BLOCKS = 100
HEADER_LIMIT = 150  # a header block's plain text
TITLE = "Your fine-tuning jobs"
DEPLOYMENT_ICONS = {
    "active": ":large_green_circle:",
    "validating": ":hourglass_flowing_sand:",
    "error": ":red_circle:",
    "deleted": ":no_entry_sign:",
}

Block = dict[str, Any]


# ---------------------------------------------------------------------- phrases


def progress_phrase(row: JobRow) -> str:
    """`step 40 of 120 (33%), ETA 2024-05-01 12:30 UTC`, or what is known of it."""
    if row.progress is None:
        text = "no steps reported yet"
    else:
        text = f"step {row.trained_steps:,} of {row.total_steps:,} ({row.progress:.0%})"
    if row.estimated_finish:
        text += f", ETA {when(row.estimated_finish)}"
    return text


def result_phrase(row: JobRow) -> str:
    """What a finished job came to: its best checkpoint's validation loss and its cost."""
    if row.gone:
        return "no longer on Nebius"
    parts = []
    if row.best_valid_loss is not None:
        parts.append(f"best validation loss {row.best_valid_loss:.4g} (step {row.best_step})")
    elif row.best_checkpoint_id is not None:
        parts.append(f"no validation loss (last checkpoint: step {row.best_step})")
    elif row.status == "succeeded":
        parts.append("no checkpoints")
    if row.error:
        parts.append(f"error: {row.error}")
    if row.cost_text:
        parts.append(f"cost {row.cost_text}")
    return "; ".join(parts) or "-"


def deployment_phrase(row: DeploymentRow) -> str:
    text = f"{row.status}"
    if row.job_id:
        text += f", from `{row.job_id}`"
    if row.base_model:
        text += f" on `{row.base_model}`"
    if row.reason:
        text += f": {row.reason}"
    return text


def more_phrase(count: int, what: str) -> str:
    return f"… and {count} more {what}"


# ---------------------------------------------------------------------- blocks


@dataclass
class Part:
    """One part of the view: its heading blocks, then items of one or more blocks each;
    `more` items beyond those given are known to exist (counted in the "and N more")."""

    heading: list[Block]
    items: list[list[Block]] = field(default_factory=list)
    what: str = "items"
    more: int = 0


def fit_sections(
    top: list[Block], parts: Sequence[Part], limit: int = MAX_HOME_BLOCKS
) -> list[Block]:
    """`top`, then each part's heading and as many of its items as fit within `limit`
    blocks; a part cut short ends in an "… and N more" line. Room is kept for every later
    part's heading and one line, so each part shows at least its heading and that line."""
    blocks = list(top)
    for n, part in enumerate(parts):
        later = sum(len(p.heading) + 1 for p in parts[n + 1 :])
        blocks.extend(part.heading)
        # Blocks this part's items (and its "and N more" line) may take.
        room = limit - len(blocks) - later
        if not part.more and sum(len(item) for item in part.items) <= room:
            for item in part.items:
                blocks.extend(item)
            continue
        used = shown = 0
        for item in part.items:
            if used + len(item) > room - 1:  # one kept for the line
                break
            blocks.extend(item)
            used += len(item)
            shown += 1
        hidden = len(part.items) - shown + part.more
        if hidden and room >= 1:
            blocks.append(context(more_phrase(hidden, part.what)))
    return blocks


def _thread_button(row: JobRow) -> Block | None:
    if not row.thread_url:
        return None
    element = button("Open thread", Actions.HOME_OPEN_THREAD, row.job_id)
    element["url"] = row.thread_url
    return element


def _job_section(text: str, row: JobRow) -> Block:
    block = section(text)
    link = _thread_button(row)
    if link is not None:
        block["accessory"] = link
    return block


def _running_item(row: JobRow) -> list[Block]:
    text = (
        f"`{row.job_id}` {status_text(row.status)} · `{row.model or '-'}`\n{progress_phrase(row)}"
    )
    cancel = button(
        "Cancel", Actions.HOME_CANCEL_JOB, row.job_id, style="danger", confirm=CANCEL_CONFIRM
    )
    return [_job_section(text, row), actions(cancel)]


def _finished_item(row: JobRow) -> list[Block]:
    ended = f" · ended {when(row.finished_at)}" if row.finished_at else ""
    text = (
        f"`{row.job_id}` {status_text(row.status)} · `{row.model or '-'}`{ended}\n"
        f"{result_phrase(row)}"
    )
    item = [_job_section(text, row)]
    if row.deployable:
        value = f"{row.job_id}:{row.best_checkpoint_id}"
        item.append(actions(button("Deploy best checkpoint", Actions.HOME_DEPLOY, value)))
    return item


def _deployment_item(row: DeploymentRow) -> list[Block]:
    icon = DEPLOYMENT_ICONS.get(row.status, ":grey_question:")
    block = section(f"{icon} `{row.name}`: {deployment_phrase(row)}")
    if row.status == "active" and row.job_id:
        block["accessory"] = button("Try it", Actions.HOME_TRY, try_value(row.job_id, row.name))
    return [block]


def home_blocks(home: HomeView) -> list[Block]:
    title = {"type": "header", "text": {"type": "plain_text", "text": clip(TITLE, HEADER_LIMIT)}}
    top: list[Block] = [
        title,
        context(
            f"Updated {when(int(home.updated_at))}. This tab is refreshed when you open it and "
            "when a job you started changes state."
        ),
    ]
    if not home.nebius_configured:
        top.append(section("Nebius is not configured: this bot has no NEBIUS_API_KEY."))
        return top
    if home.problems:
        top.append(context(":warning: " + "\n".join(home.problems)))
    running = Part(
        heading=[
            {"type": "divider"},
            section(f"*Running now* ({len(home.running) + home.more_running})"),
        ],
        items=[_running_item(r) for r in home.running],
        what="running jobs (`/finetune list` shows them all)",
        more=home.more_running,
    )
    if not home.running and not home.more_running:
        running.heading.append(
            context("Nothing running. Start a job with `/finetune create` in a channel.")
        )
    finished = Part(
        heading=[{"type": "divider"}, section("*Recently finished*")],
        items=[_finished_item(r) for r in home.finished],
        what="finished jobs",
    )
    if not home.finished:
        finished.heading.append(context("None yet."))
    deployments = Part(
        heading=[{"type": "divider"}, section("*Deployments* of your jobs")],
        items=[_deployment_item(d) for d in home.deployments],
        what="deployments (`finetune deployments` lists them all)",
    )
    if not home.deployments:
        deployments.heading.append(context("None."))
    return fit_sections(top, [running, finished, deployments])


def home_view(home: HomeView) -> dict[str, Any]:
    """The `home` view views.publish takes."""
    return {"type": "home", "blocks": home_blocks(home)}
