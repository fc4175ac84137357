"""The training loop on a tiny random model: what it reports, what it writes, and that
every hyperparameter changes what happens."""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from engine.model_registry import ModelNotFoundError
from engine.training import loop
from engine.training.events import (
    BaseEvaluationEvent,
    CheckpointEvent,
    DatasetEvent,
    EpochEvent,
    ProgressEvent,
    StartedEvent,
    SucceededEvent,
)
from tests.engine.training.conftest import chat, sample_records, write_jsonl


@pytest.fixture(autouse=True)
def progress_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loop, "PROGRESS_EVERY_S", 0.0)


def run_job(spec) -> list:
    events: list = []
    loop.train(spec, events.append)
    return events


def of(events: list, kind: type) -> list:
    return [e for e in events if isinstance(e, kind)]


def losses(events: list) -> list[float]:
    return [e.loss for e in of(events, ProgressEvent)]


def test_a_lora_job_reports_every_stage_and_writes_one_adapter_per_epoch(make_spec):
    spec = make_spec(hyperparameters={"n_epochs": 2, "batch_size": 4})
    events = run_job(spec)

    kinds = [e.type for e in events]
    assert kinds[:2] == ["dataset", "started"]
    assert kinds[-1] == "succeeded"
    dataset = of(events, DatasetEvent)[0]
    assert (dataset.examples, dataset.validation_examples, dataset.truncated) == (10, 4, 0)
    started = of(events, StartedEvent)[0]
    assert started.total_steps == 2 * math.ceil(10 / 4) == 6
    assert started.device == loop.pick_device("auto").type
    assert 0 < started.trainable_parameters < started.total_parameters
    assert started.resumed_from_step is None
    assert [e.step for e in of(events, ProgressEvent)] == [1, 2, 3, 4, 5, 6]
    assert [(e.epoch, e.step) for e in of(events, EpochEvent)] == [(1, 3), (2, 6)]
    assert all(e.valid_loss is not None for e in of(events, EpochEvent))

    checkpoints = of(events, CheckpointEvent)
    assert [c.step for c in checkpoints] == [3, 6]
    for checkpoint in checkpoints:
        folder = Path(checkpoint.path)
        assert folder == spec.output_dir / "checkpoints" / f"step-{checkpoint.step}"
        assert checkpoint.files == ["adapter_model.safetensors", "adapter_config.json"]
        assert all((folder / f).is_file() for f in checkpoint.files)
        assert (folder / loop.STATE_FILE).is_file()  # resume state, beside but unlisted
        assert any("lora_A" in k for k in load_file(folder / "adapter_model.safetensors"))
    done = of(events, SucceededEvent)[0]
    assert done.trained_steps == 6
    assert done.trained_tokens == 2 * dataset.tokens


def test_training_lowers_the_loss(make_spec, tmp_path: Path):
    records = [chat("say the word", "banana banana banana")] * 8
    spec = make_spec(
        training_file=write_jsonl(tmp_path / "same.jsonl", records),
        hyperparameters={"n_epochs": 4, "learning_rate": 1e-2, "batch_size": 2, "lora": False},
    )
    epochs = of(run_job(spec), EpochEvent)
    assert epochs[-1].train_loss < epochs[0].train_loss * 0.8


def test_a_full_fine_tune_trains_every_parameter_and_saves_the_model(make_spec):
    spec = make_spec(hyperparameters={"lora": False, "n_epochs": 1, "learning_rate": 1e-3})
    events = run_job(spec)
    started = of(events, StartedEvent)[0]
    assert started.trainable_parameters == started.total_parameters
    checkpoint = of(events, CheckpointEvent)[0]
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= set(checkpoint.files)
    assert loop.STATE_FILE not in checkpoint.files


@pytest.mark.parametrize("precision", ["float32", "bfloat16"])
def test_precision_is_reported_and_both_train(make_spec, precision: str):
    events = run_job(make_spec(hyperparameters={"n_epochs": 1}, precision=precision))
    assert of(events, StartedEvent)[0].dtype == precision
    assert all(math.isfinite(e.loss) for e in of(events, ProgressEvent))
    assert isinstance(events[-1], SucceededEvent)


def test_the_same_seed_gives_the_same_losses_and_another_seed_does_not(make_spec):
    hp = {"n_epochs": 1, "lora_dropout": 0.1}
    first = losses(run_job(make_spec("a", hp, seed=7)))
    again = losses(run_job(make_spec("b", hp, seed=7)))
    other = losses(run_job(make_spec("c", hp, seed=8)))
    assert first == again
    assert first != other


def test_packing_gives_the_same_loss_as_one_row_per_example(make_spec):
    hp = {"n_epochs": 1, "batch_size": 5}
    # float32: bf16 matmuls round differently for different row layouts.
    packed = run_job(make_spec("packed", {**hp, "packing": True}, seed=3, precision="float32"))
    padded = run_job(make_spec("padded", {**hp, "packing": False}, seed=3, precision="float32"))
    assert losses(packed) == pytest.approx(losses(padded), rel=1e-4)
    assert of(packed, EpochEvent)[0].valid_loss == pytest.approx(
        of(padded, EpochEvent)[0].valid_loss, rel=1e-4
    )


