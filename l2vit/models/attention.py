"""The two token mixers of L²ViT: local window self-attention and linear global attention."""
import torch
import torch.nn.functional as F
from torch import Tensor, nn

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
        x = F.scaled_dot_product_attention(q, k, v)  # its default scale, head_dim ** -0.5, is the model's
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
        out = self.core(q, k, v, self.temperature)
        return self.proj(out.reshape(B, N, C).to(dtype))

    @staticmethod
    def core(q: Tensor, k: Tensor, v: Tensor, temperature: Tensor) -> Tensor:
        """:func:`linear_attention`; a CPU variant of this module swaps in a hand-written backward here."""
        return linear_attention(q, k, v, temperature)


def linear_attention(q: Tensor, k: Tensor, v: Tensor, temperature: Tensor) -> Tensor:
    """The linear attention core on (B, N, heads, head_dim) tensors -> (B, N, heads, head_dim), computed in
    ``promote_types(q.dtype, float32)`` (float32, or float64 for float64 inputs) with autocast disabled."""
    dtype = torch.promote_types(q.dtype, torch.float32)
    with torch.autocast(device_type=q.device.type, enabled=False):
        q = torch.relu(q.to(dtype))
        k = torch.relu(k.to(dtype))
        v = v.to(dtype)
        kv = torch.einsum('bnhd,bnhe->bhde', k, v) * temperature.to(dtype)
        denom = torch.einsum('bnhd,bhd->bnh', q, k.sum(dim=1)).clamp_min(LINEAR_ATTENTION_DENOM_MIN)
        return torch.einsum('bnhd,bhde->bnhe', q, kv) / denom.unsqueeze(-1)
