"""`/finetune create ...`: from a checked upload to one Nebius job and its thread."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from bot.blocks.jobs import duplicate_request_message
from bot.core.jobs import DUPLICATE_WINDOW_S
from tests.bot.conftest import HarnessFactory
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness

MODEL = "meta-llama/Llama-3.1-8B-Instruct"
JOB = {
    "id": "ftjob-7",
    "object": "fine_tuning.job",
    "model": MODEL,
    "created_at": 1700000000,
    "status": "validating_files",
    "training_file": "file-train",
}
CREATE = f"create model={MODEL} training=train.jsonl"


@pytest.fixture
async def training_file(
    harness: SlackHarness, nebius_files: respx.Route, valid_bytes: bytes
) -> None:
    """train.jsonl (F1), shared in C1 and checked; Nebius takes it as file-train."""
    await harness.upload("train.jsonl", valid_bytes)


@pytest.fixture
def create(training_file: None, nebius_api: respx.Router) -> respx.Route:
    """The training file shared, and Nebius starts JOB when asked: the route, to count the
    jobs started."""
    return nebius_api.post("fine_tuning/jobs").respond(json=JOB)


def sent_job(route: respx.Route) -> dict:
    return json.loads(route.calls.last.request.content)


async def test_create_inline_uploads_the_file_and_starts_the_job_in_a_thread(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_files: respx.Route, create: respx.Route
) -> None:
    await harness.command(f"{CREATE} epochs=2 lora=true")

    assert nebius_files.call_count == 1
    assert b"XGenLens" in nebius_files.calls.last.request.content  # the file's own bytes
    body = sent_job(create)
    assert body["model"] == MODEL and body["training_file"] == "file-train"
    assert body["hyperparameters"]["n_epochs"] == 2 and body["hyperparameters"]["lora"] is True
    # The parent message became the job card; the thread says how it went.
    (card,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    assert "ftjob-7" in card.text and card.metadata["event_payload"]["job_id"] == "ftjob-7"
    (step,) = fake_slack.thread("C1", card.ts)
    assert step.text == "Job `ftjob-7` created."
    watch = await harness.bot.store.watch("ftjob-7")
    assert watch is not None and watch.thread_ts == card.ts and watch.user_id == "U1"


async def test_the_thread_says_it_waits_for_nebius_to_process_the_file(
    harness: SlackHarness, create: respx.Route
) -> None:
    texts: list[str] = []
    real_update = harness.slack.chat.update

    async def spy(ref, message):
        texts.append(message.text)
        await real_update(ref, message)

    harness.slack.chat.update = spy  # type: ignore[method-assign]
    await harness.command(f"create model={MODEL} training=F1")

    assert "Waiting for Nebius to process the file `train.jsonl`…" in texts


async def test_a_retried_command_creates_one_job(
    harness: SlackHarness, fake_slack: FakeSlack, create: respx.Route
) -> None:
    # Slack delivers the same command (same trigger) twice.
    await harness.command(CREATE, trigger_id="trig-9")
    await harness.command(CREATE, trigger_id="trig-9")

    assert create.call_count == 1
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "already started job `ftjob-7`" in eph["text"]


async def test_the_same_content_is_uploaded_to_nebius_once(
    harness: SlackHarness, nebius_files: respx.Route, create: respx.Route
) -> None:
    await harness.command(CREATE, trigger_id="a")
    await harness.command(f"{CREATE} epochs=1", trigger_id="b")

    assert create.call_count == 2
    assert nebius_files.call_count == 1


async def test_a_500_from_nebius_on_create_is_retried_into_one_job(
    harness: SlackHarness, nebius_api: respx.Router, training_file: None
) -> None:
    create = nebius_api.post("fine_tuning/jobs").mock(
        side_effect=[httpx.Response(500, json={"detail": "boom"}), httpx.Response(200, json=JOB)]
    )
    # After the 500 the client looks for a job it may have created: there is none.
    nebius_api.get("fine_tuning/jobs").respond(
        json={"object": "list", "data": [], "has_more": False}
    )

    await harness.command(CREATE)

    assert create.call_count == 2
    assert await harness.bot.store.watch("ftjob-7") is not None


async def test_a_failure_is_reported_in_the_thread_with_the_hint(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, training_file: None
) -> None:
    nebius_api.post("fine_tuning/jobs").respond(
        400, json={"error": {"message": "model nope is not available", "type": "invalid"}}
    )

    await harness.command("create model=nope training=train.jsonl")

    (card,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    (step,) = fake_slack.thread("C1", card.ts)
    assert "could not be started: model nope is not available" in step.text
    assert "finetune models" in step.text  # the client's troubleshooting hint
    assert await harness.bot.store.watch("ftjob-7") is None


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("training=train.jsonl", "`create` needs model="),
        (f"model={MODEL} training=train.jsonl epochs=0", "n_epochs must be in [1, 20] on Nebius"),
        (f"model={MODEL} training=train.jsonl learning_rate=5", "learning_rate must be in"),
        (f"model={MODEL} training=train.jsonl colour=red", "unknown option colour"),
        (f"model={MODEL} training=missing.jsonl", "`missing.jsonl`: no recent upload"),
    ],
)
async def test_a_bad_request_names_what_is_wrong_and_starts_nothing(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_files: respx.Route,
    create: respx.Route,
    words: str,
    expected: str,
) -> None:
    await harness.command(f"create {words}")

    (eph,) = fake_slack.ephemerals_for("U1")
    assert expected in eph["text"]
    assert not create.called and not nebius_files.called


async def test_an_invalid_upload_cannot_be_used(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    await harness.upload("bad.jsonl", b"not json\n")
    await harness.command(f"create model={MODEL} training=bad.jsonl")
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "`bad.jsonl` has errors" in eph["text"]


async def test_an_unauthorised_user_cannot_create(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    harness = harness_factory(allowed_channels=frozenset({"CJOBS"}))
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)
    await harness.command(CREATE, channel="C1")
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "jobs cannot be created or cancelled from this channel" in eph["text"]
    assert not create.called


async def test_wandb_logging_uses_the_bots_key_which_never_reaches_slack(
    harness_factory: HarnessFactory,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    from pydantic import SecretStr

    harness = harness_factory(wandb_api_key=SecretStr("wandb-secret-key"))
    await harness.upload("train.jsonl", valid_bytes)
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)

    await harness.command(f"{CREATE} wandb_project=xgen wandb_name=run-1")

    assert sent_job(create)["integrations"] == [
        {
            "type": "wandb",
            "wandb": {"project": "xgen", "name": "run-1", "api_key": "wandb-secret-key"},
        }
    ]
    assert "wandb-secret-key" not in repr(fake_slack.calls)


async def test_wandb_logging_without_a_configured_key_says_so_before_uploading(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_files: respx.Route, create: respx.Route
) -> None:
    await harness.command(f"{CREATE} wandb_project=xgen")

    assert create.call_count == 0 and nebius_files.call_count == 0
    texts = [m.text for m in fake_slack.messages.values()]
    assert any("WANDB_API_KEY" in text for text in texts)


async def test_the_same_create_typed_twice_starts_one_job_and_points_at_the_first(
    harness: SlackHarness, fake_slack: FakeSlack, create: respx.Route
) -> None:
    # Two separate commands (two triggers), the same content: `epochs=3` is the default.
    await harness.command(CREATE, trigger_id="a")
    await harness.command(f"create model={MODEL} training=F1 epochs=3", trigger_id="b")

    assert create.call_count == 1
    (card,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "Not started again" in eph["text"]
    # A link straight to the first job's thread (Slack's permalink for its card).
    link = f"https://example.slack.com/archives/C1/p{card.ts.replace('.', '')}"
    assert f"job `ftjob-7` (<{link}|its thread>)" in eph["text"]
    assert "Change a setting" in eph["text"]
    # Slack redelivers the refused command: still one job, and it names that job.
    await harness.command(f"create model={MODEL} training=F1 epochs=3", trigger_id="b")
    assert create.call_count == 1
    assert "already started job `ftjob-7`" in fake_slack.ephemerals_for("U1")[-1]["text"]


async def test_a_deliberately_different_request_still_starts_a_second_job(
    harness: SlackHarness, fake_slack: FakeSlack, create: respx.Route
) -> None:
    await harness.command(CREATE, trigger_id="a")
    await harness.command(f"{CREATE} seed=1", trigger_id="b")
    await harness.command(f"{CREATE} wandb_project=p", trigger_id="c")

    # The third differs too (W&B) and gets as far as asking for the W&B key.
    assert create.call_count == 2
    assert fake_slack.ephemerals_for("U1") == []


async def test_another_user_asking_for_the_same_job_is_not_refused(
    harness: SlackHarness, create: respx.Route
) -> None:
    await harness.command(CREATE, trigger_id="a")
    await harness.command(CREATE, trigger_id="b", user="U2")

    assert create.call_count == 2


async def test_the_same_request_after_the_window_starts_a_new_job(
    harness: SlackHarness, create: respx.Route, clock: FakeClock
) -> None:
    await harness.command(CREATE, trigger_id="a")
    clock.advance(DUPLICATE_WINDOW_S - 1)
    await harness.command(CREATE, trigger_id="b")
    assert create.call_count == 1
    clock.advance(2)
    await harness.command(CREATE, trigger_id="c")
    assert create.call_count == 2


async def test_a_request_that_failed_may_be_made_again_at_once(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router, training_file: None
) -> None:
    create = nebius_api.post("fine_tuning/jobs").mock(
        side_effect=[
            httpx.Response(400, json={"error": {"message": "quota exceeded"}}),
            httpx.Response(200, json=JOB),
        ]
    )

    await harness.command(CREATE, trigger_id="a")
    await harness.command(CREATE, trigger_id="b")

    assert create.call_count == 2
    assert await harness.bot.store.watch("ftjob-7") is not None
    assert fake_slack.ephemerals_for("U1") == []


async def test_a_duplicate_of_a_request_still_being_started_is_refused(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    training_file: None,
    clock: FakeClock,
) -> None:
    import asyncio

    asked, release = asyncio.Event(), asyncio.Event()

    async def slow_create(request: httpx.Request) -> httpx.Response:
        asked.set()
        await release.wait()  # Nebius takes its time; the second command comes meanwhile
        return httpx.Response(200, json=JOB)

    create = nebius_api.post("fine_tuning/jobs").mock(side_effect=slow_create)
    first = asyncio.create_task(harness.command(CREATE, trigger_id="a"))
    await asyncio.wait_for(asked.wait(), timeout=10)

    async def release_once_refused() -> None:
        while not fake_slack.ephemerals_for("U1"):
            await asyncio.sleep(0.01)
        release.set()

    # Long past the window, but the first request has no job yet: still a duplicate.
    clock.advance(100 * DUPLICATE_WINDOW_S)
    helper = asyncio.create_task(release_once_refused())
    second = harness.command(CREATE, trigger_id="b")
    await asyncio.wait_for(asyncio.gather(second, first, helper), timeout=20)

    assert create.call_count == 1
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "still being started" in eph["text"]


async def test_a_file_named_as_validation_gets_its_report_as_a_validation_file(
    harness: SlackHarness, fake_slack: FakeSlack, create: respx.Route, samples_dir: Path
) -> None:
    val = (samples_dir / "sample_validation_data.jsonl").read_bytes()
    await harness.upload("val.jsonl", val, file_id="F2", ts="1700000000.000002", event_id="Ev2")
    (report,) = fake_slack.thread("C1", "1700000000.000002")
    assert "no validation file" in json.dumps(report.blocks)

    await harness.command(f"{CREATE} validation=val.jsonl")

    assert "validation_file" in sent_job(create)
    (report,) = fake_slack.thread("C1", "1700000000.000002")  # updated in place
    assert "checked as a validation file" in report.text
    assert "val.jsonl [validation]" in json.dumps(report.blocks)
    assert "no validation file" not in json.dumps(report.blocks)
    # The training file's own report is left as it was.
    (train_report,) = fake_slack.thread("C1", "1700000000.000001")
    assert "[training]" in json.dumps(train_report.blocks)


def test_a_duplicate_note_without_a_link_names_the_channel_of_the_first_job() -> None:
    note = duplicate_request_message("ftjob-7", "C1", "1700000000.000100", age_s=90, link=None)

    assert "job `ftjob-7` (its thread is in <#C1>)" in note.text
    assert "1 min ago" in note.text and "1700000000" not in note.text
