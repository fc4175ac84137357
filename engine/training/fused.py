"""Leaner training versions of a decoder's hot layers: LoRA linears, RMSNorm, SwiGLU.

Each is one autograd function that saves only what its backward needs, in place of a
chain of small ops that each keep their own copy for backward:

- PEFT's LoRA forward casts the layer's input to the adapter's float32, and autocast
  casts it back to bf16 for each of the two small matmuls: copies of one activation,
  all kept. `_LoraLinear` does the frozen product and the low-rank update in the
  compute dtype, saves the input once, and adds the update into the output in place.
- RMSNorm as transformers writes it keeps its input and the normalised copy; here the
  input and one number per row. The norms in front of the projections feed nothing
  else, and autocast casts their output to bf16 anyway, so they emit bf16 directly and
  the projections and their adapters share that one tensor.
- SwiGLU keeps gate, up and silu(gate), and the down projection keeps their product;
  here gate and up only, recomputing the rest in backward.

The modules and parameters stay as they are (PEFT's adapters save, load and resume
unchanged); only `forward` is replaced, on layers these functions compute exactly.
"""

import types
from typing import Any

import torch
import torch.nn.functional as F

from engine.training.families import is_plain_decoder

# In these families' decoder layers, these norms feed only the projections after them.
_NORMS_BEFORE_PROJECTIONS = ("input_layernorm", "post_attention_layernorm")


