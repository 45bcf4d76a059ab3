"""A synthetic instance-segmentation dataset in the exact COCO layout, for demos and tests that need no download.

``generate_coco_instances('data/synthetic_coco', num_train=1000, num_val=200, seed=0)`` writes
``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/000000000001.jpg ...``, so an mmdet config
built on ``_base_/datasets/coco_instance.py`` reads it with only ``data_root`` changed (and ``metainfo=metainfo()``
on each dataset, since the classes are not COCO's).

What is in an image
-------------------
* Size: width and height drawn independently from ``[min_size, max_size]``.
* Background: a low-saturation colour with a linear gradient, a smooth low-frequency texture and pixel noise.
* 1 to ``max_instances`` filled shapes, one of :data:`CLASSES` each: ``ellipse`` (circles included), ``rectangle``
  (rotated, aspect 0.4-1), ``triangle`` (rotated, no very thin ones) and ``star`` (five points, rotated). A shape's
  size is the diameter of its circumscribed circle, drawn from ``obj_size``; shapes lie wholly inside the image.
* Each shape has its own saturated colour (with a mild shading gradient), far from the background under it and
  from every other shape in the image, so the class must be told from the outline alone.
* Occlusion: a later shape covers earlier ones. A placement is redrawn (up to ``max_tries`` times, then the shape is
  skipped) if it would leave an earlier shape with less than ``place_min_visible`` of its area visible, with a hole
  in its visible part (COCO polygons cannot describe holes), or with a tiny (< ``min_pixels // 2`` px) or thin piece.
* Annotations describe the visible part only: polygons traced around the visible mask (a visible part split in two
  gives two polygons); ``area`` and ``bbox`` are those of the polygons as pycocotools rasterises them (so they agree
  with ``COCO.annToMask``). An instance with less than ``min_visible`` of its area or ``min_pixels`` pixels visible
  is left out (rare; the summary counts it).

Panoptic export (``panoptic=True``): also ``annotations/panoptic_{train,val}2017.json`` and
``annotations/panoptic_{train,val}2017/<image>.png`` in the COCO panoptic layout that mmdet's ``CocoPanopticDataset``
and panopticapi read (segment ids as RGB, ``id = R + 256 G + 256^2 B``, 0 = void): the annotated shapes' visible
masks as "thing" segments (disjoint by construction) and the rest of the image as one "stuff" segment of the class
:data:`STUFF_CLASSES` (``background``); a shape left out of the instances is void. Classes: :func:`panoptic_metainfo`.
The instance files are the same with or without it.

Everything is drawn from ``numpy.random.default_rng([seed, split, index])``: the same seed gives byte-identical files.
"""
import functools
import json
import os.path as osp
from typing import Callable, Dict, Iterator, List, Sequence, Tuple

import numpy as np

from .common import (check_arguments, fill_polygon, hsv_colour, image_size, make_dirs, require, write_dataset,
                     write_image)

cv2 = require('cv2', 'opencv-python')

#: The shape classes, in category-id order (id = index + 1).
CLASSES: Tuple[str, ...] = ('ellipse', 'rectangle', 'triangle', 'star')
#: A colour per class for mmdet's visualiser (RGB).
PALETTE: List[Tuple[int, int, int]] = [(220, 20, 60), (0, 114, 255), (0, 170, 60), (255, 170, 0)]
#: The panoptic export's stuff class (category id len(CLASSES) + 1): every pixel outside the annotated shapes.
STUFF_CLASSES: Tuple[str, ...] = ('background', )

_INFO = dict(description='L2ViT synthetic shapes (instance segmentation, COCO format)',
             url='',
             version='1.0',
             year=2025,
             contributor='l2vit.testing.generate_coco_instances',
             date_created='2025/01/01')
_LICENSES = [dict(id=1, name='CC0 1.0 (synthetic data)', url='https://creativecommons.org/publicdomain/zero/1.0/')]

_MIN_BG_DISTANCE = 100.0  # RGB distance between a shape's colour and the mean background under it
_MIN_SHAPE_DISTANCE = 110.0  # RGB distance between the colours of two shapes of one image


