"""Autograd functions that make L²ViT's eager training step on the CPU cheaper in time or memory, with the same
results as the plain layers (float64 tests: ``tests/test_cpu_fast_paths.py``).

* :func:`depthwise_conv`: a stride-1 depthwise convolution whose weight gradient is computed in strips of kernel
  columns (:func:`depthwise_weight_grad`), which oneDNN runs several times faster than a 7-wide kernel's.
* :func:`patch_conv`: a convolution whose kernel equals its stride (a linear map of non-overlapping patches, as
  L²ViT's downsampling layers are), with its weight gradient computed as matrix products (:func:`patch_weight_grad`),
  which oneDNN's own weight gradient for these convolutions is several times slower than.
* :func:`after_recomputed`: ``op(fn(x))``, ``op`` a linear layer or a depthwise convolution and ``fn`` cheap
  element-wise work in front of it (LayerNorm, GELU, BatchNorm, padding, reshapes), that keeps only ``x`` for backward
  and recomputes ``fn(x)`` there. The plain graph keeps both: ``fn``'s backward needs ``x`` and ``op``'s weight
  gradient needs ``fn(x)``.
* :class:`LinearAttentionFunction`: the linear attention core with a backward that recomputes its small
  intermediates instead of keeping them.

The modules of :mod:`l2vit.models.cpu.modules` use them only while eager autograd records a graph on the CPU
(:func:`builds_backward_graph`).
"""
from typing import Any, Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ..attention import LINEAR_ATTENTION_DENOM_MIN, linear_attention

#: The widest depthwise kernel whose weight gradient oneDNN computes with its depthwise kernel (``jit_dw``). For
#: wider kernels it falls back to a generic grouped convolution that is many times slower than the forward (7x7,
#: 96 channels at 200x334: 77 ms against 11 ms), while 7x3 and 7x1 kernels are as fast as the forward.
FAST_WEIGHT_GRAD_WIDTH = 3

Grads = Tuple[Optional[Tensor], Optional[Tensor], Optional[Tensor]]


def builds_backward_graph(*tensors: Tensor) -> bool:
    """Whether eager autograd is recording a graph through any of ``tensors``, all on the CPU: where the functions
    here are used. ``torch.compile`` and ``torch.export`` make their own choices of what to save and recompute, and
    ``torch.jit.trace`` (FLOP counting, ONNX export) cannot trace through Python autograd functions, so all of them
    get the plain layers; so do GPUs, where these paths have not been measured."""
    if not torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing():
        return False
    return all(t.device.type == 'cpu' for t in tensors) and any(t.requires_grad for t in tensors)


# ------------------------------------------------------------------------------------------ depthwise convolution
def _conv_backward(grad: Tensor, x: Tensor, weight: Tensor, padding: Sequence[int],
                   mask: Tuple[bool, bool]) -> Tuple[Optional[Tensor], Optional[Tensor]]:
    """Input and/or weight gradient of a stride-1 depthwise convolution, as aten computes it."""
    out = torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], list(padding), [1, 1], False, [0, 0],
                                              x.shape[1], [mask[0], mask[1], False])
    return out[0], out[1]


def depthwise_weight_grad(grad: Tensor, x: Tensor, weight: Tensor, padding: Sequence[int]) -> Tensor:
    """The weight gradient of a stride-1 depthwise convolution, computed in vertical strips of kernel columns.

    Columns ``b..b+w-1`` of the kernel see the input shifted by ``b`` columns; with the input zero-padded in width
    once, each strip is the weight gradient of a (kh, w) depthwise convolution without width padding on a view of it,
    and the strips side by side are the whole gradient (the same sums, in a different order). Only the weight's
    shape is used.
    """
    kw = weight.shape[-1]
    if kw <= FAST_WEIGHT_GRAD_WIDTH:
        return _conv_backward(grad, x, weight, padding, (False, True))[1]
    wide = F.pad(x, (padding[1], padding[1]))
    width = grad.shape[-1]
    strips: List[Tensor] = []
    for first in range(0, kw, FAST_WEIGHT_GRAD_WIDTH):
        strip = weight[..., first:first + FAST_WEIGHT_GRAD_WIDTH]
        shifted = wide[..., first:first + width + strip.shape[-1] - 1]
        strips.append(_conv_backward(grad, shifted, strip, (padding[0], 0), (False, True))[1])
    return torch.cat(strips, dim=3)


