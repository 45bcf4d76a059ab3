"""L²ViT's two blocks. Both take and return channels-last token maps (B, H, W, C)."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn

from .attention import LinearAttention, WindowAttention, window_partition, window_reverse
from .autograd_ops import after_recomputed, builds_backward_graph
from .layers import ConditionalPositionEncoding, LocalConcentration, Mlp, cache_blocked


def _drop_path(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0 else nn.Identity()


class LocalWindowBlock(nn.Module):
    """Local window attention block::

        s = CPE_a(x);  x = s + DropPath(WindowAttention(LN(s)));  x = CPE_b(x);  x = x + DropPath(MLP(LN(x)))

    The normalised map is zero-padded to whole windows; the padded tokens take part as keys and values (the
    authors do not mask them) and are cropped away afterwards. In training the normalised, padded windows are not
    kept for backward but recomputed there from ``s``.
    """

    #: Tokens per band of window rows in CPU inference (see :meth:`_attend`).
    band_tokens: int = 2048

    def __init__(self, dim: int, num_heads: int, window_size: int = 7, mlp_ratio: float = 4.,
                 drop_path: float = 0.) -> None:
        super().__init__()
        self.window_size = window_size
        self.cpe = nn.ModuleList([ConditionalPositionEncoding(dim), ConditionalPositionEncoding(dim)])
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowAttention(dim, num_heads)
        self.drop_path = _drop_path(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, C = x.shape
        ws = self.window_size
        shortcut = self.cpe[0](x)
        pad_h, pad_w = -H % ws, -W % ws
        Hp, Wp = H + pad_h, W + pad_w
        # Under a TorchScript trace (ONNX export) H and W are traced values: pad and crop always (by 0 where nothing
        # is missing), so that the graph computes the padding from the input's size for every size.
        padded = torch.jit.is_tracing() or bool(pad_h or pad_w)

        def windows(t: Tensor) -> Tensor:  # LN, then zero padding to whole windows
            t = self.norm1(t)
            if padded:
                t = F.pad(t, (0, 0, 0, pad_w, 0, pad_h))
            return t

        if builds_backward_graph(shortcut, self.attn.qkv.weight):
            # training: the normalised, padded windows are recomputed in backward, not kept (only ``shortcut`` is)
            qkv = after_recomputed(self.attn.qkv, lambda t: window_partition(windows(t), ws), shortcut,
                                   list(self.norm1.parameters()))
            y = window_reverse(self.attn.attend(qkv), ws, Hp, Wp)
        else:
            y = self._attend(windows(shortcut))
        if padded:
            y = y[:, :H, :W]
        x = shortcut + self.drop_path(y)
        x = self.cpe[1](x)
        return x + self.drop_path(self.mlp(x, self.norm2))

    def _attend(self, y: Tensor) -> Tensor:
        """Window attention on a (B, Hp, Wp, C) map whose sides are whole windows. CPU inference
        (:func:`cache_blocked`) goes one band of window rows at a time (about :attr:`band_tokens` tokens), so that
        the band's qkv, attention output and window copies stay in cache; every window is computed as in one go."""
        ws = self.window_size
        B, Hp, Wp, C = y.shape
        if not cache_blocked(y):
            return window_reverse(self.attn(window_partition(y, ws)), ws, Hp, Wp)
        out = None
        step = max(1, self.band_tokens // (ws * Wp)) * ws
        for top in range(0, Hp, step):
            band = y[:, top:top + step]
            piece = window_reverse(self.attn(window_partition(band, ws)), ws, band.shape[1], Wp)
            if out is None:  # the pieces' dtype: autocast may have chosen a lower precision
                out = piece.new_empty(B, Hp, Wp, C)
            out[:, top:top + step] = piece
        return out


class LinearGlobalBlock(nn.Module):
    """Linear global attention block with the local concentration module (LCM)::

        x = CPE(x);  x = x + DropPath(LinearAttention(LN_1(x)));  x = x + DropPath(LCM(LN_3(x)))
        x = x + DropPath(MLP(LN_2(x)))

    In training the LayerNorms' outputs are recomputed in backward instead of kept (LCM and MLP take their norm).
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4., drop_path: float = 0.,
                 norm_cfg: Optional[dict] = None) -> None:
        super().__init__()
        self.cpe = nn.ModuleList([ConditionalPositionEncoding(dim)])
        self.norm1 = nn.LayerNorm(dim)
        self.attn = LinearAttention(dim, num_heads)
        self.drop_path = _drop_path(drop_path)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.norm3 = nn.LayerNorm(dim)
        self.local_mp = LocalConcentration(dim, norm_cfg=norm_cfg)

    def forward(self, x: Tensor) -> Tensor:
        B, H, W, C = x.shape
        x = self.cpe[0](x)
        if builds_backward_graph(x, self.attn.qkv.weight):
            # training: the normalised tokens (the qkv projection's input) are recomputed in backward, not kept
            qkv = after_recomputed(self.attn.qkv, self.norm1, x, list(self.norm1.parameters()), rowwise=True)
            y = self.attn.attend(qkv.reshape(B, H * W, -1), x.dtype).view(B, H, W, C)
        else:
            y = self.attn(self.norm1(x).reshape(B, H * W, C)).view(B, H, W, C)
        x = x + self.drop_path(y)
        x = x + self.drop_path(self.local_mp(x, self.norm3))
        return x + self.drop_path(self.mlp(x, self.norm2))