def metainfo() -> dict:
    """``metainfo`` for mmdet's ``CocoDataset`` on this data: ``dict(classes=CLASSES, palette=[...])``."""
    return dict(classes=CLASSES, palette=list(PALETTE))


def panoptic_metainfo() -> dict:
    """``metainfo`` for mmdet's ``CocoPanopticDataset`` on the panoptic export (things: the shapes, stuff:
    background)."""
    return dict(classes=CLASSES + STUFF_CLASSES, thing_classes=CLASSES, stuff_classes=STUFF_CLASSES,
                palette=list(PALETTE) + [(128, 128, 128)])


# ----------------------------------------------------------------------------------------------------------------
# drawing


def _shape_vertices(rng: np.random.Generator, label: int, diameter: float) -> np.ndarray:
    """Vertices (N, 2) of a shape of class ``label`` around (0, 0), rotated at random, in pixel units."""
    r = diameter / 2
    if label == 0:  # ellipse (circle when the axes are equal); 64 vertices: < 0.1 px from the true curve
        b = r * rng.uniform(0.5, 1.0)
        t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
        pts = np.stack([r * np.cos(t), b * np.sin(t)], 1)
    elif label == 1:  # rectangle, diagonal = diameter
        q = rng.uniform(0.4, 1.0)
        w = diameter / np.sqrt(1 + q * q)
        h = q * w
        pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2
    elif label == 2:  # triangle on the circumscribed circle; corners 120 +- 40 degrees apart: angles 40-80 degrees
        ang = np.array([0.0, 2.0, 4.0]) * np.pi / 3 + rng.uniform(-0.35, 0.35, 3)
        pts = r * np.stack([np.cos(ang), np.sin(ang)], 1)
    else:  # five-pointed star
        inner = r * rng.uniform(0.42, 0.55)
        ang = np.arange(10) * np.pi / 5
        rad = np.where(np.arange(10) % 2 == 0, r, inner)
        pts = np.stack([rad * np.cos(ang), rad * np.sin(ang)], 1)
    theta = rng.uniform(0, 2 * np.pi)
    c, s = np.cos(theta), np.sin(theta)
    return pts @ np.array([[c, s], [-s, c]])


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Low-saturation gradient + smooth texture (float32, BGR, 0-255, no pixel noise yet)."""
    base = rng.uniform(60, 190)
    c0 = base + rng.uniform(-18, 18, 3)
    c1 = c0 + rng.uniform(-40, 40, 3)
    phi = rng.uniform(0, 2 * np.pi)
    t = (np.arange(width, dtype=np.float32)[None, :] * np.cos(phi) +
         np.arange(height, dtype=np.float32)[:, None] * np.sin(phi))
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    img = c0.astype(np.float32) + (c1 - c0).astype(np.float32) * t[..., None]
    # low-frequency blotches (grey, so the texture does not add colour) and a finer, weaker grain
    grid = rng.standard_normal((int(rng.integers(3, 9)), int(rng.integers(3, 9)), 1)).astype(np.float32)
    img += (cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) * rng.uniform(5, 14))[..., None]
    fine = rng.standard_normal(((height + 3) // 4, (width + 3) // 4, 3)).astype(np.float32)
    img += cv2.resize(fine, (width, height), interpolation=cv2.INTER_LINEAR) * rng.uniform(2, 6)
    return img


def _pick_colour(rng: np.random.Generator, bg_mean: np.ndarray, others: Sequence[np.ndarray]) -> np.ndarray:
    """A saturated colour far from the background under the shape and from the image's other shapes."""
    best, best_score = None, -1.0
    for _ in range(64):
        colour = hsv_colour(rng.integers(0, 180), rng.integers(140, 256), rng.integers(120, 256), 'BGR')
        score = min([float(np.linalg.norm(colour - bg_mean)) - _MIN_BG_DISTANCE] +
                    [float(np.linalg.norm(colour - o)) - _MIN_SHAPE_DISTANCE for o in others])
        if score >= 0:
            return colour
        if score > best_score:
            best, best_score = colour, score
    return best


