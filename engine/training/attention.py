"""Attention for packed rows: causal attention computed inside each example only.

transformers' sdpa path keeps packed examples apart with a block-diagonal mask over
the whole row, which still computes every cross-example score and then discards it.
Here each example's slice of the row gets its own causal attention call, so the work
is the sum of the examples' squares, not the square of their sum.

Registered under ATTENTION_NAME; a model loaded with that attn_implementation gets no
mask from transformers (none is registered for it). Rows with one sequence (no
`segment_bounds`) get plain causal attention, which is also exact for right-padded
rows: a real token never attends to the padding after it.
"""

import itertools

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

ATTENTION_NAME = "engine_segments"


def segment_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    segment_bounds: list[int] | None = None,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """query [batch, heads, length, dim], key/value [batch, kv_heads, length, dim]."""
    gqa = key.shape[1] != query.shape[1]
    dropout_p = dropout if module.training else 0.0
    bounds = segment_bounds or [0, query.shape[2]]
    parts = [
        F.scaled_dot_product_attention(
            query[:, :, a:b],
            key[:, :, a:b],
            value[:, :, a:b],
            dropout_p=dropout_p,
            is_causal=True,
            scale=scaling,
            enable_gqa=gqa,
        )
        for a, b in itertools.pairwise(bounds)
    ]
    out = parts[0] if len(parts) == 1 else torch.cat(parts, dim=2)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, segment_attention)
