"""A job's W&B integration: the key reaches its worker in the environment and nowhere else."""

import hashlib
import json
from pathlib import Path
from typing import Any

from engine.app import Engine
from engine.objects import public_integrations
from engine.server import EmbeddedEngine
from tests.engine.conftest import Api, start_engine, wait_for

KEY = "wandb-secret-0123456789abcdef"
WANDB = {"project": "xgen", "name": "run-1", "entity": "team", "api_key": KEY}


def _integrations(**wandb: Any) -> list[dict[str, Any]]:
    return [{"type": "wandb", "wandb": {**WANDB, **wandb}}]


def _env_seen(engine_dir: Path, job_id: str) -> str | None:
    return json.loads((engine_dir / "jobs" / job_id / "env_seen.json").read_text())[
        "wandb_key_sha256"
    ]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _engine(server: EmbeddedEngine) -> Engine:
    """The `Engine` object behind a running embedded engine (its app is wrapped in auth)."""
    assert server._server is not None
    return server._server.config.app.app.state.engine


def _files_holding(folder: Path, secret: str) -> list[Path]:
    """Every file under `folder` (the database and its WAL included) that contains `secret`."""
    return [p for p in folder.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_the_key_reaches_the_worker_in_its_environment_and_nowhere_else(
    engine_dir: Path,
) -> None:
    server = start_engine(engine_dir)
    try:
        api = Api(server.base_url)
        created = api.create_job(
            training_file=api.processed()["id"],
            hyperparameters={"n_epochs": 1},
            integrations=_integrations(),
        )
        assert created.status_code == 200, created.text
        job_id = created.json()["id"]
        assert KEY not in created.text
        done = api.wait_status(job_id, "succeeded", "failed")
        assert done["status"] == "succeeded", done["error"]

        assert _env_seen(engine_dir, job_id) == _sha(KEY)
        spec = json.loads((engine_dir / "jobs" / job_id / "spec.json").read_text())
        assert spec["wandb"] == {"project": "xgen", "name": "run-1", "entity": "team"}
        assert done["integrations"] == [
            {"type": "wandb", "wandb": {"project": "xgen", "name": "run-1", "entity": "team"}}
        ]
        listed = api.http.get("fine_tuning/jobs").text
        events = api.http.get(f"fine_tuning/jobs/{job_id}/events", params={"limit": 100}).text
        assert KEY not in listed + events
        assert _files_holding(engine_dir, KEY) == []
        assert _engine(server).keys.get(job_id) is None  # forgotten once the job is over
    finally:
        server.stop()


def test_a_job_without_its_own_key_leaves_the_environment_alone(
    engine_dir: Path, monkeypatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    server = start_engine(engine_dir)
    try:
        api = Api(server.base_url)
        job_id = api.create_job(
            training_file=api.processed()["id"],
            hyperparameters={"n_epochs": 1},
            integrations=[{"type": "wandb", "wandb": {"project": "xgen"}}],
        ).json()["id"]
        assert api.wait_status(job_id, "succeeded", "failed")["status"] == "succeeded"
        assert _env_seen(engine_dir, job_id) is None
        spec = json.loads((engine_dir / "jobs" / job_id / "spec.json").read_text())
        assert spec["wandb"] == {"project": "xgen", "name": None, "entity": None}
    finally:
        server.stop()


def test_a_job_with_a_key_gets_a_cold_worker_and_the_warm_one_waits_for_the_next(
    engine_dir: Path, monkeypatch
) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    server = start_engine(engine_dir, warm_worker=True)
    try:
        api = Api(server.base_url)
        training = api.processed()["id"]
        with_key = api.create_job(
            training_file=training, hyperparameters={"n_epochs": 1}, integrations=_integrations()
        ).json()["id"]
        assert api.wait_status(with_key, "succeeded", "failed")["status"] == "succeeded"
        log = (engine_dir / "jobs" / with_key / "worker.log").read_text()
        assert "(spec from argv)" in log
        assert _env_seen(engine_dir, with_key) == _sha(KEY)

        plain = api.create_job(training_file=training, hyperparameters={"n_epochs": 1}).json()
        assert api.wait_status(plain["id"], "succeeded", "failed")["status"] == "succeeded"
        log = (engine_dir / "jobs" / plain["id"] / "worker.log").read_text()
        assert "(spec from stdin)" in log
        assert _env_seen(engine_dir, plain["id"]) is None
        assert len(list((engine_dir / "jobs").glob(".warm-*.log"))) == 1
    finally:
        server.stop()
    assert list((engine_dir / "jobs").glob(".warm-*.log")) == []


def test_what_a_careless_worker_says_is_scrubbed_of_the_key(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="leak")
    try:
        api = Api(server.base_url)
        job_id = api.create_job(
            training_file=api.processed()["id"], integrations=_integrations()
        ).json()["id"]
        failed = api.wait_status(job_id, "failed")
        assert failed["error"]["code"] == "worker_crashed"
        assert "bad key [redacted]" in failed["error"]["message"]
        events = api.all_events(job_id)
        notice = next(e for e in events if e["message"].startswith("W&B refused"))
        assert notice["level"] == "warn"
        assert notice["message"] == "W&B refused the key [redacted]"
        assert KEY not in json.dumps(events) + json.dumps(api.job(job_id))
    finally:
        server.stop()


def test_after_a_restart_a_lost_key_is_said_on_the_job(engine_dir: Path, monkeypatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    server = start_engine(engine_dir, mode="hold-after-checkpoint")
    api = Api(server.base_url)
    job_id = api.create_job(
        training_file=api.processed()["id"],
        hyperparameters={"n_epochs": 2},
        integrations=_integrations(),
    ).json()["id"]
    wait_for(
        lambda: api.http.get(f"fine_tuning/jobs/{job_id}/checkpoints").json()["data"],
        "the first checkpoint",
    )
    assert _engine(server).keys.get(job_id) == KEY  # held while the job is unfinished
    server.stop()

    # A new engine has a vault of its own, empty: the key did not survive.
    server = start_engine(engine_dir, mode="ok")
    try:
        api = Api(server.base_url)
        assert api.wait_status(job_id, "succeeded", "failed")["status"] == "succeeded"
        lost = [e for e in api.all_events(job_id) if "did not survive" in e["message"]]
        assert len(lost) == 1 and lost[0]["level"] == "warn"
        assert _env_seen(engine_dir, job_id) is None
        assert _files_holding(engine_dir, KEY) == []
    finally:
        server.stop()


def test_a_wandb_integration_without_a_project_is_a_422_that_does_not_echo_the_key(
    api: Api,
) -> None:
    training = api.processed()["id"]
    response = api.create_job(
        training_file=training, integrations=[{"type": "wandb", "wandb": {"api_key": KEY}}]
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "integrations.0.wandb.project"
    assert KEY not in response.text

    response = api.create_job(
        training_file=training, integrations=[{"type": "wandb", "wandb": {"project": 3}}]
    )
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "integrations.0.wandb.project"

    twice = _integrations() + _integrations(project="other")
    response = api.create_job(training_file=training, integrations=twice)
    assert response.status_code == 422
    assert response.json()["error"]["param"] == "integrations"
    assert KEY not in response.text


def test_other_integration_types_are_shown_and_ignored(api: Api) -> None:
    response = api.create_job(
        training_file=api.processed()["id"],
        integrations=[{"type": "mlflow", "mlflow": {"uri": "http://x", "api_key": KEY}}],
    )
    assert response.status_code == 200, response.text
    assert response.json()["integrations"] == [{"type": "mlflow", "mlflow": {"uri": "http://x"}}]


def test_public_integrations_leave_out_keys_at_any_depth() -> None:
    given = [
        {"type": "wandb", "api_key": KEY, "wandb": {"project": "p", "api_key": KEY}},
        {"type": "x", "x": {"nested": {"api_key": KEY, "keep": 1}, "list": [{"api_key": KEY}]}},
    ]
    assert public_integrations(given) == [
        {"type": "wandb", "wandb": {"project": "p"}},
        {"type": "x", "x": {"nested": {"keep": 1}, "list": [{}]}},
    ]
    assert KEY in json.dumps(given)  # the request itself is left as it was
