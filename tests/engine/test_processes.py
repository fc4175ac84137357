"""Worker processes: the queue, cancel, crashes and out-of-memory kills, restarts."""

import json
import os
from pathlib import Path

from tests.engine.conftest import Api, start_engine, wait_for


def _release(engine_dir: Path, job_id: str) -> None:
    folder = engine_dir / "jobs" / job_id
    wait_for(folder.is_dir, "the job's folder")
    (folder / "go").write_text("")


def _pid(engine_dir: Path, job_id: str) -> int:
    # The worker's pid, as the engine recorded it.
    import sqlite3

    with sqlite3.connect(engine_dir / "engine.db") as db:
        row = db.execute("SELECT internal FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return json.loads(row[0])["pid"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose.
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.split(") ", 1)[1][0] != "Z"


def test_jobs_wait_in_order_and_run_one_at_a_time_by_default(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="gate")
    try:
        api = Api(server.base_url)
        training = api.processed()["id"]
        ids = [
            api.create_job(training_file=training, hyperparameters={"n_epochs": 1}).json()["id"]
            for _ in range(3)
        ]
        api.wait_status(ids[0], "running")
        assert [api.job(i)["status"] for i in ids[1:]] == ["queued", "queued"]
        assert "behind 2 other job(s)" in api.all_events(ids[2])[0]["message"]

        _release(engine_dir, ids[0])
        api.wait_status(ids[1], "running")
        assert api.job(ids[0])["status"] == "succeeded"
        assert api.job(ids[2])["status"] == "queued"
        _release(engine_dir, ids[1])
        _release(engine_dir, ids[2])
        api.wait_status(ids[2], "succeeded")
    finally:
        server.stop()


def test_max_concurrent_jobs_runs_that_many_at_once(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="gate", max_concurrent_jobs=2)
    try:
        api = Api(server.base_url)
        training = api.processed()["id"]
        ids = [api.create_job(training_file=training).json()["id"] for _ in range(3)]
        api.wait_status(ids[0], "running")
        api.wait_status(ids[1], "running")
        assert api.job(ids[2])["status"] == "queued"
        for job_id in ids:
            _release(engine_dir, job_id)
        api.wait_status(ids[2], "succeeded")
    finally:
        server.stop()


def test_cancel_stops_a_running_worker_and_records_cancelled(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="gate")
    try:
        api = Api(server.base_url)
        training = api.processed()["id"]
        running = api.create_job(training_file=training).json()["id"]
        waiting = api.create_job(training_file=training).json()["id"]
        api.wait_status(running, "running")
        pid = _pid(engine_dir, running)
        assert _alive(pid)

        response = api.http.post(f"fine_tuning/jobs/{running}/cancel")
        assert response.status_code == 200
        assert response.json()["status"] == "cancelled"
        assert not _alive(pid)
        assert api.all_events(running)[0]["message"] == "The job was cancelled."

        # The next job in the queue starts; cancelling it while queued needs no process.
        api.wait_status(waiting, "running")
        assert api.http.post(f"fine_tuning/jobs/{waiting}/cancel").json()["status"] == "cancelled"

        again = api.http.post(f"fine_tuning/jobs/{running}/cancel")
        assert again.status_code == 400
        assert "already cancelled" in again.json()["error"]["message"]
    finally:
        server.stop()


def test_cancelling_a_queued_job_means_it_never_starts(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="gate")
    try:
        api = Api(server.base_url)
        training = api.processed()["id"]
        first = api.create_job(training_file=training).json()["id"]
        second = api.create_job(training_file=training).json()["id"]
        api.wait_status(first, "running")
        assert api.http.post(f"fine_tuning/jobs/{second}/cancel").json()["status"] == "cancelled"
        _release(engine_dir, first)
        api.wait_status(first, "succeeded")
        assert not (engine_dir / "jobs" / second).exists()
        assert api.job(second)["status"] == "cancelled"
    finally:
        server.stop()


def test_a_worker_that_ignores_sigterm_is_killed_after_the_grace_period(
    engine_dir: Path,
) -> None:
    server = start_engine(engine_dir, mode="stubborn", stop_grace_seconds=0.3)
    try:
        api = Api(server.base_url)
        job = api.create_job(training_file=api.processed()["id"]).json()["id"]
        wait_for(lambda: api.job(job)["total_steps"] == 2, "the worker to start")
        pid = _pid(engine_dir, job)
        assert api.http.post(f"fine_tuning/jobs/{job}/cancel").json()["status"] == "cancelled"
        assert not _alive(pid)
    finally:
        server.stop()


def test_a_crashed_worker_fails_its_job_with_the_exit_code_and_last_log_line(
    engine_dir: Path,
) -> None:
    server = start_engine(engine_dir, mode="crash")
    try:
        api = Api(server.base_url)
        training = api.processed()["id"]
        job = api.create_job(training_file=training).json()["id"]
        failed = api.wait_status(job, "failed")
        assert failed["error"]["code"] == "worker_crashed"
        message = failed["error"]["message"]
        assert "exited with code 3" in message
        assert "RuntimeError: the fake trainer broke" in message
        assert "Traceback" not in message
        assert api.all_events(job)[0]["level"] == "error"
        # The engine carries on: the next job runs (and fails the same way, on its own).
        assert api.create_job(training_file=training).status_code == 200
    finally:
        server.stop()


def test_a_worker_killed_for_memory_fails_its_job_saying_so(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="killed")
    try:
        api = Api(server.base_url)
        job = api.create_job(training_file=api.processed()["id"]).json()["id"]
        failed = api.wait_status(job, "failed")
        assert failed["error"]["code"] == "worker_killed"
        message = failed["error"]["message"]
        assert "SIGKILL" in message
        assert "out of memory" in message
        # Its log ends with the source line a warning echoes (`warnings.warn(`): the line
        # quoted is the last one that says something.
        log = (engine_dir / "jobs" / job / "worker.log").read_text()
        assert log.rstrip().endswith("warnings.warn(")
        assert message.endswith(
            f"Last log line: fake worker for {job} in mode killed (spec from argv)"
        )
    finally:
        server.stop()


def test_a_failure_the_worker_reports_is_the_jobs_error(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="fail")
    try:
        api = Api(server.base_url)
        job = api.create_job(training_file=api.processed()["id"]).json()["id"]
        failed = api.wait_status(job, "failed")
        assert failed["error"] == {
            "code": "bad_dataset",
            "message": "line 3: no assistant message to learn from",
            "param": None,
        }
        assert api.all_events(job)[0]["message"] == (
            "The job failed: line 3: no assistant message to learn from"
        )
    finally:
        server.stop()


def test_after_a_restart_a_running_job_resumes_from_its_last_checkpoint(
    engine_dir: Path,
) -> None:
    server = start_engine(engine_dir, mode="hold-after-checkpoint")
    api = Api(server.base_url)
    job = api.create_job(training_file=api.processed()["id"], hyperparameters={"n_epochs": 2})
    job_id = job.json()["id"]
    wait_for(
        lambda: api.http.get(f"fine_tuning/jobs/{job_id}/checkpoints").json()["data"],
        "the first checkpoint",
    )
    held = api.job(job_id)
    assert held["status"] == "running"
    assert held["trained_steps"] == 2 and held["total_steps"] == 4
    assert held["estimated_finish"] >= held["created_at"]
    pid = _pid(engine_dir, job_id)
    server.stop()
    assert not _alive(pid)

    server = start_engine(engine_dir, mode="ok")
    try:
        api = Api(server.base_url)
        done = api.wait_status(job_id, "succeeded")
        assert done["trained_steps"] == 4
        spec = json.loads((engine_dir / "jobs" / job_id / "spec_seen.json").read_text())
        assert spec["resume_from"] == str(
            engine_dir.resolve() / "jobs" / job_id / "checkpoints" / "step-2"
        )
        messages = [e["message"] for e in api.all_events(job_id)]
        assert any("resumes from the checkpoint step-2" in m for m in messages)
        assert any("resumed from step 2" in m for m in messages)
        steps = api.http.get(f"fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
        assert sorted(c["step_number"] for c in steps) == [2, 4]
    finally:
        server.stop()


def test_after_a_restart_a_resumed_job_keeps_its_base_validation_loss(engine_dir: Path) -> None:
    server = start_engine(engine_dir, mode="hold-after-checkpoint")
    api = Api(server.base_url)
    job = api.create_job(
        training_file=api.processed()["id"],
        validation_file=api.processed()["id"],
        hyperparameters={"n_epochs": 2},
    )
    job_id = job.json()["id"]
    wait_for(
        lambda: api.http.get(f"fine_tuning/jobs/{job_id}/checkpoints").json()["data"],
        "the first checkpoint",
    )
    assert api.job(job_id)["base_valid_loss"] == 3.57
    server.stop()

    # The resumed worker measures nothing (its model is trained) and keeps no figure itself.
    server = start_engine(engine_dir, mode="ok")
    try:
        api = Api(server.base_url)
        done = api.wait_status(job_id, "succeeded")
        assert done["base_valid_loss"] == 3.57
        checkpoints = api.http.get(f"fine_tuning/jobs/{job_id}/checkpoints").json()["data"]
        by_step = {c["step_number"]: c["metrics"] for c in checkpoints}
        assert by_step[4]["base_valid_loss"] == by_step[2]["base_valid_loss"] == 3.57
        said = [e for e in api.all_events(job_id) if e["message"].startswith("Base model")]
        assert len(said) == 1  # measured once, before the first run's first step
    finally:
        server.stop()


def test_after_a_restart_a_job_with_no_checkpoint_fails_with_a_clear_reason(
    engine_dir: Path,
) -> None:
    server = start_engine(engine_dir, mode="gate")
    api = Api(server.base_url)
    job_id = api.create_job(training_file=api.processed()["id"]).json()["id"]
    api.wait_status(job_id, "running")
    server.stop()

    server = start_engine(engine_dir, mode="gate")
    try:
        failed = Api(server.base_url).job(job_id)
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "engine_restarted"
        assert "before its first checkpoint" in failed["error"]["message"]
    finally:
        server.stop()


def test_a_warm_worker_takes_its_spec_from_stdin_and_the_next_one_is_started(
    engine_dir: Path,
) -> None:
    server = start_engine(engine_dir, warm_worker=True)
    try:
        api = Api(server.base_url)
        training = api.processed()["id"]
        for _ in range(2):
            job = api.create_job(training_file=training, hyperparameters={"n_epochs": 1})
            assert api.wait_status(job.json()["id"], "succeeded", "failed")["status"] == "succeeded"
            log = (engine_dir / "jobs" / job.json()["id"] / "worker.log").read_text()
            # Its spec came on stdin: it was started before the job existed.
            assert f"fake worker for {job.json()['id']}" in log
        assert len(list((engine_dir / "jobs").glob(".warm-*.log"))) == 1  # the next one
    finally:
        server.stop()
    assert list((engine_dir / "jobs").glob(".warm-*.log")) == []
