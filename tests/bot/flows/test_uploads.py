"""A .jsonl shared in a channel is checked and answered in its thread, once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import respx

from bot.blocks import Actions
from tests.bot.conftest import HarnessFactory
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack
from tests.bot.harness import SlackHarness

SHARE_TS = "1700000000.000001"


def all_text(message) -> str:
    return message.text + json.dumps(message.blocks)


def buttons(message) -> list[str]:
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


INVALID = (
    b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}\n'
    b"this is not json\n"
    b'{"messages": [{"role": "user", "content": "only a question"}]}\n'
)


async def test_a_valid_dataset_gets_its_report_and_the_buttons_in_its_thread(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes
) -> None:
    file = fake_slack.host_file("F1", "train.jsonl", valid_bytes)
    response = await harness.share_file(file, ts=SHARE_TS)

    assert response.status_code == 200
    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "valid chat dataset" in reply.text
    assert "10 examples" in reply.text
    assert buttons(reply) == [Actions.FINETUNE_WITH_FILE, Actions.USE_AS_VALIDATION]
    # The buttons carry the Slack file id, so a click knows which file it is about.
    values = {e["value"] for b in reply.blocks if b["type"] == "actions" for e in b["elements"]}
    assert values == {"F1"}
    # The download used the bot token, and nothing else got it.
    assert fake_slack.download_requests == [f"Bearer {BOT_TOKEN}"]
    upload = await harness.bot.store.upload("F1")
    assert upload is not None and upload.valid is True and upload.format == "chat"


async def test_an_invalid_dataset_gets_its_errors_with_line_numbers_and_no_buttons(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    file = fake_slack.host_file("F2", "broken.jsonl", INVALID)
    await harness.share_file(file, ts=SHARE_TS)

    (reply,) = fake_slack.thread("C1", SHARE_TS)
    text = all_text(reply)
    assert "`broken.jsonl` has 2 errors" in reply.text
    assert "line 2" in text and "line 3" in text
    assert buttons(reply) == []
    assert (await harness.bot.store.upload("F2")).valid is False


async def test_other_files_are_ignored(harness: SlackHarness, fake_slack: FakeSlack) -> None:
    file = fake_slack.host_file("F3", "notes.txt", b"hello")
    await harness.share_file(file)

    assert fake_slack.calls_to("chat.postMessage") == []
    assert fake_slack.download_requests == []


async def test_a_redelivered_event_and_a_second_share_do_not_validate_again(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes
) -> None:
    file = fake_slack.host_file("F1", "train.jsonl", valid_bytes)
    await harness.share_file(file, event_id="EvA")
    # Slack retries the same event, then the same file arrives in another event.
    await harness.share_file(file, event_id="EvA")
    await harness.share_file(file, event_id="EvB")

    assert len(fake_slack.download_requests) == 1
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


async def test_the_same_content_under_a_new_file_reuses_the_report(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes
) -> None:
    await harness.share_file(fake_slack.host_file("F1", "train.jsonl", valid_bytes))
    second = fake_slack.host_file("F9", "copy.jsonl", valid_bytes)
    await harness.share_file(second, ts="1700000000.000002", event_id="EvOther")

    (reply,) = fake_slack.thread("C1", "1700000000.000002")
    assert "`copy.jsonl`" in reply.text
    assert "Same content as an earlier upload" in all_text(reply)
    assert (await harness.bot.store.upload("F9")).valid is True


async def test_a_file_over_the_size_cap_is_refused_before_downloading(
    fake_slack: FakeSlack, harness_factory: HarnessFactory
) -> None:
    harness = harness_factory(max_upload_bytes=100)
    file = fake_slack.host_file("F1", "big.jsonl", b"x" * 500)
    await harness.share_file(file, ts=SHARE_TS)

    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "it is 500 bytes; this bot checks files up to 100 bytes" in reply.text
    assert "validate-jsonl" in all_text(reply)
    assert fake_slack.download_requests == []


async def test_a_file_whose_size_is_understated_is_cut_off_at_the_cap(
    fake_slack: FakeSlack, harness_factory: HarnessFactory
) -> None:
    harness = harness_factory(max_upload_bytes=100)
    file = fake_slack.host_file("F1", "big.jsonl", b"x" * 500)
    file["size"] = 50  # the event lies; the stream is still capped
    await harness.share_file(file, ts=SHARE_TS)

    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "Could not check `big.jsonl`" in reply.text
    assert (await harness.bot.store.upload("F1")).state == "failed"


async def test_an_html_answer_means_the_files_read_scope_is_missing(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes
) -> None:
    file = fake_slack.host_file("F1", "train.jsonl", valid_bytes)
    fake_slack.bot_token_for_files = "another-token"  # Slack refuses this token the file
    await harness.share_file(file, ts=SHARE_TS)

    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "files:read" in all_text(reply)
    assert "reinstall" in all_text(reply)


async def test_a_file_event_without_a_download_url_is_looked_up(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes
) -> None:
    fake_slack.host_file("F1", "train.jsonl", valid_bytes)
    await harness.share_file(
        {"id": "F1", "name": "train.jsonl", "file_access": "check_file_info"}, ts=SHARE_TS
    )

    assert [c.args["file"] for c in fake_slack.calls_to("files.info")] == ["F1"]
    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "valid chat dataset" in reply.text


async def test_a_download_address_off_slacks_hosts_never_gets_the_token(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    file = {
        "id": "F1",
        "name": "train.jsonl",
        "size": 10,
        "url_private_download": "https://attacker.example/steal.jsonl",
    }
    await harness.share_file(file, ts=SHARE_TS)

    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "not on Slack's file hosts" in reply.text
    assert BOT_TOKEN not in all_text(reply)


async def test_a_large_file_gets_one_progress_message_updated_in_place(
    fake_slack: FakeSlack, harness_factory: HarnessFactory, valid_bytes: bytes
) -> None:
    harness = harness_factory()
    harness.bot.uploads.progress_threshold = 1000  # the sample counts as large here
    await harness.share_file(fake_slack.host_file("F1", "train.jsonl", valid_bytes))

    (message,) = fake_slack.thread("C1", SHARE_TS)
    assert message.updates >= 1
    assert "valid chat dataset" in message.text


async def test_a_request_with_a_bad_signature_is_refused_and_does_nothing(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes
) -> None:
    file = fake_slack.host_file("F1", "train.jsonl", valid_bytes)
    body = json.dumps({"type": "event_callback", "event_id": "Ev1", "event": {}})
    response = await harness.http.post(
        "/slack/events",
        content=body,
        headers={
            "Content-Type": "application/json",
            "X-Slack-Request-Timestamp": "1700000000",
            "X-Slack-Signature": "v0=" + "0" * 64,
        },
    )
    assert response.status_code == 401
    assert file and fake_slack.calls_to("chat.postMessage") == []


@pytest.fixture
def validation_bytes(samples_dir: Path, nebius_api: respx.Router) -> bytes:
    # The button opens the form too, which lists Nebius's models.
    nebius_api.get("models").respond(json={"object": "list", "data": [{"id": "m"}]})
    return (samples_dir / "sample_validation_data.jsonl").read_bytes()


async def test_use_as_validation_file_reports_the_file_again_as_a_validation_file(
    harness: SlackHarness, fake_slack: FakeSlack, validation_bytes: bytes
) -> None:
    await harness.share_file(fake_slack.host_file("F5", "val.jsonl", validation_bytes))
    (report,) = fake_slack.thread("C1", SHARE_TS)
    # Checked on upload as a training file, as every upload is: it warns about both.
    assert "[training]" in all_text(report) and "no validation file" in all_text(report)

    await harness.click(Actions.USE_AS_VALIDATION, "F5", message_ts=report.ts)

    assert fake_slack.calls_to("views.open")  # the form opened, with the file preset
    (report,) = fake_slack.thread("C1", SHARE_TS)  # the same message, updated in place
    text = all_text(report)
    assert "`val.jsonl` is a valid chat dataset, checked as a validation file" in report.text
    assert "val.jsonl [validation]: valid" in text
    assert "no_validation_file" not in text and "few_examples" not in text
    assert "no validation file" not in text
    assert "warnings meant for training files do not apply" in text
    assert "[training]" not in text
    assert buttons(report) == [Actions.FINETUNE_WITH_FILE, Actions.USE_AS_VALIDATION]
    assert (await harness.bot.store.upload("F5")).validation_report["role"] == "validation"

    # The report comes from the stored one: the file was fetched once, on upload.
    assert len(fake_slack.download_requests) == 1
    # Clicked again: nothing to redo.
    await harness.click(Actions.USE_AS_VALIDATION, "F5", message_ts=report.ts)
    assert report.updates == 1


async def test_a_copy_of_a_validation_file_gets_its_own_validation_report_without_a_download(
    harness: SlackHarness, fake_slack: FakeSlack, validation_bytes: bytes
) -> None:
    await harness.share_file(fake_slack.host_file("F5", "val.jsonl", validation_bytes))
    await harness.click(Actions.USE_AS_VALIDATION, "F5")
    second = fake_slack.host_file("F6", "val-copy.jsonl", validation_bytes)
    await harness.share_file(second, ts="1700000000.000002", event_id="EvOther")
    downloads = len(fake_slack.download_requests)

    await harness.click(Actions.USE_AS_VALIDATION, "F6")

    assert len(fake_slack.download_requests) == downloads
    (reply,) = fake_slack.thread("C1", "1700000000.000002")
    assert "`val-copy.jsonl` is a valid chat dataset, checked as a validation file" in reply.text
    assert "val-copy.jsonl [validation]" in all_text(reply)


async def test_a_file_shared_by_id_only_is_looked_up_and_checked(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes
) -> None:
    # Slack Connect (or a file still being processed): the event has the id and nothing else.
    fake_slack.host_file("F1", "train.jsonl", valid_bytes)
    await harness.share_file(fake_slack.id_only_object("F1"), ts=SHARE_TS)

    assert [c.args["file"] for c in fake_slack.calls_to("files.info")] == ["F1"]
    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "valid chat dataset" in reply.text and "train.jsonl" in all_text(reply)
    upload = await harness.bot.store.upload("F1")
    assert upload is not None and upload.name == "train.jsonl" and upload.valid is True


async def test_a_file_shared_by_id_only_that_is_not_a_dataset_is_left_alone(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    fake_slack.host_file("F1", "diagram.png", b"\x89PNG")
    await harness.share_file(fake_slack.id_only_object("F1"), ts=SHARE_TS)

    assert len(fake_slack.calls_to("files.info")) == 1
    assert fake_slack.thread("C1", SHARE_TS) == [] and fake_slack.download_requests == []
    assert await harness.bot.store.upload("F1") is None


@pytest.mark.parametrize("error", ["file_not_found", "access_denied"])
async def test_a_file_shared_by_id_only_that_slack_will_not_show_is_said_so(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes, error: str
) -> None:
    fake_slack.host_file("F1", "train.jsonl", valid_bytes)
    fake_slack.file_info_errors["F1"] = error
    await harness.share_file(fake_slack.id_only_object("F1"), ts=SHARE_TS)

    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "could not read the file `F1`" in reply.text and error in reply.text
    assert "share it again" in all_text(reply)
    assert fake_slack.download_requests == []


async def test_a_file_slack_is_still_processing_is_said_so(
    harness: SlackHarness, fake_slack: FakeSlack, valid_bytes: bytes
) -> None:
    fake_slack.host_file("F1", "train.jsonl", valid_bytes)
    fake_slack.processing.add("F1")
    await harness.share_file(fake_slack.id_only_object("F1"), ts=SHARE_TS)

    (reply,) = fake_slack.thread("C1", SHARE_TS)
    assert "train.jsonl" in reply.text and "still be processing it" in reply.text
    assert "share it again in a minute" in reply.text
