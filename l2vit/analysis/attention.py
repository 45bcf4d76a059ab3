"""Where L²ViT's blocks attend: the attention distribution of chosen query tokens, block by block, recomputed
from each block's recorded input (:class:`AttentionRecorder`'s forward hooks; the model is not changed) and its own
``qkv`` projection, one query at a time in O(N) memory: no N×N matrix is formed.

* Linear global blocks: the output for query ``i`` is per head ``Σ_j w_ij v_j`` with the implied weights
  ``w_ij = relu(q_i)·relu(k_j) · temperature / max(relu(q_i)·Σ_j relu(k_j), 100)``
  (:func:`linear_attention_weights`); for display and statistics a row is normalised to a distribution,
  ``relu(q_i)·relu(k_j) / Σ_j relu(q_i)·relu(k_j)``, as the authors visualise linear attention.
* Local window blocks: the softmax of the query over its own window (:func:`window_attention_weights`); the
  zero-padded tokens take part as keys (the model does not mask them): their share is ``padded_mass``.

Statistics (:func:`attention_statistics`), per head: entropy (nats) and the share of the mass within ``radius``
tokens (Chebyshev) of the query, at the block's stage resolution (r = 3: the 7×7 neighbourhood of the LCM's
depthwise convolutions and of a 7×7 window).
"""
import math
from dataclasses import dataclass, field
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models.attention import LINEAR_ATTENTION_DENOM_MIN
from ..models.backbone import L2ViT
from ..models.blocks import LinearGlobalBlock, LocalWindowBlock

__all__ = ['linear_attention_weights', 'window_attention_weights', 'attention_statistics', 'AttentionRecorder',
           'block_attention', 'analyse_attention']


class LinearAttentionWeights(NamedTuple):
    """The linear attention of one query, per head."""
    #: (heads, N) implied weights w_j; the head's output for the query is Σ_j w_j v_j.
    weights: Tensor
    #: (heads, N) relu(q)·relu(k_j) / Σ_j relu(q)·relu(k_j), a distribution (all zeros for a head whose
    #: relu(q)·Σ relu(k) is 0: such a head attends to nothing and outputs 0).
    normalized: Tensor
    #: (heads,) max(relu(q)·Σ_j relu(k_j), 100), the denominator the model divides by.
    denominator: Tensor
    #: (heads,) whether the clamp at 100 is active for this query (relu(q)·Σ_j relu(k_j) < 100).
    clamped: Tensor


def _float_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.promote_types(dtype, torch.float32)


def linear_attention_weights(q: Tensor, k: Tensor, temperature: Tensor, query_index: int) -> LinearAttentionWeights:
    """The implied weights of query ``query_index`` in the linear attention, from ``q``, ``k`` (N, heads, head_dim)
    as the ``qkv`` projection gives them and the module's per-head ``temperature``; computed like
    :func:`l2vit.models.attention.linear_attention` (at least float32) in O(N · heads · head_dim)."""
    dtype = _float_dtype(q.dtype)
    qi = torch.relu(q[query_index].to(dtype))  # (heads, d)
    k = torch.relu(k.to(dtype))  # (N, heads, d)
    raw = torch.einsum('hd,nhd->hn', qi, k)  # relu(q)·relu(k_j)
    total = torch.einsum('hd,hd->h', qi, k.sum(dim=0))  # relu(q)·Σ_j relu(k_j), as the model computes it
    denominator = total.clamp_min(LINEAR_ATTENTION_DENOM_MIN)
    temperature = temperature.reshape(-1).to(dtype)
    weights = raw * (temperature / denominator).unsqueeze(-1)
    row_sum = raw.sum(dim=-1, keepdim=True)
    normalized = torch.where(row_sum > 0, raw / row_sum.clamp_min(torch.finfo(dtype).tiny), torch.zeros_like(raw))
    return LinearAttentionWeights(weights, normalized, denominator, total < LINEAR_ATTENTION_DENOM_MIN)


