"""Less noise: `/finetune notify all|summary|failures` chooses, per channel, what a job's
thread receives; the card stays current in every mode."""

from __future__ import annotations

import json

import httpx
import pytest
import respx

from tests.bot.conftest import HarnessFactory
from tests.bot.fake_slack import FakeSlack
from tests.bot.harness import SlackHarness

JOB = {"id": "ftjob-1", "model": "m", "status": "running", "created_at": 1}


class Nebius:
    """One job whose status and events the test moves on."""

    def __init__(self, router: respx.Router) -> None:
        self.job = dict(JOB)
        self.events: list[dict] = []
        router.get("fine_tuning/jobs/ftjob-1").mock(side_effect=lambda r: self._json(self.job))
        router.get("fine_tuning/jobs/ftjob-1/events").mock(
            side_effect=lambda r: self._json({"data": self.events[::-1], "has_more": False})
        )
        router.get("fine_tuning/jobs/ftjob-1/checkpoints").respond(json={"data": []})
        router.get(url__regex=r"/v0/models").respond(json=[])

    @staticmethod
    def _json(body: dict) -> httpx.Response:
        return httpx.Response(200, json=body)

    def emit(self, message: str, level: str = "info") -> None:
        n = len(self.events) + 1
        self.events.append(
            {"id": f"ev-{n}", "created_at": 1700000000 + n, "level": level, "message": message}
        )


@pytest.fixture
def nebius(nebius_api: respx.Router) -> Nebius:
    return Nebius(nebius_api)


@pytest.fixture
async def card_ts(harness: SlackHarness) -> str:
    """ftjob-1's card in C1, whose thread the bot follows the job in (started by U1)."""
    return await harness.follow_job("ftjob-1")


def replies(fake: FakeSlack, ts: str, kind: str) -> list[str]:
    return [
        m.text + json.dumps(m.blocks)
        for m in fake.thread("C1", ts)
        if (m.metadata or {}).get("event_payload", {}).get("kind") == kind
    ]


async def test_summary_mode_posts_only_the_summary_and_keeps_the_card_current(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: Nebius, card_ts: str
) -> None:
    await harness.command("notify summary")
    nebius.emit("Step 1/10: loss 2.0")
    nebius.emit("Something went wrong on the node", level="error")

    await harness.bot.watcher.poll_due()
    assert replies(fake_slack, card_ts, "events") == []
    card = fake_slack.messages[("C1", card_ts)]
    assert ":gear: running" in json.dumps(card.blocks)  # the card moved on all the same
    assert (await harness.bot.store.watch("ftjob-1")).last_event_id == "ev-2"

    nebius.job = {**JOB, "status": "succeeded"}
    harness.fake.clock.advance(60)
    await harness.bot.watcher.poll_due()
    (summary,) = replies(fake_slack, card_ts, "summary")
    assert "<@U1>" not in summary  # nobody is pinged
    assert ":white_check_mark: succeeded" in json.dumps(fake_slack.messages[("C1", card_ts)].blocks)
    # And the channel was told, once, what its threads receive now.
    (said,) = [m for m in fake_slack.messages.values() if m.text.startswith(":bell:")]
    assert "only the card and the summary" in said.text


async def test_failures_mode_posts_failures_with_a_mention_and_mentions_a_failed_summary(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: Nebius, card_ts: str
) -> None:
    await harness.command("notify failures")
    nebius.emit("Step 1/10: loss 2.0")
    nebius.emit("Node lost; retrying on another", level="error")
    nebius.emit("Step 2/10: loss 1.9")

    await harness.bot.watcher.poll_due()
    (failure,) = replies(fake_slack, card_ts, "events")
    assert "<@U1>" in failure and "Node lost" in failure and "Step 1/10" not in failure
    assert (await harness.bot.store.watch("ftjob-1")).last_event_id == "ev-3"

    nebius.emit("Training failed: out of memory", level="error")
    nebius.job = {
        **JOB,
        "status": "failed",
        "error": {"code": "out_of_memory", "message": "out of memory"},
    }
    harness.fake.clock.advance(60)
    await harness.bot.watcher.poll_due()
    failures = replies(fake_slack, card_ts, "events")
    assert len(failures) == 2 and "<@U1>" not in failures[1]  # the summary pings instead
    (summary,) = replies(fake_slack, card_ts, "summary")
    assert "<@U1>" in summary


async def test_failures_mode_mentions_no_one_when_the_job_succeeds(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: Nebius, card_ts: str
) -> None:
    nebius.job = {**JOB, "status": "succeeded"}
    await harness.command("notify failures")
    nebius.emit("Training completed")

    await harness.bot.watcher.poll_due()

    assert replies(fake_slack, card_ts, "events") == []
    (summary,) = replies(fake_slack, card_ts, "summary")
    assert "<@U1>" not in summary


async def test_all_is_the_default_and_posts_every_event_and_mentions(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: Nebius, card_ts: str
) -> None:
    await harness.command("notify")  # shows the mode
    nebius.emit("Step 1/10: loss 2.0")
    nebius.job = {**JOB, "status": "succeeded"}

    await harness.bot.watcher.poll_due()

    (note,) = fake_slack.ephemerals_for("U1")
    assert "every event" in note["text"] and "nobody has chosen yet" in note["text"]
    assert len(replies(fake_slack, card_ts, "events")) == 1
    (summary,) = replies(fake_slack, card_ts, "summary")
    assert "<@U1>" in summary


async def test_a_mode_changed_back_to_all_posts_events_again(
    harness: SlackHarness, fake_slack: FakeSlack, nebius: Nebius, card_ts: str
) -> None:
    await harness.command("notify summary")
    nebius.emit("quiet one")
    await harness.bot.watcher.poll_due()
    await harness.command("notify all")
    nebius.emit("loud one")
    harness.fake.clock.advance(60)
    await harness.bot.watcher.poll_due()

    (reply,) = replies(fake_slack, card_ts, "events")
    assert "loud one" in reply and "quiet one" not in reply


async def test_changing_the_mode_needs_the_allowlist_and_a_known_mode(
    harness_factory: HarnessFactory, fake_slack: FakeSlack
) -> None:
    harness = harness_factory(allowed_users={"U1"})

    await harness.command("notify summary", user="U2")
    await harness.command("notify loud")

    assert await harness.bot.store.notify_mode("C1") is None
    (refused,) = fake_slack.ephemerals_for("U2")
    assert refused["text"].startswith("Sorry, you are not on this bot's list")
    (bad,) = fake_slack.ephemerals_for("U1")
    assert "`notify` takes one of all|summary|failures (got `loud`)" in bad["text"]