def _depthwise_backward(grad: Tensor, x: Tensor, weight: Tensor, padding: Sequence[int],
                        needs: Sequence[bool]) -> Grads:
    grad_x = _conv_backward(grad, x, weight, padding, (True, False))[0] if needs[0] else None
    grad_weight = None
    if needs[1]:
        if x.device.type == 'cpu':
            grad_weight = depthwise_weight_grad(grad, x, weight, padding)
        else:
            grad_weight = _conv_backward(grad, x, weight, padding, (False, True))[1]
    grad_bias = grad.sum(dim=(0, 2, 3)) if needs[2] else None
    return grad_x, grad_weight, grad_bias


class _DepthwiseConv(torch.autograd.Function):
    """A stride-1 depthwise convolution with the backward of :func:`_depthwise_backward`."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: Tuple[int, int]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return F.conv2d(x, weight, bias, padding=padding, groups=x.shape[1])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        x, weight = ctx.saved_tensors
        return (*_depthwise_backward(grad, x, weight, ctx.padding, ctx.needs_input_grad[:3]), None)


def depthwise_conv(x: Tensor, weight: Tensor, bias: Optional[Tensor], padding: Sequence[int]) -> Tensor:
    """``F.conv2d(x, weight, bias, padding=padding, groups=channels)`` (stride 1), with the strip-wise weight
    gradient on the CPU. Autocast is not applied inside: cast the inputs first."""
    return _DepthwiseConv.apply(x, weight, bias, tuple(padding))


def is_depthwise(conv: nn.Module) -> bool:
    """A stride-1, undilated, zero-padded depthwise ``nn.Conv2d`` (what :func:`depthwise_conv` computes)."""
    return (isinstance(conv, nn.Conv2d) and conv.groups == conv.in_channels == conv.out_channels
            and tuple(conv.stride) == (1, 1) and tuple(conv.dilation) == (1, 1) and conv.padding_mode == 'zeros'
            and not isinstance(conv.padding, str))


# ------------------------------------------------------------------------------------- patch (strided) convolution
def patch_weight_grad(grad: Tensor, x: Tensor, weight: Tensor) -> Tensor:
    """The weight gradient of ``F.conv2d(x, weight, stride=kernel_size)`` (no padding, one group), as one matrix
    product per kernel position: entry (p, q) of the kernel sees the input pixels (p + kh·i, q + kw·j), so its
    gradient is ``grad``ᵀ times those pixels, both as (positions, channels) matrices. The same sums as oneDNN's,
    in another order; its weight gradient for L²ViT's downsampling layers took more time than their forward and
    input gradient together (with these products, the convolutions' backward in the benchmark's AMD EPYC profile
    at 800x1333 fell from 1359 to 788 ms)."""
    out_channels, in_channels, kh, kw = weight.shape
    height, width = grad.shape[-2:]
    grad_t = grad.permute(0, 2, 3, 1).reshape(-1, out_channels).t()
    parts = []
    for p in range(kh):
        for q in range(kw):
            pixels = x[:, :, p:p + kh * height:kh, q:q + kw * width:kw]
            parts.append(grad_t.mm(pixels.permute(0, 2, 3, 1).reshape(-1, in_channels)))
    return torch.stack(parts, dim=-1).view(out_channels, in_channels, kh, kw)


class _PatchConv(torch.autograd.Function):
    """``F.conv2d(x, weight, bias, stride=kernel_size)`` with the weight gradient of :func:`patch_weight_grad`; the
    input gradient is aten's."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, bias, stride=weight.shape[-2:])

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Grads:
        x, weight = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[:3]
        grad_x = None
        if needs_x:
            grad_x = torch.ops.aten.convolution_backward(grad, x, weight, None, list(weight.shape[-2:]), [0, 0],
                                                         [1, 1], False, [0, 0], 1, [True, False, False])[0]
        grad_weight = patch_weight_grad(grad, x, weight) if needs_weight else None
        grad_bias = grad.sum(dim=(0, 2, 3)) if needs_bias else None
        return grad_x, grad_weight, grad_bias


