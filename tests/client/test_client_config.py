"""Configuration comes from the environment; a missing key fails before any request."""

import pytest
import respx

from client import ConfigError, NebiusClient
from client.constants import DEFAULT_BASE_URL


def test_missing_key_is_a_clear_error_before_any_request() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.route()
        with pytest.raises(ConfigError) as info:
            NebiusClient.from_env()
    assert "NEBIUS_API_KEY" in info.value.message
    assert "export NEBIUS_API_KEY=" in info.value.message
    assert not route.called


def test_blank_key_counts_as_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", "   ")
    with pytest.raises(ConfigError):
        NebiusClient.from_env()


async def test_environment_gives_key_and_default_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", "k-123456")
    async with NebiusClient.from_env() as client:
        assert client.base_url == DEFAULT_BASE_URL == "https://api.tokenfactory.nebius.com/v1/"


async def test_base_url_from_environment_gets_a_trailing_slash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", "k-123456")
    monkeypatch.setenv("NEBIUS_BASE_URL", "http://127.0.0.1:8800/v1")
    async with NebiusClient.from_env() as client:
        assert client.base_url == "http://127.0.0.1:8800/v1/"
        with respx.mock() as router:
            route = router.get("http://127.0.0.1:8800/v1/models").respond(json={"data": []})
            assert await client.list_models() == []
            assert route.calls.last.request.headers["authorization"] == "Bearer k-123456"


def test_base_url_without_scheme_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEBIUS_API_KEY", "k-123456")
    monkeypatch.setenv("NEBIUS_BASE_URL", "api.example.com/v1")
    with pytest.raises(ConfigError, match="http:// or https://"):
        NebiusClient.from_env()


async def test_repr_never_shows_the_key() -> None:
    async with NebiusClient("k-secret-value", "https://x.test/v1/") as client:
        assert "k-secret-value" not in repr(client)
