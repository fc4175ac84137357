"""The App Home: each person's jobs and deployments, as one view model, kept fresh.

What a person sees is theirs: the jobs they started (the store's watches carry who started
each one, or asked to `watch` it), newest first.

- running now: status, steps done of all, ETA (Nebius's `estimated_finish`);
- the last FINISHED_SHOWN finished: status, best validation loss (client.checkpoints: the
  lowest `valid_loss`, else the last checkpoint), cost (client.cost);
- the deployments (`GET /v0/models`) made from any of their jobs, matched by the
  deployment's `<job id>:<checkpoint id>` source.

`HomeBuilder` reads all that into a `HomeView`; `bot.blocks.home` renders it as Slack's Home
tab (at most 100 blocks) and `bot.console.home_text` as the console's `home`. A finished job
never changes, so its row is kept (in memory) once read; a thread's permalink too.

`HomeTab` publishes the view. It refreshes a person's tab when they open it
(`app_home_opened`) and when a job they started changes state (the watcher says so), never
more than once every REFRESH_EVERY_S per person: a change inside that window schedules one
refresh at its end, which reads the state as it is then (the latest wins, however many
changes came meanwhile). Only people who opened the tab since this process started are
refreshed on a change: Slack keeps showing the last view published to the others, and the
next time they open the tab it is rebuilt anyway. Slack allows views.publish about 100 calls
a minute (Tier 4) for the whole workspace; a 429 is waited out (`Retry-After`) by the chat
adapter like every other call.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.blocks.home import home_view
from bot.blocks.ids import Actions
from bot.chat_interface import Chat, ChatError
from bot.clock import Clock, RealClock
from bot.core.requests import ButtonClick
from bot.store import Store, Watch
from client import Job, NebiusClient, NebiusError, NotFoundError
from client.checkpoints import best_checkpoint
from client.cost import job_cost
from client.deployments import Deployment
from client.models import TERMINAL_STATUSES

if TYPE_CHECKING:
    from bot.core.commands import CommandRunner

log = logging.getLogger(__name__)

# A Home button that acts on a job -> the button of the job's thread that does the same.
HOME_TO_CARD = {
    Actions.HOME_CANCEL_JOB: Actions.CANCEL_JOB,
    Actions.HOME_DEPLOY: Actions.DEPLOY_CHECKPOINT,
    Actions.HOME_TRY: Actions.TRY_MODEL,
}

RUNNING_SHOWN = 20
FINISHED_SHOWN = 10
# How far back a person's watches are read: their running jobs and, for matching
# deployments, the jobs those may come from.
WATCHES_READ = 200
REFRESH_EVERY_S = 10.0
# Nebius requests one build makes at a time.
CONCURRENT_READS = 8
FINISHED_KEPT = 2000
LINKS_KEPT = 5000


@dataclass(frozen=True)
class JobRow:
    """One job as the Home shows it. `thread_url`: a link to the job's thread (None where the
    chat has none, or Slack would not say)."""

    job_id: str
    status: str
    model: str | None
    thread_url: str | None
    channel: str
    thread_ts: str
    trained_steps: int | None = None
    total_steps: int | None = None
    estimated_finish: int | None = None
    finished_at: int | None = None
    # Finished jobs only: the best checkpoint (lowest validation loss, else the last one).
    best_checkpoint_id: str | None = None
    best_step: int | None = None
    best_valid_loss: float | None = None
    cost_text: str | None = None
    error: str | None = None
    # Not on Nebius any more (deleted, or another account's key).
    gone: bool = False

    @property
    def progress(self) -> float | None:
        if self.trained_steps is None or not self.total_steps:
            return None
        return min(1.0, self.trained_steps / self.total_steps)

    @property
    def running(self) -> bool:
        return not self.gone and self.status not in TERMINAL_STATUSES

    @property
    def deployable(self) -> bool:
        return self.status == "succeeded" and self.best_checkpoint_id is not None


@dataclass(frozen=True)
class DeploymentRow:
    name: str
    status: str
    job_id: str | None
    base_model: str | None
    reason: str | None = None


@dataclass(frozen=True)
class HomeView:
    """Everything one person's Home shows, read at `updated_at` (wall-clock seconds)."""

    user: str
    updated_at: float
    running: list[JobRow] = field(default_factory=list)
    # Running jobs of theirs beyond the RUNNING_SHOWN read.
    more_running: int = 0
    finished: list[JobRow] = field(default_factory=list)
    deployments: list[DeploymentRow] = field(default_factory=list)
    # What could not be read, said plainly ("Nebius did not answer for the deployments: ...").
    problems: list[str] = field(default_factory=list)
    nebius_configured: bool = True


