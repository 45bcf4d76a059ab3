"""CPU variants of L²ViT's modules, and :func:`use_cpu_fast_paths`, which swaps them in.

Each variant is a subclass without state of its own (same parameters, buffers and state-dict keys). Its forward
computes the plain module's outputs, gradients and BatchNorm statistics, faster or in less memory, where eager
PyTorch runs on the CPU:

* training: the inputs of the linear layers and convolutions that follow cheap element-wise work (LayerNorm, GELU,
  BatchNorm, padding) are recomputed in backward instead of kept (:func:`~.functions.after_recomputed`), which
  saves about half the activation memory; the linear attention core has a hand-written backward
  (:class:`~.functions.LinearAttentionFunction`); LCM's 7x7 depthwise and the 2x2 downsampling convolutions compute
  their weight gradients in ways oneDNN runs several times faster (:class:`DepthwiseConv2d`, :class:`PatchConv2d`).
* inference: the MLP goes :data:`CHUNK_TOKENS` tokens at a time and window attention a band of window rows at a
  time, so that their large intermediates stay in cache instead of being written out whole.

Everywhere else (GPUs, ``torch.compile``, ``torch.export``, ``torch.jit.trace``) the variants run the plain forward.
"""
from typing import Callable, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..attention import LinearAttention, window_partition, window_reverse
from ..blocks import LinearGlobalBlock, LocalWindowBlock
from ..layers import Downsample, LocalConcentration, Mlp, to_nchw, to_nhwc
from .functions import (FAST_WEIGHT_GRAD_WIDTH, LinearAttentionFunction, after_recomputed, builds_backward_graph,
                        depthwise_conv, patch_conv)

#: Tokens per chunk of the MLP in CPU inference: enough for efficient matrix products, few enough that a chunk's
#: r-times wider hidden layer stays in cache (the whole one is 100 MB in the first stage at 800x1333).
CHUNK_TOKENS = 2048
#: Tokens per band of window rows in CPU inference (at least one row of windows).
BAND_TOKENS = 2048


def cache_blocked(x: Tensor) -> bool:
    """Whether a layer should process ``x`` in cache-sized pieces: eager CPU inference. Large intermediate tensors
    cost more there than the arithmetic on them (each freshly allocated page is faulted in), while in training
    autograd keeps them anyway; compilers plan memory themselves and traces would unroll the loop for one size."""
    return (x.device.type == 'cpu' and not torch.is_grad_enabled() and not torch.compiler.is_compiling()
            and not torch.jit.is_tracing())


