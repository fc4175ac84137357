"""The fused training layers and the chunked loss compute what the plain model computes."""

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from engine.training import fused, loss
from engine.training.data import IGNORE


def _load(model_dir: Path) -> Any:
    from transformers import AutoModelForCausalLM

    from engine.training.attention import ATTENTION_NAME

    return AutoModelForCausalLM.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation=ATTENTION_NAME
    )


def _with_lora(model: Any, dropout: float) -> Any:
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear", task_type="CAUSAL_LM"
    )
    torch.manual_seed(1)  # the same adapter weights every time
    model = get_peft_model(model, config)
    for name, param in model.named_parameters():
        if "lora_B" in name:  # PEFT starts B at zero, which would hide the update's path
            param.data.normal_(0, 0.1)
    return model


def _loss_and_grads(model: Any, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    torch.manual_seed(seed)
    ids = torch.randint(0, 200, (2, 12))
    model.train()
    torch.manual_seed(seed + 1)  # the same dropout masks for both models
    logits = model(input_ids=ids, use_cache=False).logits
    value = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    value.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return value.detach(), grads


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_fused_lora_layers_match_peft_in_loss_and_every_gradient(
    tiny_model_dir: Path, dropout: float
) -> None:
    plain, fast = (
        _with_lora(_load(tiny_model_dir), dropout),
        _with_lora(_load(tiny_model_dir), dropout),
    )
    assert fused.speed_up(fast) > 0

    plain_loss, plain_grads = _loss_and_grads(plain, seed=3)
    fast_loss, fast_grads = _loss_and_grads(fast, seed=3)

    torch.testing.assert_close(fast_loss, plain_loss)
    assert plain_grads.keys() == fast_grads.keys()
    assert all("lora_" in name for name in plain_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, msg=name)


def test_a_full_fine_tune_gets_the_same_gradients_through_the_fused_norms_and_mlp(
    tiny_model_dir: Path,
) -> None:
    plain, fast = _load(tiny_model_dir), _load(tiny_model_dir)
    covered = fused.speed_up(fast)
    # Two layers: two norms and an MLP each, plus the final norm.
    assert covered == 7

    plain_loss, plain_grads = _loss_and_grads(plain, seed=5)
    fast_loss, fast_grads = _loss_and_grads(fast, seed=5)

    torch.testing.assert_close(fast_loss, plain_loss)
    assert any("norm" in name for name in fast_grads)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(fast_grads[name], grad, msg=name)


def test_under_bf16_autocast_the_fused_model_stays_within_bf16_rounding(
    tiny_model_dir: Path,
) -> None:
    plain, fast = _with_lora(_load(tiny_model_dir), 0.0), _with_lora(_load(tiny_model_dir), 0.0)
    fused.speed_up(fast)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain_loss, _ = _loss_and_grads(plain, seed=7)
        fast_loss, fast_grads = _loss_and_grads(fast, seed=7)

    assert abs(float(fast_loss) - float(plain_loss)) < 0.02 * float(plain_loss)
    assert all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in fast_grads.values())


@pytest.mark.parametrize("weight_trains", [False, True])
def test_the_chunked_loss_equals_plain_cross_entropy_with_its_gradients(
    monkeypatch: pytest.MonkeyPatch, weight_trains: bool
) -> None:
    monkeypatch.setattr(loss, "CHUNK_ROWS", 4)  # several chunks and a short last one
    torch.manual_seed(0)
    hidden = torch.randn(11, 16, requires_grad=True)
    weight = torch.randn(50, 16, requires_grad=weight_trains)
    targets = torch.randint(0, 50, (11,))
    targets[[2, 7]] = IGNORE

    chunked = loss.linear_cross_entropy_sum(hidden, weight, targets, torch.float32)
    (chunked * 3).backward()
    chunked_grads = (hidden.grad.clone(), weight.grad.clone() if weight_trains else None)
    hidden.grad = weight.grad = None

    plain = F.cross_entropy(hidden @ weight.t(), targets, ignore_index=IGNORE, reduction="sum")
    (plain * 3).backward()

    torch.testing.assert_close(chunked, plain)
    torch.testing.assert_close(chunked_grads[0], hidden.grad)
    if weight_trains:
        torch.testing.assert_close(chunked_grads[1], weight.grad)


def test_the_chunked_loss_computes_no_gradients_when_none_are_wanted() -> None:
    hidden, weight = torch.randn(6, 8), torch.randn(20, 8)
    targets = torch.randint(0, 20, (6,))
    with torch.no_grad():
        value = loss.linear_cross_entropy_sum(hidden, weight, targets, torch.float32)
    expected = F.cross_entropy(hidden @ weight.t(), targets, reduction="sum")
    torch.testing.assert_close(value, expected)
    assert value.grad_fn is None
