"""Small building blocks of L²ViT: stem, downsampling, position encoding, LCM and MLP.

Tokens travel between blocks as channels-last maps of shape (B, H, W, C). A channels-last map viewed as NCHW with
``permute(0, 3, 1, 2)`` is a valid ``torch.channels_last`` tensor, so the depthwise convolutions below run on it
without copying the tokens back and forth.

Attribute names are the authors' (their checkpoints load without renaming); the class names say what each part is.
"""
import os
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from .autograd_ops import FAST_WEIGHT_GRAD_WIDTH, after_recomputed, builds_backward_graph, depthwise_conv, patch_conv


def to_nchw(x: Tensor) -> Tensor:
    """(B, H, W, C) -> (B, C, H, W) as a view (channels-last memory)."""
    return x.permute(0, 3, 1, 2)


def to_nhwc(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H, W, C) as a view."""
    return x.permute(0, 2, 3, 1)


def pad_nchw_to_multiple(x: Tensor, multiple: int) -> Tensor:
    """Zero-pad an NCHW map on the right and bottom so that H and W are multiples of ``multiple``.

    Under a TorchScript trace (ONNX export) the sizes are traced values and the padding is always applied, a pad of
    0 included, so that the graph computes it from the input's size instead of keeping the traced size's choice."""
    pad_h = -x.shape[-2] % multiple
    pad_w = -x.shape[-1] % multiple
    if torch.jit.is_tracing() or pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


class ConditionalPositionEncoding(nn.Module):
    """CPE: ``x + dwconv3x3(x)`` on the token map (no activation)."""

    def __init__(self, dim: int, kernel_size: int = 3) -> None:
        super().__init__()
        self.proj = nn.Conv2d(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + to_nhwc(self.proj(to_nchw(x)))


def _autocast_inputs(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """A convolution's inputs cast as CPU autocast casts them (unchanged without autocast), for the convolutions
    below that run an autograd Function with autocast off."""
    if not torch.is_autocast_enabled('cpu'):
        return x, weight, bias
    dtype = torch.get_autocast_dtype('cpu')
    return x.to(dtype), weight.to(dtype), bias.to(dtype) if bias is not None else None


class DepthwiseConv2d(nn.Conv2d):
    """A stride-1 depthwise ``nn.Conv2d`` (same parameters, same outputs) whose training on the CPU is faster.

    When autograd needs its weight gradient on the CPU and the kernel is wider than :data:`FAST_WEIGHT_GRAD_WIDTH`,
    the weight gradient is computed in strips of kernel columns
    (:func:`~l2vit.models.autograd_ops.depthwise_weight_grad`), which oneDNN runs with its fast depthwise kernel:
    for LCM's 7x7 convolutions at 800x1333 about 3.5 times faster than one 7-wide gradient. Elsewhere (inference,
    GPUs, ``torch.compile``) it is a plain ``nn.Conv2d``. Under autocast the inputs are cast as autocast casts a
    convolution's.
    """

    def __init__(self, channels: int, kernel_size: int, padding: int, bias: bool = True) -> None:
        super().__init__(channels, channels, kernel_size, padding=padding, groups=channels, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if not (self.kernel_size[1] > FAST_WEIGHT_GRAD_WIDTH and x.device.type == 'cpu'
                and self.weight.requires_grad and builds_backward_graph(self.weight)):
            return super().forward(x)
        x, weight, bias = _autocast_inputs(x, self.weight, self.bias)
        with torch.autocast('cpu', enabled=False):
            return depthwise_conv(x, weight, bias, self.padding)


class PatchConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose kernel is its stride, without padding (same parameters, same outputs), whose training
    on the CPU is faster: where autograd needs its weight gradient on the CPU, the gradient is computed as matrix
    products (:func:`~l2vit.models.autograd_ops.patch_weight_grad`) instead of by oneDNN's strided weight-gradient
    kernel. Elsewhere (inference, GPUs, ``torch.compile``, tracing) it is a plain ``nn.Conv2d``. Under autocast the
    inputs are cast as autocast casts a convolution's."""

    def __init__(self, in_channels: int, out_channels: int, patch_size: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, patch_size, stride=patch_size, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if not (x.device.type == 'cpu' and self.weight.requires_grad and builds_backward_graph(self.weight)):
            return super().forward(x)
        x, weight, bias = _autocast_inputs(x, self.weight, self.bias)
        with torch.autocast('cpu', enabled=False):
            return patch_conv(x, weight, bias)


def side_effect_free(norm: nn.Module) -> Optional[Callable[[Tensor], Tensor]]:
    """``norm``'s forward without side effects, to recompute it in backward: ``norm`` itself, or for a BatchNorm in
    training the normalisation by the batch statistics without updating the running ones. None where that cannot
    be had locally (SyncBN in training: its statistics come from all processes)."""
    if not (isinstance(norm, _BatchNorm) and norm.training):
        return norm
    if type(norm) not in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return None
    return lambda t: F.batch_norm(t, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)


class LocalConcentration(nn.Module):
    """LCM, the local concentration module: dwconv7x7 -> GELU -> BN -> dwconv7x7 on the token map."""

    def __init__(self, dim: int, kernel_size: int = 7, norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.conv1 = DepthwiseConv2d(dim, kernel_size, padding)
        self.act = nn.GELU()
        self.bn = build_norm_layer(norm_cfg or dict(type='BN'), dim)[1]
        self.conv2 = DepthwiseConv2d(dim, kernel_size, padding)

    def forward(self, x: Tensor, norm: Optional[nn.Module] = None) -> Tensor:
        """LCM of the (B, H, W, C) map ``x``, or of ``norm(x)`` with a ``norm`` (the block's LayerNorm in front of
        it). In training the inputs of the two convolutions are recomputed in backward instead of kept
        (:func:`~l2vit.models.autograd_ops.after_recomputed`): of the five maps the plain graph keeps, two are kept
        (``x`` and the first convolution's output), unless the BN is a SyncBN in training (then three)."""
        if not builds_backward_graph(x, self.conv1.weight):
            x = to_nchw(norm(x) if norm is not None else x)
            return to_nhwc(self.conv2(self.bn(self.act(self.conv1(x)))))
        norm_params = list(norm.parameters()) if norm is not None else []
        h = after_recomputed(self.conv1, lambda t: to_nchw(norm(t) if norm is not None else t), x, norm_params)
        bn = side_effect_free(self.bn)
        if bn is None:
            return to_nhwc(self.conv2(self.bn(self.act(h))))
        return to_nhwc(after_recomputed(self.conv2, lambda t: self.bn(self.act(t)), h, list(self.bn.parameters()),
                                        recompute=lambda t: bn(self.act(t))))


def _env_switch(name: str, default: bool) -> bool:
    value = os.environ.get(name, '').strip().lower()
    if not value:
        return default
    if value not in ('0', '1', 'false', 'true'):
        raise ValueError(f'{name}={os.environ[name]!r}: expected 1/true (on) or 0/false (off).')
    return value in ('1', 'true')


#: The switch for the cache-blocked CPU inference paths (:func:`cache_blocked`): on by default; off with the
#: environment variable ``L2VIT_CACHE_BLOCKED=0`` at import, or by setting this attribute to False at run time
#: (e.g. to profile or debug the plain path). Outputs are the same either way; only speed and peak memory change.
CACHE_BLOCKED: bool = _env_switch('L2VIT_CACHE_BLOCKED', True)


def cache_blocked(x: Tensor) -> bool:
    """Whether a layer should process ``x`` in cache-sized pieces: eager CPU inference, while :data:`CACHE_BLOCKED`
    is on. Large intermediate tensors cost more there than the arithmetic on them (each freshly allocated page is
    faulted in), while in training autograd keeps them anyway and on GPUs small pieces would underuse the device.
    Under ``torch.compile`` the compiler plans memory itself, and a loop over pieces would only unroll into a much
    larger graph; under a TorchScript trace (ONNX export) the loop would be unrolled for the traced size only."""
    return (CACHE_BLOCKED and x.device.type == 'cpu' and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling() and not torch.jit.is_tracing())


class Mlp(nn.Module):
    """Linear(C -> rC) -> GELU -> Linear(rC -> C).

    Inference on the CPU (:func:`cache_blocked`) runs it :attr:`chunk_tokens` tokens at a time: the r-times wider
    hidden activations of a chunk stay in cache instead of being written out and read back for the whole map
    (66800 x 384 floats, 100 MB, in the first stage at 800x1333), which is faster and keeps that tensor out of the
    peak memory. Each output row is computed as without chunks.
    """

    #: Rows per chunk: enough for efficient matrix products, few enough that a chunk's hidden layer stays in cache.
    chunk_tokens: int = 2048

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor, norm: Optional[nn.Module] = None) -> Tensor:
        """``fc2(act(fc1(x)))``, or of ``norm(x)`` with a ``norm`` (the block's LayerNorm in front of it). In
        training neither ``norm(x)`` nor ``act(fc1(...))`` is kept for backward; both are recomputed there
        (:func:`~l2vit.models.autograd_ops.after_recomputed`), which saves 1 + ``hidden_dim / dim`` activations of
        the input's size per MLP, and both directions go a block of tokens at a time."""
        if builds_backward_graph(x, self.fc1.weight):
            h = self.fc1(x) if norm is None else after_recomputed(self.fc1, norm, x, list(norm.parameters()),
                                                                  rowwise=True)
            return after_recomputed(self.fc2, self.act, h, rowwise=True)
        if norm is not None:
            x = norm(x)
        if not cache_blocked(x) or x.numel() <= self.chunk_tokens * x.shape[-1]:
            return self.fc2(self.act(self.fc1(x)))
        tokens = x.reshape(-1, x.shape[-1])
        out = None
        for start in range(0, tokens.shape[0], self.chunk_tokens):
            piece = self.fc2(self.act(self.fc1(tokens[start:start + self.chunk_tokens])))
            if out is None:  # the pieces' dtype: autocast may have chosen a lower precision
                out = piece.new_empty(tokens.shape[0], piece.shape[1])
            out[start:start + self.chunk_tokens] = piece
        return out.view(*x.shape[:-1], -1)


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
        return self.norm(to_nhwc(self.proj(pad_nchw_to_multiple(x, 4))))


class Downsample(nn.Module):
    """Stages 1-3 downsampling: LayerNorm(C_in) on the tokens, pad to even size, Conv 2x2 stride 2 (no norm after;
    a :class:`PatchConv2d`)."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.proj = PatchConv2d(in_dim, out_dim, 2)

    def forward(self, x: Tensor) -> Tensor:
        return to_nhwc(self.proj(pad_nchw_to_multiple(to_nchw(self.norm(x)), 2)))
