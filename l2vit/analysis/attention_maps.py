"""The attention-map analysis of a trained model on one image (``tools/analysis/attention_maps.py`` draws it):
the config's model with the checkpoint's backbone weights, the image resized like the config's test pipeline (its
first ``Resize``/``ResizeEdge``; crops skipped) or to a given size and normalised by the model's data preprocessor
(no batch padding: the backbone pads itself), :func:`~l2vit.analysis.attention.analyse_attention` for the query
points, and the statistics as JSON-able data (:func:`attention_stats`)."""
import os.path as osp
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..errors import ToolError

__all__ = ['build_backbone', 'resize_image', 'preprocess', 'attention_stats', 'image_attention']

Point = Tuple[float, float]


def build_backbone(config: str, checkpoint: str, cfg_options: Optional[dict], device: str):
    """The config's model (built in its default scope) with the checkpoint's backbone weights, in eval mode: the
    loaded config, the model and its L2ViT backbone."""
    from ..apis.config import build_model, read_config
    from ..checkpoint import load_pretrained
    from ..models import L2ViT

    cfg = read_config(config, cfg_options)
    model = build_model(cfg)
    backbone = getattr(model, 'backbone', None)
    if not isinstance(backbone, L2ViT):
        raise ToolError(f'the model of {config} has no L2ViT backbone (model.backbone is '
                        f'{type(backbone).__name__ if backbone is not None else "missing"}); this tool analyses L2ViT '
                        'only.')
    # Weights-only, and strict for the backbone (a mismatching checkpoint must not leave random weights); the file's
    # existence is checked by image_attention, a CheckpointError is the user's to fix as it is.
    load_pretrained(backbone, checkpoint)
    model.to(device).eval()
    return cfg, model, backbone


def _pipeline(cfg) -> List[dict]:
    loader = cfg.get('test_dataloader') or {}
    dataset = loader.get('dataset') or {}
    while isinstance(dataset, dict) and 'pipeline' not in dataset and isinstance(dataset.get('dataset'), dict):
        dataset = dataset['dataset']
    pipeline = dataset.get('pipeline') if isinstance(dataset, dict) else None
    return list(pipeline or cfg.get('test_pipeline') or [])


def resize_image(image: np.ndarray, cfg, size: Optional[Sequence[int]]) -> Tuple[np.ndarray, str]:
    """The image resized as asked (``size``) or as the config's test pipeline resizes, and how."""
    import cv2
    h, w = image.shape[:2]
    if size is not None:
        if list(size) == [0]:
            return image, 'unchanged (--size 0)'
        if len(size) == 1:
            ratio = size[0] / max(h, w)
            new = (max(1, round(h * ratio)), max(1, round(w * ratio)))
        else:
            new = (size[0], size[1])
        return cv2.resize(image, (new[1], new[0]), interpolation=cv2.INTER_LINEAR), f'--size {size}'
    for step in _pipeline(cfg):
        kind = str(step.get('type', '')).split('.')[-1]
        if kind not in ('Resize', 'ResizeEdge'):
            continue
        from mmengine.registry import TRANSFORMS
        try:
            out = TRANSFORMS.build(dict(step))(dict(img=image, img_shape=(h, w), ori_shape=(h, w)))
            return out['img'], f'config test pipeline {kind}'
        except Exception as err:  # noqa: BLE001 - any failure: tell the user and keep the image as it is
            print(f'warning: could not apply the config\'s {kind} ({type(err).__name__}: {err}); the image keeps '
                  f'its size (choose one with --size)', file=sys.stderr)
            return image, 'unchanged (config resize failed)'
    return image, 'unchanged (no resize in the config\'s test pipeline)'