class HomeBuilder:
    """Reads one person's HomeView from the store, Nebius and the chat (permalinks)."""

    def __init__(self, store: Store, nebius: NebiusClient | None, chat: Chat, clock: Clock) -> None:
        self.store = store
        self.nebius = nebius
        self.chat = chat
        self.clock = clock
        self._finished: OrderedDict[str, JobRow] = OrderedDict()
        self._links: OrderedDict[tuple[str, str], str] = OrderedDict()
        self._reads = asyncio.Semaphore(CONCURRENT_READS)

    async def build(self, user: str) -> HomeView:
        now = self.clock.time()
        if self.nebius is None:
            return HomeView(user=user, updated_at=now, nebius_configured=False)
        watches = await self.store.user_watches(user, limit=WATCHES_READ)
        active = [w for w in watches if not w.done]
        ended = [w for w in watches if w.done][:FINISHED_SHOWN]
        shown_active = active[:RUNNING_SHOWN]
        problems: list[str] = []
        rows = await asyncio.gather(
            *(self._row(w, problems) for w in [*shown_active, *ended]),
            self._deployments({w.job_id for w in watches}, problems),
        )
        deployments: list[DeploymentRow] = rows[-1]  # type: ignore[assignment]
        jobs: list[JobRow] = [r for r in rows[:-1] if r is not None]  # type: ignore[misc]
        # A watch not done yet may have just ended (its summary is on its way).
        running = [r for r in jobs if r.running]
        finished = sorted(
            (r for r in jobs if not r.running),
            key=lambda r: r.finished_at or 0,
            reverse=True,
        )[:FINISHED_SHOWN]
        return HomeView(
            user=user,
            updated_at=now,
            running=running,
            more_running=max(0, len(active) - len(shown_active)),
            finished=finished,
            deployments=deployments,
            problems=problems,
        )

    async def _row(self, watch: Watch, problems: list[str]) -> JobRow | None:
        kept = self._finished.get(watch.job_id)
        if kept is not None:
            self._finished.move_to_end(watch.job_id)
            return kept
        assert self.nebius is not None
        link = await self._link(watch.channel, watch.thread_ts)
        base = {
            "job_id": watch.job_id,
            "channel": watch.channel,
            "thread_ts": watch.thread_ts,
            "thread_url": link,
        }
        try:
            async with self._reads:
                job = await self.nebius.retrieve_job(watch.job_id)
                if job.is_terminal:
                    row = await self._finished_row(job, base)
                    self._keep(row)
                    return row
        except NotFoundError:
            row = JobRow(status=watch.status or "gone", model=None, gone=True, **base)
            self._keep(row)
            return row
        except NebiusError as error:
            problems.append(f"Nebius did not answer for job `{watch.job_id}`: {error.message}")
            return JobRow(status=watch.status or "unknown", model=None, **base)
        return JobRow(
            status=job.status,
            model=job.model,
            trained_steps=job.trained_steps,
            total_steps=job.total_steps,
            estimated_finish=job.estimated_finish,
            **base,
        )

    async def _finished_row(self, job: Job, base: dict[str, Any]) -> JobRow:
        assert self.nebius is not None
        best = None
        if job.status == "succeeded":
            best = best_checkpoint(await self.nebius.list_checkpoints(job.id))
        price = await self.nebius.training_price(job.model or "")
        error = None
        if job.error and (job.error.message or job.error.code):
            error = job.error.message or job.error.code
        return JobRow(
            status=job.status,
            model=job.model,
            trained_steps=job.trained_steps,
            total_steps=job.total_steps,
            finished_at=job.finished_at,
            best_checkpoint_id=best.id if best else None,
            best_step=best.step if best else None,
            best_valid_loss=best.valid_loss if best else None,
            cost_text=job_cost(price, job).text,
            error=error,
            **base,
        )

    def _keep(self, row: JobRow) -> None:
        self._finished[row.job_id] = row
        while len(self._finished) > FINISHED_KEPT:
            self._finished.popitem(last=False)

    async def _link(self, channel: str, ts: str) -> str | None:
        key = (channel, ts)
        if key in self._links:
            return self._links[key]
        link = await self.chat.permalink(channel, ts)
        if link is not None:  # a failed look-up is tried again next time
            self._links[key] = link
            while len(self._links) > LINKS_KEPT:
                self._links.popitem(last=False)
        return link

    async def _deployments(self, job_ids: set[str], problems: list[str]) -> list[DeploymentRow]:
        assert self.nebius is not None
        try:
            async with self._reads:
                found = await self.nebius.list_deployments()
        except NebiusError as error:
            problems.append(f"Nebius did not list the deployments: {error.message}")
            return []
        return [_deployment_row(d) for d in found if _job_of(d) in job_ids]


