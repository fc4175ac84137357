"""Merging a LoRA adapter: one that does not fit its model is refused, saying why."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForCausalLM

from engine.training.adapters import (
    ADAPTER_WEIGHTS,
    AdapterError,
    AdapterMismatchError,
    merge_adapter,
)
from tests.engine.conftest import write_adapter


def test_a_fitting_adapter_changes_the_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "adapter", tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = base.model.layers[0].self_attn.q_proj.weight.clone()
    merged = merge_adapter(base, adapter)
    assert not hasattr(merged, "peft_config")
    assert not torch.equal(merged.model.layers[0].self_attn.q_proj.weight, before)


def test_an_adapter_missing_weights_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    adapter = write_adapter(tmp_path / "adapter", tiny_model_dir)
    tensors = load_file(adapter / ADAPTER_WEIGHTS)
    dropped = sorted(name for name in tensors if "q_proj" in name)
    save_file({k: v for k, v in tensors.items() if k not in dropped}, adapter / ADAPTER_WEIGHTS)
    with pytest.raises(AdapterMismatchError) as caught:
        merge_adapter(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    assert f"no weights for {len(dropped)} of the LoRA tensors" in str(caught.value)
    assert dropped[0] in str(caught.value)


def test_an_adapter_of_another_shape_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(tiny_model_dir)
    config.hidden_size, config.intermediate_size = 64, 128
    other = LlamaForCausalLM(config)
    other.save_pretrained(tmp_path / "other")
    adapter = write_adapter(tmp_path / "adapter", tmp_path / "other")
    with pytest.raises(AdapterError) as caught:
        merge_adapter(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter)
    assert "could not be applied to the model" in str(caught.value)
    assert "size mismatch" in str(caught.value)
