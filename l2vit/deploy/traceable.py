"""Exportable stand-ins for layers whose ONNX export would fix the traced input size.

``nn.AdaptiveAvgPool2d`` with an output larger than 1×1 (UperNet's pyramid pooling, scales 2, 3 and 6) has no ONNX
operator: torch's TorchScript exporter turns it into an ``AveragePool`` whose kernel is computed from the traced
input size, or refuses it when that size is symbolic. :class:`AveragingMatrixPool2d` computes the same bins as two
averaging matrices built from the input's size inside the graph, so one exported file serves every input size.
"""
from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.nn.modules.utils import _pair

__all__ = ['AveragingMatrixPool2d', 'averaging_matrix', 'replace_adaptive_pools']


def averaging_matrix(size: Union[int, Tensor], bins: int, like: Tensor) -> Tensor:
    """The (bins, size) matrix whose row ``i`` averages bin ``i`` of ``nn.AdaptiveAvgPool`` along one axis of length
    ``size``: positions ``floor(i * size / bins)`` to ``ceil((i + 1) * size / bins)`` (exclusive), as torch's kernel
    picks them. ``size`` may be a traced value; the matrix has ``like``'s dtype and device."""
    index = torch.arange(bins, device=like.device)
    start = torch.div(index * size, bins, rounding_mode='floor')
    end = torch.div((index + 1) * size + bins - 1, bins, rounding_mode='floor')
    position = torch.arange(size, device=like.device)
    inside = (position[None, :] >= start[:, None]) & (position[None, :] < end[:, None])
    return inside.to(like.dtype) / (end - start)[:, None].to(like.dtype)


class AveragingMatrixPool2d(nn.Module):
    """``nn.AdaptiveAvgPool2d(output_size)`` as ``P_h @ x @ P_wᵀ`` with the averaging matrices of
    :func:`averaging_matrix`: the same bins and the same averages (summed in another order, so equal to rounding),
    for any input size, and exportable with the size as a graph value."""

    def __init__(self, output_size: Union[int, Sequence[Optional[int]]]) -> None:
        super().__init__()
        self.output_size: Tuple[Optional[int], Optional[int]] = _pair(output_size)

    def forward(self, x: Tensor) -> Tensor:
        height, width = x.shape[-2], x.shape[-1]
        bins_h = self.output_size[0] if self.output_size[0] is not None else height
        bins_w = self.output_size[1] if self.output_size[1] is not None else width
        rows = averaging_matrix(height, bins_h, x)  # (bins_h, H)
        cols = averaging_matrix(width, bins_w, x)  # (bins_w, W)
        return torch.matmul(torch.matmul(rows, x), cols.transpose(0, 1))


def replace_adaptive_pools(module: nn.Module) -> int:
    """Replace, in place, every ``nn.AdaptiveAvgPool2d`` under ``module`` whose output is not 1×1 (global pooling
    exports as ``GlobalAveragePool`` for any size) by :class:`AveragingMatrixPool2d`; return how many."""
    replaced = 0
    for parent in list(module.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.AdaptiveAvgPool2d) and _pair(child.output_size) != (1, 1):
                setattr(parent, name, AveragingMatrixPool2d(child.output_size))
                replaced += 1
    return replaced
