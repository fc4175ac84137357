"""The loss chart in a job's thread: uploaded once when the job ends (also across a
restart), on demand with `/finetune chart JOB` and the card's Chart button, drawn from the
events' data and the checkpoints' metrics, saying what is missing."""

from __future__ import annotations

import httpx
import respx

from bot.blocks import Actions
from bot.chat_interface import ChatError, Message
from client.charts.curve import NO_VALIDATION_FILE, TRAINING_LOSS_PER_CHECKPOINT
from tests.bot.conftest import HarnessFactory
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JOB = {
    "id": "ftjob-1",
    "model": "m",
    "status": "succeeded",
    "created_at": 1,
    "training_file": "file-t",
    "validation_file": "file-v",
    "hyperparameters": {"n_epochs": 2},
    "trained_steps": 20,
    "total_steps": 20,
}


def engine_events() -> list[dict]:
    """The local engine's events, oldest first: progress figures, then each epoch's end."""
    events = []
    for step in range(1, 21):
        data = {"type": "progress", "step": step, "total_steps": 20, "loss": 3 - step / 10}
        events.append({"message": f"Step {step}/20", "data": data})
        if step % 10 == 0:
            epoch = {"type": "epoch", "epoch": step // 10, "step": step, "valid_loss": 2.5}
            events.append({"message": f"Epoch {step // 10} finished", "data": epoch})
    return [
        {"id": f"ev-{n}", "created_at": 1700000000 + n, "level": "info", **e}
        for n, e in enumerate(events, 1)
    ]


CHECKPOINTS = [
    {"id": "cp-1", "step_number": 10, "metrics": {"train_loss": 2.0, "valid_loss": 2.4}},
    {"id": "cp-2", "step_number": 20, "metrics": {"train_loss": 1.0, "valid_loss": 2.2}},
]


def serve_job(
    nebius_api: respx.Router,
    job: dict = JOB,
    events: list[dict] | None = None,
    checkpoints: list[dict] = CHECKPOINTS,
) -> None:
    listed = list(reversed(engine_events() if events is None else events))  # newest first
    nebius_api.get(f"fine_tuning/jobs/{job['id']}").respond(json=job)
    nebius_api.get(f"fine_tuning/jobs/{job['id']}/events").respond(
        json={"data": listed, "has_more": False}
    )
    nebius_api.get(f"fine_tuning/jobs/{job['id']}/checkpoints").respond(json={"data": checkpoints})
    # The card's cost: no price known here.
    nebius_api.get(url__regex=r"/v0/models").respond(json=[])


def charts(fake: FakeSlack) -> list[dict]:
    return [
        {**c, "file": f}
        for c in fake.completed_uploads
        for f in c["files"]
        if f["title"].startswith("Loss chart of")
    ]


async def test_the_chart_is_uploaded_into_the_thread_once_when_the_job_ends(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    serve_job(nebius_api)
    ts = await harness.follow_job("ftjob-1", status="running")

    await harness.bot.watcher.poll_due()
    await harness.bot.watcher.poll_due()  # the watch is done: nothing more

    (chart,) = charts(fake_slack)
    assert chart["thread_ts"] == ts and chart["channel_id"] == "C1"
    assert chart["file"]["title"] == "Loss chart of ftjob-1"
    assert fake_slack.uploaded[chart["file"]["id"]].startswith(PNG_MAGIC)
    comment = chart["initial_comment"]
    assert "loss 2.9 " in comment and " 1 (20 steps)" in comment  # the sparkline
    assert "▁" in comment and "█" in comment
    # Then the summary, the last word in the thread.
    thread = fake_slack.thread("C1", ts)
    assert (thread[-1].metadata or {}).get("event_payload", {}).get("kind") == "summary"


async def test_a_restart_before_the_summary_does_not_upload_the_chart_again(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    serve_job(nebius_api)
    first = harness_factory()
    ts = await first.follow_job("ftjob-1", status="running")
    real_post = first.bot.chat.post

    async def summary_refused(channel: str, message: Message, *, thread_ts=None):
        if (message.metadata or {}).get("kind") == "summary":
            raise ChatError("Slack refused it")
        return await real_post(channel, message, thread_ts=thread_ts)

    first.bot.chat.post = summary_refused  # type: ignore[method-assign]
    await first.bot.watcher.poll_due()  # the chart went up; the summary did not
    assert len(charts(fake_slack)) == 1
    await first.aclose()

    again = harness_factory()  # the same database: a restart
    await again.bot.watcher.poll_due()

    assert len(charts(fake_slack)) == 1
    kinds = [
        (m.metadata or {}).get("event_payload", {}).get("kind") for m in fake_slack.thread("C1", ts)
    ]
    assert kinds.count("summary") == 1
    assert (await again.bot.store.watch("ftjob-1")).done


async def test_a_job_that_reported_no_loss_gets_no_chart_at_its_end(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    serve_job(nebius_api, {**JOB, "status": "cancelled"}, events=[], checkpoints=[])
    await harness.follow_job("ftjob-1", status="running")

    await harness.bot.watcher.poll_due()

    assert charts(fake_slack) == []
    assert (await harness.bot.store.watch("ftjob-1")).done


async def test_the_chart_command_posts_into_the_jobs_thread_or_a_new_one(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    serve_job(nebius_api, {**JOB, "status": "running"})
    ts = await harness.follow_job("ftjob-1", status="running")

    await harness.command("chart ftjob-1")  # where the job is followed: into its thread
    await harness.command("chart ftjob-1", channel="C2")  # elsewhere: a thread of its own

    here, there = charts(fake_slack)
    assert here["thread_ts"] == ts
    assert there["channel_id"] == "C2"
    parent = fake_slack.messages[("C2", there["thread_ts"])]
    assert "<@U1> asked for the loss chart of job `ftjob-1`" in parent.text


async def test_the_chart_button_uploads_into_the_cards_thread(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    serve_job(nebius_api)
    await harness.click(Actions.SHOW_CHART, "ftjob-1", message_ts="55.5")

    (chart,) = charts(fake_slack)
    assert chart["thread_ts"] == "55.5"


async def test_a_nebius_job_is_drawn_from_its_checkpoints_and_says_what_is_missing(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    plain = [
        {"id": "n-1", "created_at": 1, "level": "info", "message": "Job is submitted"},
        {"id": "n-2", "created_at": 2, "level": "info", "message": "Training completed"},
    ]
    job = {**JOB, "validation_file": None}
    metrics = [{**c, "metrics": {"train_loss": c["metrics"]["train_loss"]}} for c in CHECKPOINTS]
    serve_job(nebius_api, job, events=plain, checkpoints=metrics)

    await harness.command("chart ftjob-1")

    (chart,) = charts(fake_slack)
    comment = chart["initial_comment"]
    assert "(2 checkpoints)" in comment
    assert TRAINING_LOSS_PER_CHECKPOINT in comment and NO_VALIDATION_FILE in comment


async def test_an_unknown_job_is_said_and_nothing_is_posted(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    nebius_api.get("fine_tuning/jobs/ftjob-404").mock(
        return_value=httpx.Response(404, json={"error": {"message": "no such job"}})
    )
    await harness.command("chart ftjob-404", channel="C2")

    assert charts(fake_slack) == []
    assert [m for m in fake_slack.messages.values() if m.channel == "C2"] == []
    (note,) = fake_slack.ephemerals_for("U1")
    assert "no such job" in note["text"]
