"""Training on top of an earlier result: the starting weights are the parent's final model."""

import json
from pathlib import Path

import pytest

from engine.training import loop
from engine.training.events import CheckpointEvent

# float32 everywhere: the comparisons below are of the same numbers computed two ways.
EXACT = {"precision": "float32", "device": "cpu"}


def train_job(make_spec, name: str, **fields):
    events: list = []
    spec = make_spec(name, **EXACT, **fields)
    run = loop.train(spec, events.append)
    last = [e for e in events if isinstance(e, CheckpointEvent)][-1]
    return spec, run, Path(last.path)


def start_loss(spec) -> float:
    """The loss of a job's set-up model on its validation data, before any step."""
    run = loop.setup(spec, lambda event: None)
    return loop.evaluate(run, run.valid, spec.hyperparameters)


def final_loss(spec, run) -> float:
    return loop.evaluate(run, run.valid, spec.hyperparameters)


def test_a_lora_result_merged_into_its_base_is_where_the_next_job_starts(make_spec):
    parent_spec, parent_run, adapter = train_job(make_spec, "parent")
    child = make_spec(
        "child",
        model="ft:tiny-llama:engine:ftjob-parent",
        base_model="tiny-llama",
        merge_adapters=[adapter],
        **EXACT,
    )
    # A fresh LoRA adapter adds zero, so the set-up child model is the merged parent.
    assert start_loss(child) == pytest.approx(final_loss(parent_spec, parent_run), rel=1e-5)
    # And it differs from the plain base, so the merge did something.
    assert start_loss(make_spec("plain", **EXACT)) != pytest.approx(start_loss(child), rel=1e-3)


def test_the_new_adapter_says_it_applies_to_the_parent_fine_tuned_model(make_spec):
    _, _, adapter = train_job(make_spec, "parent", hyperparameters={"n_epochs": 1})
    parent_id = "ft:tiny-llama:engine:ftjob-parent"
    _, _, child = train_job(
        make_spec,
        "child",
        model=parent_id,
        base_model="tiny-llama",
        merge_adapters=[adapter],
        hyperparameters={"n_epochs": 1},
    )
    config = json.loads((child / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == parent_id


def test_a_chain_of_two_lora_results_merges_both_in_order(make_spec):
    one = {"n_epochs": 1}
    _, _, first = train_job(make_spec, "first", hyperparameters=one)
    second_spec, second_run, second = train_job(
        make_spec,
        "second",
        model="ft:first",
        base_model="tiny-llama",
        merge_adapters=[first],
        hyperparameters=one,
    )
    third = make_spec(
        "third", model="ft:second", base_model="tiny-llama", merge_adapters=[first, second], **EXACT
    )
    assert start_loss(third) == pytest.approx(final_loss(second_spec, second_run), rel=1e-5)


def test_a_full_fine_tune_result_is_loaded_as_a_whole_model(make_spec):
    parent_spec, parent_run, folder = train_job(
        make_spec, "parent", hyperparameters={"n_epochs": 1, "lora": False}
    )
    child = make_spec("child", model="ft:parent", base_model=str(folder), **EXACT)
    assert start_loss(child) == pytest.approx(final_loss(parent_spec, parent_run), rel=1e-5)


def test_a_missing_adapter_folder_fails_clearly(make_spec, tmp_path: Path):
    child = make_spec(
        "child", model="ft:gone", base_model="tiny-llama", merge_adapters=[tmp_path / "gone"]
    )
    with pytest.raises(FileNotFoundError, match="no LoRA adapter"):
        loop.setup(child, lambda event: None)
