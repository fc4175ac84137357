"""Which models the trainer's fast paths understand.

The fused LoRA norms (engine.training.fast_lora) and the chunked loss
(engine.training.loss) rely on a decoder's layout: pre-norms that feed only the
projections, and logits that are exactly `hidden @ lm_head.weight.T` (no bias, no
soft-capping or scaling). These families are built that way; any other model trains
through the plain transformers path, only slower.
"""

from typing import Any

PLAIN_DECODER_FAMILIES = frozenset({"llama", "mistral", "qwen2", "qwen3"})


def is_plain_decoder(model: Any) -> bool:
    config = getattr(model, "config", None)
    return getattr(config, "model_type", None) in PLAIN_DECODER_FAMILIES
