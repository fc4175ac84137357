"""`finetune` with Nebius's contract: its ranges before any upload, the local engine's on a
loopback base URL, its 422s in words, and its objects (no fine_tuned_model, hyperparameters
under `method`, `ftckpt_` checkpoints, files with `status: null`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import respx

from client.cli import finetune
from tests.client.cli.conftest import create_args, run
from tests.client.conftest import LOCAL_URL
from tests.client.nebius_objects import (
    CHECKPOINT_IDS,
    JOB_ID,
    TRAINING_FILE,
    nebius_checkpoints,
    nebius_file,
    nebius_job,
)

# Every test: no training prices from the API; a test's own GET v0/models replaces that.
pytestmark = pytest.mark.usefixtures("prices")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--n-epochs", "21"], "n_epochs must be in [1, 20] on Nebius (got 21)"),
        (["--batch-size", "65"], "batch_size must be in [1, 64] on Nebius (got 65)"),
        (["--context-length", "4096"], "context_length must be in [8192, 131072] on Nebius"),
        (["--lora-r", "4"], "lora_r must be in [8, 128] on Nebius (got 4)"),
        (["--lora-alpha", "4"], "lora_alpha must be at least 8 on Nebius (got 4)"),
        (["--max-grad-norm", "0"], "max_grad_norm must be above 0 on Nebius (got 0)"),
        (["--seed", "-1"], "seed must be in [0, 2147483647] on Nebius (got -1)"),
        (["--suffix", "s" * 65], "suffix must be at most 64 characters on Nebius (got 65)"),
        (["--learning-rate", "0"], "learning_rate must be in (0, 1] (got 0): a typo guard of ours"),
    ],
)
def test_create_refuses_what_nebius_refuses_before_any_upload(
    api: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    samples_dir: Path,
    flags: list[str],
    message: str,
) -> None:
    route = api.route()
    code, _, err = run(capsys, *create_args(samples_dir, *flags))
    assert code == 2
    assert f"error: {message}" in err
    assert not route.called


def test_create_accepts_what_only_nebius_allows(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    create = api.post("fine_tuning/jobs").respond(json=nebius_job("running"))
    code, out, err = run(
        capsys, "create", "--model", "m", "--training-file", TRAINING_FILE,
        "--weight-decay", "3", "--max-grad-norm", "500", "--lora-alpha", "4096",
        "--lora-dropout", "1",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == JOB_ID
    sent = json.loads(create.calls.last.request.content)["hyperparameters"]
    assert (sent["weight_decay"], sent["max_grad_norm"], sent["lora_alpha"]) == (3, 500, 4096)


@pytest.mark.parametrize("base_url", [LOCAL_URL])
def test_a_loopback_base_url_checks_the_local_engines_ranges(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    create = api.post("fine_tuning/jobs").respond(json=nebius_job("queued"))
    code, _, err = run(
        capsys, "create", "--model", "m", "--training-file", "file-1",
        "--context-length", "512", "--lora-r", "4",
    )  # fmt: skip
    assert code == 0, err
    sent = json.loads(create.calls.last.request.content)["hyperparameters"]
    assert (sent["context_length"], sent["lora_r"]) == (512, 4)
    # ... and refuses what the engine refuses, naming the engine.
    code, _, err = run(
        capsys, "create", "--model", "m", "--training-file", "file-1", "--weight-decay", "2"
    )
    assert code == 2
    assert "weight_decay must be in [0, 1] on the local engine (got 2)" in err
    assert create.call_count == 1


def test_help_names_both_backends_ranges(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        finetune.main(["create", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "[8192, 131072] on Nebius, [8, 131072] on the local engine" in out
    assert "--n-epochs INT [1, 20] on Nebius (default 3)" in out
    assert "(0, 1] (our typo guard) on Nebius" in out


def test_a_nebius_422_is_shown_in_words(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.post("fine_tuning/jobs").respond(
        422,
        json={
            "detail": [
                {
                    "loc": ["body", "model"],
                    "msg": "value is not a valid enumeration member",
                    "type": "type_error.enum",
                }
            ]
        },
    )
    code, out, err = run(capsys, "create", "--model", "nope", "--training-file", TRAINING_FILE)
    assert code == 1 and out == ""
    assert "error: 422 model: value is not a valid enumeration member" in err
    assert "detail" not in err and "{" not in err


def test_create_with_a_null_status_file_waits_no_time_and_prints_no_none(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str], samples_dir: Path
) -> None:
    api.post("files").respond(json=nebius_file())
    poll = api.get(f"files/{TRAINING_FILE}").respond(json=nebius_file())
    api.post("fine_tuning/jobs").respond(json=nebius_job("running"))
    code, out, err = run(capsys, *create_args(samples_dir))
    assert code == 0, err
    assert out.strip() == JOB_ID
    assert poll.call_count == 1
    assert f"{TRAINING_FILE} is uploaded" in err
    assert "None" not in err


def test_status_of_a_nebius_job(api: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    api.get(f"fine_tuning/jobs/{JOB_ID}").respond(json=nebius_job("succeeded"))
    code, out, _ = run(capsys, "status", JOB_ID)
    assert code == 0
    assert "status:           succeeded" in out
    # Hyperparameters from method.supervised.hyperparameters; no empty fine-tuned model line.
    assert "hyperparameters:  batch_size=32, learning_rate=2e-05, n_epochs=5" in out
    assert "fine-tuned model" not in out
    assert "suffix:           demo-run" in out
    assert "None" not in out


def test_list_and_checkpoints_of_nebius_jobs(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.get("fine_tuning/jobs").respond(
        json={"object": "list", "data": [nebius_job("running")], "has_more": False}
    )
    api.get(f"fine_tuning/jobs/{JOB_ID}/checkpoints").respond(json=nebius_checkpoints())
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert JOB_ID in out and "30% (12/40)" in out and "None" not in out
    code, out, _ = run(capsys, "checkpoints", JOB_ID)
    assert code == 0
    rows = out.splitlines()[1:]
    assert [r.split()[0] for r in rows] == list(CHECKPOINT_IDS)
    assert rows[0].split()[1:4] == ["20", "1.5000", "-"]  # null valid_loss shows as -
    assert rows[1].split()[1:4] == ["40", "1.1000", "1.0200"]
