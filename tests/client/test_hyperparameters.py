"""Hyperparameters: Nebius's defaults, and ranges enforced before any request."""

import pytest
from pydantic import ValidationError

from client import HyperparameterError, Hyperparameters, JobRequest, WandbIntegration
from client.hyperparameters import (
    LOCAL_ENGINE,
    LOCAL_ENGINE_RANGES,
    NEBIUS,
    NEBIUS_RANGES,
    RangeProfile,
    WandbSettings,
    profile_for_base_url,
)


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


# A value just outside each of Nebius's published ranges, and the range the message names.
NEBIUS_REFUSALS = [
    ("batch_size", 0, "in [1, 64]"),
    ("batch_size", 65, "in [1, 64]"),
    ("n_epochs", 0, "in [1, 20]"),
    ("n_epochs", 21, "in [1, 20]"),
    ("warmup_ratio", -0.1, "in [0, 1]"),
    ("warmup_ratio", 1.5, "in [0, 1]"),
    ("weight_decay", -0.1, "at least 0"),
    ("max_grad_norm", 0, "above 0"),
    ("context_length", 8191, "in [8192, 131072]"),
    ("context_length", 131073, "in [8192, 131072]"),
    ("lora_r", 7, "in [8, 128]"),
    ("lora_r", 129, "in [8, 128]"),
    ("lora_alpha", 7, "at least 8"),
    ("lora_dropout", -0.5, "in [0, 1]"),
    ("lora_dropout", 1.01, "in [0, 1]"),
]


@pytest.mark.parametrize(("field", "value", "rule"), NEBIUS_REFUSALS)
def test_what_nebius_refuses_is_refused_naming_field_and_nebius_range(
    field: str, value: float, rule: str
) -> None:
    with pytest.raises(HyperparameterError) as info:
        Hyperparameters.build(NEBIUS, **{field: value})
    assert info.value.message.startswith(f"{field} must be {rule} on Nebius (got ")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("batch_size", 64),
        ("n_epochs", 20),
        ("warmup_ratio", 1.0),
        ("weight_decay", 5.0),  # Nebius has no cap
        ("max_grad_norm", 1000.0),  # no cap
        ("context_length", 131072),
        ("lora_r", 128),
        ("lora_alpha", 4096),  # no cap
        ("lora_dropout", 1.0),  # inclusive on Nebius
        ("learning_rate", 1.0),
    ],
)
def test_what_nebius_accepts_is_accepted(field: str, value: float) -> None:
    assert getattr(Hyperparameters.build(NEBIUS, **{field: value}), field) == value


@pytest.mark.parametrize("value", [0, 2.0])
def test_learning_rate_guard_is_said_to_be_ours(value: float) -> None:
    with pytest.raises(HyperparameterError) as info:
        Hyperparameters.build(NEBIUS, learning_rate=value)
    message = info.value.message
    assert message.startswith("learning_rate must be in (0, 1] (got ")
    assert "typo guard of ours" in message and "Nebius itself allows" in message


@pytest.mark.parametrize(
    ("field", "value", "nebius_ok", "local_ok"),
    [
        ("context_length", 512, False, True),  # a small machine's context
        ("lora_r", 4, False, True),
        ("lora_alpha", 4, False, True),
        ("weight_decay", 2.0, True, False),  # the engine caps what Nebius leaves open
        ("max_grad_norm", 101.0, True, False),
        ("lora_alpha", 2048, True, False),
        ("lora_dropout", 1.0, True, False),
        ("context_length", 4, False, False),
    ],
)
def test_each_backend_has_its_own_ranges(
    field: str, value: float, nebius_ok: bool, local_ok: bool
) -> None:
    for profile, ok in ((NEBIUS, nebius_ok), (LOCAL_ENGINE, local_ok)):
        if ok:
            Hyperparameters.build(profile, **{field: value})
        else:
            with pytest.raises(HyperparameterError, match=f"^{field} must be .* {profile.where}"):
                Hyperparameters.build(profile, **{field: value})


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_no_cap_is_not_infinity(value: str) -> None:
    with pytest.raises(HyperparameterError, match=r"^weight_decay must be a finite number"):
        Hyperparameters.build(NEBIUS, weight_decay=value)


