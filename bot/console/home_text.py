"""The console's `home`: the same HomeView as Slack's Home tab (bot.core.home), as text.

Where Slack shows a button the console names the command that does the same, since a
terminal has no Home tab to click in; the phrases are the Home tab's own (bot.blocks.home).
"""

from __future__ import annotations

from bot.blocks.home import (
    DEPLOYMENT_ICONS,
    TITLE,
    deployment_phrase,
    more_phrase,
    progress_phrase,
    result_phrase,
)
from bot.blocks.jobs import STATUS_ICONS, when
from bot.console.render import EMOJI
from bot.core.home import HomeView, JobRow

INDENT = "  "


def _icon(name: str) -> str:
    return EMOJI.get(name.strip(":"), name)


def _status(status: str) -> str:
    return f"{_icon(STATUS_ICONS.get(status, ':grey_question:'))} {status}"


def _job_line(row: JobRow) -> str:
    return f"{row.job_id}  {_status(row.status)}  {row.model or '-'}"


def home_text(home: HomeView) -> str:
    lines = [f"{TITLE} (updated {when(int(home.updated_at))})"]
    if not home.nebius_configured:
        lines.append("Nebius is not configured: this bot has no NEBIUS_API_KEY.")
        return "\n".join(lines)
    lines.extend(f"{_icon('warning')} {problem}" for problem in home.problems)
    lines += ["", f"Running now ({len(home.running) + home.more_running})"]
    for row in home.running:
        lines.append(INDENT + _job_line(row))
        lines.append(INDENT * 2 + progress_phrase(row).replace("`", ""))
        lines.append(INDENT * 2 + f"cancel: /finetune cancel {row.job_id}")
    if home.more_running:
        lines.append(INDENT + more_phrase(home.more_running, "running jobs (/finetune list)"))
    if not home.running and not home.more_running:
        lines.append(INDENT + "Nothing running. Start a job with /finetune create.")
    lines += ["", "Recently finished"]
    for row in home.finished:
        ended = f"  ended {when(row.finished_at)}" if row.finished_at else ""
        lines.append(INDENT + _job_line(row) + ended)
        lines.append(INDENT * 2 + result_phrase(row).replace("`", ""))
        if row.deployable:
            lines.append(
                INDENT * 2 + f"deploy: /finetune deploy {row.job_id} {row.best_checkpoint_id}"
            )
    if not home.finished:
        lines.append(INDENT + "None yet.")
    lines += ["", "Deployments of your jobs"]
    for deployment in home.deployments:
        icon = _icon(DEPLOYMENT_ICONS.get(deployment.status, ":grey_question:"))
        phrase = deployment_phrase(deployment).replace("`", "")
        lines.append(INDENT + f"{icon} {deployment.name}: {phrase}")
        if deployment.status == "active":
            lines.append(INDENT * 2 + f"try: /finetune try {deployment.name} PROMPT")
    if not home.deployments:
        lines.append(INDENT + "None.")
    return "\n".join(lines)
