"""Hyperparameters: Nebius's defaults, and ranges enforced before any request."""

import pytest
from pydantic import ValidationError

from client import HyperparameterError, Hyperparameters, JobRequest, WandbIntegration
from client.hyperparameters import WandbSettings


def test_defaults_are_nebius_defaults() -> None:
    assert Hyperparameters().model_dump() == {
        "batch_size": 8,
        "learning_rate": 1e-5,
        "n_epochs": 3,
        "warmup_ratio": 0.0,
        "weight_decay": 0.0,
        "packing": True,
        "max_grad_norm": 1.0,
        "context_length": 8192,
        "lora": False,
        "lora_r": 8,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
    }


@pytest.mark.parametrize(
    ("field", "value", "range_text"),
    [
        ("batch_size", 0, "[1, 1024]"),
        ("learning_rate", 0, "(0, 1]"),
        ("learning_rate", 2.0, "(0, 1]"),
        ("n_epochs", 0, "[1, 100]"),
        ("warmup_ratio", 1.5, "[0, 1]"),
        ("weight_decay", -0.1, "[0, 1]"),
        ("max_grad_norm", 0, "(0, 100]"),
        ("context_length", 64, "[128, 131072]"),
        ("lora_r", 0, "[1, 512]"),
        ("lora_alpha", 0, "[1, 1024]"),
        ("lora_dropout", 1.0, "[0, 1)"),
    ],
)
def test_out_of_range_value_names_field_and_range(
    field: str, value: float, range_text: str
) -> None:
    with pytest.raises(HyperparameterError) as info:
        Hyperparameters.build(**{field: value})
    assert field in info.value.message
    assert range_text in info.value.message


def test_every_bad_field_is_reported_at_once() -> None:
    with pytest.raises(HyperparameterError) as info:
        Hyperparameters.build(batch_size=0, n_epochs=1000)
    assert "batch_size" in info.value.message and "n_epochs" in info.value.message


def test_wrong_type_and_unknown_field_are_named() -> None:
    with pytest.raises(HyperparameterError, match="n_epochs"):
        Hyperparameters.build(n_epochs="three")
    with pytest.raises(HyperparameterError, match="epochs: unknown hyperparameter"):
        Hyperparameters.build(epochs=3)


def test_build_ignores_values_left_out() -> None:
    hp = Hyperparameters.build(batch_size=None, lora=True, lora_r=16)
    assert (hp.batch_size, hp.lora, hp.lora_r) == (8, True, 16)


def test_job_request_body_matches_the_contract() -> None:
    request = JobRequest(
        model="meta-llama/Llama-3.1-8B-Instruct",
        training_file="file-train",
        hyperparameters=Hyperparameters(lora=True),
        seed=42,
        suffix="xgen",
        integrations=[
            WandbIntegration(wandb=WandbSettings(project="p", name="run", api_key="wb-key"))
        ],
    )
    body = request.to_body()
    assert body["model"] == "meta-llama/Llama-3.1-8B-Instruct"
    assert "validation_file" not in body
    assert body["hyperparameters"]["lora"] is True
    assert body["seed"] == 42 and body["suffix"] == "xgen"
    assert body["integrations"] == [
        {"type": "wandb", "wandb": {"project": "p", "name": "run", "api_key": "wb-key"}}
    ]
    assert "wb-key" not in repr(request)


def test_job_request_without_integrations_sends_none() -> None:
    assert "integrations" not in JobRequest(model="m", training_file="f").to_body()


def test_job_request_rejects_empty_model_and_negative_seed() -> None:
    with pytest.raises(ValidationError, match="model"):
        JobRequest(model="", training_file="f")
    with pytest.raises(ValidationError, match="seed"):
        JobRequest(model="m", training_file="f", seed=-1)
