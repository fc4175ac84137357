"""The engine with its real worker (`engine.training.worker`) on a tiny random model."""

import json
from pathlib import Path

import pytest

from engine.server import EmbeddedEngine
from tests.engine import conftest as helpers
from tests.engine.conftest import Api
from tests.engine.training.conftest import sample_records, save_tiny_model

# Starting a worker imports torch and transformers: seconds on a busy CPU.
REAL_WAIT_S = 180.0


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return save_tiny_model(tmp_path / "models" / "tiny-llama")


def test_a_job_trains_a_tiny_model_through_the_real_worker(
    engine_dir: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "WAIT_S", REAL_WAIT_S)
    records = "".join(json.dumps(r) + "\n" for r in sample_records(12))
    with EmbeddedEngine(engine_dir, model_dirs=[tiny_model.parent], device="cpu") as server:
        api = Api(server.base_url)
        assert "tiny-llama" in [m["id"] for m in api.http.get("models").json()["data"]]
        training = api.processed(records)
        validation = api.processed("".join(json.dumps(r) + "\n" for r in sample_records(4, 50)))
        job = api.create_job(
            model="tiny-llama",
            training_file=training["id"],
            validation_file=validation["id"],
            hyperparameters={"n_epochs": 2, "batch_size": 4, "learning_rate": 1e-2, "lora": True},
        ).json()
        done = api.wait_status(job["id"], "succeeded", "failed")
        assert done["status"] == "succeeded", done["error"]
        assert done["trained_steps"] == done["total_steps"] > 0
        assert done["trained_tokens"] > 0

        events = api.all_events(job["id"])
        messages = [e["message"] for e in events]
        assert any(m.startswith("Training started on cpu") for m in messages)
        epochs = [e for e in events if e["message"].startswith("Epoch ")]
        assert len(epochs) == 2
        assert all(e["data"]["valid_loss"] is not None for e in epochs)

        checkpoints = api.http.get(f"fine_tuning/jobs/{job['id']}/checkpoints").json()["data"]
        assert len(checkpoints) == 2
        # The untrained model's validation loss: on the job, in an event, in each checkpoint.
        base = done["base_valid_loss"]
        assert isinstance(base, float) and base > 0
        assert f"Base model validation loss {base:.4g} before training." in messages
        assert [c["metrics"]["base_valid_loss"] for c in checkpoints] == [base, base]
        names = {api.file(fid)["filename"].rsplit("/", 1)[1] for fid in done["result_files"]}
        assert {"adapter_model.safetensors", "adapter_config.json"} <= names
        weights_id = next(
            fid
            for fid in done["result_files"]
            if api.file(fid)["filename"].endswith("adapter_model.safetensors")
        )
        from safetensors.torch import load

        tensors = load(api.http.get(f"files/{weights_id}/content").content)
        assert any("lora" in name for name in tensors)


def test_a_job_trains_on_top_of_an_earlier_jobs_fine_tuned_model(
    engine_dir: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "WAIT_S", REAL_WAIT_S)
    records = "".join(json.dumps(r) + "\n" for r in sample_records(8))
    hyperparameters = {"n_epochs": 1, "batch_size": 4, "learning_rate": 1e-2, "lora": True}
    with EmbeddedEngine(engine_dir, model_dirs=[tiny_model.parent], device="cpu") as server:
        api = Api(server.base_url)
        training = api.processed(records)
        parent = api.create_job(
            model="tiny-llama", training_file=training["id"], hyperparameters=hyperparameters
        ).json()
        parent = api.wait_status(parent["id"], "succeeded", "failed")
        assert parent["status"] == "succeeded", parent["error"]

        child = api.create_job(
            model=parent["fine_tuned_model"],
            training_file=training["id"],
            hyperparameters=hyperparameters,
        ).json()
        assert child["base_model"] == "tiny-llama"
        child = api.wait_status(child["id"], "succeeded", "failed")
        assert child["status"] == "succeeded", child["error"]
        assert child["fine_tuned_model"].startswith(f"ft:{parent['fine_tuned_model']}:")

        started = next(
            e for e in api.all_events(child["id"]) if e["message"].startswith("Training started")
        )
        assert started["data"]["model"] == parent["fine_tuned_model"]
        assert started["data"]["base_model"] == "tiny-llama"
        assert started["data"]["parents"] == [parent["fine_tuned_model"]]
        assert started["data"]["merged_adapters"] == 1
        config_id = next(
            fid
            for fid in child["result_files"]
            if api.file(fid)["filename"].endswith("adapter_config.json")
        )
        config = api.http.get(f"files/{config_id}/content").json()
        assert config["base_model_name_or_path"] == parent["fine_tuned_model"]
