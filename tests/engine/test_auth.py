"""ENGINE_API_KEY: when set, every call needs `Authorization: Bearer <key>`."""

from pathlib import Path

from tests.engine.conftest import Api, start_engine

KEY = "engine-secret-key-123"


def test_without_a_key_configured_calls_need_no_authorization(api: Api) -> None:
    assert api.http.get("models").status_code == 200


def test_with_a_key_configured_a_missing_or_wrong_key_is_a_401(engine_dir: Path) -> None:
    server = start_engine(engine_dir, api_key=KEY)
    try:
        anonymous = Api(server.base_url)
        wrong = Api(server.base_url, api_key="wrong-key")
        right = Api(server.base_url, api_key=KEY)
        for client, path in ((anonymous, "models"), (wrong, "files"), (wrong, "fine_tuning/jobs")):
            response = client.http.get(path)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "invalid_api_key"
            assert KEY not in response.text
            assert "wrong-key" not in response.text
        assert "ENGINE_API_KEY" in anonymous.http.get("models").json()["error"]["message"]
        assert right.http.get("models").status_code == 200
        assert right.http.get("fine_tuning/jobs").status_code == 200
    finally:
        server.stop()


def test_an_unknown_path_is_a_404_in_openai_shape(api: Api) -> None:
    response = api.http.get("no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
