#!/usr/bin/env python
"""Draw and measure where every L²ViT block attends, for chosen query points of an image.

    python tools/analysis/attention_maps.py CONFIG CHECKPOINT IMAGE --out-dir DIR [--points Y,X ...] [--radius 3]
                                            [--size S | --size H W] [--device cpu] [--cfg-options KEY=VALUE ...]

Works with the L²ViT backbone of any of our detection, segmentation or classification configs (and the models
trained by ``make demo`` / ``make demo-seg``); only the backbone runs, once. The checkpoint is read weights-only.

The paper's observation is that linear attention lacks the concentration of softmax attention, and that the local
concentration module (LCM) of the linear blocks restores local focus. This tool shows, on your model and image, the
attention distributions themselves: how spread out each linear block's attention is, next to the window blocks'.

What is drawn
    For each query point (pixel row, column of IMAGE; by default its centre, the centre of its top-left quarter and
    that of its bottom-right quarter) one PNG, ``attention_p<k>_y<Y>_x<X>.png``: a grid of tiles, one per block,
    a row per stage (long stages wrap), in depth order. A tile is the image with the block's attention of the query
    token overlaid, averaged over the heads: colours go from blue (no weight) to red (the tile's own maximum; every
    tile has its own colour scale, so compare spreads, not colours), and weightless areas stay almost clear. The
    white cross is the query token. The tile's header is green for window blocks and blue for linear blocks and reads
    ``H`` (entropy in nats / its maximum, log of the number of keys) and ``loc`` (share of the mass within the radius
    / what a uniform distribution would give).

    * Window blocks (even blocks of each stage): the softmax weights over the query's own window (white frame);
      nothing outside it can receive weight (in stage 0 of a large input the window is only a few tile pixels wide).
      The windows' zero padding on the right/bottom also takes part as keys; the share it takes is ``padded_mass``
      in the JSON (counted in the statistics too) and it is not drawn.
    * Linear blocks (odd blocks): the linear attention's implied weights over all tokens of the stage, normalised
      to a distribution, relu(q)·relu(k_j) / Σ_j relu(q)·relu(k_j) (as the authors visualise it). Weight spread
      over the whole image with little extra at the query (high entropy, ``loc`` near its uniform value) is the
      missing concentration; the LCM (two 7×7 depthwise convolutions after the attention, not drawn) is what adds
      the local focus back.

How to read the numbers
    ``stats.json`` has, for every point and every block, ``entropy`` and ``local_mass`` (mean over heads), the same
    per head, and their references ``max_entropy`` and ``uniform_local_mass``; window blocks add ``padded_mass``,
    linear blocks ``clamped`` (whether the denominator clamp at 100 is active for the query, per head) and
    ``implied_weight_sum`` (the row sum of the un-normalised weights, temperature · min(1, q·Σk / 100)). The radius is
    a Chebyshev distance in tokens of the block's stage (``--radius 3``: the 7×7 square of the LCM's kernels and of a
    7×7 window), so it covers more of the image in deeper stages. ``stats_by_depth.png`` plots entropy and local
    mass against block depth, window and linear blocks as separate series (mean over the points, each point faint),
    with the uniform references dotted.

Input
    IMAGE is resized like the config's test pipeline (its first ``Resize``/``ResizeEdge``; crops are skipped so the
    whole image is analysed), or to ``--size`` (one number: the longer side; two: height and width; 0: as it is),
    then normalised with the model's data preprocessor (mean, std, BGR→RGB). No batch padding is applied: the
    backbone pads to its strides itself.
"""
import argparse
import json
import math
import os
import os.path as osp
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)

from l2vit.errors import error_exit  # noqa: E402


def parse_point(text: str) -> Tuple[float, float]:
    try:
        y, x = (float(v) for v in text.split(','))
    except ValueError:
        raise argparse.ArgumentTypeError(f'a point is Y,X in pixels (row, column), got {text!r}') from None
    return y, x