def preprocess(image_bgr: np.ndarray, data_preprocessor, device: str):
    """(1, 3, H, W) float tensor, normalised as the model's data preprocessor does (no batch padding)."""
    import torch
    x = torch.from_numpy(np.ascontiguousarray(image_bgr.transpose(2, 0, 1))).float()
    if getattr(data_preprocessor, '_channel_conversion', False) or getattr(data_preprocessor, 'to_rgb', False):
        x = x.flip(0)
    if getattr(data_preprocessor, '_enable_normalize', False):
        x = (x - data_preprocessor.mean.cpu().float()) / data_preprocessor.std.cpu().float()
    return x.unsqueeze(0).to(device)


def block_entry(r, query: bool = True) -> dict:
    """The JSON-able place and, with ``query``, statistics of one :class:`~l2vit.analysis.attention.BlockAttention`."""
    place = dict(stage=r.stage, block=r.block, depth=r.depth, kind=r.kind, num_heads=r.num_heads, map_size=list(r.size))
    return dict(place, query_token_yx=list(r.query_yx), **r.statistics,
                **(dict(window=list(r.window)) if r.window else {})) if query else place


def attention_stats(results: list, points: Sequence[Point], points_in: Sequence[Point], radius: float,
                    window_size: int, **header) -> dict:
    """What ``stats.json`` holds: ``header`` (config, checkpoint, image, sizes, resize), the settings, the blocks,
    and per query point (in pixels of the image, and of the resized input) every block's :func:`block_entry`."""
    return dict(
        header, radius=radius, radius_metric='Chebyshev distance in tokens of the block\'s stage',
        entropy_unit='nats', window_size=window_size,
        blocks=[block_entry(r, query=False) for r in results[0]],
        points=[dict(point_yx=[y, x], input_yx=[yi, xi], blocks=[block_entry(r) for r in blocks])
                for (y, x), (yi, xi), blocks in zip(points, points_in, results)])


def image_attention(config: str, checkpoint: str, image_path: str, points: Optional[Sequence[Point]] = None,
                    radius: float = 3, size: Optional[Sequence[int]] = None, device: str = 'cpu',
                    cfg_options: Optional[dict] = None) -> Dict[str, Any]:
    """Analyse ``image_path`` with the model of ``config`` and ``checkpoint`` for the query ``points`` ((row,
    column) in pixels; default: the centre and the centres of the top-left and bottom-right quarters). Returns
    ``stats`` (what ``stats.json`` holds, :func:`attention_stats`), ``results`` (per point, every block's
    :class:`~l2vit.analysis.attention.BlockAttention`), ``input`` (the resized BGR image), ``points`` and
    ``points_in`` (the points in its pixels) and ``depths`` (the backbone's): what the tool draws."""
    for path, what in ((config, 'config'), (checkpoint, 'checkpoint'), (image_path, 'image')):
        if not osp.isfile(path):
            raise ToolError(f'{what} not found: {path}')
    import cv2

    from .attention import analyse_attention
    image = cv2.imread(image_path, cv2.IMREAD_COLOR)
    if image is None:
        raise ToolError(f'cannot read the image {image_path} (not an image file OpenCV can decode)')
    h, w = image.shape[:2]
    points = points or [(h / 2, w / 2), (h / 4, w / 4), (3 * h / 4, 3 * w / 4)]
    for y, x in points:
        if not (0 <= y < h and 0 <= x < w):
            raise ToolError(f'point {y:g},{x:g} lies outside the {h}x{w} image (points are Y,X: row, column in '
                            'pixels)')
    cfg, model, backbone = build_backbone(config, checkpoint, cfg_options, device)
    resized, how = resize_image(image, cfg, size)
    rh, rw = resized.shape[:2]
    points_in = [(y * rh / h, x * rw / w) for y, x in points]
    results = analyse_attention(backbone, preprocess(resized, model.data_preprocessor, device), points_in, radius)
    stats = attention_stats(results, points, points_in, radius, backbone.window_size, config=config,
                            checkpoint=checkpoint, image=image_path, image_size=[h, w], input_size=[rh, rw],
                            resize=how)
    return dict(stats=stats, results=results, input=resized, points=points, points_in=points_in,
                depths=list(backbone.depths))
