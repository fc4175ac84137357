"""The engine's ranges (engine.training.spec.RANGES): each bound holds exactly as written."""

import math

import pytest
from pydantic import ValidationError

from engine.training.spec import RANGES, Hyperparameters, TrainSpec, describe_range

HYPERPARAMETERS = [name for name in RANGES if name != "seed"]
INTEGERS = {"batch_size", "n_epochs", "context_length", "lora_r", "lora_alpha", "seed"}


def _step(name: str) -> float:
    return 1 if name in INTEGERS else 1e-9


def _message(name: str, value: float) -> str:
    with pytest.raises(ValidationError) as caught:
        Hyperparameters.model_validate({name: value})
    [error] = caught.value.errors()
    assert error["loc"] == (name,)
    return error["msg"]


@pytest.mark.parametrize("name", HYPERPARAMETERS)
def test_each_bound_is_inclusive_or_exclusive_as_the_table_says(name: str) -> None:
    low, high, low_inclusive, high_inclusive = RANGES[name]
    assert high is not None
    for bound, inclusive in ((low, low_inclusive), (high, high_inclusive)):
        if inclusive:
            assert getattr(Hyperparameters.model_validate({name: bound}), name) == bound
        else:
            assert _message(name, bound).startswith(f"must be in {describe_range(name)}")
    assert "must be in" in _message(name, low - _step(name))
    assert "must be in" in _message(name, high + _step(name))


def test_the_defaults_lie_inside_the_ranges() -> None:
    Hyperparameters.model_validate(Hyperparameters().model_dump())


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("n_epochs", 1_000_000, "must be in [1, 20] (got 1000000)"),
        ("batch_size", 1e9, "must be in [1, 64] (got 1000000000)"),
        ("learning_rate", 1e9, "must be in (0, 1] (got 1000000000)"),
        ("learning_rate", 0, "must be in (0, 1] (got 0)"),
        ("context_length", 1e12, "must be in [8, 131072] (got 1000000000000)"),
        ("lora_r", 1e9, "must be in [1, 128] (got 1000000000)"),
        ("lora_dropout", 1, "must be in [0, 1) (got 1)"),
        ("max_grad_norm", 0, "must be in (0, 100] (got 0)"),
        ("warmup_ratio", 1.5, "must be in [0, 1] (got 1.5)"),
        ("learning_rate", math.nan, "must be in (0, 1] (got nan)"),
        ("n_epochs", True, "must be a number in [1, 20], not true"),
    ],
)
def test_an_out_of_range_value_is_refused_naming_the_range_and_the_value(
    name: str, value: float, expected: str
) -> None:
    assert _message(name, value) == expected


def test_a_spec_keeps_the_seed_inside_what_the_worker_can_seed_with(tmp_path) -> None:
    fields = {
        "job_id": "ftjob-x",
        "model": "m",
        "models_dir": tmp_path,
        "training_file": tmp_path / "t.jsonl",
        "output_dir": tmp_path / "out",
    }
    assert TrainSpec.model_validate(fields | {"seed": 2**31 - 1}).seed == 2**31 - 1
    with pytest.raises(ValidationError):
        TrainSpec.model_validate(fields | {"seed": 10**26})
