"""`finetune`: every command against a mocked Nebius; tables, --json, exit codes, and a
message (never a traceback) on failure."""

import json
from pathlib import Path

import httpx
import pytest
import respx

from client import NebiusClient
from client.cli import finetune
from tests.client.cli.conftest import run
from tests.client.conftest import FakeTime, file_json, job_json
from tests.client.event_server import BOTH_ORDERS, T0, EventServer

# Every test: no training prices from the API; a test's own GET v0/models replaces that.
pytestmark = pytest.mark.usefixtures("prices")


def test_models_table_and_json(api: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    api.get("models").respond(
        json={"data": [{"id": "meta-llama/Llama-3.1-8B-Instruct", "owned_by": "meta"}]}
    )
    code, out, _ = run(capsys, "models")
    assert code == 0
    assert out.splitlines()[0].split() == ["MODEL", "OWNED", "BY", "CREATED"]
    assert "meta-llama/Llama-3.1-8B-Instruct  meta" in out
    code, out, _ = run(capsys, "models", "--json")
    assert json.loads(out)[0]["id"] == "meta-llama/Llama-3.1-8B-Instruct"
    code, out, _ = run(capsys, "--json", "models")
    assert json.loads(out)[0]["owned_by"] == "meta"


def test_missing_key_says_how_to_set_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NEBIUS_API_KEY")
    monkeypatch.setattr(finetune, "build_client", NebiusClient.from_env)
    code, _, err = run(capsys, "list")
    assert code == 2
    assert "export NEBIUS_API_KEY=" in err


def test_api_error_prints_message_hint_and_exits_1(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("fine_tuning/jobs/nope").respond(404, json={"error": {"message": "Job not found"}})
    code, out, err = run(capsys, "status", "nope")
    assert code == 1 and out == ""
    assert "error: 404 Job not found" in err
    assert "hint: Not found" in err
    code, out, _ = run(capsys, "status", "nope", "--json")
    error = json.loads(out)["error"]
    assert (error["status_code"], error["message"]) == (404, "Job not found")


def test_create_validates_uploads_waits_and_creates(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], samples_dir: Path
) -> None:
    upload = api.post("files").mock(
        side_effect=[
            httpx.Response(200, json=file_json("file-t", status="uploaded")),
            httpx.Response(200, json=file_json("file-v", status="uploaded")),
        ]
    )
    api.get("files/file-t").mock(
        side_effect=[
            httpx.Response(200, json=file_json("file-t", status="pending")),
            httpx.Response(200, json=file_json("file-t", status="processed")),
        ]
    )
    api.get("files/file-v").respond(json=file_json("file-v", status="processed"))
    create = api.post("fine_tuning/jobs").respond(json=job_json("ftjob-42", status="queued"))
    code, out, err = run(
        capsys,
        "create",
        "--model", "meta-llama/Llama-3.1-8B-Instruct",
        "--training-file", str(samples_dir / "sample_training_data.jsonl"),
        "--validation-file", str(samples_dir / "sample_validation_data.jsonl"),
        "--lora", "--lora-r", "16", "--n-epochs", "2", "--seed", "3", "--suffix", "xgen",
        "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "ftjob-42"
    assert upload.call_count == 2
    body = json.loads(create.calls.last.request.content)
    assert body["training_file"] == "file-t" and body["validation_file"] == "file-v"
    assert body["hyperparameters"]["lora"] is True and body["hyperparameters"]["lora_r"] == 16
    assert body["hyperparameters"]["n_epochs"] == 2 and body["hyperparameters"]["batch_size"] == 8
    assert (body["seed"], body["suffix"]) == (3, "xgen")
    assert "uploading sample_training_data.jsonl" in err
    assert "file-t is processed" in err


def test_create_with_file_ids_skips_upload(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-key-1")
    upload = api.post("files")
    create = api.post("fine_tuning/jobs").respond(json=job_json("ftjob-1"))
    code, out, _ = run(
        capsys, "create", "--model", "m", "--training-file", "file-abc",
        "--wandb-project", "xgen", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["id"] == "ftjob-1"
    assert not upload.called
    body = json.loads(create.calls.last.request.content)
    assert body["integrations"][0]["wandb"] == {"project": "xgen", "api_key": "wandb-secret-key-1"}


def test_create_rejects_bad_hyperparameters_before_any_request(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], samples_dir: Path
) -> None:
    route = api.route()
    code, _, err = run(
        capsys, "create", "--model", "m",
        "--training-file", str(samples_dir / "sample_training_data.jsonl"),
        "--learning-rate", "5", "--batch-size", "0",
    )  # fmt: skip
    assert code == 2
    assert "learning_rate must be in (0, 1]" in err
    assert "batch_size must be in [1, 64] on Nebius" in err
    assert not route.called


def test_create_stops_on_an_invalid_dataset(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "hi"}]}\nnot json\n')
    route = api.route()
    code, _, err = run(capsys, "create", "--model", "m", "--training-file", str(bad))
    assert code == 3
    assert "bad.jsonl is not a valid dataset" in err
    assert "line 2" in err.lower() or ":2" in err
    assert not route.called


def test_create_with_a_missing_file(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run(
        capsys, "create", "--model", "m", "--training-file", str(tmp_path / "none.jsonl")
    )
    assert code == 2 and "none.jsonl: no such file" in err


def test_list_shows_a_table_and_pages_with_all(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    def page(request: httpx.Request) -> httpx.Response:
        if request.url.params.get("after") == "j2":
            return httpx.Response(200, json={"data": [job_json("j1")], "has_more": False})
        data = [job_json("j3", trained_steps=5, total_steps=10), job_json("j2")]
        return httpx.Response(200, json={"data": data, "has_more": True})

    api.get("fine_tuning/jobs").mock(side_effect=page)
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert out.splitlines()[0].startswith("JOB")
    assert "50% (5/10)" in out and "j1" not in out
    code, out, _ = run(capsys, "list", "--all", "--json")
    assert [j["id"] for j in json.loads(out)] == ["j3", "j2", "j1"]


def test_status_shows_the_job(api: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    api.get("fine_tuning/jobs/ftjob-1").respond(
        json=job_json(
            status="failed",
            hyperparameters={"n_epochs": 3},
            error={"code": "invalid_file", "message": "bad line 4"},
        )
    )
    code, out, _ = run(capsys, "status", "ftjob-1")
    assert code == 0
    assert "status:           failed" in out
    assert "hyperparameters:  n_epochs=3" in out
    assert "error:            invalid_file bad line 4" in out


def _event(eid: str, message: str) -> dict:
    return {"id": eid, "created_at": 1_700_000_000, "level": "info", "message": message}


def test_events_prints_oldest_first(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("fine_tuning/jobs/j/events").respond(
        json={"data": [_event("e2", "step 10"), _event("e1", "started")], "has_more": False}
    )
    code, out, _ = run(capsys, "events", "j")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].endswith("INFO    started") and lines[1].endswith("INFO    step 10")
    code, out, _ = run(capsys, "events", "j", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["e1", "e2"]


def test_events_follow_prints_each_event_once_until_the_job_ends(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], fake_time: FakeTime
) -> None:
    pages = [
        [_event("e1", "started")],
        [_event("e2", "step 10"), _event("e1", "started")],
        [_event("e3", "done"), _event("e2", "step 10"), _event("e1", "started")],
    ]
    calls = {"n": 0}

    def events(request: httpx.Request) -> httpx.Response:
        data = pages[min(calls["n"], len(pages) - 1)]
        calls["n"] += 1
        return httpx.Response(200, json={"data": data, "has_more": False})

    api.get("fine_tuning/jobs/j/events").mock(side_effect=events)
    api.get("fine_tuning/jobs/j").mock(
        side_effect=[
            httpx.Response(200, json=job_json("j", status="running")),
            httpx.Response(200, json=job_json("j", status="failed")),
        ]
    )
    code, out, err = run(capsys, "events", "j", "--follow", "--interval", "5")
    assert code == 4  # the job failed
    assert [line.split()[-1] for line in out.splitlines()] == ["started", "10", "done"]
    assert fake_time.sleeps == [5.0]
    assert "job j failed" in err


@BOTH_ORDERS
def test_events_prints_oldest_first_in_either_api_order(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], order: str
) -> None:
    server = EventServer(order)
    for i, message in enumerate(["Job is submitted", "Dataset processed", "Training completed"]):
        server.add(f"e{i + 1}", T0 + 30 * i, message)
    api.get("fine_tuning/jobs/j/events").mock(side_effect=server)
    code, out, _ = run(capsys, "events", "j")
    assert code == 0
    assert [line.split("INFO")[1].strip() for line in out.splitlines()] == [
        "Job is submitted",
        "Dataset processed",
        "Training completed",
    ]
    code, out, _ = run(capsys, "events", "j", "--after", "e1", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["e2", "e3"]


@BOTH_ORDERS
@pytest.mark.parametrize("one_second", [False, True], ids=["distinct", "ties"])
def test_events_follow_prints_every_event_once_until_the_job_ends_in_either_order(
    api: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    fake_time: FakeTime,
    order: str,
    one_second: bool,
) -> None:
    server = EventServer(order)
    server.add("e1", T0, "Job is submitted")
    # What appears while the CLI waits between polls, and the job's status then.
    arrivals = [
        (["Dataset 'training' processed successfully"], "running"),
        (["step 1", "step 2", "step 3", "step 4"], "running"),
        ([], "running"),
        (["Training completed successfully"], "succeeded"),
    ]
    polls = {"n": 0}

    def job(request: httpx.Request) -> httpx.Response:
        messages, status = arrivals[polls["n"]]
        polls["n"] += 1
        for message in messages:
            n = len(server.events) + 1
            server.add(f"e{n}", T0 if one_second else T0 + n, message)
        return httpx.Response(200, json=job_json("j", status=status))

    api.get("fine_tuning/jobs/j/events").mock(side_effect=server)
    api.get("fine_tuning/jobs/j").mock(side_effect=job)
    code, out, err = run(capsys, "events", "j", "--follow", "--interval", "5", "--json")
    assert code == 0
    printed = [json.loads(line)["message"] for line in out.splitlines()]
    assert printed == [
        "Job is submitted",
        "Dataset 'training' processed successfully",
        "step 1",
        "step 2",
        "step 3",
        "step 4",
        "Training completed successfully",
    ]
    assert fake_time.sleeps == [5.0, 5.0, 5.0]
    assert "job j succeeded" in err


def test_checkpoints_table(api: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    api.get("fine_tuning/jobs/j/checkpoints").respond(
        json={
            "data": [
                {
                    "id": "c2",
                    "step_number": 20,
                    "metrics": {"train_loss": 0.5},
                    "result_files": ["f2"],
                },
                {"id": "c1", "step_number": 10, "metrics": {"train_loss": 0.9, "valid_loss": 1}},
            ]
        }
    )
    code, out, _ = run(capsys, "checkpoints", "j")
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["CHECKPOINT", "STEP", "TRAIN", "LOSS", "VALID", "LOSS", "FILES"]
    assert rows[1].split() == ["c1", "10", "0.9000", "1.0000", "-"]
    assert rows[2].split() == ["c2", "20", "0.5000", "-", "f2"]


def test_download_saves_the_last_checkpoint_with_clean_names(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    api.get("fine_tuning/jobs/j/checkpoints").respond(
        json={
            "data": [
                {"id": "c2", "step_number": 20, "result_files": ["f-a", "f-b"]},
                {"id": "c1", "step_number": 10, "result_files": ["f-old"]},
            ]
        }
    )
    api.get("files/f-a").respond(json=file_json("f-a", filename="j/step-20/adapter.safetensors"))
    api.get("files/f-b").respond(json=file_json("f-b", filename="j/step-20/config.json"))
    api.get("files/f-a/content").respond(content=b"weights")
    api.get("files/f-b/content").respond(content=b"{}")
    out_dir = tmp_path / "ckpt"
    code, out, err = run(capsys, "download", "j", "-o", str(out_dir), "--no-progress")
    assert code == 0, err
    assert (out_dir / "adapter.safetensors").read_bytes() == b"weights"
    assert (out_dir / "config.json").read_bytes() == b"{}"
    assert str(out_dir / "adapter.safetensors") in out


def test_download_one_file_of_a_chosen_checkpoint(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    api.get("fine_tuning/jobs/j/checkpoints").respond(
        json={"data": [{"id": "c1", "step_number": 10, "result_files": ["f1", "f2"]},
                       {"id": "c2", "step_number": 20, "result_files": ["f3"]}]}
    )  # fmt: skip
    api.get("files/f1").respond(json=file_json("f1", filename="a/model.bin"))
    api.get("files/f2").respond(json=file_json("f2", filename="a/other.bin"))
    api.get("files/f1/content").respond(content=b"one")
    code, out, _ = run(
        capsys, "download", "j", "--checkpoint", "10", "--file", "model.bin",
        "-o", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0
    assert [item["file_id"] for item in json.loads(out)] == ["f1"]
    code, _, err = run(capsys, "download", "j", "--checkpoint", "c9", "-o", str(tmp_path))
    assert code == 2 and "no checkpoint 'c9'" in err and "c1 (step 10)" in err


def test_download_when_nothing_is_there_yet(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    api.get("fine_tuning/jobs/j/checkpoints").respond(json={"data": []})
    api.get("fine_tuning/jobs/j").respond(json=job_json("j", status="running"))
    code, _, err = run(capsys, "download", "j", "-o", str(tmp_path))
    assert code == 2 and "no result files" in err


def test_cancel(api: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    api.post("fine_tuning/jobs/j/cancel").respond(json=job_json("j", status="cancelled"))
    code, out, _ = run(capsys, "cancel", "j")
    assert (code, out.strip()) == (0, "job j: cancelled")


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        finetune.main(["frobnicate"])
    assert info.value.code == 2


def test_create_checks_a_local_validation_file_next_to_a_remote_training_file(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "val.jsonl"
    bad.write_text("{broken\n")
    route = api.route()
    code, _, err = run(
        capsys, "create", "--model", "m", "--training-file", "file-abc",
        "--validation-file", str(bad),
    )  # fmt: skip
    assert code == 3 and "val.jsonl is not a valid dataset" in err
    assert not route.called


def test_skip_validation_uploads_as_is(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = tmp_path / "raw.jsonl"
    raw.write_text("{broken\n")
    api.post("files").respond(json=file_json("file-raw", status="processed"))
    api.get("files/file-raw").respond(json=file_json("file-raw", status="processed"))
    api.post("fine_tuning/jobs").respond(json=job_json("ftjob-raw"))
    code, out, _ = run(
        capsys, "create", "--model", "m", "--training-file", str(raw), "--skip-validation",
    )  # fmt: skip
    assert (code, out.strip()) == (0, "ftjob-raw")