def patch_conv(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``F.conv2d(x, weight, bias, stride=kernel_size)`` with the matrix-product weight gradient
    (:func:`patch_weight_grad`). Autocast is not applied inside: cast the inputs first."""
    return _PatchConv.apply(x, weight, bias)


# ------------------------------------------------------------------------------ an op after recomputed work
def _op_forward(op: nn.Module, a: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    if isinstance(op, nn.Linear):
        return F.linear(a, weight, bias)
    return F.conv2d(a, weight, bias, padding=op.padding, groups=op.groups)


def _op_backward(op: nn.Module, grad: Tensor, a: Tensor, weight: Tensor, needs: Sequence[bool]) -> Grads:
    if not isinstance(op, nn.Linear):
        return _depthwise_backward(grad, a, weight, op.padding, needs)
    grad2d = grad.reshape(-1, grad.shape[-1])
    grad_a = grad2d.mm(weight).view(a.shape) if needs[0] else None
    grad_weight = grad2d.t().mm(a.reshape(-1, a.shape[-1])) if needs[1] else None
    grad_bias = grad2d.sum(0) if needs[2] else None
    return grad_a, grad_weight, grad_bias


#: Rows (tokens) per piece of :func:`after_recomputed` with ``rowwise=True``: enough for efficient matrix products,
#: few enough that a piece's ``fn(x)`` (up to 4x wider than ``x`` in an MLP) stays in cache.
ROWWISE_CHUNK = 2048


class _AfterRecomputed(torch.autograd.Function):
    """``op(fn(x))`` saving ``x`` and ``op``'s weight; ``recompute(x)`` (``fn`` without side effects) gives
    ``fn(x)`` again in backward.

    ``fn``'s parameters are inputs too, so that their gradients are returned here. The forward's autocast state is
    restored for the recomputation, and ``op``'s products are computed in the dtype its forward used (autocast's,
    or the operands' promoted one), as the plain graph would. ``rowwise`` (a linear ``op`` and an ``fn`` that maps
    each row of ``x`` on its own): both directions go :data:`ROWWISE_CHUNK` rows at a time, so that ``fn(x)`` and
    its gradient never exist as whole tensors (allocating a fresh 100 MB tensor costs a CPU more than the GELU on
    it, as its pages are faulted in).
    """

    @staticmethod
    def forward(ctx, op: nn.Module, fn: Callable[[Tensor], Tensor], recompute: Callable[[Tensor], Tensor],
                rowwise: bool, x: Tensor, weight: Tensor, bias: Optional[Tensor], *fn_params: Tensor) -> Tensor:
        device = x.device.type
        ctx.op, ctx.recompute, ctx.rowwise, ctx.fn_params, ctx.device = op, recompute, rowwise, fn_params, device
        ctx.autocast = (torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.save_for_backward(x, weight)
        if not rowwise:
            return _op_forward(op, fn(x), weight, bias)
        rows = x.reshape(-1, x.shape[-1])
        out = None
        for start in range(0, rows.shape[0], ROWWISE_CHUNK):
            piece = F.linear(fn(rows[start:start + ROWWISE_CHUNK]), weight, bias)
            if out is None:  # the pieces' dtype: autocast may have chosen a lower precision
                out = piece.new_empty(rows.shape[0], piece.shape[1])
            out[start:start + ROWWISE_CHUNK] = piece
        return out.view(*x.shape[:-1], -1)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        x, weight = ctx.saved_tensors
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[4:7]
        fn_needs = list(ctx.needs_input_grad[7:])
        if not ctx.rowwise:
            grads = _AfterRecomputed._backward(ctx, grad, x, weight)
        else:
            rows, grad_rows = x.reshape(-1, x.shape[-1]), grad.reshape(-1, grad.shape[-1])
            grad_x_rows = torch.empty_like(rows) if needs_x else None
            grads = None
            for start in range(0, rows.shape[0], ROWWISE_CHUNK):
                piece = _AfterRecomputed._backward(ctx, grad_rows[start:start + ROWWISE_CHUNK],
                                                   rows[start:start + ROWWISE_CHUNK], weight)
                if grad_x_rows is not None:
                    grad_x_rows[start:start + ROWWISE_CHUNK] = piece[0]
                # the sums over rows (weight, bias and fn's parameters), accumulated piece by piece
                if grads is None:
                    grads = piece[1:]
                else:
                    grads = [g if g is None else g.add_(p) for g, p in zip(grads, piece[1:])]
            grads = [grad_x_rows.view(x.shape) if grad_x_rows is not None else None, *grads]
        grad_x, grad_weight, grad_bias, *fn_grads = grads
        return (None, None, None, None, grad_x if needs_x else None, grad_weight if needs_weight else None,
                grad_bias if needs_bias else None, *[g if needed else None for g, needed in zip(fn_grads, fn_needs)])

    @staticmethod
    def _backward(ctx, grad: Tensor, x: Tensor, weight: Tensor) -> List[Optional[Tensor]]:
        """The gradients for (a piece of) ``x``: [x, weight, bias, *fn_params], None where not needed."""
        enabled, dtype = ctx.autocast
        needs_x, needs_weight, needs_bias = ctx.needs_input_grad[4:7]
        fn_needs = [p for p, needed in zip(ctx.fn_params, ctx.needs_input_grad[7:]) if needed]
        with torch.enable_grad(), torch.autocast(ctx.device, dtype=dtype, enabled=enabled):
            inp = x.detach().requires_grad_(needs_x)
            a = ctx.recompute(inp)
        compute = dtype if enabled else torch.promote_types(a.dtype, weight.dtype)
        needs_a = needs_x or bool(fn_needs)
        grad_a, grad_weight, grad_bias = _op_backward(ctx.op, grad.to(compute), a.detach().to(compute),
                                                      weight.to(compute), (needs_a, needs_weight, needs_bias))
        grad_weight = grad_weight.to(weight.dtype) if grad_weight is not None else None
        grad_bias = grad_bias.to(weight.dtype) if grad_bias is not None else None
        grad_x = None
        fn_grads: List[Optional[Tensor]] = [None] * len(ctx.fn_params)
        if needs_a:
            wrt = ([inp] if needs_x else []) + fn_needs
            grads = iter(torch.autograd.grad(a, wrt, grad_a.to(a.dtype), allow_unused=True))
            grad_x = next(grads) if needs_x else None
            fn_grads = [next(grads) if needed else None for needed in ctx.needs_input_grad[7:]]
        return [grad_x, grad_weight, grad_bias, *fn_grads]


def after_recomputed(op: nn.Module, fn: Callable[[Tensor], Tensor], x: Tensor, fn_params: Sequence[Tensor] = (),
                     recompute: Optional[Callable[[Tensor], Tensor]] = None, rowwise: bool = False) -> Tensor:
    """``op(fn(x))`` for ``op`` an ``nn.Linear`` or a depthwise ``nn.Conv2d`` (:func:`is_depthwise`).

    While autograd records (:func:`builds_backward_graph`), ``fn(x)`` is not kept for backward but recomputed there
    from ``x``, which ``fn``'s own backward keeps anyway: one activation of ``fn(x)``'s size less is saved. ``fn``
    must be cheap and deterministic, ``fn_params`` must list the parameters it uses, and ``recompute`` (default
    ``fn``) must compute the same without side effects (a BatchNorm in training: on the batch statistics, without
    updating the running ones). With ``rowwise`` (a linear ``op``, and ``fn`` applied to each row of ``x``, the last
    dimension, on its own, as LayerNorm and GELU are) the work goes a block of rows at a time, in both directions.
    Otherwise this is the plain ``op(fn(x))``.
    """
    if not builds_backward_graph(x, op.weight, *fn_params):
        return op(fn(x))
    if not (isinstance(op, nn.Linear) or is_depthwise(op)):
        raise TypeError(f'after_recomputed: op must be an nn.Linear or a stride-1 depthwise nn.Conv2d, got {op!r}')
    if rowwise and not isinstance(op, nn.Linear):
        raise TypeError(f'after_recomputed: rowwise needs a linear op, got {op!r}')
    return _AfterRecomputed.apply(op, fn, recompute or fn, rowwise, x, op.weight, op.bias, *fn_params)


# ---------------------------------------------------------------------------------------- linear attention core
class LinearAttentionFunction(torch.autograd.Function):
    """The linear attention core with a hand-written backward that recomputes its small intermediates.

    Per batch element and head, with ``Q = relu(q)``, ``K = relu(k)`` (N x d), ``V = v`` (N x e), ``t`` the
    temperature::

        S = K^T V (d x e),  KV = t S,  s = sum_n K_n (d),  z = Q s (N),  D = max(z, 100),  out = (Q KV) / D

    Saved for the backward: ``q``, ``k``, ``v`` as given (bf16 under autocast: views of the ``qkv`` projection's
    output, no float32 copy) and ``temperature``; not the ReLU outputs, not the N x e numerator ``Q KV``. The
    backward recomputes ``Q``, ``K``, ``S``, ``s``, ``z``, ``D`` (``S`` is one more N x d x e product, the rest is
    O(N d)) and, with ``g`` the output's gradient and ``G = g / D`` (row-wise)::

        P = G KV^T                              # N x d
        g_z = -sum_d(Q * P) / D  where z > 100, else 0
                                                # since sum_e(g * Q KV) = sum_d(Q * g KV^T): no numerator needed
        g_Q = P + g_z s^T,   g_KV = Q^T G,   g_t = sum(g_KV * S),   g_S = t g_KV
        g_s = Q^T g_z,       g_K = V g_S^T + 1 g_s^T,   g_V = K g_S
        g_q = g_Q where q > 0, else 0;  g_k likewise

    The masks are those of ``clamp_min``'s and ``relu``'s own backward (a tie with the clamp, or an input of exactly
    0, gets no gradient); ``g_t`` is summed over the batch (and every other broadcast dimension). Everything runs in
    the forward's dtype with autocast disabled, on (B * heads, N, d) copies that batched matrix products take without
    further copies; the gradients come back in each input's dtype, only those ``needs_input_grad`` asks for. The
    backward is not itself differentiable (no double backward).
    """

    @staticmethod
    def forward(ctx: Any, q: Tensor, k: Tensor, v: Tensor, temperature: Tensor) -> Tensor:
        """The plain core's ops (bit-identical output); saves the inputs as they are."""
        ctx.save_for_backward(q, k, v, temperature)
        return linear_attention(q, k, v, temperature)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> Tuple[Optional[Tensor], ...]:
        """Gradients of ``q``, ``k``, ``v``, ``temperature`` (None for those not needed)."""
        q, k, v, temperature = ctx.saved_tensors
        need_q, need_k, need_v, need_t = ctx.needs_input_grad[:4]
        B, h = q.shape[0], q.shape[2]
        dtype = torch.promote_types(q.dtype, torch.float32)
        grad_q = grad_k = grad_v = grad_t = None
        with torch.autocast(device_type=q.device.type, enabled=False):
            qr = torch.relu_(_heads_major(q, dtype))  # (B*h, N, d)
            kr = torch.relu_(_heads_major(k, dtype))
            ks = kr.sum(dim=1, keepdim=True)  # (B*h, 1, d)
            z = torch.bmm(qr, ks.transpose(1, 2))  # (B*h, N, 1)
            denom = z.clamp_min(LINEAR_ATTENTION_DENOM_MIN)
            g = _heads_major(grad, dtype).div_(denom)  # (B*h, N, e)
            t = temperature.to(dtype)
            if need_q or need_k or need_t:
                vf = _heads_major(v, dtype)
                s = torch.bmm(kr.transpose(1, 2), vf)  # (B*h, d, e)
            if need_q or need_k:
                p = torch.bmm(g, _times_temperature(s, B, t).transpose(1, 2))  # (B*h, N, d)
                grad_z = torch.einsum('bnd,bnd->bn', qr, p).unsqueeze(-1).div_(denom).neg_()
                grad_z = _threshold_backward(grad_z, z, LINEAR_ATTENTION_DENOM_MIN)
                if need_q:
                    grad_q = _tokens_major(_threshold_backward(p.baddbmm_(grad_z, ks), qr, 0), B, q.dtype)
                del p
            if need_k or need_v or need_t:
                grad_kv = torch.bmm(qr.transpose(1, 2), g)  # (B*h, d, e)
            if need_t:
                grad_t = (grad_kv * s).view(B, h, *s.shape[1:]).sum_to_size(temperature.shape).to(temperature.dtype)
            if need_k or need_v:
                grad_s = _times_temperature(grad_kv, B, t)
                if need_v:
                    grad_v = _tokens_major(torch.bmm(kr, grad_s), B, v.dtype)
                if need_k:
                    grad_kr = torch.bmm(vf, grad_s.transpose(1, 2)).add_(torch.bmm(grad_z.transpose(1, 2), qr))
                    grad_k = _tokens_major(_threshold_backward(grad_kr, kr, 0), B, k.dtype)
        return grad_q, grad_k, grad_v, grad_t