def _frozen_plus_update(
    x: torch.Tensor,
    x_update: torch.Tensor,
    w: torch.Tensor,
    bias: torch.Tensor | None,
    a: torch.Tensor,
    b: torch.Tensor,
    scaling: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(x W^T + bias + scaling * (x_update A^T) B^T, x_update A^T), the update added in place."""
    h = F.linear(x_update, a)
    y = F.linear(x, w, None if bias is None else bias.to(w.dtype))
    y.view(-1, y.shape[-1]).addmm_(h.view(-1, h.shape[-1]), b.t(), alpha=scaling)
    return y, h


class _LoraLinear(torch.autograd.Function):
    """y = x W^T + b + scaling * (dropout(x) A^T) B^T, with W and b frozen."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        x_drop: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        lora_a: torch.Tensor,
        lora_b: torch.Tensor,
        scaling: float,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        shared = x_drop is x
        xc = x.to(dtype)
        xd = xc if shared else x_drop.to(dtype)
        w, a, b = weight.to(dtype), lora_a.to(dtype), lora_b.to(dtype)
        y, h = _frozen_plus_update(xc, xd, w, bias, a, b, scaling)
        ctx.save_for_backward(xd, h, w, a, b)
        ctx.scaling = scaling
        ctx.shared = shared
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        xd, h, w, a, b = ctx.saved_tensors
        g = grad.to(w.dtype).reshape(-1, w.shape[0])
        gh = g.mm(b).mul_(ctx.scaling)
        grad_x = grad_x_drop = None
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            grad_x = g.mm(w)
            if ctx.shared:
                grad_x.addmm_(gh, a)
            else:
                grad_x_drop = gh.mm(a).view(xd.shape)
            grad_x = grad_x.view(*grad.shape[:-1], w.shape[1])
        grad_a = gh.t().mm(xd.reshape(-1, xd.shape[-1])) if ctx.needs_input_grad[4] else None
        grad_b = None
        if ctx.needs_input_grad[5]:
            grad_b = g.t().mm(h.reshape(-1, h.shape[-1])).mul_(ctx.scaling)
        grad_bias = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return grad_x, grad_x_drop, None, grad_bias, grad_a, grad_b, None, None


class _RMSNorm(torch.autograd.Function):
    """y = x / rms(x) * weight, computed in float32, returned in `out_dtype`."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, eps: float, out_dtype: torch.dtype
    ) -> torch.Tensor:
        x32 = x.float()
        rstd = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True).add_(eps))
        y = (x32 * rstd).mul_(weight.float()).to(out_dtype)
        ctx.save_for_backward(x, weight, rstd)
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, rstd = ctx.saved_tensors
        # Out of place: x and grad may be the very tensors autograd holds elsewhere.
        xhat = x.float() * rstd
        g = grad.float()
        grad_weight = None
        if ctx.needs_input_grad[1]:
            grad_weight = (g * xhat).reshape(-1, x.shape[-1]).sum(0).to(weight.dtype)
        grad_x = None
        if ctx.needs_input_grad[0]:
            gxhat = g * weight.float()
            dot = (gxhat * xhat).mean(-1, keepdim=True)
            grad_x = gxhat.sub_(xhat.mul_(dot)).mul_(rstd).to(x.dtype)
        return grad_x, grad_weight, None, None


class _SwiGLU(torch.autograd.Function):
    """silu(gate) * up."""

    @staticmethod
    def forward(ctx: Any, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(gate, up)
        return F.silu(gate).mul_(up)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gate, up = ctx.saved_tensors
        # The same kernels autograd runs for silu(gate) * up, so the same numbers.
        grad_up = grad * F.silu(gate)
        grad_gate = torch.ops.aten.silu_backward(grad * up, gate)
        return grad_gate, grad_up


class _SwiGLULoraDown(torch.autograd.Function):
    """down(silu(gate) * up) where down is a LoRA linear without dropout.

    The product (the widest activation of the MLP) is recomputed in backward from gate
    and up, which are kept anyway, instead of being kept as well.
    """

    @staticmethod
    def forward(
        ctx: Any,
        gate: torch.Tensor,
        up: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        lora_a: torch.Tensor,
        lora_b: torch.Tensor,
        scaling: float,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        w, a, b = weight.to(dtype), lora_a.to(dtype), lora_b.to(dtype)
        product = F.silu(gate).mul_(up).to(dtype)
        y, h = _frozen_plus_update(product, product, w, bias, a, b, scaling)
        ctx.save_for_backward(gate, up, h, w, a, b)
        ctx.scaling = scaling
        ctx.has_bias = bias is not None
        return y

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        gate, up, h, w, a, b = ctx.saved_tensors
        g = grad.to(w.dtype).reshape(-1, w.shape[0])
        gh = g.mm(b).mul_(ctx.scaling)
        grad_product = g.mm(w).addmm_(gh, a).view(*gate.shape[:-1], w.shape[1])
        silu = F.silu(gate)
        grad_a = grad_b = None
        if ctx.needs_input_grad[4]:
            product = (silu * up).to(w.dtype)
            grad_a = gh.t().mm(product.reshape(-1, product.shape[-1]))
        if ctx.needs_input_grad[5]:
            grad_b = g.t().mm(h.reshape(-1, h.shape[-1])).mul_(ctx.scaling)
        grad_product = grad_product.to(gate.dtype)
        grad_up = grad_product * silu
        grad_gate = torch.ops.aten.silu_backward(grad_product * up, gate)
        grad_bias = g.sum(0) if ctx.has_bias and ctx.needs_input_grad[3] else None
        return grad_gate, grad_up, None, grad_bias, grad_a, grad_b, None, None


def _compute_dtype(x: torch.Tensor, weight: torch.Tensor) -> torch.dtype:
    device = x.device.type
    if torch.is_autocast_enabled(device):
        return torch.get_autocast_dtype(device)
    return weight.dtype


def _only_adapter(module: Any) -> str | None:
    """The one active LoRA adapter of `module`, when the fused path computes it exactly."""
    adapters = [name for name in module.active_adapters if name in module.lora_A]
    if module.disable_adapters or module.merged or len(adapters) != 1:
        return None
    return adapters[0]


def _lora_operands(module: Any, name: str, x: torch.Tensor) -> tuple[Any, ...]:
    """What the fused functions take after their inputs: the frozen weight and bias, adapter
    `name`'s A and B, its scaling, and the dtype to compute `x`'s product in."""
    base = module.base_layer
    return (
        base.weight,
        base.bias,
        module.lora_A[name].weight,
        module.lora_B[name].weight,
        float(module.scaling[name]),
        _compute_dtype(x, base.weight),
    )


def _lora_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    name = _only_adapter(self)
    if name is None or args or kwargs:
        return self._unfused_forward(x, *args, **kwargs)
    return _LoraLinear.apply(x, self.lora_dropout[name](x), *_lora_operands(self, name, x))


def _norm_forward(before_projection: bool):
    def forward(self: Any, x: torch.Tensor) -> torch.Tensor:
        out_dtype = x.dtype
        if before_projection and torch.is_autocast_enabled(x.device.type):
            out_dtype = torch.get_autocast_dtype(x.device.type)
        return _RMSNorm.apply(x, self.weight, self.variance_epsilon, out_dtype)

    return forward


def _mlp_forward(self: Any, x: torch.Tensor) -> torch.Tensor:
    gate, up = self.gate_proj(x), self.up_proj(x)
    down = self.down_proj
    name = _only_adapter(down) if _is_lora_linear(down) else None
    if name is None or not isinstance(down.lora_dropout[name], torch.nn.Identity):
        return down(_SwiGLU.apply(gate, up))
    return _SwiGLULoraDown.apply(gate, up, *_lora_operands(down, name, gate))


def _is_lora_linear(module: Any) -> bool:
    from peft.tuners.lora.layer import Linear as LoraLinear

    return (
        isinstance(module, LoraLinear)
        and isinstance(module.base_layer, torch.nn.Linear)
        and not module.lora_variant
        and not module.base_layer.weight.requires_grad
    )


def _is_rms_norm(module: Any) -> bool:
    return type(module).__name__.endswith("RMSNorm") and hasattr(module, "variance_epsilon")


def _is_swiglu_mlp(module: Any, hidden_act: str | None) -> bool:
    parts = ("gate_proj", "up_proj", "down_proj")
    return hidden_act == "silu" and all(hasattr(module, p) for p in parts)


def _replace_forward(module: Any, forward: Any) -> None:
    module._unfused_forward = module.forward
    module.forward = types.MethodType(forward, module)


def speed_up(model: Any) -> int:
    """Swap in the fused forwards where they compute the same thing; returns how many."""
    covered = 0
    plain = is_plain_decoder(model)
    hidden_act = getattr(model.config, "hidden_act", None)
    for name, module in model.named_modules():
        leaf = name.rsplit(".", 1)[-1]
        if _is_lora_linear(module):
            _replace_forward(module, _lora_forward)
        elif plain and _is_rms_norm(module):
            _replace_forward(module, _norm_forward(leaf in _NORMS_BEFORE_PROJECTIONS))
        elif plain and _is_swiglu_mlp(module, hidden_act):
            _replace_forward(module, _mlp_forward)
        else:
            continue
        covered += 1
    return covered
