"""Proof that it learns: the built-in model, fine-tuned on the sample data, predicts the
sample validation answers clearly better than before."""

from pathlib import Path

import pytest

from engine.model_registry import BUILTIN_MODEL_ID
from engine.training import loop
from engine.training.events import CheckpointEvent, EpochEvent, SucceededEvent
from engine.training.spec import TrainSpec


@pytest.mark.slow
def test_fine_tuning_the_built_in_model_lowers_its_validation_loss(
    samples_dir: Path, tmp_path: Path
):
    spec = TrainSpec(
        job_id="ftjob-e2e",
        model=BUILTIN_MODEL_ID,
        models_dir=tmp_path / "models",  # converted from the GGUF file here, once
        training_file=samples_dir / "sample_training_data.jsonl",
        validation_file=samples_dir / "sample_validation_data.jsonl",
        output_dir=tmp_path / "jobs" / "ftjob-e2e",
        hyperparameters={
            "batch_size": 2,
            "learning_rate": 1e-3,
            "n_epochs": 2,
            "lora": True,
            "lora_r": 16,
            "lora_alpha": 32,
        },
        seed=1,
    )
    # A fresh LoRA adapter is zero (B = 0): the set-up model is exactly the base model.
    base = loop.setup(spec, lambda event: None)
    base_loss = loop.evaluate(base, base.valid, spec.hyperparameters)
    del base

    events: list = []
    loop.train(spec, events.append)

    epochs = [e for e in events if isinstance(e, EpochEvent)]
    final = epochs[-1].valid_loss
    assert final is not None
    assert final < base_loss - 0.3, (base_loss, final)
    assert isinstance(events[-1], SucceededEvent)
    last = [e for e in events if isinstance(e, CheckpointEvent)][-1]
    assert (Path(last.path) / "adapter_model.safetensors").stat().st_size > 0
