"""`finetune chart JOB [-o PNG]` against a mocked API: the PNG written, its path and the loss
sparkline printed, what is missing said, exit codes as the other commands."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
import respx

from client.charts import curve as curve_module
from client.charts import draw
from tests.client.cli.conftest import run
from tests.client.event_server import BOTH_ORDERS, EventServer
from tests.client.loss_runs import ENGINE_JOB_ID, engine_run, nebius_run
from tests.client.nebius_objects import JOB_ID as NEBIUS_JOB_ID


def serve(
    api: respx.MockRouter,
    recorded: tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]],
    order: str = "newest_first",
) -> None:
    job, events, checkpoints = recorded
    server = EventServer(order)
    server.events = list(events)
    base = f"fine_tuning/jobs/{job['id']}"
    api.get(base).respond(json=job)
    api.get(f"{base}/events").mock(side_effect=server)
    api.get(f"{base}/checkpoints").respond(json={"object": "list", "data": checkpoints})


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@BOTH_ORDERS
def test_chart_of_an_engine_job_writes_the_png_and_prints_its_path_and_sparkline(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path, order: str
) -> None:
    serve(api, engine_run(), order)
    target = tmp_path / "loss.png"
    code, out, err = run(capsys, "chart", ENGINE_JOB_ID, "-o", str(target))
    assert code == 0
    path, line = out.splitlines()
    assert path == str(target)
    assert png_size(target) == (1000, 600)
    assert line.startswith("loss 2.") and line.endswith("(60 steps)")
    assert line.split(" ")[2][0] == "█"  # the loss falls: oldest first, whatever the API order
    assert err == ""  # nothing missing


def test_chart_json_names_the_series_and_the_best_checkpoint(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    recorded = engine_run()
    serve(api, recorded)
    code, out, _ = run(capsys, "chart", ENGINE_JOB_ID, "-o", str(tmp_path / "c.png"), "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["width"], report["height"]) == (1000, 600)
    assert report["bytes"] == (tmp_path / "c.png").stat().st_size
    assert report["series"] == {
        draw.TRAINING: 60,
        draw.TRAINING_SMOOTHED: 60,
        draw.VALIDATION: 3,
        draw.BEST: 1,
        draw.LEARNING_RATE: 60,
    }
    assert report["best_checkpoint"]["id"] == recorded[2][1]["id"]
    assert report["best_checkpoint"]["step"] == 40
    assert report["missing"] == []


def test_chart_of_a_nebius_job_says_what_is_missing(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    serve(api, nebius_run(valid=False))
    code, out, err = run(capsys, "chart", NEBIUS_JOB_ID, "-o", str(tmp_path))
    assert code == 0
    path, line = out.splitlines()
    assert path == str(tmp_path / f"{NEBIUS_JOB_ID}-loss.png")  # a folder: the default name
    assert png_size(Path(path)) == (1000, 600)
    assert line == "loss 3.364 ██▆▄▁ 3.148 (5 checkpoints)"
    assert err.splitlines() == [
        f"not shown: {curve_module.TRAINING_LOSS_PER_CHECKPOINT}",
        f"not shown: {curve_module.NO_VALIDATION_FILE}",
        f"not shown: {curve_module.NO_LEARNING_RATE}",
        f"not shown: {curve_module.BEST_IS_LAST}",
    ]


def test_chart_defaults_to_a_file_named_for_the_job(
    api: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    serve(api, engine_run(steps_per_epoch=4))
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "chart", ENGINE_JOB_ID)
    assert code == 0
    assert out.splitlines()[0] == f"{ENGINE_JOB_ID}-loss.png"
    assert png_size(tmp_path / f"{ENGINE_JOB_ID}-loss.png") == (1000, 600)


def test_chart_that_cannot_be_written_exits_2_with_the_reason(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    serve(api, engine_run(steps_per_epoch=4))
    target = tmp_path / "no-such-folder" / "loss.png"
    code, out, err = run(capsys, "chart", ENGINE_JOB_ID, "-o", str(target))
    assert code == 2 and out == ""
    assert err.startswith(f"error: cannot write {target}: No such file or directory")


def test_chart_of_an_unknown_job_exits_1(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    api.get("fine_tuning/jobs/nope").respond(404, json={"error": {"message": "Job not found"}})
    code, out, err = run(capsys, "chart", "nope", "-o", str(tmp_path / "x.png"))
    assert code == 1 and out == ""
    assert "error: 404 Job not found" in err
    assert not (tmp_path / "x.png").exists()
