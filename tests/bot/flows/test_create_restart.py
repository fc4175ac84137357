"""A crash (or a shutdown) in the middle of starting a job: the next start of the bot finds the
job the request created and follows it, or says the start was interrupted and offers it again;
never a second paid job for one request."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import respx
from pydantic import SecretStr

from bot.blocks.ids import Actions
from tests.bot.conftest import HarnessFactory
from tests.bot.fake_slack import FakeSlack, PostedMessage
from tests.bot.harness import SlackHarness

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
COMMAND = f"create model={MODEL} training=train.jsonl"
EMPTY = {"object": "list", "data": [], "has_more": False}


def job(job_id: str = "ftjob-7", **changes: object) -> dict:
    return {
        "id": job_id,
        "object": "fine_tuning.job",
        "model": MODEL,
        # Created now: the crash was moments ago.
        "created_at": int(time.time()),
        "status": "validating_files",
        "training_file": "file-train",
        **changes,
    }


@pytest.fixture
def watched_job(nebius_api: respx.Router) -> None:
    """What the watcher asks about the job once it follows it."""
    nebius_api.get("fine_tuning/jobs/ftjob-7").respond(json=job())
    nebius_api.get("fine_tuning/jobs/ftjob-7/events").respond(json=EMPTY)


class Nebius:
    """One Nebius call whose answer never comes (the bot crashes while waiting for it) until
    `answer` is set; `sent` counts every request, answered or not."""

    def __init__(self) -> None:
        self.asked = asyncio.Event()
        self.sent: list[httpx.Request] = []
        self.answer: httpx.Response | None = None

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.sent.append(request)
        self.asked.set()
        if self.answer is None:
            await asyncio.Event().wait()
        assert self.answer is not None
        return self.answer

    def body(self) -> dict:
        return json.loads(self.sent[-1].content)


async def crash_during(harness: SlackHarness, call: Nebius, text: str = COMMAND) -> None:
    """Runs `text` until Nebius is asked (`call`), then stops the bot dead, mid-start."""
    command = asyncio.create_task(harness.command(text, trigger_id="trig-1"))
    await asyncio.wait_for(call.asked.wait(), timeout=10)
    await harness.bot.background.cancel_all()  # as a kill would: the start never ends
    await asyncio.wait_for(command, timeout=10)


async def restart(factory: HarnessFactory, **changes: object) -> SlackHarness:
    """A new bot over the same database, started as the runner starts it."""
    harness = factory(**changes)
    harness.bot.start_watching()
    assert harness.bot.resolving is not None
    await asyncio.wait_for(harness.bot.resolving, timeout=10)
    # The watcher polls forever; these tests look at what the restart resolved, so it stops
    # here (the harness waits for all background work after each request).
    watchers = [t for t in asyncio.all_tasks() if t.get_name() == "watcher"]
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)
    return harness


def request_message(fake: FakeSlack) -> PostedMessage:
    (parent,) = [m for m in fake.messages.values() if m.thread_ts is None]
    return parent


def buttons(message: PostedMessage) -> list[dict]:
    return [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


@pytest.fixture
async def create(
    harness: SlackHarness,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> Nebius:
    """train.jsonl shared in C1 and checked; Nebius's create call is the one whose answer
    never comes."""
    await harness.upload("train.jsonl", valid_bytes)
    create = Nebius()
    nebius_api.post("fine_tuning/jobs").mock(side_effect=create)
    return create


async def test_a_job_created_before_the_crash_is_found_and_followed_after_the_restart(
    harness: SlackHarness,
    harness_factory: HarnessFactory,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    watched_job: None,
    create: Nebius,
) -> None:
    listed = nebius_api.get("fine_tuning/jobs").respond(
        json={"object": "list", "data": [job()], "has_more": False}
    )
    await crash_during(harness, create)
    parent = request_message(fake_slack)
    assert "is starting a fine-tuning job" in parent.text  # what it said at the crash

    again = await restart(harness_factory)

    assert len(create.sent) == 1 and listed.call_count == 1
    # The request's message became the job's card, its thread says how it went.
    parent = request_message(fake_slack)
    assert "ftjob-7" in parent.text and parent.metadata["event_payload"]["job_id"] == "ftjob-7"
    (step,) = fake_slack.thread("C1", parent.ts)
    assert step.text == "Job `ftjob-7` created (found on Nebius after the bot restarted)."
    watch = await again.bot.store.watch("ftjob-7")
    assert watch is not None and watch.thread_ts == parent.ts and watch.user_id == "U1"
    # The same command typed again is pointed at that job, not started a second time.
    await again.command(COMMAND, trigger_id="trig-2")
    assert len(create.sent) == 1
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "Not started again" in eph["text"] and "ftjob-7" in eph["text"]
    # Resolved once: another restart has nothing left to do.
    await restart(harness_factory)
    assert listed.call_count == 1


async def test_a_job_of_another_thread_is_not_taken_for_the_interrupted_one(
    harness: SlackHarness,
    harness_factory: HarnessFactory,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    create: Nebius,
) -> None:
    # Someone else's job, same file and model, followed in its own thread.
    await harness.bot.store.add_watch("ftjob-other", "C1", "1700000000.000555", "U2")
    other = {"object": "list", "data": [job("ftjob-other")], "has_more": False}
    nebius_api.get("fine_tuning/jobs").respond(json=other)
    await crash_during(harness, create)

    again = await restart(harness_factory)

    assert len(create.sent) == 1
    parent = request_message(fake_slack)
    assert "was not started" in parent.text and "ftjob-other" not in parent.text
    assert (await again.bot.store.watch("ftjob-other")).thread_ts == "1700000000.000555"


async def test_no_job_from_the_interrupted_create_offers_one_start_again(
    harness: SlackHarness,
    harness_factory: HarnessFactory,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    create: Nebius,
) -> None:
    nebius_api.get("fine_tuning/jobs").respond(json=EMPTY)
    await crash_during(harness, create)

    again = await restart(harness_factory)

    parent = request_message(fake_slack)
    assert "was not started: the bot restarted while it was asking Nebius for the job" in (
        parent.text
    )
    assert "Nebius has no job from it" in parent.text
    (button,) = buttons(parent)
    assert button["action_id"] == Actions.START_AGAIN
    (step,) = fake_slack.thread("C1", parent.ts)
    assert step.text.startswith("Interrupted: the bot restarted before the job was created")
    assert len(create.sent) == 1

    # Nebius answers now; the button starts the same request, once however often pressed.
    create.answer = httpx.Response(200, json=job())
    await again.click(Actions.START_AGAIN, button["value"], message_ts=parent.ts)
    await again.click(Actions.START_AGAIN, button["value"], message_ts=parent.ts)

    assert len(create.sent) == 2
    body = create.body()
    assert body["model"] == MODEL and body["training_file"] == "file-train"
    assert await again.bot.store.watch("ftjob-7") is not None
    old = fake_slack.messages[("C1", parent.ts)]
    assert "started it again" in old.text and buttons(old) == []
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "already started again" in eph["text"]


async def test_a_start_interrupted_while_uploading_is_offered_again_without_asking_nebius(
    harness: SlackHarness,
    harness_factory: HarnessFactory,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    valid_bytes: bytes,
) -> None:
    await harness.upload("train.jsonl", valid_bytes)
    upload = Nebius()
    nebius_api.post("files").mock(side_effect=upload)
    create = nebius_api.post("fine_tuning/jobs").respond(json=job())
    listed = nebius_api.get("fine_tuning/jobs").respond(json=EMPTY)
    await crash_during(harness, upload)

    again = await restart(harness_factory)

    assert not listed.called and not create.called  # no create was sent: nothing to look for
    parent = request_message(fake_slack)
    assert "the bot restarted while it was getting the data to Nebius" in parent.text
    assert "Nebius has no job" not in parent.text
    (button,) = buttons(parent)

    # The upload works now: Start again uploads and creates the job.
    upload.answer = httpx.Response(200, json={"id": "file-train", "object": "file"})
    nebius_api.get(url__regex=r"files/file-\w+$").respond(
        json={"id": "file-train", "object": "file", "status": "processed"}
    )
    await again.click(Actions.START_AGAIN, button["value"], message_ts=parent.ts)
    assert create.call_count == 1
    assert await again.bot.store.watch("ftjob-7") is not None


async def test_when_nebius_cannot_be_asked_it_says_so_and_offers_nothing_blind(
    harness: SlackHarness,
    harness_factory: HarnessFactory,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    watched_job: None,
    create: Nebius,
) -> None:
    listed = nebius_api.get("fine_tuning/jobs").respond(503, json={"detail": "down"})
    await crash_during(harness, create)

    await restart(harness_factory)

    parent = request_message(fake_slack)
    (step,) = fake_slack.thread("C1", parent.ts)
    assert "cannot tell yet whether the job was created" in step.text
    assert "/finetune list" in step.text
    assert buttons(parent) == [] and buttons(step) == []  # no start again, blind
    # The next start looks again, and finds it this time.
    listed.mock(
        return_value=httpx.Response(200, json={"object": "list", "data": [job()]}),
    )
    again = await restart(harness_factory)
    assert await again.bot.store.watch("ftjob-7") is not None
    assert len(create.sent) == 1


async def test_the_wandb_key_is_never_stored_and_is_read_again_to_start_again(
    harness_factory: HarnessFactory,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
    settings,
) -> None:
    key = SecretStr("wandb-secret-key")
    harness = harness_factory(wandb_api_key=key)
    await harness.upload("train.jsonl", valid_bytes)
    create = Nebius()
    nebius_api.post("fine_tuning/jobs").mock(side_effect=create)
    nebius_api.get("fine_tuning/jobs").respond(json=EMPTY)
    await crash_during(harness, create, f"{COMMAND} wandb_project=xgen")
    assert "wandb-secret-key" in create.sent[-1].content.decode()

    db = Path(settings.database_path)
    stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
    assert b"wandb-secret-key" not in stored and b"xgen" in stored

    # The key has changed in the configuration since: the new one is used.
    again = await restart(harness_factory, wandb_api_key=SecretStr("wandb-new-key"))
    (button,) = buttons(request_message(fake_slack))
    create.answer = httpx.Response(200, json=job())
    await again.click(Actions.START_AGAIN, button["value"])
    sent = create.body()
    assert sent["integrations"][0]["wandb"] == {"project": "xgen", "api_key": "wandb-new-key"}


async def test_a_start_still_running_in_this_process_is_left_alone(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    await harness.upload("train.jsonl", valid_bytes)
    asked, release = asyncio.Event(), asyncio.Event()

    async def slow(request: httpx.Request) -> httpx.Response:
        asked.set()
        await release.wait()
        return httpx.Response(200, json=job())

    create = nebius_api.post("fine_tuning/jobs").mock(side_effect=slow)
    listed = nebius_api.get("fine_tuning/jobs").respond(json=EMPTY)
    command = asyncio.create_task(harness.command(COMMAND, trigger_id="trig-1"))
    await asyncio.wait_for(asked.wait(), timeout=10)

    # The resolution at start runs while this process is itself starting a job.
    await harness.bot.commands.resolve_interrupted_starts()
    release.set()
    await asyncio.wait_for(command, timeout=10)

    assert not listed.called and create.call_count == 1
    assert "ftjob-7" in request_message(fake_slack).text