def _autocast_inputs(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """A convolution's inputs cast as CPU autocast casts them (unchanged without autocast), for the convolutions
    below that run an autograd Function with autocast off."""
    if not torch.is_autocast_enabled('cpu'):
        return x, weight, bias
    dtype = torch.get_autocast_dtype('cpu')
    return x.to(dtype), weight.to(dtype), bias.to(dtype) if bias is not None else None


class DepthwiseConv2d(nn.Conv2d):
    """A stride-1 depthwise ``nn.Conv2d`` whose weight gradient, for kernels wider than
    :data:`~.functions.FAST_WEIGHT_GRAD_WIDTH`, is computed in strips of kernel columns
    (:func:`~.functions.depthwise_weight_grad`): for LCM's 7x7 convolutions at 800x1333 about 3.5 times faster."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.kernel_size[1] > FAST_WEIGHT_GRAD_WIDTH and self.weight.requires_grad
                and builds_backward_graph(x, self.weight)):
            return super().forward(x)
        x, weight, bias = _autocast_inputs(x, self.weight, self.bias)
        with torch.autocast('cpu', enabled=False):
            return depthwise_conv(x, weight, bias, self.padding)


class PatchConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` whose kernel is its stride, without padding, whose weight gradient is computed as matrix
    products (:func:`~.functions.patch_weight_grad`) instead of by oneDNN's strided weight-gradient kernel."""

    def forward(self, x: Tensor) -> Tensor:
        if not (self.weight.requires_grad and builds_backward_graph(x, self.weight)):
            return super().forward(x)
        x, weight, bias = _autocast_inputs(x, self.weight, self.bias)
        with torch.autocast('cpu', enabled=False):
            return patch_conv(x, weight, bias)


class CPULinearAttention(LinearAttention):
    """:class:`~l2vit.models.attention.LinearAttention` whose core keeps only q, k, v for its backward."""

    @staticmethod
    def core(q: Tensor, k: Tensor, v: Tensor, temperature: Tensor) -> Tensor:
        if builds_backward_graph(q, k, v, temperature):
            return LinearAttentionFunction.apply(q, k, v, temperature)
        return LinearAttention.core(q, k, v, temperature)


def side_effect_free(norm: nn.Module) -> Optional[Callable[[Tensor], Tensor]]:
    """``norm``'s forward without side effects, to recompute it in backward: ``norm`` itself, or for a BatchNorm in
    training the normalisation by the batch statistics without updating the running ones. None where that cannot
    be had locally (SyncBN in training: its statistics come from all processes)."""
    if not (isinstance(norm, _BatchNorm) and norm.training):
        return norm
    if type(norm) not in (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d):
        return None
    return lambda t: F.batch_norm(t, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)


def mlp_after_norm(mlp: Mlp, norm: nn.Module, x: Tensor) -> Tensor:
    """``mlp(norm(x))`` on a (B, H, W, C) map. Training: neither ``norm(x)`` nor the hidden activations are kept
    for backward (1 + ``hidden / C`` activations of ``x``'s size less per MLP), and both directions go a block of
    tokens at a time. Inference: :data:`CHUNK_TOKENS` tokens at a time, each output row computed as without chunks."""
    if builds_backward_graph(x, mlp.fc1.weight):
        h = after_recomputed(mlp.fc1, norm, x, list(norm.parameters()), rowwise=True)
        return after_recomputed(mlp.fc2, mlp.act, h, rowwise=True)
    x = norm(x)
    if not cache_blocked(x) or x.numel() <= CHUNK_TOKENS * x.shape[-1]:
        return mlp(x)
    tokens = x.reshape(-1, x.shape[-1])
    out = None
    for start in range(0, tokens.shape[0], CHUNK_TOKENS):
        piece = mlp(tokens[start:start + CHUNK_TOKENS])
        if out is None:  # the pieces' dtype: autocast may have chosen a lower precision
            out = piece.new_empty(tokens.shape[0], piece.shape[1])
        out[start:start + CHUNK_TOKENS] = piece
    return out.view(*x.shape[:-1], -1)


def lcm_after_norm(lcm: LocalConcentration, norm: nn.Module, x: Tensor) -> Tensor:
    """``lcm(norm(x))`` on a (B, H, W, C) map. In training the inputs of the two convolutions are recomputed in
    backward instead of kept: of the five maps the plain graph keeps, two are kept (``x`` and the first
    convolution's output), unless the BN is a SyncBN in training (then three)."""
    if not builds_backward_graph(x, lcm.conv1.weight):
        return lcm(norm(x))
    h = after_recomputed(lcm.conv1, lambda t: to_nchw(norm(t)), x, list(norm.parameters()))
    bn = side_effect_free(lcm.bn)
    if bn is None:
        return to_nhwc(lcm.conv2(lcm.bn(lcm.act(h))))
    return to_nhwc(after_recomputed(lcm.conv2, lambda t: lcm.bn(lcm.act(t)), h, list(lcm.bn.parameters()),
                                    recompute=lambda t: bn(lcm.act(t))))


class CPULocalWindowBlock(LocalWindowBlock):
    """:class:`~l2vit.models.blocks.LocalWindowBlock` for eager CPU execution. Training: the normalised, padded
    windows are not kept for backward but recomputed there. Inference: one band of window rows at a time."""

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, C = x.shape
        ws = self.window_size
        x = self.cpe[0](x)
        if builds_backward_graph(x, self.attn.qkv.weight):
            pad_h, pad_w = -H % ws, -W % ws

            def windows(t: Tensor) -> Tensor:  # LN, zero padding to whole windows, partition
                t = self.norm1(t)
                return window_partition(F.pad(t, (0, 0, 0, pad_w, 0, pad_h)) if pad_h or pad_w else t, ws)

            qkv = after_recomputed(self.attn.qkv, windows, x, list(self.norm1.parameters()))
            y = window_reverse(self.attn.attend(qkv), ws, H + pad_h, W + pad_w)[:, :H, :W]
        elif cache_blocked(x):
            y = self._banded_window_attention(self.norm1(x))
        else:
            y = self.window_attention(self.norm1(x))
        x = x + self.drop_path(y)
        x = self.cpe[1](x)
        return x + self.drop_path(mlp_after_norm(self.mlp, self.norm2, x))

    def _banded_window_attention(self, x: Tensor) -> Tensor:
        """:meth:`window_attention` one band of window rows (about :data:`BAND_TOKENS` tokens) at a time, so that
        the band's qkv, attention output and window copies stay in cache; every window is computed as in one go."""
        B, H, W, C = x.shape
        ws = self.window_size
        step = max(1, BAND_TOKENS // (ws * (W + -W % ws))) * ws
        out = None
        for top in range(0, H, step):
            piece = self.window_attention(x[:, top:top + step])
            if out is None:  # the pieces' dtype: autocast may have chosen a lower precision
                out = piece.new_empty(B, H, W, C)
            out[:, top:top + step] = piece
        return out


class CPULinearGlobalBlock(LinearGlobalBlock):
    """:class:`~l2vit.models.blocks.LinearGlobalBlock` for eager CPU execution: in training the LayerNorms'
    outputs are recomputed in backward instead of kept; LCM and MLP as :func:`lcm_after_norm`,
    :func:`mlp_after_norm`."""

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, C = x.shape
        x = self.cpe[0](x)
        if builds_backward_graph(x, self.attn.qkv.weight):
            qkv = after_recomputed(self.attn.qkv, self.norm1, x, list(self.norm1.parameters()), rowwise=True)
            y = self.attn.attend(qkv.reshape(B, H * W, -1), x.dtype).view(B, H, W, C)
        else:
            y = self.global_attention(self.norm1(x))
        x = x + self.drop_path(y)
        x = x + self.drop_path(lcm_after_norm(self.local_mp, self.norm3, x))
        return x + self.drop_path(mlp_after_norm(self.mlp, self.norm2, x))


#: Plain class -> its CPU variant, for modules swapped as a whole.
CPU_VARIANTS = {LocalWindowBlock: CPULocalWindowBlock, LinearGlobalBlock: CPULinearGlobalBlock,
                LinearAttention: CPULinearAttention}


def use_cpu_fast_paths(model: nn.Module, enable: bool = True) -> nn.Module:
    """Swap L²ViT's modules inside ``model`` (a backbone or a whole detector) for their CPU variants, in place, or
    back with ``enable=False``; returns ``model``. Only the exact classes of :mod:`l2vit.models` are swapped (a
    subclass of yours is left alone), by changing their class: parameters, buffers, hooks and optimizer references
    stay as they are, and outputs, gradients and BatchNorm statistics are the same either way."""
    for module in model.modules():
        if enable:
            if type(module) in CPU_VARIANTS:
                module.__class__ = CPU_VARIANTS[type(module)]
            elif type(module) is LocalConcentration:
                for conv in (module.conv1, module.conv2):
                    if type(conv) is nn.Conv2d:
                        conv.__class__ = DepthwiseConv2d
            elif type(module) is Downsample and type(module.proj) is nn.Conv2d:
                module.proj.__class__ = PatchConv2d
        elif type(module) in CPU_VARIANTS.values() or type(module) in (DepthwiseConv2d, PatchConv2d):
            module.__class__ = type(module).__bases__[0]
    return model
