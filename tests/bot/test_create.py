"""`/finetune create ...`: from a checked upload to one Nebius job and its thread."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import respx

from tests.bot.conftest import HarnessFactory
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


@pytest.fixture
def valid_bytes(samples_dir: Path) -> bytes:
    return (samples_dir / "sample_training_data.jsonl").read_bytes()


@pytest.fixture
def nebius_files(nebius_api: respx.Router) -> respx.Route:
    """Nebius accepts uploads and says each file is processed."""
    nebius_api.get(url__regex=r"files/file-\w+$").respond(
        json={"id": "file-train", "object": "file", "status": "processed"}
    )
    return nebius_api.post("files").respond(
        json={"id": "file-train", "object": "file", "bytes": 10, "status": "uploaded"}
    )


async def shared(harness: SlackHarness, fake: FakeSlack, data: bytes, name="train.jsonl"):
    await harness.share_file(fake.host_file("F1", name, data), ts="1700000000.000001")


def sent_job(route: respx.Route) -> dict:
    return json.loads(route.calls.last.request.content)


async def test_create_inline_uploads_the_file_and_starts_the_job_in_a_thread(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    await shared(harness, fake_slack, valid_bytes)
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)

    await harness.command(f"create model={MODEL} training=train.jsonl epochs=2 lora=true")

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
    watch = harness.bot.store.watch("ftjob-7")
    assert watch is not None and watch.thread_ts == card.ts and watch.user_id == "U1"


async def test_the_thread_says_it_waits_for_nebius_to_process_the_file(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    await shared(harness, fake_slack, valid_bytes)
    nebius_api.post("fine_tuning/jobs").respond(json=JOB)
    texts: list[str] = []
    real_update = harness.slack.chat.update

    async def spy(ref, message):
        texts.append(message.text)
        await real_update(ref, message)

    harness.slack.chat.update = spy  # type: ignore[method-assign]
    await harness.command(f"create model={MODEL} training=F1")

    assert "Waiting for Nebius to process the file `train.jsonl`…" in texts


async def test_a_retried_command_creates_one_job(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    await shared(harness, fake_slack, valid_bytes)
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)

    # Slack delivers the same command (same trigger) twice.
    await harness.command(f"create model={MODEL} training=train.jsonl", trigger_id="trig-9")
    await harness.command(f"create model={MODEL} training=train.jsonl", trigger_id="trig-9")

    assert create.call_count == 1
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "already started job `ftjob-7`" in eph["text"]


async def test_the_same_content_is_uploaded_to_nebius_once(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    await shared(harness, fake_slack, valid_bytes)
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)

    await harness.command(f"create model={MODEL} training=train.jsonl", trigger_id="a")
    await harness.command(f"create model={MODEL} training=train.jsonl epochs=1", trigger_id="b")

    assert create.call_count == 2
    assert nebius_files.call_count == 1


async def test_a_500_from_nebius_on_create_is_retried_into_one_job(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    await shared(harness, fake_slack, valid_bytes)
    create = nebius_api.post("fine_tuning/jobs").mock(
        side_effect=[httpx.Response(500, json={"detail": "boom"}), httpx.Response(200, json=JOB)]
    )
    # After the 500 the client looks for a job it may have created: there is none.
    nebius_api.get("fine_tuning/jobs").respond(
        json={"object": "list", "data": [], "has_more": False}
    )

    await harness.command(f"create model={MODEL} training=train.jsonl")

    assert create.call_count == 2
    assert harness.bot.store.watch("ftjob-7") is not None


async def test_a_failure_is_reported_in_the_thread_with_the_hint(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    await shared(harness, fake_slack, valid_bytes)
    nebius_api.post("fine_tuning/jobs").respond(
        400, json={"error": {"message": "model nope is not available", "type": "invalid"}}
    )

    await harness.command("create model=nope training=train.jsonl")

    (card,) = [m for m in fake_slack.messages.values() if m.thread_ts is None]
    (step,) = fake_slack.thread("C1", card.ts)
    assert "could not be started: model nope is not available" in step.text
    assert "finetune models" in step.text  # the client's troubleshooting hint
    assert harness.bot.store.watch("ftjob-7") is None


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("training=train.jsonl", "`create` needs model="),
        (f"model={MODEL} training=train.jsonl epochs=0", "n_epochs must be in [1, 100]"),
        (f"model={MODEL} training=train.jsonl learning_rate=5", "learning_rate must be in"),
        (f"model={MODEL} training=train.jsonl colour=red", "unknown option colour"),
        (f"model={MODEL} training=missing.jsonl", "`missing.jsonl`: no recent upload"),
    ],
)
async def test_a_bad_request_names_what_is_wrong_and_starts_nothing(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
    words: str,
    expected: str,
) -> None:
    await shared(harness, fake_slack, valid_bytes)
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)

    await harness.command(f"create {words}")

    (eph,) = fake_slack.ephemerals_for("U1")
    assert expected in eph["text"]
    assert not create.called and not nebius_files.called


async def test_an_invalid_upload_cannot_be_used(
    harness: SlackHarness, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    await shared(harness, fake_slack, b"not json\n", name="bad.jsonl")
    await harness.command(f"create model={MODEL} training=bad.jsonl")
    (eph,) = fake_slack.ephemerals_for("U1")
    assert "`bad.jsonl` has errors" in eph["text"]


async def test_an_unauthorised_user_cannot_create(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, nebius_api: respx.Router
) -> None:
    harness = harness_factory(allowed_channels=frozenset({"CJOBS"}))
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)
    await harness.command(f"create model={MODEL} training=train.jsonl", channel="C1")
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
    await shared(harness, fake_slack, valid_bytes)
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)

    await harness.command(
        f"create model={MODEL} training=train.jsonl wandb_project=xgen wandb_name=run-1"
    )

    assert sent_job(create)["integrations"] == [
        {
            "type": "wandb",
            "wandb": {"project": "xgen", "name": "run-1", "api_key": "wandb-secret-key"},
        }
    ]
    assert "wandb-secret-key" not in repr(fake_slack.calls)


async def test_wandb_logging_without_a_configured_key_says_so_before_uploading(
    harness: SlackHarness,
    fake_slack: FakeSlack,
    nebius_api: respx.Router,
    nebius_files: respx.Route,
    valid_bytes: bytes,
) -> None:
    await shared(harness, fake_slack, valid_bytes)
    create = nebius_api.post("fine_tuning/jobs").respond(json=JOB)

    await harness.command(f"create model={MODEL} training=train.jsonl wandb_project=xgen")

    assert create.call_count == 0 and nebius_files.call_count == 0
    texts = [m.text for m in fake_slack.messages.values()]
    assert any("WANDB_API_KEY" in text for text in texts)
