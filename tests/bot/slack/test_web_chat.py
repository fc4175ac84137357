"""SlackChat: Slack's posting limit is kept, a 429 is waited out, uploads go external."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.chat_interface import ChatError, Message
from bot.slack.web_chat import SlackChat
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack


def make_chat(fake: FakeSlack, clock: FakeClock) -> SlackChat:
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake.api_url)
    return SlackChat(client, bot_token=BOT_TOKEN, clock=clock, extra_file_hosts={"127.0.0.1"})


@pytest.fixture
async def chat(fake_slack: FakeSlack, clock: FakeClock):
    chat = make_chat(fake_slack, clock)
    yield chat
    await chat.aclose()


async def test_posts_to_one_channel_are_paced_to_one_per_second_without_429s(
    chat: SlackChat, fake_slack: FakeSlack, clock: FakeClock
) -> None:
    start = clock.monotonic()
    await asyncio.gather(*(chat.post("C1", Message(text=f"m{i}")) for i in range(5)))

    assert fake_slack.rate_limited == 0
    assert len(fake_slack.calls_to("chat.postMessage")) == 5
    assert clock.monotonic() - start >= 4.0


async def test_posts_to_different_channels_do_not_wait_for_each_other(
    chat: SlackChat, fake_slack: FakeSlack, clock: FakeClock
) -> None:
    start = clock.monotonic()
    await asyncio.gather(*(chat.post(f"C{i}", Message(text="m")) for i in range(5)))
    assert clock.monotonic() == start
    assert fake_slack.rate_limited == 0


async def test_a_429_is_waited_out_for_retry_after_and_the_post_repeated(
    chat: SlackChat, fake_slack: FakeSlack, clock: FakeClock
) -> None:
    # Another process posted to the channel a moment ago: Slack answers 429.
    other = make_chat(fake_slack, clock)
    await other.post("C1", Message(text="from elsewhere"))
    await other.aclose()

    ref = await chat.post("C1", Message(text="mine"))

    assert fake_slack.rate_limited == 1
    assert chat.rate_limited == 1
    assert clock.slept == [1.0]  # the Retry-After, on the clock, not in real time
    assert fake_slack.messages[("C1", ref.ts)].text == "mine"


async def test_a_slack_error_is_a_readable_chat_error_without_the_token(
    fake_slack: FakeSlack, clock: FakeClock
) -> None:
    client = AsyncWebClient(token="xoxb-wrong", base_url=fake_slack.api_url)
    chat = SlackChat(client, bot_token="xoxb-wrong", clock=clock)
    with pytest.raises(ChatError) as raised:
        await chat.post("C1", Message(text="x"))
    await chat.aclose()
    assert "invalid_auth" in raised.value.message
    assert "xoxb-wrong" not in raised.value.message


async def test_a_file_is_uploaded_through_slacks_external_flow_into_the_thread(
    chat: SlackChat, fake_slack: FakeSlack, tmp_path: Path
) -> None:
    path = tmp_path / "adapter_model.safetensors"
    path.write_bytes(b"\x00\x01" * 5000)

    file_id = await chat.upload_file(
        "C1", path, filename=path.name, thread_ts="1.1", comment="checkpoint"
    )

    assert fake_slack.uploaded[file_id] == path.read_bytes()
    (complete,) = fake_slack.completed_uploads
    assert complete["channel_id"] == "C1" and complete["thread_ts"] == "1.1"
    assert complete["files"] == [{"id": file_id, "title": path.name}]


async def test_messages_carry_metadata_for_reconciling_the_thread(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    ref = await chat.post("C1", Message(text="event", metadata={"job_id": "j1", "event": "e1"}))
    metadata = fake_slack.messages[("C1", ref.ts)].metadata
    assert metadata == {"event_type": "xgenlens", "event_payload": {"job_id": "j1", "event": "e1"}}


async def test_a_permalink_leads_to_the_message_and_an_unknown_one_is_none(
    chat: SlackChat, fake_slack: FakeSlack
) -> None:
    ref = await chat.post("C1", Message(text="the job card"))

    link = await chat.permalink("C1", ref.ts)
    missing = await chat.permalink("C1", "1.000000")

    assert link == f"https://example.slack.com/archives/C1/p{ref.ts.replace('.', '')}"
    # A link is a convenience: without one the answer still goes out, naming the channel.
    assert missing is None
