"""Reading a job's events in order whatever order the API lists them in.

OpenAI (and our engine) list a job's events newest first, and `after=<id>` pages back to
older ones; Nebius lists them oldest first, and `after=<id>` pages forward to newer ones.
The order is recognised from each response: by timestamps when they differ, otherwise by
where events this client has not handed out yet sit relative to those it has, otherwise by
what earlier responses showed. Only when nothing tells is OpenAI's documented order assumed.

The API's order is taken to be a fixed total order (ties in `created_at` broken the same way
on every call), as paging with `after` needs anyway; timestamps are never used to filter, so
events sharing a second are neither lost nor repeated.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Literal

from client.errors import BadRequestError, NotFoundError, UnprocessableEntityError
from client.models import Event, Page

log = logging.getLogger("client")

Order = Literal["oldest_first", "newest_first"]
OLDEST_FIRST: Order = "oldest_first"
NEWEST_FIRST: Order = "newest_first"
# Assumed only when neither timestamps nor positions nor earlier answers tell: OpenAI's
# documented order, which our engine keeps.
FALLBACK_ORDER: Order = NEWEST_FIRST
# How many events a "recent events" view shows by default.
RECENT_EVENTS = 20
# How many jobs' trails one client remembers (a bot watches far fewer at once).
TRAIL_JOBS = 512

# An `after` id the API does not know may be refused with one of these.
CURSOR_REFUSED = (NotFoundError, BadRequestError, UnprocessableEntityError)

FetchPage = Callable[[str | None, int], Awaitable[Page[Event]]]


def order_from_timestamps(stamps: Sequence[int | None]) -> Order | None:
    """The order that `created_at` values in list order show, or None when they do not
    (all equal, missing, or as many steps up as down)."""
    known = [s for s in stamps if s is not None]
    up = sum(b > a for a, b in pairwise(known))
    down = sum(b < a for a, b in pairwise(known))
    if up == down:
        return None
    return OLDEST_FIRST if up > down else NEWEST_FIRST


def order_from_position(events: Sequence[Event], known: set[str]) -> Order | None:
    """The order shown by where events not yet handed out sit: after every known one (the
    list grows at its end: oldest first) or before every known one (newest first)."""
    fresh = [i for i, e in enumerate(events) if e.id not in known]
    old = [i for i, e in enumerate(events) if e.id in known]
    if not fresh or not old:
        return None
    if min(fresh) > max(old):
        return OLDEST_FIRST
    if max(fresh) < min(old):
        return NEWEST_FIRST
    return None


def oldest_to_newest(events: Sequence[Event], order: Order) -> list[Event]:
    return list(events) if order == OLDEST_FIRST else list(reversed(events))


@dataclass
class Trail:
    """What this client last handed out for a job: the newest event given (the id the
    caller will pass back as its cursor) and every event at or before it that it read."""

    cursor: str
    created_at: int | None
    known: set[str] = field(default_factory=set)


class _Pages:
    """Pages read in one call, in list order, each event once; stops on a server that
    repeats a page or ignores `after`."""

    def __init__(self, fetch: FetchPage, page_size: int) -> None:
        self.fetch = fetch
        self.page_size = page_size
        self.events: list[Event] = []
        self.ids: set[str] = set()
        self.has_more = True

    def add(self, page: Page[Event]) -> int:
        added = 0
        for event in page.data:
            if event.id not in self.ids:
                self.ids.add(event.id)
                self.events.append(event)
                added += 1
        self.has_more = page.has_more and added > 0
        return added

    async def next(self, after: str | None) -> int:
        return self.add(await self.fetch(after, self.page_size))

    async def until(self, wanted: str | None) -> None:
        """Read on from the last event until `wanted` shows (None: to the end)."""
        while self.has_more and (wanted is None or wanted not in self.ids):
            await self.next(self.events[-1].id if self.events else None)


class EventReader:
    """One client's view of the API's event order and of what it handed out per job."""

    def __init__(self, max_jobs: int = TRAIL_JOBS) -> None:
        self.order: Order | None = None  # learned from earlier responses
        self._trails: OrderedDict[str, Trail] = OrderedDict()
        self._max_jobs = max_jobs

    def _learn(self, order: Order | None) -> Order | None:
        if order is not None:
            self.order = order
        return order

    def trail(self, job_id: str, cursor: str | None) -> Trail | None:
        """The job's trail when `cursor` is where it ends (another cursor: another reader)."""
        trail = self._trails.get(job_id)
        if trail is None or cursor is None or trail.cursor != cursor:
            return None
        return trail

    async def newer(
        self, job_id: str, fetch: FetchPage, cursor: str | None, page_size: int
    ) -> list[Event]:
        """The job's events strictly newer than `cursor` (all when None), oldest first."""
        trail = self.trail(job_id, cursor)
        known = trail.known if trail else set()
        fresh: list[Event] | None = None
        read: list[Event] = []
        tried_forward = trail is not None and self.order == OLDEST_FIRST
        if tried_forward and trail is not None:
            # The cursor's timestamp is known, so the answer can be checked against it.
            fresh = await self._forward_from(fetch, trail.cursor, trail, page_size)
            read = list(fresh or [])
        if fresh is None:
            fresh, read = await self._from_head(
                job_id, fetch, cursor, trail, page_size, forward=not tried_forward
            )
        fresh = [e for e in fresh if e.id not in known]  # never hand out an event twice
        self._remember(job_id, cursor, trail, fresh, read)
        return fresh

    async def _forward_from(
        self, fetch: FetchPage, cursor: str, trail: Trail | None, page_size: int
    ) -> list[Event] | None:
        """With an oldest-first API, `after=cursor` pages straight to the newer events.
        None when the answer does not look like that (then the list is read from its head)."""
        pages = _Pages(fetch, page_size)
        try:
            await pages.next(cursor)
        except CURSOR_REFUSED:
            return None
        known = trail.known if trail else set()
        if cursor in pages.ids or pages.ids & known:
            return None  # older events came back: `after` ignored, or the order changed
        stamps = [trail.created_at if trail else None] + [e.created_at for e in pages.events]
        if order_from_timestamps(stamps) == NEWEST_FIRST:
            self.order = None
            return None
        await pages.until(None)
        return pages.events

    async def _from_head(
        self,
        job_id: str,
        fetch: FetchPage,
        cursor: str | None,
        trail: Trail | None,
        page_size: int,
        *,
        forward: bool = True,
    ) -> tuple[list[Event], list[Event]]:
        """Read from the first page the API gives; returns (newer than cursor, all read).
        `forward`: whether `after=cursor` may be tried (not when it was just refused)."""
        known = trail.known if trail else set()
        pages = _Pages(fetch, page_size)
        await pages.next(None)
        head = list(pages.events)
        order = (
            self._learn(order_from_timestamps([e.created_at for e in head]))
            or self._learn(order_from_position(head, known))
            or self.order
        )
        if order == NEWEST_FIRST:
            await pages.until(cursor)  # the newer events come first: read back to the cursor
        elif order == OLDEST_FIRST and cursor is not None and cursor not in pages.ids:
            if not pages.has_more:
                return self._resync(job_id, cursor, trail, head), head
            newer = await self._forward_from(fetch, cursor, trail, page_size) if forward else None
            if newer is not None:
                return newer, head + newer
            await pages.until(cursor)
        else:
            # Oldest first from the cursor on, or an order nothing has told yet: read to
            # the end, then look at everything together.
            await pages.until(None)
            order = (
                self._learn(order_from_timestamps([e.created_at for e in pages.events]))
                or self._learn(order_from_position(pages.events, known))
                or self.order
                or FALLBACK_ORDER
            )
        # Everything read together may show what the first page did not.
        order = self._learn(order_from_timestamps([e.created_at for e in pages.events])) or order
        listed = oldest_to_newest(pages.events, order)
        if cursor is None:
            return listed, listed
        if cursor not in pages.ids:
            return self._resync(job_id, cursor, trail, listed), listed
        at = next(i for i, e in enumerate(listed) if e.id == cursor)
        return listed[at + 1 :], listed

    def _resync(
        self, job_id: str, cursor: str, trail: Trail | None, listed: list[Event]
    ) -> list[Event]:
        """The cursor event is no longer listed (pruned, or from another job): hand out what
        is provably new when the trail tells, else only the newest event, so that the
        caller's cursor moves onto a listed event instead of asking again on every poll."""
        if not listed:
            return []
        if trail is not None:
            since = trail.created_at
            fresh = [
                e
                for e in listed
                if e.id not in trail.known
                and (since is None or e.created_at is None or e.created_at >= since)
            ]
            log.warning(
                "job %s: event %s is no longer listed; %d unseen event(s) since it",
                job_id,
                cursor,
                len(fresh),
            )
            return fresh
        log.warning(
            "job %s: event %s is no longer listed; resuming from the newest event %s",
            job_id,
            cursor,
            listed[-1].id,
        )
        return listed[-1:]

    async def recent(self, fetch: FetchPage, limit: int, page_size: int) -> list[Event]:
        """The job's newest `limit` events, oldest first: one page when the API lists newest
        first; when it lists oldest first the newest are at the end, so read to it."""
        if limit <= 0:
            return []
        pages = _Pages(fetch, limit)
        await pages.next(None)
        order = self._learn(order_from_timestamps([e.created_at for e in pages.events]))
        if (order or self.order) == NEWEST_FIRST:
            return list(reversed(pages.events[:limit]))
        pages.page_size = max(limit, page_size)
        await pages.until(None)
        order = (
            self._learn(order_from_timestamps([e.created_at for e in pages.events]))
            or self.order
            or FALLBACK_ORDER
        )
        return oldest_to_newest(pages.events, order)[-limit:]

    def _remember(
        self,
        job_id: str,
        cursor: str | None,
        trail: Trail | None,
        fresh: list[Event],
        read: list[Event],
    ) -> None:
        # Everything read is at or before the newest event handed out (or the cursor).
        known = set(trail.known) if trail else set()
        known.update(e.id for e in read)
        if cursor is not None:
            known.add(cursor)
        if fresh:
            newest = fresh[-1]
            new_trail = Trail(newest.id, newest.created_at, known)
        elif cursor is not None:
            stamp = trail.created_at if trail else None
            for e in read:
                if e.id == cursor:
                    stamp = e.created_at
            new_trail = Trail(cursor, stamp, known)
        else:
            return
        self._trails[job_id] = new_trail
        self._trails.move_to_end(job_id)
        while len(self._trails) > self._max_jobs:
            self._trails.popitem(last=False)
