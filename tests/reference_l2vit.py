"""A plain, slow, independent re-statement of the authors' L²ViT ImageNet classifier (test oracle only).

Written from ``L2VIT_SPEC.md`` (torch only, nothing imported from ``l2vit``). It follows the authors' layout: tokens
travel as (B, N, C) with the spatial size (H, W) carried alongside, and are transposed to NCHW for every
convolution. Parameter names are the authors' (``official_tiny_keys.tsv``), so ``state_dict()`` keys equal those
of the released checkpoints.

Clarity over speed: window attention loops over windows and heads in Python with an explicit softmax; linear
attention computes ``k^T v`` first exactly as the spec writes it.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


# ---------------------------------------------------------------------------------------------------- layout helpers
def tokens_to_map(x: Tensor, H: int, W: int) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W)."""
    B, N, C = x.shape
    assert N == H * W, (N, H, W)
    return x.transpose(1, 2).reshape(B, C, H, W)


def map_to_tokens(x: Tensor) -> Tuple[Tensor, int, int]:
    """(B, C, H, W) -> ((B, H*W, C), H, W)."""
    B, C, H, W = x.shape
    return x.flatten(2).transpose(1, 2), H, W


def pad_right_bottom(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad an NCHW map on the right and bottom to multiples of ``multiple``."""
    H, W = x.shape[-2:]
    pad_h = (multiple - H % multiple) % multiple
    pad_w = (multiple - W % multiple) % multiple
    return F.pad(x, (0, pad_w, 0, pad_h))


# ------------------------------------------------------------------------------------------- stem / downsampling
class RefConvStem(nn.Module):
    """The authors' ``proj`` holder: ``proj.proj`` is Conv-BN-ReLU-Conv-BN (indices 0, 1, 2, 3, 4)."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_chans, dim // 2, kernel_size=3, stride=2, padding=1, bias=True),
            nn.BatchNorm2d(dim // 2),
            nn.ReLU(),
            nn.Conv2d(dim // 2, dim, kernel_size=3, stride=2, padding=1, bias=True),
            nn.BatchNorm2d(dim),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class RefStem(nn.Module):
    """downsample_layers.0: pad to a multiple of 4, conv stem, flatten, LayerNorm."""

    def __init__(self, in_chans: int, dim: int) -> None:
        super().__init__()
        self.proj = RefConvStem(in_chans, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, img: Tensor) -> Tuple[Tensor, int, int]:
        img = pad_right_bottom(img, 4)
        y = self.proj(img)
        tokens, H, W = map_to_tokens(y)
        return self.norm(tokens), H, W


class RefDownsample(nn.Module):
    """downsample_layers.i (i >= 1): LayerNorm on tokens, to NCHW, pad to even, Conv 2x2 stride 2, flatten."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2, bias=True)
        self.norm = nn.LayerNorm(in_dim)

    def forward(self, x: Tensor, H: int, W: int) -> Tuple[Tensor, int, int]:
        x = self.norm(x)
        m = tokens_to_map(x, H, W)
        m = pad_right_bottom(m, 2)
        m = self.proj(m)
        return map_to_tokens(m)


# ---------------------------------------------------------------------------------------------------- small parts
class RefCPE(nn.Module):
    """x + dwconv3x3(x) on the token map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=1, groups=dim, bias=True)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        m = tokens_to_map(x, H, W)
        m = m + self.proj(m)
        return map_to_tokens(m)[0]


class RefMlp(nn.Module):

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))  # exact (erf) GELU