def test_packed_examples_do_not_attend_to_each_other(make_spec):
    """Each example's loss in a packed row equals its loss when it is alone."""
    spec = make_spec(hyperparameters={"n_epochs": 1}, precision="float32")
    run = loop.setup(spec, lambda event: None)
    run.model.eval()
    with torch.no_grad():
        alone = sum(float(loop.batch_loss(run, [e], packing=True)[0]) for e in run.train[:4])
        together = float(loop.batch_loss(run, run.train[:4], packing=True)[0])
    assert together == pytest.approx(alone, rel=1e-5)


def test_resuming_from_a_checkpoint_continues_as_if_never_stopped(make_spec):
    hp = {"n_epochs": 2, "lora_dropout": 0.1, "warmup_ratio": 0.3}
    whole = run_job(make_spec("whole", hp, seed=5))
    first_checkpoint = Path(of(whole, CheckpointEvent)[0].path)

    resumed = run_job(make_spec("resumed", hp, seed=5, resume_from=first_checkpoint))
    assert of(resumed, StartedEvent)[0].resumed_from_step == 3
    assert [e.step for e in of(resumed, ProgressEvent)] == [4, 5, 6]
    assert losses(resumed) == pytest.approx(losses(whole)[3:], rel=1e-5)
    assert of(resumed, EpochEvent)[0].valid_loss == pytest.approx(
        of(whole, EpochEvent)[1].valid_loss, rel=1e-5
    )
    assert of(resumed, SucceededEvent)[0] == of(whole, SucceededEvent)[0]


def test_the_base_validation_loss_is_measured_before_the_first_step(make_spec):
    spec = make_spec(hyperparameters={"n_epochs": 2}, precision="float32")
    events = run_job(spec)
    kinds = [e.type for e in events]
    assert kinds.index("base_evaluation") < kinds.index("progress")
    [base] = of(events, BaseEvaluationEvent)
    # What the epoch-end evaluation computes on the model as it was before training.
    untrained = loop.setup(spec, lambda event: None)
    expected = loop.evaluate(untrained, untrained.valid, spec.hyperparameters)
    assert base.valid_loss == pytest.approx(expected, rel=1e-6)
    assert of(events, EpochEvent)[-1].valid_loss != pytest.approx(expected, rel=1e-3)
    assert [c.metrics.base_valid_loss for c in of(events, CheckpointEvent)] == [base.valid_loss] * 2


def test_a_resumed_run_keeps_the_base_validation_loss_and_does_not_measure_it_again(
    make_spec,
):
    whole = run_job(make_spec("whole", {"n_epochs": 2}))
    [base] = of(whole, BaseEvaluationEvent)
    first_checkpoint = Path(of(whole, CheckpointEvent)[0].path)

    resumed = run_job(make_spec("resumed", {"n_epochs": 2}, resume_from=first_checkpoint))
    assert of(resumed, BaseEvaluationEvent) == []
    [checkpoint] = of(resumed, CheckpointEvent)
    assert checkpoint.metrics.base_valid_loss == base.valid_loss


def test_without_a_validation_file_there_is_no_base_figure(make_spec):
    spec = make_spec(hyperparameters={"n_epochs": 1}).model_copy(update={"validation_file": None})
    events = run_job(spec)
    assert of(events, BaseEvaluationEvent) == []
    assert of(events, CheckpointEvent)[0].metrics.base_valid_loss is None


def test_learning_rate_warms_up_then_decays_to_zero(make_spec):
    spec = make_spec(hyperparameters={"n_epochs": 4, "batch_size": 5, "warmup_ratio": 0.25})
    rates = [e.learning_rate for e in of(run_job(spec), ProgressEvent)]
    peak = spec.hyperparameters.learning_rate
    assert rates[:2] == pytest.approx([peak / 2, peak])
    assert rates[2:] == pytest.approx([peak * k / 6 for k in (6, 5, 4, 3, 2, 1)])


def test_weight_decay_shrinks_the_trained_weights(make_spec):
    no_decay = run_job(make_spec("nd", {"n_epochs": 1, "weight_decay": 0.0}, seed=1))
    decay = run_job(make_spec("d", {"n_epochs": 1, "weight_decay": 1.0}, seed=1))
    norm = [
        sum(
            float(t.norm())
            for k, t in load_file(
                Path(of(events, CheckpointEvent)[0].path) / "adapter_model.safetensors"
            ).items()
            if "lora_A" in k
        )
        for events in (no_decay, decay)
    ]
    assert norm[1] < norm[0]


def test_context_length_truncates_and_the_dataset_line_says_so(make_spec, tmp_path: Path):
    records = [*sample_records(3), chat("hi", "long answer " * 40)]
    spec = make_spec(
        training_file=write_jsonl(tmp_path / "long.jsonl", records),
        hyperparameters={"n_epochs": 1, "context_length": 64},
    )
    dataset = of(run_job(spec), DatasetEvent)[0]
    assert dataset.truncated >= 1
    assert dataset.context_length == 64
    assert "truncated" in dataset.message


def test_an_unknown_model_lists_what_is_available(make_spec):
    spec = make_spec(model="no-such-model")
    with pytest.raises(ModelNotFoundError, match=r"'no-such-model' not found.*tiny-llama"):
        run_job(spec)