def _job_of(deployment: Deployment) -> str | None:
    origin = deployment.origin
    return origin.partition(":")[0] if origin else deployment.job_id


def _deployment_row(deployment: Deployment) -> DeploymentRow:
    return DeploymentRow(
        name=deployment.name,
        status=deployment.state,
        job_id=_job_of(deployment),
        base_model=deployment.base_model,
        reason=deployment.status_reason if deployment.is_failed else None,
    )


@runtime_checkable
class HomeSurface(Protocol):
    """A chat with a Home tab (Slack): the console has none, it prints `home` on request."""

    async def publish_home(self, user: str, view: dict[str, Any]) -> None: ...


Spawn = Callable[[Coroutine[Any, Any, Any], str], Any]


class HomeTab:
    """Publishes each person's Home: on opening and on their jobs' changes, debounced."""

    def __init__(
        self,
        builder: HomeBuilder,
        surface: HomeSurface | None,
        spawn: Spawn,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.builder = builder
        self.surface = surface
        self.spawn = spawn
        self.clock = clock or RealClock()
        self.viewers: set[str] = set()
        self._last: dict[str, float] = {}
        self._pending: set[str] = set()

    def opened(self, user: str) -> None:
        """The person opened the Home tab: publish it (now, or at the end of the window)."""
        if self.surface is None:
            return
        self.viewers.add(user)
        self._request(user)

    def job_changed(self, user: str | None) -> None:
        """A job `user` started changed state: refresh their tab if they have looked at it."""
        if self.surface is None or not user or user not in self.viewers:
            return
        self._request(user)

    def _request(self, user: str) -> None:
        if user in self._pending:
            return  # the refresh already scheduled reads the state when it runs
        self._pending.add(user)
        wait = self._last.get(user, -1e18) + REFRESH_EVERY_S - self.clock.monotonic()
        self.spawn(self._refresh(user, max(0.0, wait)), f"home {user}")

    async def _refresh(self, user: str, wait: float) -> None:
        try:
            if wait > 0:
                await self.clock.sleep(wait)
        finally:
            self._pending.discard(user)
        # From here on a change schedules the next refresh, a window after this one.
        self._last[user] = self.clock.monotonic()
        await self.publish(user)

    async def publish(self, user: str) -> None:
        """Builds and publishes `user`'s Home now; a failure is logged (the tab keeps its last
        view, and the next opening or change tries again)."""
        assert self.surface is not None
        try:
            view = home_view(await self.builder.build(user))
            await self.surface.publish_home(user, view)
        except (ChatError, NebiusError) as error:
            log.warning("publishing the Home of %s failed: %s", user, error)
        except Exception:
            log.exception("publishing the Home of %s failed unexpectedly", user)

    async def click(self, click: ButtonClick, commands: CommandRunner) -> None:
        """A Home button that acts on a job: done as if clicked on the job's card (same
        allowlists, same answers in the job's channel), then the Home is refreshed."""
        card_action = HOME_TO_CARD.get(click.action_id)
        job_id, value = home_value(click.action_id, click.value)
        watch = await self.builder.store.watch(job_id) if card_action else None
        if card_action is None or watch is None:
            log.warning("Home button %s for %r: no such job thread", click.action_id, click.value)
            return
        await commands.click(
            ButtonClick(
                action_id=card_action,
                value=value,
                user=click.user,
                channel=watch.channel,
                # The card is the first message of the job's thread.
                message_ts=watch.thread_ts,
                trigger_id=click.trigger_id,
            )
        )
        self.viewers.add(click.user)
        self._request(click.user)


def home_value(action_id: str, value: str) -> tuple[str, str]:
    """(the job whose thread answers, the value the thread's own button carries); the
    inverse of bot.blocks.home's values."""
    if action_id == Actions.HOME_TRY:
        job_id, _, model = value.partition(" ")
        return job_id, model
    # Cancel: the job id; Deploy: `<job id>:<checkpoint id>`, as the summary's button.
    return value.partition(":")[0], value