class RefLCM(nn.Module):
    """Local concentration module: dwconv7x7 -> GELU -> BN -> dwconv7x7 on the token map."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True)
        self.bn = nn.BatchNorm2d(dim)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim, bias=True)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        m = tokens_to_map(x, H, W)
        m = self.conv2(self.bn(F.gelu(self.conv1(m))))
        return map_to_tokens(m)[0]


# ---------------------------------------------------------------------------------------------------- attention
class RefWindowAttention(nn.Module):
    """Softmax self-attention, one window and one head at a time."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def attend_one_window(self, tokens: Tensor) -> Tensor:
        """(n, C) tokens of one window -> (n, C)."""
        n, C = tokens.shape
        hd = C // self.num_heads
        qkv = self.qkv(tokens)  # (n, 3C): [q | k | v], each split into heads of hd channels
        q_all, k_all, v_all = qkv[:, :C], qkv[:, C:2 * C], qkv[:, 2 * C:]
        heads = []
        for h in range(self.num_heads):
            q = q_all[:, h * hd:(h + 1) * hd]
            k = k_all[:, h * hd:(h + 1) * hd]
            v = v_all[:, h * hd:(h + 1) * hd]
            scores = (q @ k.t()) * hd**-0.5
            weights = torch.softmax(scores, dim=-1)
            heads.append(weights @ v)
        return self.proj(torch.cat(heads, dim=-1))

    def forward(self, m: Tensor, window_size: int) -> Tensor:
        """(B, C, Hp, Wp) map with Hp, Wp multiples of window_size -> same shape."""
        B, C, Hp, Wp = m.shape
        ws = window_size
        out = torch.zeros_like(m)
        for b in range(B):
            for r in range(Hp // ws):
                for c in range(Wp // ws):
                    win = m[b, :, r * ws:(r + 1) * ws, c * ws:(c + 1) * ws]  # (C, ws, ws)
                    tokens = win.reshape(C, ws * ws).t()  # (ws*ws, C), row-major inside the window
                    res = self.attend_one_window(tokens)
                    out[b, :, r * ws:(r + 1) * ws, c * ws:(c + 1) * ws] = res.t().reshape(C, ws, ws)
        return out


class RefLinearAttention(nn.Module):
    """ReLU linear attention over all tokens, k^T v first, learnable temperature, denominator clamped at 100."""

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        hd = dim // num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1) * hd**-0.5)
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        nh = self.num_heads
        hd = C // nh
        qkv = self.qkv(x).reshape(B, N, 3, nh, hd).permute(2, 0, 3, 1, 4)  # (3, B, nh, N, hd)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = torch.relu(q)
        k = torch.relu(k)
        kv = k.transpose(-2, -1) @ v  # (B, nh, hd, hd): sum over tokens first
        num = q @ (kv * self.temperature)  # (B, nh, N, hd)
        k_sum = k.sum(dim=-2, keepdim=True)  # (B, nh, 1, hd)
        denom = (q * k_sum).sum(dim=-1, keepdim=True)  # (B, nh, N, 1) = q . sum_tokens k
        denom = torch.clamp(denom, min=100.0)
        out = num / denom
        out = out.transpose(1, 2).reshape(B, N, C)
        return self.proj(out)


# ---------------------------------------------------------------------------------------------------- blocks
class RefLocalBlock(nn.Module):
    """Even block of a stage: CPE_a, window attention (pad after norm1), CPE_b, MLP."""

    def __init__(self, dim: int, num_heads: int, window_size: int, mlp_ratio: float) -> None:
        super().__init__()
        self.window_size = window_size
        self.cpe = nn.ModuleList([RefCPE(dim), RefCPE(dim)])
        self.norm1 = nn.LayerNorm(dim)
        self.attn = RefWindowAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = RefMlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        s = self.cpe[0](x, H, W)
        y = self.norm1(s)
        m = tokens_to_map(y, H, W)
        m = pad_right_bottom(m, self.window_size)  # zeros after the norm; they act as keys/values
        m = self.attn(m, self.window_size)
        m = m[:, :, :H, :W]
        y = map_to_tokens(m)[0]
        x = s + y
        x = self.cpe[1](x, H, W)
        x = x + self.mlp(self.norm2(x))
        return x


class RefGlobalBlock(nn.Module):
    """Odd block of a stage: CPE, linear attention, LCM, MLP."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.cpe = nn.ModuleList([RefCPE(dim)])
        self.norm1 = nn.LayerNorm(dim)
        self.attn = RefLinearAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = RefMlp(dim, int(dim * mlp_ratio))
        self.norm3 = nn.LayerNorm(dim)
        self.local_mp = RefLCM(dim)

    def forward(self, x: Tensor, H: int, W: int) -> Tensor:
        x = self.cpe[0](x, H, W)
        x = x + self.attn(self.norm1(x))
        x = x + self.local_mp(self.norm3(x), H, W)
        x = x + self.mlp(self.norm2(x))
        return x


# ---------------------------------------------------------------------------------------------------- classifier
class ReferenceL2ViT(nn.Module):
    """The authors' ImageNet classifier: four stages, final LayerNorm ``norm``, mean over tokens, Linear ``head``."""

    def __init__(self,
                 embed_dims: Sequence[int],
                 depths: Sequence[int],
                 num_heads: Sequence[int],
                 num_classes: int = 1000,
                 window_size: int = 7,
                 mlp_ratio: float = 4.,
                 in_chans: int = 3) -> None:
        super().__init__()
        assert len(embed_dims) == len(depths) == len(num_heads) == 4
        self.embed_dims = list(embed_dims)
        self.depths = list(depths)
        self.window_size = window_size
        self.downsample_layers = nn.ModuleList()
        self.downsample_layers.append(RefStem(in_chans, embed_dims[0]))
        for i in range(1, 4):
            self.downsample_layers.append(RefDownsample(embed_dims[i - 1], embed_dims[i]))
        self.stages = nn.ModuleList()
        for i in range(4):
            blocks = []
            for j in range(depths[i]):
                if j % 2 == 0:
                    blocks.append(RefLocalBlock(embed_dims[i], num_heads[i], window_size, mlp_ratio))
                else:
                    blocks.append(RefGlobalBlock(embed_dims[i], num_heads[i], mlp_ratio))
            self.stages.append(nn.ModuleList(blocks))
        self.norm = nn.LayerNorm(embed_dims[-1])
        self.head = nn.Linear(embed_dims[-1], num_classes)

    def _run_stages(self, img: Tensor) -> Tuple[List[Tensor], Tensor]:
        maps = []
        x, H, W = self.downsample_layers[0](img)
        for i in range(4):
            if i > 0:
                x, H, W = self.downsample_layers[i](x, H, W)
            for block in self.stages[i]:
                x = block(x, H, W)
            maps.append(tokens_to_map(x, H, W))
        return maps, x

    def forward_features(self, img: Tensor) -> List[Tensor]:
        """Per-stage token maps (B, C_i, H_i, W_i) after each stage, before any output norm."""
        return self._run_stages(img)[0]

    def forward(self, img: Tensor) -> Tensor:
        """(B, 3, H, W) images -> (B, num_classes) logits (norm before pooling)."""
        _, x = self._run_stages(img)
        x = self.norm(x)
        x = x.mean(dim=1)
        return self.head(x)
