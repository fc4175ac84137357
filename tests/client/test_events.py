"""Events: the API may list them newest first (OpenAI, our engine) or oldest first (Nebius),
paging on with `after` in its own order. The client gives them oldest to newest, only those
after the caller's cursor, each once, also when several share a second."""

from __future__ import annotations

import logging

import httpx
import pytest
import respx

from client import NebiusClient
from client.events import NEWEST_FIRST, OLDEST_FIRST, Order
from tests.client.event_server import BOTH_ORDERS, T0, EventServer


def serve(api: respx.MockRouter, order: Order, events: int = 0, **kwargs: str) -> EventServer:
    """Job ftjob-1's event list on the mocked API, holding `events` events a second apart."""
    server = EventServer(order, **kwargs)
    fill(server, events)
    api.get("fine_tuning/jobs/ftjob-1/events").mock(side_effect=server)
    return server


async def poll(client: NebiusClient, cursor: str | None, page_size: int = 3) -> list[str]:
    return [
        e.id
        async for e in client.iter_events("ftjob-1", after_event_id=cursor, page_size=page_size)
    ]


def fill(server: EventServer, count: int, *, ts: int | None = None) -> None:
    start = server.added + 1
    for i in range(start, start + count):
        server.add(f"ev{i}", T0 + i if ts is None else ts)


def ids(first: int, last: int) -> list[str]:
    return [f"ev{i}" for i in range(first, last + 1)]


