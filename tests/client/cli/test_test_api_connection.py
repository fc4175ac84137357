"""`test-api-connection`: one line per endpoint, exit 0 only when all pass."""

import json

import pytest
import respx

from client.cli import test_api_connection as tool
from tests.client.conftest import API_KEY, LOCAL_URL


@pytest.fixture
def base_url() -> str:
    return LOCAL_URL


def test_all_endpoints_ok(api: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    api.get("models").respond(json={"data": [{"id": "a"}, {"id": "b"}]})
    api.get("fine_tuning/jobs").respond(json={"data": [{"id": "j"}], "has_more": True})
    api.get("files").respond(json={"data": []})
    assert tool.main([]) == 0
    out = capsys.readouterr().out
    assert f"Nebius API at {LOCAL_URL}" in out
    assert "OK    models" in out and "2 models" in out
    assert "1+ jobs" in out and "0 files" in out
    assert " ms " in out
    assert "all 3 checks passed" in out


def test_a_failure_shows_status_reason_hint_and_exits_1(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("models").respond(json={"data": []})
    api.get("fine_tuning/jobs").respond(401, json={"detail": "Invalid API key"})
    api.get("files").respond(503, text="maintenance")
    assert tool.main([]) == 1
    out = capsys.readouterr().out
    assert "FAIL  fine-tuning jobs" in out and "401 Invalid API key" in out
    assert "hint: Unauthorized: check NEBIUS_API_KEY" in out
    assert "503 maintenance" in out
    assert "2 of 3 checks failed" in out
    assert API_KEY not in out


def test_no_retries_so_failures_show_at_once(api: respx.MockRouter) -> None:
    route = api.get("models").respond(503)
    api.get("fine_tuning/jobs").respond(json={"data": []})
    api.get("files").respond(json={"data": []})
    assert tool.main([]) == 1
    assert route.call_count == 1


def test_json_output(api: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    api.get("models").respond(json={"data": []})
    api.get("fine_tuning/jobs").respond(json={"data": []})
    api.get("files").respond(404)
    assert tool.main(["--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["base_url"] == LOCAL_URL and data["ok"] is False
    assert [c["ok"] for c in data["checks"]] == [True, True, False]
    assert data["checks"][2]["status_code"] == 404


def test_missing_key_says_how_to_set_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NEBIUS_API_KEY")
    assert tool.main([]) == 1
    err = capsys.readouterr().err
    assert "NEBIUS_API_KEY is not set" in err and "export NEBIUS_API_KEY=" in err


def test_unreachable_server(capsys: pytest.CaptureFixture[str]) -> None:
    import httpx

    with respx.mock(base_url=LOCAL_URL) as router:
        router.route().mock(side_effect=httpx.ConnectError("refused"))
        assert tool.main([]) == 1
    out = capsys.readouterr().out
    assert out.count("cannot reach the API") == 3
    assert "check NEBIUS_BASE_URL" in out