def parse_args(argv=None) -> argparse.Namespace:
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog='See the module docstring (head of this file) for how to read the output.')
    parser.add_argument('config', help='model config with an L2ViT backbone (detection, segmentation or ImageNet)')
    parser.add_argument('checkpoint', help='weights (.pth): an mmengine checkpoint or the authors\' release')
    parser.add_argument('image', help='the image to analyse')
    parser.add_argument('--out-dir', required=True, help='folder for the PNGs and stats.json')
    parser.add_argument('--points', nargs='+', type=parse_point, metavar='Y,X',
                        help='query points in pixels of IMAGE (row,column); default: the centre and the centres of '
                        'the top-left and bottom-right quarters')
    parser.add_argument('--radius', type=float, default=3,
                        help='local-mass radius: Chebyshev distance in tokens of each stage (default 3: a 7x7 square)')
    parser.add_argument('--size', type=int, nargs='+', metavar='N',
                        help='resize IMAGE to this longer side (one number) or height and width (two); 0 keeps it. '
                        'Default: the config\'s test resize')
    parser.add_argument('--device', default='cpu', help='cpu, cuda, cuda:1, ...')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, e.g. model.backbone.window_size=12')
    args = parser.parse_args(argv)
    if args.radius < 0:
        parser.error(f'--radius must be >= 0, got {args.radius}')
    if args.size is not None and (len(args.size) > 2 or any(s < 0 for s in args.size)
                                  or (len(args.size) == 2 and 0 in args.size)):
        parser.error(f'--size takes one number >= 0 (longer side, 0 = unchanged) or two positive ones (H W), got '
                     f'{args.size}')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import cv2

    from l2vit.analysis.attention_maps import image_attention

    with error_exit():
        found = image_attention(args.config, args.checkpoint, args.image, points=args.points, radius=args.radius,
                                size=args.size, device=args.device, cfg_options=args.cfg_options)
    stats, image = found['stats'], found['input']
    os.makedirs(args.out_dir, exist_ok=True)
    for k, ((y, x), point_in, blocks) in enumerate(zip(found['points'], found['points_in'], found['results'])):
        grid = draw_grid(image, blocks, point_in, found['depths'], [
            f'{osp.basename(args.image)}: query y={y:g} x={x:g} (input {image.shape[0]}x{image.shape[1]})',
            'head-averaged attention; each tile scaled to its own max',
            f'H: entropy / max (nats); loc: mass within r={args.radius:g} tokens / uniform'])
        out = osp.join(args.out_dir, f'attention_p{k}_y{round(y)}_x{round(x)}.png')
        cv2.imwrite(out, grid)
        print(f'attention maps: {out}')
    with open(osp.join(args.out_dir, 'stats.json'), 'w') as f:
        json.dump(stats, f, indent=1)
    plot_by_depth(stats, osp.join(args.out_dir, 'stats_by_depth.png'))
    print(f'statistics:     {osp.join(args.out_dir, "stats.json")}')
    print(f'by depth:       {osp.join(args.out_dir, "stats_by_depth.png")}')
    for kind in ('window', 'linear'):
        blocks = [b for p in stats['points'] for b in p['blocks'] if b['kind'] == kind and b['entropy'] is not None]
        if blocks:
            print(f'{kind:6s} blocks: mean entropy {sum(b["entropy"] for b in blocks) / len(blocks):.3f} nats, mean '
                  f'local mass {sum(b["local_mass"] for b in blocks) / len(blocks):.3f} (radius {stats["radius"]:g})')
    return 0


# ---------------------------------------------------------------------------------------------------------- drawing
# A tile: the input image with the block's head-averaged attention of the query token overlaid (blue: no weight, red:
# the tile's own maximum; weightless areas almost clear), the query token a white cross, a window block's window a
# white frame; its header green for window blocks, blue for linear ones, with the entropy and the local mass.
TILE = 200  # longer side of one tile, in pixels
HEADER = 30  # height of a tile's caption
MAX_COLS = 6
WINDOW_BGR = (50, 110, 40)
LINEAR_BGR = (130, 60, 30)


def _text(img: np.ndarray, text: str, org: Tuple[int, int], scale: float = 0.38, color=(255, 255, 255)) -> None:
    import cv2
    cv2.putText(img, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, color, 1, cv2.LINE_AA)


def _fmt(value: Optional[float]) -> str:
    return '-' if value is None else f'{value:.2f}'


