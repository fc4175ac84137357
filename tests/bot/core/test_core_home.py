"""The Home's view model and its refreshes: a person's own jobs, read cheaply, published at
most once per window with the latest state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import respx

from bot.blocks.ids import Actions
from bot.chat_interface import ChatError
from bot.core.home import REFRESH_EVERY_S, HomeBuilder, HomeTab
from bot.core.requests import ButtonClick
from bot.core.tasks import Background
from bot.store import SQLiteStore
from tests.bot.conftest import NEBIUS_KEY, mocked_nebius
from tests.bot.fake_clock import FakeClock

V0_MODELS = "https://nebius.test/v0/models"


@dataclass
class LinkChat:
    """The one Chat call the builder makes: permalinks (counted)."""

    asked: list[tuple[str, str]] = field(default_factory=list)

    async def permalink(self, channel: str, ts: str) -> str | None:
        self.asked.append((channel, ts))
        return f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}"


@dataclass
class Surface:
    published: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    clock: FakeClock | None = None
    fail: bool = False

    async def publish_home(self, user: str, view: dict[str, Any]) -> None:
        if self.fail:
            raise ChatError("Slack refused views.publish: invalid_arguments")
        self.published.append((user, view, self.clock.monotonic() if self.clock else 0.0))


@dataclass
class Nebius:
    jobs: dict[str, dict] = field(default_factory=dict)
    checkpoints: dict[str, list[dict]] = field(default_factory=dict)
    deployments: list[dict] = field(default_factory=list)
    failing: set[str] = field(default_factory=set)
    deployments_fail: bool = False

    def route(self, router: respx.Router) -> None:
        def job(request: httpx.Request, job_id: str) -> httpx.Response:
            if job_id in self.failing:
                return httpx.Response(400, json={"detail": "the job is busy"})
            if job_id not in self.jobs:
                return httpx.Response(404, json={"error": {"message": "no such job"}})
            return httpx.Response(200, json=self.jobs[job_id])

        def checkpoints(request: httpx.Request, job_id: str) -> httpx.Response:
            return httpx.Response(200, json={"data": self.checkpoints.get(job_id, [])})

        def deployments(request: httpx.Request) -> httpx.Response:
            if self.deployments_fail:
                return httpx.Response(403, json={"detail": "not allowed for this key"})
            return httpx.Response(200, json=self.deployments)

        router.get(path__regex=r"fine_tuning/jobs/(?P<job_id>[\w-]+)$", name="job").mock(
            side_effect=job
        )
        router.get(path__regex=r"fine_tuning/jobs/(?P<job_id>[\w-]+)/checkpoints$").mock(
            side_effect=checkpoints
        )
        router.get(V0_MODELS).mock(side_effect=deployments)


@pytest.fixture
async def world(
    tmp_path, clock: FakeClock, nebius_api: respx.Router
) -> AsyncIterator[dict[str, Any]]:
    neb = Nebius()
    neb.route(nebius_api)
    client = mocked_nebius(nebius_api, clock)
    store = SQLiteStore(tmp_path / "bot.sqlite3")
    chat = LinkChat()
    yield {
        "neb": neb,
        "client": client,
        "store": store,
        "chat": chat,
        "router": nebius_api,
        "builder": HomeBuilder(store, client, chat, clock),  # type: ignore[arg-type]
    }
    await client.aclose()
    await store.close()


def running_job(job_id: str, steps: int = 40) -> dict:
    return {
        "id": job_id,
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "status": "running",
        "trained_steps": steps,
        "total_steps": 120,
        "estimated_finish": 1_700_003_600,
    }


def succeeded_job(job_id: str) -> dict:
    return {
        "id": job_id,
        "model": "meta-llama/Llama-3.1-8B-Instruct",
        "status": "succeeded",
        "finished_at": 1_700_000_500,
        "trained_tokens": 250_000,
        "trained_steps": 120,
        "total_steps": 120,
    }


def checkpoint(job_id: str, step: int, valid: float) -> dict:
    return {
        "id": f"ftckpt_{step}",
        "fine_tuning_job_id": job_id,
        "step_number": step,
        "metrics": {"train_loss": 2.0, "valid_loss": valid},
        "result_files": [],
    }


async def add(store: SQLiteStore, job_id: str, user: str, *, done: bool = False) -> None:
    await store.add_watch(job_id, "C1", f"1700000000.{len(job_id):06d}", user)
    if done:
        await store.update_watch(job_id, done=True, status="succeeded")


async def test_the_view_holds_the_person_s_running_and_finished_jobs_and_deployments(
    world: dict,
) -> None:
    neb, store = world["neb"], world["store"]
    neb.jobs["ftjob-run"] = running_job("ftjob-run")
    neb.jobs["ftjob-done"] = succeeded_job("ftjob-done")
    neb.jobs["ftjob-theirs"] = running_job("ftjob-theirs")
    neb.checkpoints["ftjob-done"] = [
        checkpoint("ftjob-done", 30, 1.3),
        checkpoint("ftjob-done", 10, 1.5),
        checkpoint("ftjob-done", 20, 1.2),
    ]
    neb.deployments = [
        {
            "name": "llama-LoRa:mine-AB12",
            "status": "active",
            "source": "ftjob-done:ftckpt_20",
            "base_model": "meta-llama/Meta-Llama-3.1-8B-Instruct",
        },
        {"name": "llama-LoRa:theirs-CD34", "status": "active", "source": "ftjob-theirs:ftckpt_1"},
    ]
    await add(store, "ftjob-run", "U1")
    await add(store, "ftjob-done", "U1", done=True)
    await add(store, "ftjob-theirs", "U2")

    home = await world["builder"].build("U1")

    assert [r.job_id for r in home.running] == ["ftjob-run"]
    run = home.running[0]
    assert (run.trained_steps, run.total_steps, run.estimated_finish) == (40, 120, 1_700_003_600)
    assert run.thread_url and run.thread_url.startswith("https://example.slack.com/")
    (done,) = home.finished
    assert (done.job_id, done.status, done.best_step, done.best_valid_loss) == (
        "ftjob-done",
        "succeeded",
        20,
        1.2,
    )
    # 250k tokens at the published $0.40 per million for an 8B model.
    assert done.cost_text == "$0.10 (250,000 trained tokens)"
    assert [d.name for d in home.deployments] == ["llama-LoRa:mine-AB12"]
    assert home.problems == []


async def test_a_finished_job_and_a_thread_link_are_read_once(world: dict) -> None:
    neb, store, router = world["neb"], world["store"], world["router"]
    neb.jobs["ftjob-run"] = running_job("ftjob-run")
    neb.jobs["ftjob-done"] = succeeded_job("ftjob-done")
    await add(store, "ftjob-run", "U1")
    await add(store, "ftjob-done", "U1", done=True)

    await world["builder"].build("U1")
    neb.jobs["ftjob-run"] = running_job("ftjob-run", steps=80)
    home = await world["builder"].build("U1")

    asked = [c.request.url.path for c in router.routes["job"].calls]
    assert asked.count("/v1/fine_tuning/jobs/ftjob-done") == 1
    assert asked.count("/v1/fine_tuning/jobs/ftjob-run") == 2
    assert home.running[0].trained_steps == 80  # a running job is read afresh
    assert len(world["chat"].asked) == 2  # one permalink per thread, across both builds


async def test_a_watch_not_done_whose_job_ended_shows_as_finished(world: dict) -> None:
    world["neb"].jobs["ftjob-1"] = {**succeeded_job("ftjob-1"), "status": "cancelled"}
    await add(world["store"], "ftjob-1", "U1")  # the watcher has not posted its summary yet
    home = await world["builder"].build("U1")
    assert home.running == [] and [r.status for r in home.finished] == ["cancelled"]


async def test_what_nebius_will_not_say_is_named_and_the_rest_still_shows(world: dict) -> None:
    neb, store = world["neb"], world["store"]
    neb.jobs["ftjob-ok"] = running_job("ftjob-ok")
    neb.failing.add("ftjob-busy")
    neb.deployments_fail = True
    await add(store, "ftjob-ok", "U1")
    await add(store, "ftjob-busy", "U1")
    await store.update_watch("ftjob-busy", status="running")

    home = await world["builder"].build("U1")

    assert {r.job_id for r in home.running} == {"ftjob-ok", "ftjob-busy"}
    assert any("ftjob-busy" in p and "the job is busy" in p for p in home.problems)
    assert any("deployments" in p and "not allowed for this key" in p for p in home.problems)
    assert NEBIUS_KEY not in " ".join(home.problems)


async def test_a_job_gone_from_nebius_is_said_so(world: dict) -> None:
    await add(world["store"], "ftjob-gone", "U1", done=True)
    home = await world["builder"].build("U1")
    assert [(r.job_id, r.gone) for r in home.finished] == [("ftjob-gone", True)]


async def test_without_nebius_the_view_says_it_is_not_configured(world: dict, clock) -> None:
    home = await HomeBuilder(world["store"], None, world["chat"], clock).build("U1")
    assert home.nebius_configured is False


# ---------------------------------------------------------------------- refreshes


@pytest.fixture
async def tab(world: dict, clock: FakeClock) -> AsyncIterator[tuple[HomeTab, Surface, Background]]:
    world["neb"].jobs["ftjob-1"] = running_job("ftjob-1", steps=10)
    await add(world["store"], "ftjob-1", "U1")
    surface = Surface(clock=clock)
    background = Background()
    home = HomeTab(
        world["builder"],
        surface,
        lambda coro, name: background.spawn(coro, name=name),
        clock=clock,
    )
    yield home, surface, background
    await background.cancel_all()


def steps_shown(view: dict) -> str:
    return " ".join(str(b.get("text", {}).get("text", "")) for b in view["blocks"])


async def test_opening_the_tab_publishes_it_at_once(tab, clock: FakeClock) -> None:
    home, surface, background = tab
    start = clock.monotonic()
    home.opened("U1")
    await background.drain()
    ((user, view, at),) = surface.published
    assert user == "U1" and view["type"] == "home" and at == start
    assert "step 10 of 120" in steps_shown(view)


async def test_changes_within_the_window_are_one_refresh_at_its_end_with_the_latest_state(
    tab, world: dict, clock: FakeClock
) -> None:
    home, surface, background = tab
    home.opened("U1")
    await background.drain()
    opened_at = surface.published[0][2]

    home.job_changed("U1")
    world["neb"].jobs["ftjob-1"] = running_job("ftjob-1", steps=50)
    home.job_changed("U1")
    home.job_changed("U1")
    await background.drain()

    assert len(surface.published) == 2
    _, view, at = surface.published[1]
    assert at == opened_at + REFRESH_EVERY_S
    assert "step 50 of 120" in steps_shown(view)


async def test_a_change_after_the_window_refreshes_at_once(tab, clock: FakeClock) -> None:
    home, surface, background = tab
    home.opened("U1")
    await background.drain()
    clock.advance(REFRESH_EVERY_S + 1)
    home.job_changed("U1")
    await background.drain()
    assert [at for _, _, at in surface.published][1] == clock.monotonic()


async def test_people_who_never_opened_the_tab_are_not_published_to(tab) -> None:
    home, surface, background = tab
    home.job_changed("U1")
    home.job_changed(None)
    await background.drain()
    assert surface.published == []


async def test_a_refused_publish_is_logged_and_the_next_one_tries_again(
    tab, clock: FakeClock, caplog
) -> None:
    home, surface, background = tab
    surface.fail = True
    home.opened("U1")
    await background.drain()
    assert "invalid_arguments" in caplog.text
    surface.fail = False
    clock.advance(REFRESH_EVERY_S)
    home.opened("U1")
    await background.drain()
    assert len(surface.published) == 1


async def test_without_a_home_surface_nothing_is_published(world: dict, clock) -> None:
    spawned: list[str] = []
    home = HomeTab(world["builder"], None, lambda coro, name: spawned.append(name), clock=clock)
    home.opened("U1")
    home.job_changed("U1")
    assert spawned == []


@dataclass
class Commands:
    clicks: list[Any] = field(default_factory=list)

    async def click(self, click: Any) -> None:
        self.clicks.append(click)


@pytest.mark.parametrize(
    ("action_id", "value", "card_action", "card_value"),
    [
        (Actions.HOME_CANCEL_JOB, "ftjob-1", Actions.CANCEL_JOB, "ftjob-1"),
        (Actions.HOME_DEPLOY, "ftjob-1:ftckpt_9", Actions.DEPLOY_CHECKPOINT, "ftjob-1:ftckpt_9"),
        (Actions.HOME_TRY, "ftjob-1 m/x-LoRa:y-AB12", Actions.TRY_MODEL, "m/x-LoRa:y-AB12"),
    ],
)
async def test_a_home_button_is_clicked_as_the_job_thread_s_own(
    tab, world: dict, action_id: str, value: str, card_action: str, card_value: str
) -> None:
    home, surface, background = tab
    commands = Commands()
    click = ButtonClick(action_id, value, "U1", channel="", trigger_id="T-9")
    await home.click(click, commands)  # type: ignore[arg-type]
    await background.drain()
    (sent,) = commands.clicks
    watch = await world["store"].watch("ftjob-1")
    assert (sent.action_id, sent.value, sent.user) == (card_action, card_value, "U1")
    # Answered in the job's channel and thread (its card is the thread's first message).
    assert (sent.channel, sent.message_ts, sent.trigger_id) == ("C1", watch.thread_ts, "T-9")
    assert [user for user, _, _ in surface.published] == ["U1"]  # and the tab refreshed


async def test_a_home_button_for_a_job_without_a_thread_does_nothing(tab) -> None:
    home, surface, background = tab
    commands = Commands()
    unknown = ButtonClick(Actions.HOME_CANCEL_JOB, "ftjob-x", "U1", "")
    await home.click(unknown, commands)  # type: ignore[arg-type]
    await background.drain()
    assert commands.clicks == [] and surface.published == []
