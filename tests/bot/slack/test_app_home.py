"""The App Home through Bolt and the fake Slack: published on opening, refreshed when a job
changes, Cancel from the tab, and every payload within what Slack's views.publish takes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx
from slack_sdk.web.async_client import AsyncWebClient

from bot.blocks.ids import Actions
from bot.chat_interface import ChatError
from bot.slack.web_chat import SlackChat
from tests.bot.conftest import HarnessFactory
from tests.bot.fake_clock import FakeClock
from tests.bot.fake_slack import BOT_TOKEN, FakeSlack
from tests.bot.harness import SlackHarness

MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def job(job_id: str, status: str = "running", **more: Any) -> dict[str, Any]:
    return {
        "id": job_id,
        "model": MODEL,
        "status": status,
        "created_at": 1_700_000_000,
        "trained_steps": 5,
        "total_steps": 20,
        **more,
    }


@pytest.fixture
def jobs(nebius_api: respx.Router, deployments: list) -> dict[str, dict[str, Any]]:
    """Nebius's jobs by id (tests change them); no checkpoints."""
    served: dict[str, dict[str, Any]] = {}

    def one(request: httpx.Request, job_id: str) -> httpx.Response:
        if job_id not in served:
            return httpx.Response(404, json={"error": {"message": "no such job"}})
        return httpx.Response(200, json=served[job_id])

    nebius_api.get(path__regex=r"fine_tuning/jobs/(?P<job_id>[\w-]+)$").mock(side_effect=one)
    nebius_api.get(path__regex=r"fine_tuning/jobs/[\w-]+/(events|checkpoints)$").respond(
        json={"data": [], "has_more": False}
    )
    return served


@pytest.fixture
def deployments(nebius_api: respx.Router) -> list[dict[str, Any]]:
    """Nebius's custom models (`GET /v0/models`), as tests add them."""
    listed: list[dict[str, Any]] = []
    nebius_api.get("https://nebius.test/v0/models").mock(
        side_effect=lambda request: httpx.Response(200, json=listed)
    )
    return listed


async def open_home(
    harness: SlackHarness, user: str = "U1", *, tab: str = "home", event_id: str = "EvHome1"
) -> httpx.Response:
    return await harness.event(
        {
            "type": "app_home_opened",
            "user": user,
            "channel": "D1",
            "tab": tab,
            "event_ts": "1700000000.000100",
        },
        event_id=event_id,
    )


def shown(view: dict[str, Any] | None) -> str:
    assert view is not None
    return json.dumps(view["blocks"], ensure_ascii=False)


async def test_opening_the_home_tab_publishes_the_person_s_jobs(
    harness: SlackHarness, fake_slack: FakeSlack, jobs: dict
) -> None:
    jobs["ftjob-mine"] = job("ftjob-mine")
    jobs["ftjob-theirs"] = job("ftjob-theirs")
    await harness.follow_job("ftjob-mine")
    await harness.follow_job("ftjob-theirs", user="U2")

    response = await open_home(harness)

    assert response.status_code == 200
    view = fake_slack.home_of("U1")
    assert view is not None and view["type"] == "home"
    assert "ftjob-mine" in shown(view) and "step 5 of 20 (25%)" in shown(view)
    assert "ftjob-theirs" not in shown(view)
    # The thread link is Slack's own permalink to the job's card.
    assert "https://example.slack.com/archives/C1/p" in shown(view)
    assert fake_slack.home_of("U2") is None


async def test_the_messages_tab_and_a_redelivered_opening_publish_nothing_more(
    harness: SlackHarness, fake_slack: FakeSlack, jobs: dict
) -> None:
    await open_home(harness, tab="messages", event_id="EvMsgTab")
    assert fake_slack.calls_to("views.publish") == []
    await open_home(harness, event_id="EvHome1")
    await harness.event(
        {"type": "app_home_opened", "user": "U1", "channel": "D1", "tab": "home"},
        event_id="EvHome1",
        retry=1,
    )
    assert len(fake_slack.calls_to("views.publish")) == 1


async def test_a_change_of_state_of_the_person_s_job_refreshes_the_tab(
    harness: SlackHarness, fake_slack: FakeSlack, jobs: dict, clock: FakeClock
) -> None:
    jobs["ftjob-1"] = job("ftjob-1", "queued")
    await harness.follow_job("ftjob-1")
    await open_home(harness)
    watcher = harness.bot.watcher
    await watcher.poll_due()  # queued: the watcher's first look
    await harness.bot.drain()
    before = len(fake_slack.home_views["U1"])

    jobs["ftjob-1"] = job(
        "ftjob-1",
        "succeeded",
        finished_at=1_700_000_900,
        trained_tokens=100_000,
        trained_steps=20,
    )
    clock.advance(60)
    await watcher.poll_due()
    await harness.bot.drain()

    views = fake_slack.home_views["U1"]
    assert len(views) == before + 1
    assert "Recently finished" in shown(views[-1]) and "succeeded" in shown(views[-1])
    assert "$0.04 (100,000 trained tokens)" in shown(views[-1])
    # A job's progress alone (no change of state) publishes nothing.
    clock.advance(60)
    await watcher.poll_due()
    await harness.bot.drain()
    assert len(fake_slack.home_views["U1"]) == before + 1


