"""`Download` and `/finetune download`: checkpoint files into the thread; too large says how."""

from __future__ import annotations

import json

import respx

from bot.blocks import Actions
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness

CHECKPOINTS = {
    "data": [
        {"id": "cp-2", "step_number": 20, "metrics": {}, "result_files": ["file-a", "file-b"]},
        {"id": "cp-1", "step_number": 10, "metrics": {}, "result_files": ["file-old"]},
    ]
}
ADAPTER = b"\x00safetensors" * 100


def nebius_checkpoint_files(nebius_api: respx.Router, big_bytes: int = 10) -> None:
    nebius_api.get("fine_tuning/jobs/ftjob-1/checkpoints").respond(json=CHECKPOINTS)
    nebius_api.get("files/file-a").respond(
        json={
            "id": "file-a",
            "filename": "ckpt/step-20/adapter_model.safetensors",
            "bytes": len(ADAPTER),
        }
    )
    nebius_api.get("files/file-a/content").respond(content=ADAPTER)
    nebius_api.get("files/file-b").respond(
        json={"id": "file-b", "filename": "ckpt/step-20/model.gguf", "bytes": big_bytes}
    )
    nebius_api.get("files/file-b/content").respond(content=b"gguf")


async def test_the_download_button_uploads_the_checkpoint_files_into_the_thread(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_checkpoint_files(nebius_api)
    await harness.click(Actions.DOWNLOAD_CHECKPOINT, "ftjob-1:cp-2", message_ts="55.5")

    names = sorted(f["title"] for c in fake_slack.completed_uploads for f in c["files"])
    assert names == [
        "adapter_model.safetensors (checkpoint cp-2, step 20)",
        "model.gguf (checkpoint cp-2, step 20)",
    ]
    assert all(c["thread_ts"] == "55.5" for c in fake_slack.completed_uploads)
    assert ADAPTER in fake_slack.uploaded.values()


async def test_a_file_over_slacks_limit_gets_the_command_instead(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_checkpoint_files(nebius_api, big_bytes=2 * 1024**3)
    await harness.click(Actions.DOWNLOAD_CHECKPOINT, "ftjob-1:cp-2", message_ts="55.5")

    assert len(fake_slack.completed_uploads) == 1  # only the small one
    texts = [m.text for m in fake_slack.thread("C1", "55.5")]
    assert any(
        "over Slack's 1 GB file limit" in t and "finetune download ftjob-1 --checkpoint cp-2" in t
        for t in texts
    )


async def test_the_download_command_takes_the_latest_checkpoint_by_default(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_checkpoint_files(nebius_api)
    await harness.command("download ftjob-1")

    (parent,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    assert "checkpoint `cp-2`" in parent.text
    assert all(c["thread_ts"] == parent.ts for c in fake_slack.completed_uploads)


async def test_an_unknown_checkpoint_lists_the_ones_there_are(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_checkpoint_files(nebius_api)
    await harness.command("download ftjob-1 cp-9")
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "no checkpoint `cp-9`" in eph["text"] and "cp-1 (step 10)" in eph["text"]
    assert fake_slack.completed_uploads == []


async def test_watch_follows_a_job_in_a_new_thread(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_api.get("fine_tuning/jobs/ftjob-1").respond(
        json={"id": "ftjob-1", "status": "running", "model": "m"}
    )
    await harness.command("watch ftjob-1", channel="C2")
    await harness.command("watch ftjob-1", channel="C2")

    (card,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    assert card.channel == "C2" and "ftjob-1" in card.text
    (note,) = fake_slack.thread("C2", card.ts)
    assert "asked me to follow job `ftjob-1`" in note.text
    watch = await harness.bot.store.watch("ftjob-1")
    assert watch.thread_ts == card.ts and not watch.done
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "already followed" in eph["text"]
    assert json.dumps(card.blocks).count("Cancel") >= 1


def card_buttons(status: str) -> dict[str, str]:
    from bot.blocks.jobs import job_card_message
    from client import Job

    job = Job.model_validate({"id": "ftjob-1", "status": status, "model": "m"})
    (actions,) = [b for b in job_card_message(job).blocks if b["type"] == "actions"]
    return {e["text"]["text"]: e["value"] for e in actions["elements"]}


def test_the_card_of_a_finished_job_has_download_and_a_running_one_cancel() -> None:
    assert set(card_buttons("running")) == {"Refresh", "Cancel", "Chart"}
    # Deploy too: a job that does not say it was a full fine-tune may be a LoRA one.
    assert card_buttons("succeeded") == {
        "Refresh": "ftjob-1",
        "Download": "ftjob-1:",
        "Deploy": "ftjob-1:",
        "Chart": "ftjob-1",
    }
    assert set(card_buttons("failed")) == {"Refresh", "Chart", "Retry", "Edit and retry"}


async def test_the_cards_download_button_uploads_the_latest_checkpoint_into_its_thread(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_checkpoint_files(nebius_api)
    await harness.click(
        Actions.DOWNLOAD_CHECKPOINT, card_buttons("succeeded")["Download"], message_ts="77.7"
    )

    titles = sorted(f["title"] for c in fake_slack.completed_uploads for f in c["files"])
    assert titles[0] == "adapter_model.safetensors (checkpoint cp-2, step 20)"
    assert all(c["thread_ts"] == "77.7" for c in fake_slack.completed_uploads)


async def test_the_download_command_takes_the_best_checkpoint_by_default(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_checkpoint_files(nebius_api)
    # The lowest validation loss is at step 10, not at the last checkpoint (client.checkpoints).
    with_losses = [
        {**CHECKPOINTS["data"][0], "metrics": {"valid_loss": 1.4}},
        {**CHECKPOINTS["data"][1], "metrics": {"valid_loss": 1.2}},
    ]
    nebius_api.get("fine_tuning/jobs/ftjob-1/checkpoints").respond(json={"data": with_losses})
    nebius_api.get("files/file-old").respond(
        json={"id": "file-old", "filename": "ckpt/step-10/adapter_model.safetensors", "bytes": 3}
    )
    nebius_api.get("files/file-old/content").respond(content=b"old")
    await harness.command("download ftjob-1")

    (parent,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    assert "checkpoint `cp-1`" in parent.text
    assert b"old" in fake_slack.uploaded.values() and ADAPTER not in fake_slack.uploaded.values()
