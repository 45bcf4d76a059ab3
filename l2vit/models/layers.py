"""Small building blocks of L²ViT: stem, downsampling, position encoding, LCM and MLP.

Tokens travel between blocks as channels-last maps of shape (B, H, W, C). A channels-last map viewed as NCHW with
``permute(0, 3, 1, 2)`` is a valid ``torch.channels_last`` tensor, so the depthwise convolutions below run on it
without copying the tokens back and forth.

Attribute names are the authors' (their checkpoints load without renaming); the class names say what each part is.
"""
from typing import Optional

import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import Tensor, nn


def to_nchw(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W) as a view (channels-last memory)."""
    return x.permute(0, 3, 1, 2)


def to_nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H, W, C) as a view."""
    return x.permute(0, 2, 3, 1)


def pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad an NCHW map on the right and bottom so that H and W are multiples of ``multiple``.

    The pad is applied whatever it is, 0 included: the sizes stay symbolic under ``torch.export`` with dynamic H and
    W, and under a TorchScript trace (ONNX export), instead of fixing the traced size's choice of a branch."""
    height, width = x.shape[-2:]
    return F.pad(x, (0, (width + multiple - 1) // multiple * multiple - width,
                     0, (height + multiple - 1) // multiple * multiple - height))


class ConditionalPositionEncoding(nn.Module):
    """CPE: ``x + dwconv3x3(x)`` on the token map (no activation)."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + to_nhwc(self.proj(to_nchw(x)))


class LocalConcentration(nn.Module):
    """LCM, the local concentration module: dwconv7x7 -> GELU -> BN -> dwconv7x7 on the (B, H, W, C) token map."""

    def __init__(self, dim: int, kernel_size: int = 7, norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.conv1 = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim)
        self.act = nn.GELU()
        self.bn = build_norm_layer(norm_cfg or dict(type='BN'), dim)[1]
        self.conv2 = nn.Conv2d(dim, dim, kernel_size, padding=padding, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        return to_nhwc(self.conv2(self.bn(self.act(self.conv1(to_nchw(x))))))


class Mlp(nn.Module):
    """Linear(C -> rC) -> GELU -> Linear(rC -> C)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class ConvStem(nn.Module):
    """Two 3x3 stride-2 convolutions with norms (stride 4 in all); the authors' ``proj`` Sequential layout."""

    def __init__(self, in_channels: int, embed_dim: int, norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        norm_cfg = norm_cfg or dict(type='BN')
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, embed_dim // 2, kernel_size=3, stride=2, padding=1),
            build_norm_layer(norm_cfg, embed_dim // 2)[1],
            nn.ReLU(),
            nn.Conv2d(embed_dim // 2, embed_dim, kernel_size=3, stride=2, padding=1),
            build_norm_layer(norm_cfg, embed_dim)[1],
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class StemEmbed(nn.Module):
    """Stage-0 downsampling: pad the image to a multiple of 4, conv stem, LayerNorm on the tokens."""

    def __init__(self, in_channels: int, embed_dim: int, norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.proj = ConvStem(in_channels, embed_dim, norm_cfg)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) image -> (B, ceil(H/4), ceil(W/4), C) tokens."""
        return self.norm(to_nhwc(self.proj(pad_to_multiple(x, 4))))


class Downsample(nn.Module):
    """Stages 1-3 downsampling: LayerNorm(C_in) on the tokens, pad to even size, Conv 2x2 stride 2 (no norm after)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.proj = nn.Conv2d(in_dim, out_dim, kernel_size=2, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        """(B, H, W, C_in) -> (B, ceil(H/2), ceil(W/2), C_out)."""
        return to_nhwc(self.proj(pad_to_multiple(to_nchw(self.norm(x)), 2)))