def _visible_ok(visible: np.ndarray, full_pixels: int, place_min_visible: float, min_fragment: int) -> bool:
    """Whether an occluded shape's visible part is still a clean instance (see the module docstring)."""
    n = int(np.count_nonzero(visible))
    if n < place_min_visible * full_pixels:
        return False
    _, hierarchy = cv2.findContours(visible, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is not None and np.any(hierarchy[0][:, 3] >= 0):  # an inner contour: a hole
        return False
    num, labels, stats, _ = cv2.connectedComponentsWithStats(visible, connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    if areas.min() < min_fragment:
        return False
    if num > 2 or n < full_pixels:  # thin slivers vanish under a 3x3 erosion
        eroded = cv2.erode(visible, np.ones((3, 3), np.uint8))
        core = np.bincount(labels[eroded > 0], minlength=num)[1:]
        if np.any(core < 0.25 * areas):
            return False
    return True


def _mask_polygons(visible: np.ndarray) -> List[List[float]]:
    """COCO polygons (pixel (i, j) covers [i, i+1] x [j, j+1]) around each piece of a binary mask.

    The mask is traced at twice the resolution, so each vertex lies a quarter pixel inside the outline of the
    boundary pixels: pycocotools rasterises the polygons back to the same pixels (exactly, on the generated data)."""
    ys, xs = np.nonzero(visible)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = visible[y0:y1, x0:x1].repeat(2, 0).repeat(2, 1)
    crop = np.pad(crop, 1)
    contours, _ = cv2.findContours(crop,
                                   cv2.RETR_EXTERNAL,
                                   cv2.CHAIN_APPROX_SIMPLE,
                                   offset=(int(2 * x0) - 1, int(2 * y0) - 1))
    polygons = []
    for contour in contours:
        # drop vertices within 1/4 px of the outline's straight runs: the rasterised mask does not change
        contour = cv2.approxPolyDP(contour, 0.5, True).reshape(-1, 2)
        if len(contour) >= 3:
            polygons.append([float(v) for v in (contour / 2 + 0.25).ravel()])
    return polygons


def _draw_image(rng: np.random.Generator, min_size: int, max_size: int, obj_size: Tuple[float, float],
                max_instances: int, place_min_visible: float, min_pixels: int, max_tries: int):
    """One image: (BGR uint8 image, [(label, visible mask, full pixel count)] in painting order)."""
    height, width = image_size(rng, min_size, max_size)
    img = _background(rng, height, width)
    wanted = int(rng.integers(1, max_instances + 1))
    labels, visibles, fulls, colours = [], [], [], []
    for _ in range(wanted):
        for _ in range(max_tries):
            label = int(rng.integers(len(CLASSES)))
            pts = _shape_vertices(rng, label, rng.uniform(*obj_size))
            lo = -pts.min(0) + 1
            hi = np.array([width - 2, height - 2]) - pts.max(0)
            if np.any(hi < lo):
                continue
            pts = pts + rng.uniform(lo, hi)
            mask = fill_polygon(pts, height, width)
            full = int(np.count_nonzero(mask))
            if full < 2 * min_pixels:
                continue
            new_visibles = []
            ok = True
            for vis, full_i in zip(visibles, fulls):
                if np.any(vis & mask):
                    vis = vis & (1 - mask)
                    if not _visible_ok(vis, full_i, place_min_visible, max(min_pixels // 2, 1)):
                        ok = False
                        break
                new_visibles.append(vis)
            if ok:
                break
        else:  # no clean placement found: fewer shapes in this image
            continue
        inside = mask > 0
        colour = _pick_colour(rng, img[inside].mean(0), colours)
        # a mild linear shading across the shape
        yy, xx = np.nonzero(inside)
        phi = rng.uniform(0, 2 * np.pi)
        proj = (xx - xx.mean()) * np.cos(phi) + (yy - yy.mean()) * np.sin(phi)
        proj /= max(float(np.abs(proj).max()), 1.0)
        img[yy, xx] = colour + (rng.uniform(0, 18) * proj)[:, None].astype(np.float32)
        visibles = new_visibles + [mask]
        labels.append(label)
        fulls.append(full)
        colours.append(colour)
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(2, 5)
    img = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return img, list(zip(labels, visibles, fulls))


# ----------------------------------------------------------------------------------------------------------------
# the dataset


def _write_split(split: str, images: Iterator[Tuple[int, np.random.Generator]], out_dir: str, draw: Callable,
                 jpeg_quality: int, min_visible: float, min_pixels: int, mask_utils, panoptic: bool = False) -> dict:
    img_dir, ann_dir = make_dirs(out_dir, f'{split}2017', 'annotations')  # COCO 2017's folders and file names
    panoptic_writer = _PanopticWriter(ann_dir, split) if panoptic else None
    coco_images, annotations = [], []
    stats = dict(num_occluded=0, num_dropped=0, num_split=0, min_visible_fraction=1.0)
    per_class = {name: 0 for name in CLASSES}
    for index, rng in images:
        img, instances = draw(rng)
        height, width = img.shape[:2]
        image_id = index + 1
        file_name = f'{image_id:012d}.jpg'
        write_image(osp.join(img_dir, file_name), img, jpeg_quality)
        coco_images.append(dict(id=image_id, file_name=file_name, width=width, height=height, license=1))
        kept = []  # (label, visible mask) of the annotated shapes, for the panoptic export
        for label, visible, full in instances:
            pixels = int(np.count_nonzero(visible))
            polygons = _mask_polygons(visible) if pixels else []
            if pixels < min_visible * full or pixels < min_pixels or not polygons:
                stats['num_dropped'] += 1
                continue
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
            area = float(mask_utils.area(rle))
            if area < min_pixels:
                stats['num_dropped'] += 1
                continue
            x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
            if pixels < full:
                stats['num_occluded'] += 1
                stats['min_visible_fraction'] = min(stats['min_visible_fraction'], pixels / full)
            stats['num_split'] += len(polygons) > 1
            per_class[CLASSES[label]] += 1
            annotations.append(
                dict(id=len(annotations) + 1,
                     image_id=image_id,
                     category_id=label + 1,
                     segmentation=polygons,
                     area=area,
                     bbox=[x, y, w, h],
                     iscrowd=0))
            kept.append((label, visible))
        if panoptic_writer is not None:
            panoptic_writer.add(image_id, file_name, (height, width), kept, [visible for _, visible, _ in instances])
    categories = [dict(id=i + 1, name=name, supercategory='shape') for i, name in enumerate(CLASSES)]
    coco = dict(info=_INFO, licenses=_LICENSES, images=coco_images, annotations=annotations, categories=categories)
    ann_file = osp.join(ann_dir, f'instances_{split}2017.json')
    with open(ann_file, 'w') as f:
        json.dump(coco, f, separators=(',', ':'))
    if panoptic_writer is not None:
        stats.update(panoptic_writer.write(coco_images, categories))
    return dict(num_images=len(coco_images),
                num_instances=len(annotations),
                instances_per_class=per_class,
                ann_file=ann_file,
                img_dir=img_dir,
                **stats)


class _PanopticWriter:
    """The COCO panoptic export of one split: a segment-id PNG per image, then the JSON."""

    def __init__(self, ann_dir: str, split: str) -> None:
        self.name = f'panoptic_{split}2017'
        self.ann_dir = ann_dir
        self.seg_dir = make_dirs(ann_dir, self.name)[0]
        self.annotations: List[dict] = []

    def add(self, image_id: int, file_name: str, shape: Tuple[int, int], kept: List[Tuple[int, np.ndarray]],
            painted: List[np.ndarray]) -> None:
        """``kept``: (label, visible mask) of the annotated shapes; ``painted``: the visible masks of all shapes."""
        ids = np.zeros(shape, np.int64)
        segments = [(label + 1, visible > 0) for label, visible in kept]
        shapes = np.zeros(shape, bool)
        for visible in painted:
            shapes |= visible > 0
        segments.append((len(CLASSES) + 1, ~shapes))  # the background stuff; left-out shapes stay void
        segments_info = []
        for segment_id, (category_id, mask) in enumerate(segments, start=1):
            area = int(np.count_nonzero(mask))
            if not area:
                continue
            ids[mask] = segment_id
            ys, xs = np.nonzero(mask)
            bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
            segments_info.append(dict(id=segment_id, category_id=category_id, area=area, bbox=bbox, iscrowd=0))
        png_name = osp.splitext(file_name)[0] + '.png'
        rgb = np.stack([ids % 256, ids // 256 % 256, ids // 256**2], axis=-1).astype(np.uint8)
        cv2.imwrite(osp.join(self.seg_dir, png_name), rgb[..., ::-1])  # OpenCV writes BGR
        self.annotations.append(dict(image_id=image_id, file_name=png_name, segments_info=segments_info))

    def write(self, images: List[dict], thing_categories: List[dict]) -> dict:
        """Write the JSON; returns the split summary's panoptic entries."""
        categories = [dict(category, isthing=1) for category in thing_categories] + [
            dict(id=len(CLASSES) + i + 1, name=name, supercategory='stuff', isthing=0)
            for i, name in enumerate(STUFF_CLASSES)
        ]
        ann_file = osp.join(self.ann_dir, f'{self.name}.json')
        with open(ann_file, 'w') as f:
            json.dump(dict(info=_INFO, licenses=_LICENSES, images=images, annotations=self.annotations,
                           categories=categories), f, separators=(',', ':'))
        return dict(panoptic_ann_file=ann_file, panoptic_seg_dir=self.seg_dir)


def generate_coco_instances(out_dir: str,
                            num_train: int = 1000,
                            num_val: int = 200,
                            seed: int = 0,
                            progress: bool = True,
                            *,
                            min_size: int = 200,
                            max_size: int = 360,
                            jpeg_quality: int = 95,
                            obj_size: Tuple[float, float] = (40, 120),
                            max_instances: int = 5,
                            min_visible: float = 0.3,
                            place_min_visible: float = 0.5,
                            min_pixels: int = 100,
                            max_tries: int = 30,
                            panoptic: bool = False) -> Dict:
    """Write the synthetic shapes dataset to ``out_dir`` (existing files of the same names are overwritten) in
    COCO 2017 layout; the arguments are described in the module docstring.

    Returns ``dict(out_dir, classes, seed, train=..., val=..., seconds)``; each split holds ``num_images``,
    ``num_instances``, ``instances_per_class``, ``num_occluded`` (annotated instances partly covered by a later
    shape), ``min_visible_fraction`` (of those), ``num_split`` (visible part in several polygons), ``num_dropped``
    (shapes painted but left out), ``ann_file`` and ``img_dir`` (with ``panoptic=True`` also ``panoptic_ann_file``
    and ``panoptic_seg_dir``). Raises ``ValueError`` for arguments out of range,
    :class:`~l2vit.testing.common.MissingDependencyError` (an ``ImportError``) without pycocotools.
    """
    check_arguments(num_train, num_val, min_size, max_size, smallest_size=1)
    if not 0 < obj_size[0] <= obj_size[1] <= min_size - 4:
        raise ValueError(f'obj_size {obj_size} must be a range of positive sizes that fit in a {min_size} px image')
    if max_instances < 1:
        raise ValueError(f'need max_instances >= 1, got {max_instances}')
    mask_utils = require('pycocotools.mask', 'pycocotools')
    draw = functools.partial(_draw_image, min_size=int(min_size), max_size=int(max_size),
                             obj_size=(float(obj_size[0]), float(obj_size[1])), max_instances=int(max_instances),
                             place_min_visible=place_min_visible, min_pixels=int(min_pixels), max_tries=int(max_tries))
    write_split = functools.partial(_write_split, out_dir=out_dir, draw=draw, jpeg_quality=jpeg_quality,
                                    min_visible=min_visible, min_pixels=int(min_pixels), mask_utils=mask_utils,
                                    panoptic=bool(panoptic))
    return write_dataset(out_dir, CLASSES, num_train, num_val, seed, progress, write_split)