def render_tile(small: np.ndarray, scale: Tuple[float, float], result, point_in: Tuple[float, float]) -> np.ndarray:
    """A tile: ``small`` (the input image scaled by ``scale`` = (sy, sx)) with ``result``'s head-averaged map."""
    import cv2
    th, tw = small.shape[:2]
    sy, sx = scale
    stride = 4 * 2**result.stage
    H, W = result.size
    # The token under each tile pixel (pixel centres mapped back to the input image).
    rows = np.minimum(((np.arange(th) + 0.5) / sy // stride).astype(int), H - 1)
    cols = np.minimum(((np.arange(tw) + 0.5) / sx // stride).astype(int), W - 1)
    weights = result.mean_weights.detach().cpu().double().numpy()
    peak = weights.max()
    norm = (weights / peak if peak > 0 else weights)[rows][:, cols]
    heat = cv2.applyColorMap(np.clip(norm * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
    alpha = (0.15 + 0.65 * norm)[..., None]
    tile = (small * (1 - alpha) + heat * alpha).astype(np.uint8)
    if result.window is not None:
        y0, x0, y1, x1 = result.window
        p0 = (int(x0 * stride * sx), int(y0 * stride * sy))
        p1 = (min(int(x1 * stride * sx), tw - 1), min(int(y1 * stride * sy), th - 1))
        cv2.rectangle(tile, p0, p1, (255, 255, 255), 1)
    centre = (int(point_in[1] * sx), int(point_in[0] * sy))
    cv2.drawMarker(tile, centre, (0, 0, 0), cv2.MARKER_CROSS, 13, 4)
    cv2.drawMarker(tile, centre, (255, 255, 255), cv2.MARKER_CROSS, 11, 2)
    header = np.zeros((HEADER, tw, 3), np.uint8)
    header[:] = WINDOW_BGR if result.kind == 'window' else LINEAR_BGR
    s = result.statistics
    _text(header, f's{result.stage} b{result.block} {result.kind} ({result.num_heads} heads)', (4, 12))
    _text(header, f'H {_fmt(s["entropy"])}/{s["max_entropy"]:.2f} loc {_fmt(s["local_mass"])}/'
          f'{s["uniform_local_mass"]:.2f}', (4, 26))
    return np.concatenate([header, tile], axis=0)


def draw_grid(image: np.ndarray, results: list, point_in: Tuple[float, float], depths: Sequence[int],
              title_lines: Sequence[str]) -> np.ndarray:
    """All blocks' tiles for one query point: a row per stage (wrapping after MAX_COLS blocks)."""
    import cv2
    h, w = image.shape[:2]
    scale = TILE / max(h, w)
    small = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    scale = (small.shape[0] / h, small.shape[1] / w)
    cols = max(1, min(max(depths), MAX_COLS))
    th, tw = small.shape[0] + HEADER, small.shape[1]
    gap = 4
    rows_per_stage = [math.ceil(d / cols) for d in depths]
    width = max(cols * (tw + gap) + gap, 420)
    banner = 16 * len(title_lines) + 8
    canvas = np.full((banner + sum(rows_per_stage) * (th + gap) + gap, width, 3), 255, np.uint8)
    for i, line in enumerate(title_lines):
        _text(canvas, line, (gap, 16 * (i + 1)), 0.42, (0, 0, 0))
    by_stage: Dict[int, list] = {}
    for r in results:
        by_stage.setdefault(r.stage, []).append(r)
    top = banner
    for stage, count in enumerate(rows_per_stage):
        for j, r in enumerate(by_stage.get(stage, [])):
            y = top + (j // cols) * (th + gap) + gap
            x = gap + (j % cols) * (tw + gap)
            canvas[y:y + th, x:x + tw] = render_tile(small, scale, r, point_in)
        top += count * (th + gap)
    return canvas


def _depth_series(entries: List[dict], key: str) -> Dict[str, Tuple[List[int], List[float]]]:
    """{'window'|'linear': (depths, values)} of ``key`` averaged over points."""
    series = {}
    for kind in ('window', 'linear'):
        xs, ys = [], []
        for depth in sorted({b['depth'] for b in entries if b['kind'] == kind}):
            vals = [b[key] for b in entries if b['depth'] == depth and b[key] is not None]
            if vals:
                xs.append(depth)
                ys.append(sum(vals) / len(vals))
        series[kind] = (xs, ys)
    return series


PANELS = (('entropy', 'max_entropy', 'entropy (nats)'), ('local_mass', 'uniform_local_mass', 'local mass share'))


def plot_by_depth(stats: dict, path: str) -> None:
    """Entropy and local mass against block depth, window and linear blocks as separate series."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    entries = [dict(b, point=k) for k, p in enumerate(stats['points']) for b in p['blocks']]
    blocks = stats['blocks']
    labels = [f's{b["stage"]}b{b["block"]}' for b in blocks]
    boundaries = [b['depth'] - 0.5 for b in blocks if b['block'] == 0 and b['depth'] > 0]
    colors = {'window': '#2a7a1f', 'linear': '#1f4fb0'}
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.35 * len(blocks) + 3), 6.5), sharex=True)
    for ax, (key, ref, name) in zip(axes, PANELS):
        for kind, marker in (('window', 's'), ('linear', 'o')):
            for k in range(len(stats['points'])):
                pts = [(b['depth'], b[key]) for b in entries if b['kind'] == kind and b['point'] == k
                       and b[key] is not None]
                if pts:
                    ax.scatter(*zip(*pts), color=colors[kind], alpha=0.25, s=12, marker=marker)
            xs, ys = _depth_series(entries, key)[kind]
            ax.plot(xs, ys, marker=marker, color=colors[kind], label=f'{kind} blocks (mean over points)')
            xs, ys = _depth_series(entries, ref)[kind]
            ax.plot(xs, ys, linestyle=':', color=colors[kind], label=f'{kind}: uniform reference')
        for x in boundaries:
            ax.axvline(x, color='0.7', linewidth=0.8, linestyle='--')
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
    axes[1].set_ylim(-0.02, 1.02)
    axes[1].set_xticks(range(len(labels)), labels, rotation=60, fontsize=7)
    axes[1].set_xlabel(f'block (depth order); local mass: within Chebyshev radius {stats["radius"]:g} tokens')
    axes[0].legend(fontsize=7, loc='best')
    axes[0].set_title('Attention concentration by depth')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
