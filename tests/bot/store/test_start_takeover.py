"""A process dies in the middle of starting a job while others run on: a running process
resolves that start within about a lease (it says so in the request's message and offers it
again), without waiting for some process to start."""

from __future__ import annotations

import asyncio

from bot.blocks.ids import Actions
from bot.chat_interface import Message
from bot.config import BotSettings
from bot.core.bot import Bot
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import FakeSlack, PostedMessage
from tests.bot.store.conftest import LEASE_S, OpenStore

PLAN = {
    "model": "meta-llama/Llama-3.1-8B-Instruct",
    "training": "F1",
    "training_name": "train.jsonl",
    "hyperparameters": {},
}


def start_again_buttons(message: PostedMessage) -> list[dict]:
    return [
        e
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id") == Actions.START_AGAIN
    ]


async def test_a_start_left_by_a_dead_process_is_resolved_by_a_running_one_within_a_lease(
    open_shared_store: OpenStore,
    world: dict,
    settings: BotSettings,
    fake_slack: FakeSlack,
    clock: FakeClock,
) -> None:
    dying = await open_shared_store()
    running = await open_shared_store()
    # What the dying process had recorded and said when it was killed: uploading the data.
    request = await world["chat"].post("C1", Message("Starting a fine-tuning job…"))
    await dying.begin_start("req-1", "fp-1", channel="C1", user_id="U1", plan=PLAN)
    await dying.start_messages("req-1", request.ts, None)
    await dying.disconnect()  # kill -9: no goodbye, its lease runs on
    killed_at = clock.time()

    bot = Bot(settings, running, world["chat"], world["nebius"], clock=clock)
    bot.start_watching()
    assert bot.resolving is not None
    await asyncio.wait_for(bot.resolving, timeout=10)
    message = fake_slack.messages[("C1", request.ts)]
    assert message.updates == 0  # at its start the dying process was still live

    # The watcher ticks on (each tick moves the fake clock on by a second).
    async def resolved() -> None:
        while not start_again_buttons(message):
            await asyncio.sleep(0.005)

    try:
        await asyncio.wait_for(resolved(), timeout=10)
    finally:
        await bot.background.cancel_all()
    assert "was not started" in message.text
    assert [b["value"] for b in start_again_buttons(message)] == ["req-1"]
    start = await running.pending_start("req-1")
    assert start is not None and start.phase == "interrupted"
    # When it was resolved: not before the dead one's lease and the grace after it had
    # passed. How soon after is not measurable here: the watcher's tick, its lease renewer
    # and other background work all sleep on the fake clock, each moving it on, and they
    # spin the faster the longer real I/O (the database, the fake Slack) takes, so fake
    # seconds grow with the machine's load (106 s was seen on a loaded CI machine). That it
    # came from a renewal of the running process, with no restart, is what the wait above
    # (10 real seconds) shows.
    took = start.updated_at - killed_at
    assert took >= LEASE_S + running.takeover_grace_s