def test_the_plain_constructor_holds_to_nebius() -> None:
    with pytest.raises(ValidationError, match="context_length must be in \\[8192, 131072\\]"):
        Hyperparameters(context_length=512)


def test_local_engine_ranges_are_the_table_agreed_with_the_engine() -> None:
    assert LOCAL_ENGINE_RANGES == {
        "batch_size": (1, 64, True, True),
        "learning_rate": (0, 1, False, True),
        "n_epochs": (1, 20, True, True),
        "warmup_ratio": (0, 1, True, True),
        "weight_decay": (0, 1, True, True),
        "max_grad_norm": (0, 100, False, True),
        "context_length": (8, 131072, True, True),
        "lora_r": (1, 128, True, True),
        "lora_alpha": (1, 1024, True, True),
        "lora_dropout": (0, 1, True, False),
        "seed": (0, 2**31 - 1, True, True),
    }
    assert NEBIUS_RANGES.keys() == LOCAL_ENGINE_RANGES.keys()
    ranged = set(NEBIUS_RANGES) - {"seed"}
    assert ranged == {
        n for n, f in Hyperparameters.model_fields.items() if f.annotation is not bool
    }


@pytest.mark.parametrize(
    ("base_url", "profile"),
    [
        ("https://api.tokenfactory.nebius.com/v1/", NEBIUS),
        ("https://api.studio.nebius.com/v1/", NEBIUS),
        ("http://127.0.0.1:8800/v1/", LOCAL_ENGINE),
        ("http://localhost:8800/v1/", LOCAL_ENGINE),
        ("http://[::1]:8800/v1/", LOCAL_ENGINE),
        ("http://127.1.2.3/v1/", LOCAL_ENGINE),
        ("http://10.0.0.5:8800/v1/", NEBIUS),
        ("http://localhost.example.com/v1/", NEBIUS),
    ],
)
def test_profile_follows_the_base_url(base_url: str, profile: RangeProfile) -> None:
    assert profile_for_base_url(base_url) is profile


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


@pytest.mark.parametrize("profile", [NEBIUS, LOCAL_ENGINE])
def test_job_request_seed_and_suffix_name_their_limits(profile: RangeProfile) -> None:
    with pytest.raises(HyperparameterError) as info:
        JobRequest.build(profile, model="m", training_file="f", seed=2**31, suffix="x" * 65)
    message = info.value.message
    assert f"seed must be in [0, 2147483647] {profile.where} (got 2147483648)" in message
    assert f"suffix must be at most 64 characters {profile.where} (got 65)" in message
    request = JobRequest.build(
        profile, model="m", training_file="f", seed=2**31 - 1, suffix="x" * 64
    )
    assert request.seed == 2**31 - 1


def test_job_request_with_local_hyperparameters_keeps_them() -> None:
    """Checked once with the local engine's ranges, the request does not re-check them with
    Nebius's when it is assembled."""
    hp = Hyperparameters.build(LOCAL_ENGINE, context_length=512, lora_r=4)
    body = JobRequest.build(
        LOCAL_ENGINE, model="m", training_file="f", hyperparameters=hp
    ).to_body()
    assert (body["hyperparameters"]["context_length"], body["hyperparameters"]["lora_r"]) == (
        512,
        4,
    )
    assert "method" not in body  # never sent together with hyperparameters


def test_stored_values_read_back_whatever_profile_checked_them() -> None:
    """A request kept for a restart was checked when it was made: local-engine values (a
    512-token context) and Nebius-only ones (weight decay 3) both read back."""
    local = Hyperparameters.build(LOCAL_ENGINE, context_length=512).model_dump()
    nebius = Hyperparameters.build(NEBIUS, weight_decay=3.0).model_dump()
    assert Hyperparameters.restore(local).context_length == 512
    assert Hyperparameters.restore(nebius).weight_decay == 3.0
    with pytest.raises(ValidationError, match="n_epochs"):
        Hyperparameters.restore({"n_epochs": "three"})
    with pytest.raises(ValidationError):
        Hyperparameters.restore(None)  # type: ignore[arg-type]
