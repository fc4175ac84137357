"""A fake event list for respx: listed newest or oldest first, paged with `after`."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest

from client.events import NEWEST_FIRST, OLDEST_FIRST, Order

T0 = 1_700_000_000
BOTH_ORDERS = pytest.mark.parametrize("order", [NEWEST_FIRST, OLDEST_FIRST])


@dataclass
class EventServer:
    """A job's event list as an API gives it: a fixed total order (insertion order, ties in
    `created_at` included), listed newest or oldest first, `after` paging on in that order."""

    order: Order
    # What an `after` id the server does not know gives: "empty", "404" or "ignored".
    unknown_after: str = "empty"
    events: list[dict] = field(default_factory=list)  # oldest first
    requests: list[str | None] = field(default_factory=list)
    added: int = 0  # events ever added, pruned ones included

    def add(self, eid: str, ts: int, message: str | None = None) -> None:
        self.added += 1
        self.events.append(
            {
                "id": eid,
                "object": "fine_tuning.job.event",
                "created_at": ts,
                "level": "info",
                "message": message or f"message {eid}",
                "type": "message",
            }
        )

    def prune(self, eid: str) -> None:
        self.events = [e for e in self.events if e["id"] != eid]

    def listed(self) -> list[dict]:
        return list(self.events) if self.order == OLDEST_FIRST else self.events[::-1]

    def __call__(self, request: httpx.Request) -> httpx.Response:
        after = request.url.params.get("after")
        limit = int(request.url.params.get("limit", "100"))
        self.requests.append(after)
        listed = self.listed()
        ids = [e["id"] for e in listed]
        start = 0
        if after is not None and after in ids:
            start = ids.index(after) + 1
        elif after is not None and self.unknown_after == "404":
            return httpx.Response(404, json={"error": {"message": f"no event {after}"}})
        elif after is not None and self.unknown_after == "empty":
            start = len(listed)
        data = listed[start : start + limit]
        return httpx.Response(
            200, json={"object": "list", "data": data, "has_more": start + limit < len(listed)}
        )
