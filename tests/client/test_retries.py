"""Retries: 429 honouring Retry-After, 5xx and connection failures, with backoff, bounded;
the injected sleep means no test waits."""

import httpx
import pytest
import respx

from client import APIConnectionError, APITimeoutError, NebiusClient, RateLimitError, ServerError
from client._retry import parse_retry_after
from tests.client.conftest import FakeTime


async def test_429_waits_for_retry_after_then_succeeds(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = api.get("models").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "12"}, json={"error": "slow"}),
            httpx.Response(200, json={"data": [{"id": "m1"}]}),
        ]
    )
    models = await client.list_models()
    assert [m.id for m in models] == ["m1"]
    assert route.call_count == 2
    assert fake_time.sleeps == [12.0]


def test_retry_after_as_http_date_and_garbage() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert parse_retry_after("100000") == 120.0  # capped


async def test_5xx_backs_off_exponentially_with_jitter(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    api.get("files").mock(
        side_effect=[
            httpx.Response(500),
            httpx.Response(502),
            httpx.Response(503),
            httpx.Response(200, json={"object": "list", "data": []}),
        ]
    )
    assert await client.list_files() == []
    assert len(fake_time.sleeps) == 3
    # base 0.5 s doubling, each within +/-20 % jitter
    for attempt, slept in enumerate(fake_time.sleeps):
        nominal = 0.5 * 2**attempt
        assert nominal * 0.8 <= slept <= nominal * 1.2


async def test_retries_are_bounded(
    client: NebiusClient, api: respx.MockRouter, fake_time: FakeTime
) -> None:
    route = api.get("files").respond(500)
    with pytest.raises(ServerError):
        await client.list_files()
    assert route.call_count == 4  # first try + max_retries (3)
    assert len(fake_time.sleeps) == 3


async def test_rate_limit_gives_up_after_the_bound(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    route = api.get("models").respond(429, headers={"Retry-After": "1"})
    with pytest.raises(RateLimitError):
        await client.list_models()
    assert route.call_count == 4


async def test_connection_errors_are_retried_then_raised(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    route = api.get("models").mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(APIConnectionError) as info:
        await client.list_models()
    assert route.call_count == 4
    assert "cannot reach" in info.value.message
    assert "NEBIUS_BASE_URL" in (info.value.hint or "")


async def test_timeouts_become_api_timeout_error(
    client: NebiusClient, api: respx.MockRouter
) -> None:
    api.get("fine_tuning/jobs/j").mock(
        side_effect=[httpx.ReadTimeout("slow"), httpx.Response(200, json={"id": "j"})]
    )
    assert (await client.retrieve_job("j")).id == "j"
    api.get("fine_tuning/jobs/k").mock(side_effect=httpx.ConnectTimeout("slow"))
    with pytest.raises(APITimeoutError) as info:
        await client.retrieve_job("k")
    assert isinstance(info.value, APIConnectionError)
    assert info.value.request is not None and info.value.request.url.endswith("jobs/k")


async def test_zero_retries_means_one_attempt(api: respx.MockRouter) -> None:
    route = api.get("models").respond(503)
    async with NebiusClient("k-123456", "https://nebius.test/v1/", max_retries=0) as client:
        with pytest.raises(ServerError):
            await client.list_models()
    assert route.call_count == 1
