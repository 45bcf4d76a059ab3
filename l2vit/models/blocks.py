"""L²ViT's two blocks. Both take and return channels-last token maps (B, H, W, C)."""
from typing import Optional

import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from torch import Tensor, nn

from .attention import LinearAttention, WindowAttention, window_partition, window_reverse
from .layers import ConditionalPositionEncoding, LocalConcentration, Mlp


def _drop_path(rate: float) -> nn.Module:
    return DropPath(rate) if rate > 0 else nn.Identity()


class LocalWindowBlock(nn.Module):
    """Local window attention block::

        x = CPE_a(x);  x = x + DropPath(WindowAttention(LN_1(x)));  x = CPE_b(x);  x = x + DropPath(MLP(LN_2(x)))
    """

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
        x = self.cpe[0](x)
        x = x + self.drop_path(self.window_attention(self.norm1(x)))
        x = self.cpe[1](x)
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def window_attention(self, x: Tensor) -> Tensor:
        """Attention within each window of a (B, H, W, C) map -> (B, H, W, C).

        The map is zero-padded on the right and bottom to whole windows; the padded tokens take part as keys and
        values (the authors do not mask them) and are cropped away afterwards. Padding and crop are applied whatever
        their size, 0 included, and written as pads (a negative pad crops), so that ``torch.export`` can keep H and W
        symbolic."""
        B, H, W, C = x.shape
        ws = self.window_size
        rows, cols = (H + ws - 1) // ws, (W + ws - 1) // ws  # windows per column and per row
        x = F.pad(x, (0, 0, 0, cols * ws - W, 0, rows * ws - H))
        y = window_reverse(self.attn(window_partition(x, ws)), ws, rows * ws, cols * ws)
        return F.pad(y, (0, 0, 0, W - cols * ws, 0, H - rows * ws))


class LinearGlobalBlock(nn.Module):
    """Linear global attention block with the local concentration module (LCM)::

        x = CPE(x);  x = x + DropPath(LinearAttention(LN_1(x)));  x = x + DropPath(LCM(LN_3(x)))
        x = x + DropPath(MLP(LN_2(x)))
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
        x = self.cpe[0](x)
        x = x + self.drop_path(self.global_attention(self.norm1(x)))
        x = x + self.drop_path(self.local_mp(self.norm3(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))

    def global_attention(self, x: Tensor) -> Tensor:
        """Linear attention over all tokens of a (B, H, W, C) map -> (B, H, W, C)."""
        return self.attn(x.flatten(1, 2)).view_as(x)
