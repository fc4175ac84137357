"""Cross-entropy over the vocabulary without keeping a batch's logits in memory.

The output projection's logits (targets x 49k vocabulary, in float32) and their
log-softmax and gradient are the largest tensors of a step, and they are alive at its
memory peak, the end of the forward pass. Here the logits are made a chunk of rows at
a time, and each chunk's gradient with respect to the hidden states (and to the output
weight, when it trains) is computed right away, while its logits are still at hand:
d loss / d logits = softmax - one_hot. Only those gradients wait for the backward pass.
The numbers are those of the plain computation: logits in the compute dtype, the
softmax in float32.
"""

from typing import Any

import torch

from engine.training.data import IGNORE

# Rows of logits alive at once: 256 x 49k float32 is about 50 MB.
CHUNK_ROWS = 256


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """hidden [T, H], weight [V, H], targets [T] -> the summed loss of the T rows."""
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        w = weight.to(dtype)
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if want_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], CHUNK_ROWS):
            h = hidden[start : start + CHUNK_ROWS].to(dtype)
            t = targets[start : start + CHUNK_ROWS]
            logits = (h @ w.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            valid = t != IGNORE
            safe = t.clamp(min=0)
            picked = logits.gather(1, safe[:, None]).squeeze(1)
            total += torch.where(valid, lse - picked, 0.0).sum()
            if not (want_h or want_w):
                continue
            # softmax - one_hot, in place over the logits; ignored rows get no gradient.
            grad_logits = logits.sub_(lse[:, None]).exp_()
            rows = torch.arange(t.shape[0], device=t.device)
            grad_logits[rows, safe] -= valid.to(grad_logits.dtype)
            grad_logits.mul_(valid[:, None])
            g = grad_logits.to(dtype)
            if want_h:
                grad_h[start : start + CHUNK_ROWS] = g @ w
            if want_w:
                grad_w += (g.t() @ h).float()
        ctx.save_for_backward(*(x for x in (grad_h, grad_w) if x is not None))
        ctx.wants = (want_h, want_w)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        saved = list(ctx.saved_tensors)
        want_h, want_w = ctx.wants
        grad_h = saved.pop(0) * grad if want_h else None
        grad_w = (saved.pop(0) * grad).to(ctx.weight_dtype) if want_w else None
        return grad_h, grad_w, None, None


def linear_cross_entropy_sum(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """Sum over rows of cross_entropy(hidden @ weight.T, targets), rows IGNORE skipped."""
    return _ChunkedLinearCrossEntropy.apply(hidden, weight, targets, dtype)
