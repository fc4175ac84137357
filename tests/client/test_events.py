"""Events: Nebius lists newest first; the iterator gives oldest to newest, only events
after the last one seen, paging as needed."""

import httpx
import pytest
import respx

from client import NebiusClient

# ev10 is the newest; the server pages with `after` towards older events.
ALL_EVENTS = [f"ev{i}" for i in range(10, 0, -1)]


def event(eid: str) -> dict:
    return {
        "id": eid,
        "object": "fine_tuning.job.event",
        "created_at": 1_700_000_000 + int(eid[2:]),
        "level": "info",
        "message": f"message {eid}",
        "type": "message",
    }


@pytest.fixture
def events_route(api: respx.MockRouter) -> respx.Route:
    def page(request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        limit = int(request.url.params.get("limit", "3"))
        start = ALL_EVENTS.index(after) + 1 if after else 0
        ids = ALL_EVENTS[start : start + limit]
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": [event(i) for i in ids],
                "has_more": start + limit < len(ALL_EVENTS),
            },
        )

    return api.get("fine_tuning/jobs/ftjob-1/events").mock(side_effect=page)


async def test_list_events_is_one_raw_page_newest_first(
    client: NebiusClient, events_route: respx.Route
) -> None:
    page = await client.list_events("ftjob-1", limit=3)
    assert [e.id for e in page.data] == ["ev10", "ev9", "ev8"] and page.has_more
    page = await client.list_events("ftjob-1", after="ev8", limit=3)
    assert [e.id for e in page.data] == ["ev7", "ev6", "ev5"]


async def test_iter_events_gives_every_event_oldest_first_across_pages(
    client: NebiusClient, events_route: respx.Route
) -> None:
    ids = [e.id async for e in client.iter_events("ftjob-1", page_size=3)]
    assert ids == [f"ev{i}" for i in range(1, 11)]
    assert events_route.call_count == 4


async def test_iter_events_after_the_last_seen_stops_paging_there(
    client: NebiusClient, events_route: respx.Route
) -> None:
    ids = [e.id async for e in client.iter_events("ftjob-1", after_event_id="ev6", page_size=3)]
    assert ids == ["ev7", "ev8", "ev9", "ev10"]
    assert events_route.call_count == 2  # ev6 is on the second page: no need to go further


async def test_iter_events_after_the_newest_yields_nothing(
    client: NebiusClient, events_route: respx.Route
) -> None:
    assert [e async for e in client.iter_events("ftjob-1", after_event_id="ev10")] == []
    assert events_route.call_count == 1


async def test_iter_events_survives_a_server_that_ignores_after(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get("fine_tuning/jobs/j/events").respond(
        json={"data": [event("ev2"), event("ev1")], "has_more": True}
    )
    assert [e.id async for e in client.iter_events("j")] == ["ev1", "ev2"]