def window_attention_weights(q: Tensor, k: Tensor, window_size: int, query_yx: Tuple[int, int],
                             scale: Optional[float] = None) -> Tensor:
    """Softmax weights (heads, Hp, Wp) of the query at ``query_yx`` over the keys of its window (zero elsewhere):
    ``q``, ``k`` (Hp, Wp, heads, head_dim) of the padded map (or its rows/columns up to the query's window's end);
    ``scale`` None: ``head_dim ** -0.5``, the model's."""
    Hp, Wp, heads, head_dim = q.shape
    (y, x), ws = query_yx, window_size
    y0, x0 = (y // ws) * ws, (x // ws) * ws
    y1, x1 = min(y0 + ws, Hp), min(x0 + ws, Wp)
    dtype = _float_dtype(q.dtype)
    scale = head_dim**-0.5 if scale is None else scale
    keys = k[y0:y1, x0:x1].to(dtype)  # (wh, ww, heads, d)
    logits = torch.einsum('hd,abhd->hab', q[y, x].to(dtype), keys) * scale
    probs = logits.flatten(1).softmax(dim=-1).view_as(logits)
    out = torch.zeros(heads, Hp, Wp, dtype=dtype, device=q.device)
    out[:, y0:y1, x0:x1] = probs
    return out


def _within_radius(size: Tuple[int, int], query_yx: Tuple[int, int], radius: float, device=None) -> Tensor:
    """(H, W) bool: positions within Chebyshev distance ``radius`` of ``query_yx``."""
    ys = torch.arange(size[0], device=device).sub(query_yx[0]).abs()
    xs = torch.arange(size[1], device=device).sub(query_yx[1]).abs()
    return torch.maximum(ys[:, None], xs[None, :]) <= radius


def attention_statistics(weights_map: Tensor, query_yx: Tuple[int, int], radius: float) -> Dict[str, Tensor]:
    """Concentration of attention maps ``(..., H, W)`` around the query token at ``query_yx``.

    Each map is first normalised to sum to 1. Returns tensors shaped like the leading dims:

    * ``entropy``: ``-Σ p log p`` in nats (0 for all mass on one token, ``log(#tokens with mass)`` at most);
    * ``local_mass``: the share of the mass within Chebyshev distance ``radius`` (in tokens) of the query, i.e. in
      the ``(2·radius+1)²`` square around it.

    Maps with no mass (all zeros) give NaN for both.
    """
    if weights_map.dim() < 2:
        raise ValueError(f'weights_map must be (..., H, W), got {tuple(weights_map.shape)}')
    w = weights_map.to(_float_dtype(weights_map.dtype))
    if bool((w < 0).any()):
        raise ValueError('attention weights must be non-negative')
    total = w.sum(dim=(-2, -1), keepdim=True)
    p = w / total
    entropy = -torch.xlogy(p, p).sum(dim=(-2, -1))
    near = _within_radius(w.shape[-2:], query_yx, radius, w.device)
    local = (p * near).sum(dim=(-2, -1))
    return dict(entropy=entropy, local_mass=local)


def split_qkv(attn: nn.Module, tokens: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """q, k, v of an attention module (``qkv`` Linear, ``num_heads``) for tokens ``(..., C)``, each
    ``(..., heads, head_dim)``, exactly as the module's forward splits them."""
    C = tokens.shape[-1]
    qkv = attn.qkv(tokens).view(*tokens.shape[:-1], 3, attn.num_heads, C // attn.num_heads)
    return qkv.select(-3, 0), qkv.select(-3, 1), qkv.select(-3, 2)


@dataclass
class BlockInput:
    """What one block's attention module saw in the last forward: its place (stage, block, depth over all stages),
    ``kind`` ('window' or 'linear'), the block, its map ``size`` (H, W) and ``tokens`` (B, H', W', C), the
    LayerNorm-ed map the attention receives (zero-padded to whole windows for window blocks); ``cache`` keeps a
    linear block's (q, k) per batch index for further queries."""
    stage: int
    block: int
    depth: int
    kind: str
    module: nn.Module
    size: Tuple[int, int]
    tokens: Tensor
    cache: Dict[int, Tuple[Tensor, Tensor]] = field(default_factory=dict, repr=False)


class AttentionRecorder:
    """Context manager recording every block's attention input (:class:`BlockInput`, ``records`` in depth order)
    during forwards of an :class:`L2ViT`: a forward hook on each block's ``norm1`` that returns nothing, so the
    outputs are unchanged; removed on exit. A later forward overwrites the records of an earlier one."""

    def __init__(self, backbone: nn.Module) -> None:
        if not isinstance(backbone, L2ViT):
            raise TypeError(f'AttentionRecorder needs an L2ViT backbone, got {type(backbone).__name__}')
        self.backbone = backbone
        self._handles: List = []
        self._records: Dict[int, BlockInput] = {}

    @property
    def records(self) -> List[BlockInput]:
        return [self._records[depth] for depth in sorted(self._records)]

    def __enter__(self) -> 'AttentionRecorder':
        kinds = {LocalWindowBlock: 'window', LinearGlobalBlock: 'linear'}
        blocks = [(i, j, block) for i, stage in enumerate(self.backbone.stages) for j, block in enumerate(stage)]
        for depth, (i, j, block) in enumerate(blocks):
            kind = next((k for cls, k in kinds.items() if isinstance(block, cls)), None)
            if kind is None:
                raise TypeError(f'stage {i} block {j} is a {type(block).__name__}, not an L2ViT block')
            self._handles.append(block.norm1.register_forward_hook(self._norm_hook((i, j), kind, depth, block)))
        return self

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def _norm_hook(self, key, kind, depth, block):
        def hook(module, args, output):
            tokens = output.detach()  # (B, H, W, C): what the attention reads, before window padding
            H, W = int(tokens.shape[1]), int(tokens.shape[2])
            if kind == 'window':
                ws = block.window_size
                tokens = F.pad(tokens, (0, 0, 0, -W % ws, 0, -H % ws))  # the block's own zero padding
            self._records[depth] = BlockInput(key[0], key[1], depth, kind, block, (H, W), tokens)
        return hook


@dataclass
class BlockAttention:
    """The attention of one query token (``query_yx`` in the stage's (H, W) map) in one block: ``weights`` (heads,
    H, W), normalised per head (window blocks: the softmax, padded positions cropped; linear blocks: relu(q)·relu(k_j)
    over all tokens), ``mean_weights`` (H, W) over the heads that attend to anything, ``statistics``
    (:func:`block_attention`), a linear block's ``implied_weights`` (Σ_j w_j v_j is the head's output) and a window
    block's ``window`` (y0, x0, y1, x1) in tokens, end exclusive."""
    stage: int
    block: int
    depth: int
    kind: str
    num_heads: int
    size: Tuple[int, int]
    query_yx: Tuple[int, int]
    weights: Tensor
    mean_weights: Tensor
    statistics: Dict[str, object] = field(default_factory=dict)
    implied_weights: Optional[Tensor] = None
    window: Optional[Tuple[int, int, int, int]] = None


def _floats(values: Tensor) -> List[Optional[float]]:
    return [None if math.isnan(v) else float(v) for v in values.tolist()]


def _mean(values: List[Optional[float]]) -> Optional[float]:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


@torch.no_grad()
def block_attention(record: BlockInput, query_yx: Tuple[int, int], radius: float = 3,
                    batch_index: int = 0) -> BlockAttention:
    """The attention of the token at ``query_yx`` (in the block's (H, W) map) from a recorded block input.

    ``statistics`` holds, per head (lists, ``None`` for a head that attends to nothing) and averaged over heads:
    ``entropy`` (nats) and ``local_mass`` (share within Chebyshev ``radius`` tokens), both of the normalised
    distribution over all the keys the block attends to (window blocks: the whole window, padded positions
    included); ``max_entropy`` = log(#keys) and ``uniform_local_mass`` (what a uniform distribution over those keys
    would give), the references to read them against. Window blocks add ``padded_mass`` (share on the zero-padded
    tokens; ``padded_mass_per_head``); linear blocks add ``clamped`` (the denominator clamp at 100 is active) and
    ``implied_weight_sum`` (Σ_j w_j = temperature · min(1, q·Σk / 100)).
    """
    H, W = record.size
    y, x = query_yx
    if not (0 <= y < H and 0 <= x < W):
        raise IndexError(f'query {query_yx} outside the {H}x{W} map of stage {record.stage} block {record.block}')
    attn = record.module.attn
    tokens = record.tokens[batch_index]
    stats: Dict[str, object] = {}
    implied = window = None
    if record.kind == 'linear':
        if batch_index not in record.cache:
            record.cache[batch_index] = split_qkv(attn, tokens.reshape(H * W, -1))[:2]
        lw = linear_attention_weights(*record.cache[batch_index], attn.temperature, y * W + x)
        weights = full = lw.normalized.view(-1, H, W)
        implied, num_keys, near = lw.weights.view(-1, H, W), H * W, _within_radius((H, W), query_yx, radius)
        stats.update(clamped=[bool(c) for c in lw.clamped.tolist()], implied_weight_sum=lw.weights.sum(-1).tolist())
    else:
        ws = record.module.window_size
        y0, x0 = (y // ws) * ws, (x // ws) * ws
        # Only the query's window is projected: the rows/columns up to its end are all the function reads.
        q, k, _ = split_qkv(attn, tokens[:y0 + ws, :x0 + ws])
        full = window_attention_weights(q, k, ws, query_yx)  # (heads, y0+ws, x0+ws)
        window = (y0, x0, min(y0 + ws, H), min(x0 + ws, W))
        weights = full.new_zeros(full.shape[0], H, W)
        weights[:, :window[2], :window[3]] = full[:, :window[2], :window[3]]
        num_keys, near = ws * ws, _within_radius(full.shape[-2:], query_yx, radius)[y0:, x0:]
        # The weights on the padded positions (rows and columns past the image), summed: non-negative by
        # construction, where 1 - (the weights inside) could round below zero.
        outside = _floats(full[:, window[2]:].sum(dim=(-2, -1)) + full[:, :window[2], window[3]:].sum(dim=(-2, -1)))
        stats.update(padded_mass=_mean(outside), padded_mass_per_head=outside)
    raw = attention_statistics(full, query_yx, radius)
    entropy, local = _floats(raw['entropy']), _floats(raw['local_mass'])
    stats.update(entropy=_mean(entropy), local_mass=_mean(local), max_entropy=math.log(num_keys),
                 uniform_local_mass=int(near.sum()) / num_keys, entropy_per_head=entropy, local_mass_per_head=local)
    live = torch.tensor([e is not None for e in entropy], device=weights.device)
    mean = weights[live].mean(dim=0) if bool(live.any()) else torch.zeros_like(weights[0])
    return BlockAttention(record.stage, record.block, record.depth, record.kind, attn.num_heads, (H, W), query_yx,
                          weights, mean, stats, implied, window)


def token_of_pixel(point_yx: Sequence[float], stage: int, size: Tuple[int, int]) -> Tuple[int, int]:
    """The token of stage ``stage`` (stride 4·2^stage, map ``size``) that covers input pixel ``point_yx``."""
    stride = 4 * 2**stage
    return (min(max(int(point_yx[0] // stride), 0), size[0] - 1), min(max(int(point_yx[1] // stride), 0), size[1] - 1))


def analyse_attention(backbone: L2ViT, image: Tensor, points: Sequence[Sequence[float]],
                      radius: float = 3) -> List[List[BlockAttention]]:
    """Run ``backbone`` once on ``image`` (1, 3, H, W), already normalised, and return, for each of ``points``
    ((row, column) in pixels of ``image``), the :class:`BlockAttention` of every block in depth order.

    The backbone is used as it is (call ``.eval()`` first for inference behaviour).
    """
    if image.dim() != 4 or image.shape[0] != 1:
        raise ValueError(f'image must be one image (1, C, H, W), got {tuple(image.shape)}')
    with torch.no_grad(), AttentionRecorder(backbone) as recorder:
        backbone(image)
    for point in points:
        if not (0 <= point[0] < image.shape[2] and 0 <= point[1] < image.shape[3]):
            raise ValueError(f'point {tuple(point)} outside the {image.shape[2]}x{image.shape[3]} image')
    results: List[List[BlockAttention]] = [[] for _ in points]
    for record in recorder.records:
        for out, point in zip(results, points):
            out.append(block_attention(record, token_of_pixel(point, record.stage, record.size), radius))
        record.cache.clear()
    return results
