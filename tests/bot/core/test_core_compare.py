"""The comparison's request parsing and its progress edits (when, how often)."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from bot.chat_interface import ChatError, Message, MessageRef
from bot.core.compare import (
    DEFAULT_EXAMPLES,
    CompareRequestError,
    ProgressReporter,
    parse_compare,
)
from tests.bot.fake_clock import FakeClock


class RecordingChat:
    def __init__(self, clock: FakeClock, *, fail: bool = False) -> None:
        self.clock = clock
        self.fail = fail
        self.edits: list[tuple[float, str]] = []

    async def update(self, ref: MessageRef, message: Message) -> None:
        if self.fail:
            raise ChatError("Slack refused chat.update: message_not_found")
        self.edits.append((self.clock.monotonic(), message.text))


def reporter(chat: RecordingChat, clock: FakeClock) -> ProgressReporter:
    return ProgressReporter(
        chat,  # type: ignore[arg-type]
        MessageRef("C1", "1.1"),
        lambda done, total: Message(text=f"{done}/{total}"),
        clock,
    )


async def answers(progress: ProgressReporter, clock: FakeClock, total: int, seconds: float) -> None:
    for done in range(1, total + 1):
        clock.advance(seconds)
        progress.report(done, total)
        await asyncio.sleep(0)  # the edit's task runs, as between two real answers
    await progress.close()


async def test_each_tenth_is_shown_when_answers_come_slowly() -> None:
    clock = FakeClock()
    chat = RecordingChat(clock)
    await answers(reporter(chat, clock), clock, total=20, seconds=1.0)
    # Every second answer is a tenth more, 2 s apart; the last one is the final message's.
    assert [text for _, text in chat.edits] == [f"{n}/20" for n in range(2, 20, 2)]


async def test_fast_answers_are_shown_at_most_every_one_and_a_half_seconds() -> None:
    clock = FakeClock()
    chat = RecordingChat(clock)
    await answers(reporter(chat, clock), clock, total=200, seconds=0.05)  # 10 s in all
    times = [at for at, _ in chat.edits]
    assert 5 <= len(times) <= 7
    assert all(b - a >= 1.5 for a, b in itertools.pairwise(times))


async def test_a_slow_run_is_shown_every_five_seconds_between_tenths() -> None:
    clock = FakeClock()
    chat = RecordingChat(clock)
    # 1,000 answers, 3 s each: a tenth takes 300 s, but the count moves every 5 s or so.
    progress = reporter(chat, clock)
    for done in range(1, 11):
        clock.advance(3.0)
        progress.report(done, 1000)
        await asyncio.sleep(0)
    await progress.close()
    assert [text for _, text in chat.edits] == ["2/1000", "4/1000", "6/1000", "8/1000", "10/1000"]


async def test_a_failed_edit_does_not_stop_the_run() -> None:
    clock = FakeClock()
    chat = RecordingChat(clock, fail=True)
    await answers(reporter(chat, clock), clock, total=10, seconds=2.0)  # no exception


def test_compare_options_are_checked_with_their_ranges() -> None:
    ask = parse_compare(["ftjob-1", "my file.jsonl"], {"limit": "5", "max_tokens": "64"})
    assert (ask.job_id, ask.file, ask.limit, ask.max_tokens) == ("ftjob-1", "my file.jsonl", 5, 64)
    assert parse_compare(["ftjob-1"], {}).limit == DEFAULT_EXAMPLES
    for options, problem in (
        ({"limit": "501"}, "limit must be a whole number from 1 to 500 (got '501')"),
        ({"max_tokens": "two"}, "max_tokens must be a whole number from 1 to 1024 (got 'two')"),
        ({"model": "x"}, "unknown option model; the options are: limit, max_tokens"),
    ):
        with pytest.raises(CompareRequestError) as caught:
            parse_compare(["ftjob-1"], options)
        assert caught.value.message == problem
