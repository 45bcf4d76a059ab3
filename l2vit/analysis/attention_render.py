"""Drawing the attention maps of :func:`l2vit.analysis.analyse_attention` (what ``tools/analysis/attention_maps.py``
writes): one tile per block, a grid of tiles per query point, and the statistics plotted against depth.

A tile is the (resized) input image with the block's head-averaged attention of the query token overlaid: colours from
blue (no weight) to red (the tile's own maximum), weightless areas almost clear, the query token a white cross, a
window block's window a white frame. Its header is green for window blocks and blue for linear blocks and reads the
entropy (``H``, against its maximum) and the local mass (``loc``, against a uniform distribution's).

OpenCV draws the tiles; the plot by depth uses matplotlib when it is installed and OpenCV otherwise.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

__all__ = ['render_tile', 'draw_grid', 'plot_by_depth']

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


def plot_by_depth(stats: dict, path: str, use_matplotlib: bool = True) -> None:
    """Entropy and local mass against block depth, window and linear blocks as separate series."""
    entries = [dict(b, point=k) for k, p in enumerate(stats['points']) for b in p['blocks']]
    blocks = stats['blocks']
    labels = [f's{b["stage"]}b{b["block"]}' for b in blocks]
    boundaries = [b['depth'] - 0.5 for b in blocks if b['block'] == 0 and b['depth'] > 0]
    colors = {'window': '#2a7a1f', 'linear': '#1f4fb0'}
    if use_matplotlib:
        try:
            import matplotlib
            matplotlib.use('Agg')
            import matplotlib.pyplot as plt
        except ImportError:
            use_matplotlib = False
    if use_matplotlib:
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
        return
    _plot_by_depth_cv2(entries, labels, boundaries, stats['radius'], path)


def _plot_by_depth_cv2(entries, labels, boundaries, radius, path) -> None:
    """A plain line chart with OpenCV, for environments without matplotlib."""
    import cv2
    n = max(len(labels), 1)
    left, right, panel_h, top = 60, 20, 220, 50
    width = max(480, left + right + 28 * n)
    canvas = np.full((top + 2 * (panel_h + 50) + 40, width, 3), 255, np.uint8)
    _text(canvas, 'Attention concentration by depth (green: window, blue: linear; dotted: uniform)', (8, 18), 0.45,
          (0, 0, 0))
    colors = {'window': WINDOW_BGR, 'linear': LINEAR_BGR}
    step = (width - left - right) / n
    for p, (key, ref, name) in enumerate(PANELS):
        y0 = top + p * (panel_h + 50)
        values = [b[k] for b in entries for k in (key, ref) if b[k] is not None]
        vmax = 1.0 if key == 'local_mass' else max(values + [1e-6])
        cv2.rectangle(canvas, (left, y0), (width - right, y0 + panel_h), (0, 0, 0), 1)
        _text(canvas, name, (4, y0 - 6), 0.42, (0, 0, 0))
        _text(canvas, f'{vmax:.2f}', (4, y0 + 10), 0.35, (0, 0, 0))
        _text(canvas, '0', (40, y0 + panel_h), 0.35, (0, 0, 0))

        def xy(depth, value):
            return int(left + (depth + 0.5) * step), int(y0 + panel_h - value / vmax * (panel_h - 10))

        for b in boundaries:
            cv2.line(canvas, (int(left + (b + 0.5) * step), y0), (int(left + (b + 0.5) * step), y0 + panel_h),
                     (180, 180, 180), 1)
        for kind in ('window', 'linear'):
            for series_key, dotted in ((key, False), (ref, True)):
                xs, ys = _depth_series(entries, series_key)[kind]
                pts = [xy(d, v) for d, v in zip(xs, ys)]
                for a, c in zip(pts, pts[1:]):
                    if dotted:
                        for t in np.linspace(0, 1, 12)[::2]:
                            u = (int(a[0] + (c[0] - a[0]) * t), int(a[1] + (c[1] - a[1]) * t))
                            cv2.circle(canvas, u, 1, colors[kind], -1)
                    else:
                        cv2.line(canvas, a, c, colors[kind], 2, cv2.LINE_AA)
                if not dotted:
                    for u in pts:
                        cv2.circle(canvas, u, 4, colors[kind], -1)
        if p == 1:
            for d, label in enumerate(labels):
                _text(canvas, label, (int(left + d * step + 2), y0 + panel_h + 14), 0.3, (0, 0, 0))
    _text(canvas, f'local mass: within Chebyshev radius {radius:g} tokens', (left, canvas.shape[0] - 8), 0.4,
          (0, 0, 0))
    cv2.imwrite(path, canvas)
