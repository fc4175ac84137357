"""Merging a saved LoRA adapter into a model, after checking that it fits that model.

PEFT refuses an adapter whose target modules the model lacks or whose shapes differ, but
only warns when the adapter's file lacks weights for modules its config targets: such an
adapter would merge as a silent no-op for those modules. Here that is an error too, so a
deployment or a job on a fine-tuned model never runs on weights other than those trained.
"""

from pathlib import Path
from typing import Any

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
# How many missing weight names an error quotes.
SHOWN_NAMES = 3
# Characters quoted from a library's error.
QUOTED_CHARS = 300


class AdapterError(ValueError):
    """An adapter that cannot be merged into the model; the message says why, in one line."""


class AdapterMismatchError(AdapterError):
    """The adapter's saved weights do not cover the modules it adapts in this model."""


def _first_line(exc: BaseException) -> str:
    """The error's type and its first two lines: torch's first line only says "Error(s)"."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = " ".join(lines[:2])[:QUOTED_CHARS]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def merge_adapter(model: Any, folder: Path) -> Any:
    """`model` with the LoRA adapter saved in `folder` merged into its weights."""
    from peft import PeftModel
    from peft.utils import get_peft_model_state_dict

    if not (folder / ADAPTER_CONFIG).is_file():
        raise FileNotFoundError(2, f"no LoRA adapter ({ADAPTER_CONFIG})", str(folder))
    try:
        peft_model = PeftModel.from_pretrained(model, folder)
    except Exception as exc:  # PEFT's and safetensors' errors are of many types
        raise AdapterError(
            f"the LoRA adapter in {folder.name} could not be applied to the model "
            f"({_first_line(exc)})"
        ) from exc
    weights = folder / ADAPTER_WEIGHTS
    if weights.is_file():  # PEFT also reads the older adapter_model.bin, which has no index
        from safetensors import safe_open

        with safe_open(str(weights), framework="pt") as handle:
            saved = set(handle.keys())
        missing = sorted(set(get_peft_model_state_dict(peft_model)) - saved)
        if missing:
            raise AdapterMismatchError(
                f"the adapter in {folder.name} does not match the model: it has no weights for "
                f"{len(missing)} of the LoRA tensors its config asks for "
                f"(first: {', '.join(missing[:SHOWN_NAMES])})"
            )
    merged = peft_model.merge_and_unload()
    # The adapter's config stays on the unloaded model; a new LoRA must start plain.
    if hasattr(merged, "peft_config"):
        del merged.peft_config
    return merged