async def test_list_events_is_one_raw_page_in_the_apis_order(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    serve(api, NEWEST_FIRST, events=10)
    page = await client.list_events("ftjob-1", limit=3)
    assert [e.id for e in page.data] == ["ev10", "ev9", "ev8"] and page.has_more
    page = await client.list_events("ftjob-1", after="ev8", limit=3)
    assert [e.id for e in page.data] == ["ev7", "ev6", "ev5"]


@BOTH_ORDERS
async def test_every_event_oldest_first_across_pages(
    client: NebiusClient, api: respx.MockRouter, order: Order
) -> None:
    server = serve(api, order, events=10)
    assert await poll(client, None) == ids(1, 10)
    assert len(server.requests) == 4


@BOTH_ORDERS
async def test_only_events_after_the_cursor_oldest_first(
    client: NebiusClient, api: respx.MockRouter, order: Order
) -> None:
    serve(api, order, events=10)
    assert await poll(client, "ev6") == ids(7, 10)
    assert await poll(client, "ev10") == []


async def test_newest_first_stops_paging_at_the_cursor(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    server = serve(api, NEWEST_FIRST, events=10)
    assert await poll(client, "ev6") == ids(7, 10)
    assert server.requests == [None, "ev8"]  # ev6 is on the second page: no further


async def test_oldest_first_pages_forward_from_the_cursor(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    server = serve(api, OLDEST_FIRST, events=10)
    assert await poll(client, "ev5") == ids(6, 10)
    # The first page shows the order; then straight to the cursor, not through the list.
    assert server.requests == [None, "ev5", "ev8"]
    server.requests.clear()
    fill(server, 2)
    assert await poll(client, "ev10") == ["ev11", "ev12"]
    assert server.requests == ["ev10"]  # the order is known now: one request


@BOTH_ORDERS
async def test_follows_a_running_job_each_event_once(
    client: NebiusClient, api: respx.MockRouter, order: Order
) -> None:
    server = serve(api, order)
    server.add("ev1", T0, "Job is submitted")
    seen = await poll(client, None)
    assert seen == ["ev1"]
    for batch in (1, 3, 2, 4):  # events keep arriving between polls
        before = len(server.events)
        fill(server, batch)
        new = await poll(client, seen[-1])
        assert new == ids(before + 1, before + batch)
        seen += new
    assert seen == ids(1, 11)
    assert await poll(client, seen[-1]) == []


@BOTH_ORDERS
async def test_events_sharing_a_second_are_neither_lost_nor_repeated(
    client: NebiusClient, api: respx.MockRouter, order: Order
) -> None:
    server = serve(api, order, events=2)
    seen = await poll(client, None)
    assert seen == ["ev1", "ev2"]
    same = server.events[-1]["created_at"]
    # Every later event lands in the same second as the cursor, one to three at a time,
    # across page boundaries (pages of 3).
    for batch in (1, 2, 3, 1, 3):
        before = len(server.events)
        fill(server, batch, ts=same)
        new = await poll(client, seen[-1])
        assert new == ids(before + 1, before + batch)
        seen += new
    assert seen == ids(1, 12)


@BOTH_ORDERS
async def test_a_fresh_client_with_a_cursor_among_ties(
    client: NebiusClient, api: respx.MockRouter, order: Order
) -> None:
    # After a restart the bot has only its cursor; the head page's timestamps tell the order.
    server = serve(api, order)
    server.add("ev1", T0, "Job is submitted")
    fill(server, 6, ts=T0 + 30)
    assert await poll(client, "ev4", page_size=10) == ["ev5", "ev6", "ev7"]


@BOTH_ORDERS
async def test_all_events_in_one_second_the_order_shows_as_the_list_grows(
    client: NebiusClient, api: respx.MockRouter, order: Order
) -> None:
    server = serve(api, order)
    fill(server, 3, ts=T0)
    first = await poll(client, None)
    # Nothing can tell the order of three events of one second yet: all of them, once.
    assert sorted(first) == ids(1, 3)
    fill(server, 1, ts=T0)
    assert await poll(client, first[-1]) == ["ev4"]  # the new one is where the list grew
    fill(server, 2, ts=T0)
    assert await poll(client, "ev4") == ["ev5", "ev6"]
    # The order learned here also serves other jobs' single-second pages.
    assert client._events.order == order


async def test_the_order_is_recognised_per_response(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    # One client, two APIs' habits (say a proxy in front of two servers): each answer counts.
    newest = EventServer(NEWEST_FIRST)
    oldest = EventServer(OLDEST_FIRST)
    api.get("fine_tuning/jobs/a/events").mock(side_effect=newest)
    api.get("fine_tuning/jobs/b/events").mock(side_effect=oldest)
    fill(newest, 4)
    fill(oldest, 4)
    assert [e.id async for e in client.iter_events("a")] == ids(1, 4)
    assert [e.id async for e in client.iter_events("b")] == ids(1, 4)
    assert [e.id async for e in client.iter_events("a", after_event_id="ev2")] == ["ev3", "ev4"]


@BOTH_ORDERS
async def test_a_single_page_api(client: NebiusClient, api: respx.MockRouter, order: Order) -> None:
    server = serve(api, order, events=5)
    assert await poll(client, "ev3", page_size=100) == ["ev4", "ev5"]
    assert server.requests == [None]


@pytest.mark.parametrize(
    ("order", "unknown_after"), [(NEWEST_FIRST, "empty"), (OLDEST_FIRST, "404")]
)
async def test_a_pruned_cursor_resumes_without_reposting(
    client: NebiusClient,
    api: respx.MockRouter,
    order: Order,
    unknown_after: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = serve(api, order, events=8, unknown_after=unknown_after)
    seen = await poll(client, None)
    assert seen == ids(1, 8)
    server.prune("ev8")  # the cursor vanishes, and two events arrive
    fill(server, 2)
    with caplog.at_level(logging.WARNING, logger="client"):
        assert await poll(client, "ev8") == ["ev9", "ev10"]
    assert "ev8 is no longer listed" in caplog.text
    assert await poll(client, "ev10") == []  # and on from the new cursor, no loop


@BOTH_ORDERS
async def test_an_unknown_cursor_in_a_fresh_client_gives_only_the_newest(
    client: NebiusClient, api: respx.MockRouter, order: Order
) -> None:
    server = serve(api, order, events=7, unknown_after="404")
    assert await poll(client, "ev-gone") == ["ev7"]
    fill(server, 1)
    assert await poll(client, "ev7") == ["ev8"]


async def test_survives_a_server_that_ignores_after(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    def head(_: httpx.Request) -> httpx.Response:
        data = [{"id": f"ev{i}", "created_at": T0 + i, "message": "m"} for i in (2, 1)]
        return httpx.Response(200, json={"data": data, "has_more": True})

    route = api.get("fine_tuning/jobs/j/events").mock(side_effect=head)
    assert [e.id async for e in client.iter_events("j")] == ["ev1", "ev2"]
    assert route.call_count == 2  # the repeated page ends the paging


@BOTH_ORDERS
async def test_recent_events_are_the_newest_oldest_first(
    client: NebiusClient, api: respx.MockRouter, order: Order
) -> None:
    serve(api, order, events=30)
    recent = await client.recent_events("ftjob-1", limit=5, page_size=10)
    assert [e.id for e in recent] == ids(26, 30)
