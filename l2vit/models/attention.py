"""The two token mixers of L²ViT: local window self-attention and linear global attention."""
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

#: The linear attention's denominator is clamped from below at this value. It is part of the model (the paper
#: reports that it stabilises training), not an epsilon.
LINEAR_ATTENTION_DENOM_MIN = 100.0


def window_partition(x: Tensor, window_size: int) -> Tensor:
    """(B, H, W, C) with H, W multiples of ``window_size`` -> (B * num_windows, window_size**2, C)."""
    B, H, W, C = x.shape
    x = x.reshape(B, H // window_size, window_size, W // window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window_size * window_size, C)


def window_reverse(windows: Tensor, window_size: int, H: int, W: int) -> Tensor:
    """Inverse of :func:`window_partition`: (B * num_windows, window_size**2, C) -> (B, H, W, C)."""
    C = windows.shape[-1]
    x = windows.reshape(-1, H // window_size, W // window_size, window_size, window_size, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, C)


class WindowAttention(nn.Module):
    """Multi-head softmax self-attention inside each window (no shift, no relative position bias)."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B', N, C) windows of tokens -> (B', N, C)."""
        return self.attend(self.qkv(x))

    def attend(self, qkv: Tensor) -> Tensor:
        """The attention from the ``qkv`` projection on: (B', N, 3C) -> (B', N, C)."""
        B, N, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        # unbind, not indexing: its backward stacks the three gradients instead of zero-filling qkv-sized buffers
        q, k, v = qkv.view(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        # Default scale of SDPA is head_dim ** -0.5, the model's scale.
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class LinearAttention(nn.Module):
    """Linear global attention with ReLU feature maps, a per-head learnable temperature and a clamped denominator.

    For every head, with ``q = relu(q)``, ``k = relu(k)``::

        out = q @ (k^T v * temperature) / max(q @ sum_n k_n, 100)

    ``k^T v`` is computed first, so the cost is linear in the number of tokens. The core runs in float32 even under
    fp16/bf16 autocast (sums over tens of thousands of tokens overflow fp16) and is cast back.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.temperature = nn.Parameter(torch.full((num_heads, 1, 1), head_dim**-0.5))
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, N, C) tokens -> (B, N, C)."""
        return self.attend(self.qkv(x), x.dtype)

    def attend(self, qkv: Tensor, dtype: torch.dtype) -> Tensor:
        """The attention from the ``qkv`` projection on: (B, N, 3C) -> (B, N, C); the core's float32 output is cast
        to ``dtype`` (the tokens') before the output projection."""
        B, N, C = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        q, k, v = qkv.view(B, N, 3, self.num_heads, C // self.num_heads).unbind(2)
        out = linear_attention(q, k, v, self.temperature)
        return self.proj(out.reshape(B, N, C).to(dtype))


def linear_attention(q: Tensor, k: Tensor, v: Tensor, temperature: Tensor) -> Tensor:
    """The linear attention core on (B, N, heads, head_dim) tensors; returns (B, N, heads, head_dim) in float32
    (or float64 for float64 inputs).

    When autograd needs it on the CPU (grad mode on and an input requiring grad, not under a TorchScript trace; on
    GPUs the plain ops run until the function has been checked there), the core runs
    as :class:`LinearAttentionFunction`, which keeps only ``q``, ``k``, ``v`` (at their own dtype) and the temperature
    for the backward; otherwise (inference, tracing for export or FLOP counting) as the plain ops. Both compute the
    same forward with the same ops, so their outputs are bit-identical."""
    if (torch.is_grad_enabled() and not torch.jit.is_tracing() and q.device.type == 'cpu'
            and any(t.requires_grad for t in (q, k, v, temperature))):
        return LinearAttentionFunction.apply(q, k, v, temperature)
    return _linear_attention_forward(q, k, v, temperature)


def _linear_attention_forward(q: Tensor, k: Tensor, v: Tensor, temperature: Tensor) -> Tensor:
    """The forward of the core with plain ops, in ``promote_types(q.dtype, float32)`` with autocast disabled."""
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q = torch.relu(q.to(dtype))
        k = torch.relu(k.to(dtype))
        v = v.to(dtype)
        kv = torch.einsum('bnhd,bnhe->bhde', k, v) * temperature.to(dtype)
        denom = torch.einsum('bnhd,bhd->bnh', q, k.sum(dim=1)).clamp_min(LINEAR_ATTENTION_DENOM_MIN)
        return torch.einsum('bnhd,bhde->bnhe', q, kv) / denom.unsqueeze(-1)


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
        return _linear_attention_forward(q, k, v, temperature)

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