def _heads_major(x: Tensor, dtype: torch.dtype) -> Tensor:
    """(B, N, heads, d) of any strides -> a contiguous (B * heads, N, d) copy in ``dtype`` (one pass)."""
    B, N, h, d = x.shape
    out = torch.empty((B, h, N, d), dtype=dtype, device=x.device)
    out.copy_(x.transpose(1, 2))
    return out.view(B * h, N, d)


def _tokens_major(x: Tensor, batch: int, dtype: torch.dtype) -> Tensor:
    """Inverse of :func:`_heads_major` (a view where ``dtype`` is ``x``'s): (B * heads, N, d) -> (B, N, heads, d)."""
    return x.view(batch, -1, *x.shape[1:]).transpose(1, 2).to(dtype)


def _times_temperature(x: Tensor, batch: int, temperature: Tensor) -> Tensor:
    """(B * heads, d, e) ``x`` times the temperature, which broadcasts against ``x`` seen as (B, heads, d, e)."""
    return (x.view(batch, -1, *x.shape[1:]) * temperature).view(x.shape)


def _threshold_backward(grad: Tensor, x: Tensor, threshold: float) -> Tensor:
    """``grad`` where ``x > threshold``, else 0: the backward of ``relu`` and of ``clamp_min`` (ties get 0)."""
    return torch.ops.aten.threshold_backward(grad, x, threshold)
