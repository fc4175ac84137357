"""Block Kit built by `bot.blocks` reads as plain terminal text."""

from __future__ import annotations

import itertools
from typing import Any

from bot.blocks import error_message, upload_report
from bot.blocks.jobs import checkpoints_message, events_message, job_card_message
from bot.chat_interface import Message
from bot.console.render import mrkdwn_to_text, render_message
from client import Checkpoint, Event, Job
from client.validation import validate_file


def render(message, users=None) -> tuple[str, list[dict[str, Any]]]:
    counter = itertools.count(1)
    pressed: list[dict[str, Any]] = []

    def number(element: dict[str, Any]) -> int:
        pressed.append(element)
        return next(counter)

    return "\n".join(render_message(message.text, message.blocks, number, users)), pressed


def running_job(**changes: Any) -> Job:
    data = {
        "id": "ftjob-abc123",
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "status": "running",
        "created_at": 1_700_000_000,
        "training_file": "file-train",
        "validation_file": "file-valid",
        "hyperparameters": {"n_epochs": 2, "batch_size": 4, "lora": True},
        "trained_steps": 3,
        "total_steps": 10,
    }
    return Job.model_validate(data | changes)


def test_mrkdwn_emphasis_links_mentions_and_emoji_become_plain_text() -> None:
    text = (
        "*Status:* :white_check_mark: _done_ by <@U1> in <#C1|general>, see <https://x.test|docs>"
    )
    assert mrkdwn_to_text(text, lambda user: "@ada") == (
        "Status: ✅ done by @ada in #general, see docs (https://x.test)"
    )


def test_inline_code_keeps_its_content_and_code_blocks_are_indented() -> None:
    text = "Run `validate-jsonl *.jsonl`:\n```line one\n  line two```\nthen &lt;done&gt;"
    assert mrkdwn_to_text(text) == (
        "Run validate-jsonl *.jsonl:\n    line one\n      line two\nthen <done>"
    )


def test_the_job_card_shows_its_fields_and_numbered_buttons() -> None:
    text, buttons = render(job_card_message(running_job()))
    assert text.splitlines()[:4] == [
        "Fine-tuning job ftjob-abc123",
        "Status: ⚙️ running",
        "Model: HuggingFaceTB/SmolLM2-135M-Instruct",
        "Files: training file-train, validation file-valid",
    ]
    assert "Hyperparameters: n_epochs=2, batch_size=4, lora=True" in text
    assert "Progress: step 3 of 10 (30%)" in text
    assert text.splitlines()[-1] == "[1] Refresh  [2] Cancel  [3] Chart"
    assert [b["action_id"] for b in buttons] == ["refresh_job", "cancel_job", "show_loss_chart"]
    assert "{" not in text and "*" not in text


def test_a_finished_card_has_no_cancel_button() -> None:
    text, buttons = render(job_card_message(running_job(status="succeeded", trained_steps=10)))
    assert "Status: ✅ succeeded" in text
    assert [b["action_id"] for b in buttons] == [
        "refresh_job",
        "download_checkpoint",
        "deploy_checkpoint",
        "show_loss_chart",
    ]


def test_the_upload_report_shows_counts_warnings_and_its_two_actions(samples_dir) -> None:
    report = validate_file(samples_dir / "sample_training_data.jsonl").to_dict()
    # As the core does: people know the file by its name in the channel.
    report["file"] = report["filename"] = "sample_training_data.jsonl"
    text, buttons = render(upload_report("F0001", report))
    first = text.splitlines()[0]
    assert first.startswith("✅ sample_training_data.jsonl is a valid chat dataset: 10 examples")
    # The report itself is a code block: indented, not fenced.
    assert "\n    sample_training_data.jsonl [training]: valid, format chat" in text
    assert "```" not in text
    assert text.splitlines()[-1] == "[1] Fine-tune with this file  [2] Use as validation file"
    assert [b["value"] for b in buttons] == ["F0001", "F0001"]


def test_context_lines_are_indented_under_the_message() -> None:
    text, _ = render(error_message("Nebius answered with an error", "no such job", "Check the id."))
    assert text.splitlines() == [
        "❌ Nebius answered with an error",
        "no such job",
        "  💡 Check the id.",
    ]


def test_events_read_oldest_first_and_checkpoints_with_metrics() -> None:
    events = [
        Event(id="e1", created_at=1_700_000_000, level="info", message="Job started"),
        Event(id="e2", created_at=1_700_000_060, level="warning", message="Loss is noisy"),
    ]
    text, _ = render(events_message("ftjob-1", events))
    assert text.splitlines() == [
        "Events of ftjob-1",
        "    2023-11-14 22:13 UTC  INFO    Job started",
        "    2023-11-14 22:14 UTC  WARNING Loss is noisy",
    ]
    cps = [Checkpoint(id="ftckpt-1", step_number=5, metrics={"train_loss": 1.23456})]
    text, _ = render(checkpoints_message("ftjob-1", cps))
    assert "Step 5 ftckpt-1: train_loss=1.235 (0 files)" in text


def test_a_message_without_blocks_shows_its_text() -> None:
    text, _ = render(Message(text="*plain* text"))
    assert text == "plain text"
