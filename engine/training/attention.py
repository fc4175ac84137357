"""Attention for packed rows: causal attention computed inside each example only.

transformers' sdpa path keeps packed examples apart with a block-diagonal mask over
the whole row, which still computes every cross-example score and then discards it.
Here each example's slice of the row gets its own causal attention call, so the work
is the sum of the examples' squares, not the square of their sum.

On a GPU, where a kernel launch costs more than the scores it would skip, the
examples share one call with a block-diagonal causal mask instead.

Registered under ATTENTION_NAME; a model loaded with that attn_implementation gets no
mask from transformers (none is registered for it). Rows with one sequence (no
`segment_bounds`) get plain causal attention, which is also exact for right-padded
rows: a real token never attends to the padding after it.
"""

import functools
import itertools

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

ATTENTION_NAME = "engine_segments"


@functools.lru_cache(maxsize=1)  # the 30-odd layers of one step share it
def _block_causal_mask(bounds: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """[1, 1, L, L]: position i sees j when both lie in one example and j <= i."""
    lengths = torch.tensor([b - a for a, b in itertools.pairwise(bounds)], device=device)
    example = torch.repeat_interleave(torch.arange(len(lengths), device=device), lengths)
    same = example[:, None] == example[None, :]
    return same.tril_()[None, None]


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
    out_dtype = query.dtype
    if query.device.type == "cpu" and out_dtype == torch.bfloat16:
        # PyTorch's CPU flash attention runs faster in float32 than in bf16 (and is
        # more exact); the casts cost far less than the difference.
        query, key, value = query.float(), key.float(), value.float()
    if query.device.type != "cpu" and len(bounds) > 2:
        mask = _block_causal_mask(tuple(bounds), query.device)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout_p, scale=scaling, enable_gqa=gqa
        )
        return out.transpose(1, 2).contiguous(), None
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
    return out.transpose(1, 2).to(out_dtype).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, segment_attention)