async def test_cancel_in_the_home_tab_cancels_like_the_card_and_refreshes_the_tab(
    harness: SlackHarness, fake_slack: FakeSlack, jobs: dict, nebius_api: respx.Router
) -> None:
    jobs["ftjob-1"] = job("ftjob-1")
    ts = await harness.follow_job("ftjob-1")
    await open_home(harness)
    home_button = [
        e
        for b in fake_slack.home_of("U1")["blocks"]  # type: ignore[index]
        if b["type"] == "actions"
        for e in b["elements"]
    ]
    assert [(e["action_id"], e["value"]) for e in home_button] == [
        (Actions.HOME_CANCEL_JOB, "ftjob-1")
    ]

    def cancel(request: httpx.Request) -> httpx.Response:
        jobs["ftjob-1"] = job("ftjob-1", "cancelled", finished_at=1_700_000_100)
        return httpx.Response(200, json=jobs["ftjob-1"])

    route = nebius_api.post("fine_tuning/jobs/ftjob-1/cancel").mock(side_effect=cancel)
    response = await harness.click_in_home(Actions.HOME_CANCEL_JOB, "ftjob-1")

    assert response.status_code == 200 and route.called
    # Answered where the job lives, and its card shows it.
    (answer,) = fake_slack.ephemerals_for("U1")
    assert answer["channel"] == "C1" and "asked Nebius to cancel job `ftjob-1`" in answer["text"]
    assert "cancelled" in fake_slack.messages[("C1", ts)].text
    assert "cancelled" in shown(fake_slack.home_of("U1"))
    assert Actions.HOME_CANCEL_JOB not in shown(fake_slack.home_of("U1"))


async def test_cancel_in_the_home_tab_keeps_the_allowlists(
    harness_factory: HarnessFactory, fake_slack: FakeSlack, jobs: dict, nebius_api: respx.Router
) -> None:
    harness = harness_factory(allowed_channels=frozenset({"CJOBS"}))
    jobs["ftjob-1"] = job("ftjob-1")
    await harness.follow_job("ftjob-1")  # in C1, not an allowed channel
    route = nebius_api.post("fine_tuning/jobs/ftjob-1/cancel").respond(json=jobs["ftjob-1"])

    await harness.click_in_home(Actions.HOME_CANCEL_JOB, "ftjob-1")

    assert not route.called
    (refusal,) = fake_slack.ephemerals_for("U1")
    assert "cannot be created or cancelled from this channel" in refusal["text"]


async def test_the_thread_link_click_is_acknowledged_and_does_nothing_else(
    harness: SlackHarness, fake_slack: FakeSlack
) -> None:
    response = await harness.click_in_home(Actions.HOME_OPEN_THREAD, "ftjob-1")
    assert response.status_code == 200
    assert fake_slack.ephemerals == [] and fake_slack.calls_to("views.publish") == []


# ---------------------------------------------------------------------- Slack's limits


@pytest.fixture
async def chat(fake_slack: FakeSlack, clock: FakeClock):
    client = AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url)
    chat = SlackChat(client, bot_token=BOT_TOKEN, clock=clock)
    yield chat
    await chat.aclose()


def home(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "home", "blocks": blocks}


def text_block(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


@pytest.mark.parametrize(
    ("user", "view"),
    [
        ("U1", home([text_block("x")] * 101)),
        ("U1", home([text_block("x" * 3001)])),
        ("U1", {"type": "modal", "blocks": []}),
        ("C1", home([text_block("x")])),
        ("", home([text_block("x")])),
    ],
    ids=["101 blocks", "3001 characters", "not a home view", "a channel id", "no user"],
)
async def test_the_fake_refuses_what_slack_refuses(
    chat: SlackChat, fake_slack: FakeSlack, user: str, view: dict
) -> None:
    with pytest.raises(ChatError, match="invalid_arguments"):
        await chat.publish_home(user, view)
    assert fake_slack.home_views == {}


async def test_a_rate_limited_publish_waits_for_retry_after_and_goes_through(
    chat: SlackChat, fake_slack: FakeSlack, clock: FakeClock
) -> None:
    fake_slack.publish_rate_limits = 1
    await chat.publish_home("U1", home([text_block("x")] * 100))
    assert clock.slept == [3.0]
    assert len(fake_slack.home_of("U1")["blocks"]) == 100  # type: ignore[index]


async def test_a_person_with_many_jobs_gets_a_view_slack_takes(
    harness: SlackHarness, fake_slack: FakeSlack, jobs: dict, deployments: list
) -> None:
    for n in range(70):
        jobs[f"ftjob-{n}"] = job(f"ftjob-{n}", error={"message": "e" * 4000})
        await harness.bot.store.add_watch(f"ftjob-{n}", "C1", f"17.{n}", "U1")
        deployments.append(
            {"name": f"llama-LoRa:m{n}-AB12", "status": "active", "source": f"ftjob-{n}:c"}
        )
    await open_home(harness)
    view = fake_slack.home_of("U1")
    assert view is not None and len(view["blocks"]) == 100
    assert "… and 50 more running jobs" in shown(view)
    assert "more deployments" in shown(view)
