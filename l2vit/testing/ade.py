"""A synthetic semantic-segmentation dataset in the exact ADE20K layout, for demos and tests that need no download.

``generate_ade_semantic('data/synthetic_ade', num_train=600, num_val=100, seed=0)`` writes
``images/{training,validation}/00000001.jpg ...`` and ``annotations/{training,validation}/00000001.png ...`` as
ADEChallengeData2016 does: an RGB JPEG and a single-channel uint8 PNG label map of the same stem and size. ``0`` is
"other / unlabelled" and ``1..K`` are :data:`SEG_CLASSES` in order, so mmseg's
``LoadAnnotations(reduce_zero_label=True)`` turns them into training labels ``0..K-1`` and ``255`` (ignored). Use
mmseg's ``BaseSegDataset`` with ``metainfo=seg_metainfo()`` and ``reduce_zero_label=True`` (``ADE20KDataset`` would
remap the labels, since our class names are a subset of ADE's).

What is in an image
-------------------
An outdoor scene (width and height drawn from ``[min_size, max_size]``), painted back to front; every painted region
writes its class into the label map at the same time, so labels and pixels always agree:

* **sky** above a slightly tilted horizon at 30-60 % of the height (blue gradient with soft clouds, or overcast),
  sometimes with distant hills (unlabelled); **grass** below it (green or dry, streaky blades);
* **water**, sometimes: a sea down to a wavy shore, or a lake, with ripples (its colour may match the sky's: texture
  and place tell them apart);
* **road**, usually: to a vanishing point or across the view, asphalt grain with dashed markings (road too);
* **building**: 0-4 blocks on the horizon (brick, concrete, beige, dark glass) with windows, some lit, and a roof;
* **tree**: 0-5 trees (crowns of disks, or conifers) with trunks, sized by distance, sometimes a tree line;
* shadows that do not follow the labels (the trees' on the ground, the clouds'); unlabelled clutter (cars, people,
  rocks, signs, dirt patches); per image, sometimes haze, a brightness and colour cast, a slight blur; pixel noise and
  JPEG compression.

Everything is drawn from ``numpy.random.default_rng([seed, split, index])``: the same seed gives byte-identical files.
"""
import functools
import os.path as osp
from typing import Callable, Dict, Iterator, List, Tuple

import numpy as np

from .common import (check_arguments, fill_polygon, hsv_colour, image_size, make_dirs, require, write_dataset,
                     write_image)

cv2 = require('cv2', 'opencv-python')

#: The classes, in label order: PNG value ``i + 1`` is ``SEG_CLASSES[i]`` (0 is unlabelled).
SEG_CLASSES: Tuple[str, ...] = ('sky', 'building', 'tree', 'grass', 'road', 'water')
#: A colour per class for mmseg's visualiser (RGB), each far from the class's own colours in the images, so that a
#: prediction drawn over an image stands out.
SEG_PALETTE: List[Tuple[int, int, int]] = [(255, 190, 40), (0, 200, 255), (255, 60, 180), (150, 60, 255),
                                           (255, 60, 40), (60, 255, 120)]

SKY, BUILDING, TREE, GRASS, ROAD, WATER = range(1, len(SEG_CLASSES) + 1)
OTHER = 0

#: split: (image folder, annotation folder) as in ADEChallengeData2016.
_FOLDERS = {
    'train': ('images/training', 'annotations/training'),
    'val': ('images/validation', 'annotations/validation'),
}


def seg_metainfo() -> dict:
    """``metainfo`` for mmseg's ``BaseSegDataset`` on this data: ``dict(classes=SEG_CLASSES, palette=[...])``."""
    return dict(classes=SEG_CLASSES, palette=[list(c) for c in SEG_PALETTE])


#: An RGB colour (float32) from OpenCV's HSV ranges (h 0-180, s and v 0-255).
_hsv = functools.partial(hsv_colour, order='RGB')

# ----------------------------------------------------------------------------------------------------------------
# textures (float32 RGB, 0-255, the size of the whole image: a region takes the pixels under its mask)


def _noise(rng: np.random.Generator, height: int, width: int, cells_y: float, cells_x: float,
           channels: int = 1) -> np.ndarray:
    """Smooth noise with about ``cells_y`` x ``cells_x`` bumps over the image, roughly unit amplitude."""
    gy, gx = max(2, int(round(cells_y))), max(2, int(round(cells_x)))
    grid = rng.standard_normal((gy, gx, channels)).astype(np.float32)
    out = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC if min(gy, gx) >= 4 else cv2.INTER_LINEAR)
    return out.reshape(height, width, channels)


def _sky(rng, height, width, yy, horizon_y):
    t = np.clip(yy / max(horizon_y, 1.0), 0, 1)[..., None]
    if rng.random() < 0.25:  # overcast
        top = np.full(3, rng.uniform(150, 205), np.float32) + rng.uniform(-6, 10, 3).astype(np.float32)
        bottom = top + rng.uniform(10, 35)
        cloud_colour, cloudiness = top - rng.uniform(15, 40), rng.uniform(0.3, 0.7)
    else:
        top = np.array([rng.uniform(40, 120), rng.uniform(110, 175), rng.uniform(190, 255)], np.float32)
        bottom = np.array([rng.uniform(170, 225), rng.uniform(200, 235), rng.uniform(225, 255)], np.float32)
        cloud_colour, cloudiness = np.full(3, rng.uniform(225, 250), np.float32), rng.uniform(0.0, 0.9)
    img = top + (bottom - top) * t ** rng.uniform(0.6, 1.5)
    clouds = _noise(rng, height, width, rng.uniform(2, 5), rng.uniform(3, 8))
    clouds += 0.35 * _noise(rng, height, width, height / 12, width / 12)
    alpha = np.clip((clouds - rng.uniform(0.2, 0.8)) * 1.5, 0, 1) * cloudiness
    img = img * (1 - alpha) + cloud_colour * alpha
    return img + _noise(rng, height, width, height / 3, width / 3, 3) * 1.5


def _hills(rng, height, width, sky):
    colour = _hsv(rng.uniform(40, 110), rng.uniform(30, 110), rng.uniform(90, 170))
    mix = rng.uniform(0.2, 0.5)  # aerial haze: part of the sky's colour
    img = colour * (1 - mix) + sky * mix
    return img + _noise(rng, height, width, height / 10, width / 10) * rng.uniform(4, 10)


def _grass(rng, height, width, yy, horizon_y):
    if rng.random() < 0.2:  # dry
        colour = _hsv(rng.uniform(20, 32), rng.uniform(90, 160), rng.uniform(130, 190))
    else:
        colour = _hsv(rng.uniform(33, 55), rng.uniform(120, 220), rng.uniform(100, 190))
    img = np.broadcast_to(colour, (height, width, 3)).astype(np.float32)
    # blades: noise that changes fast across and slowly down the image; patches; darker towards the viewer
    img = img + _noise(rng, height, width, height / 5, width / 1.5) * rng.uniform(14, 26)
    img = img * (1 + 0.12 * _noise(rng, height, width, rng.uniform(2, 5), rng.uniform(2, 6)))
    depth = np.clip((yy - horizon_y) / max(height - horizon_y, 1.0), 0, 1)[..., None]
    return img * (1.05 - rng.uniform(0.0, 0.25) * depth)


def _water(rng, height, width, yy, horizon_y, sky_colour):
    colour = _hsv(rng.uniform(85, 110), rng.uniform(110, 220), rng.uniform(90, 190))
    if rng.random() < 0.3:  # takes the sky's colour: told apart by texture and place only
        colour = 0.4 * colour + 0.6 * sky_colour
    img = np.broadcast_to(colour, (height, width, 3)).astype(np.float32)
    ripples = _noise(rng, height, width, height / 2.5, width / 14) * rng.uniform(14, 26)
    waves = np.sin(yy * rng.uniform(0.6, 1.2) + rng.uniform(0, 6.3))[..., None] * rng.uniform(4, 10)
    near_horizon = np.exp(-np.maximum(yy - horizon_y, 0) / max(0.08 * height, 1.0))[..., None]
    return img + ripples + waves + near_horizon * rng.uniform(20, 50)


def _asphalt(rng, height, width):
    grey = rng.uniform(65, 135)
    colour = np.array([grey, grey, grey], np.float32) + rng.uniform(-5, 5, 3).astype(np.float32)
    img = np.broadcast_to(colour, (height, width, 3)).astype(np.float32)
    img = img + rng.standard_normal((height, width, 1)).astype(np.float32) * rng.uniform(6, 12)
    return img + _noise(rng, height, width, rng.uniform(2, 5), rng.uniform(2, 5)) * 8


def _building(rng, height, width, x0, top, bw, bh):
    kind = rng.integers(4)
    if kind == 0:  # brick
        colour = np.array([rng.uniform(140, 190), rng.uniform(55, 95), rng.uniform(35, 70)], np.float32)
    elif kind == 1:  # concrete
        colour = np.full(3, rng.uniform(110, 190), np.float32) + rng.uniform(-8, 8, 3).astype(np.float32)
    elif kind == 2:  # beige
        colour = np.array([rng.uniform(185, 225), rng.uniform(165, 200), rng.uniform(120, 160)], np.float32)
    else:  # dark glass
        colour = np.array([rng.uniform(35, 75), rng.uniform(55, 90), rng.uniform(75, 115)], np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    img = colour + (xx - x0)[..., None] / max(bw, 1.0) * rng.uniform(-25, 25)
    if rng.random() < 0.9:  # a grid of windows, some of them lit
        sx, sy = rng.uniform(6, 14), rng.uniform(7, 16)
        fx, fy = rng.uniform(0.4, 0.7), rng.uniform(0.4, 0.7)
        cx, cy = (xx - x0 - 2) / sx, (yy - top - 3) / sy
        inside = (cx >= 0) & (cy >= 0) & (np.mod(cx, 1) < fx) & (np.mod(cy, 1) < fy) & (xx < x0 + bw - 3)
        cells = rng.random((int(bh / sy) + 3, int(bw / sx) + 3))
        ix = np.clip(cx.astype(np.int64), 0, cells.shape[1] - 1)
        iy = np.clip(cy.astype(np.int64), 0, cells.shape[0] - 1)
        lit = cells[iy, ix] > 0.8
        dark = colour * rng.uniform(0.25, 0.5) + np.array([0, 10, 25], np.float32)
        img = np.where(inside[..., None], np.where(lit[..., None], np.array([245, 225, 150], np.float32), dark), img)
    roof = rng.uniform(2, 5)
    img = np.where(((yy >= top) & (yy < top + roof))[..., None], colour * 0.55, img)
    return img + rng.standard_normal((height, width, 1)).astype(np.float32) * rng.uniform(3, 7)


def _foliage(rng, height, width):
    if rng.random() < 0.15:  # autumn
        colour = _hsv(rng.uniform(8, 22), rng.uniform(150, 230), rng.uniform(120, 200))
    else:
        colour = _hsv(rng.uniform(38, 75), rng.uniform(130, 240), rng.uniform(50, 130))
    img = np.broadcast_to(colour, (height, width, 3)).astype(np.float32)
    leaves = (_noise(rng, height, width, height / 2.5, width / 2.5) +
              0.6 * _noise(rng, height, width, height / 6, width / 6))
    return img * (1 + 0.35 * np.clip(leaves, -1.5, 1.5))


# ----------------------------------------------------------------------------------------------------------------
# shapes (binary masks)


def _poly_mask(pts, height, width) -> np.ndarray:
    return fill_polygon(pts, height, width).astype(bool)


def _disk(mask: np.ndarray, cx: float, cy: float, r: float) -> None:
    cv2.circle(mask, (int(round(cx * 16)), int(round(cy * 16))), max(int(round(r * 16)), 16), 1, -1, cv2.LINE_8, 4)


def _blob(rng, cx, cy, rx, ry, height, width) -> np.ndarray:
    """A smooth random closed shape (radial polygon) around (cx, cy)."""
    ang = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    rad = 1 + sum(rng.uniform(-0.18, 0.18) * np.cos(k * ang + rng.uniform(0, 6.3)) for k in (2, 3, 4))
    return _poly_mask(np.stack([cx + rx * rad * np.cos(ang), cy + ry * rad * np.sin(ang)], 1), height, width)


# ----------------------------------------------------------------------------------------------------------------
# the scene


class _Canvas:
    def __init__(self, height: int, width: int):
        self.img = np.zeros((height, width, 3), np.float32)
        self.label = np.zeros((height, width), np.uint8)

    def paint(self, mask: np.ndarray, texture, label: int) -> None:
        mask = mask.astype(bool, copy=False)
        self.img[mask] = np.broadcast_to(texture, self.img.shape)[mask]
        self.label[mask] = label


def _clutter(rng, canvas: _Canvas, height, width, x, y_base, scale) -> None:
    """One unlabelled object standing at (x, y_base), ``scale`` pixels tall-ish."""
    kind = rng.integers(4)
    colour = _hsv(rng.uniform(0, 180), rng.uniform(120, 255), rng.uniform(90, 240))
    shade = colour + rng.standard_normal((height, width, 1)).astype(np.float32) * 4
    if kind == 0:  # car: body, windows, wheels
        w, h = scale * rng.uniform(1.4, 2.2), scale * rng.uniform(0.5, 0.7)
        body = _poly_mask([(x - w / 2, y_base - h), (x + w / 2, y_base - h), (x + w / 2, y_base - 0.15 * h),
                           (x - w / 2, y_base - 0.15 * h)], height, width)
        cabin = _poly_mask([(x - 0.3 * w, y_base - 1.5 * h), (x + 0.25 * w, y_base - 1.5 * h),
                            (x + 0.38 * w, y_base - h), (x - 0.4 * w, y_base - h)], height, width)
        canvas.paint(body | cabin, shade, OTHER)
        glass = _poly_mask([(x - 0.26 * w, y_base - 1.42 * h), (x + 0.22 * w, y_base - 1.42 * h),
                            (x + 0.32 * w, y_base - 1.03 * h), (x - 0.35 * w, y_base - 1.03 * h)], height, width)
        canvas.paint(glass, np.array([40, 55, 70], np.float32), OTHER)
        wheels = np.zeros((height, width), np.uint8)
        for wx in (x - 0.3 * w, x + 0.3 * w):
            _disk(wheels, wx, y_base - 0.15 * h, 0.22 * h)
        canvas.paint(wheels, np.array([20, 20, 22], np.float32), OTHER)
    elif kind == 1:  # person: body and head
        h = scale * rng.uniform(1.1, 1.6)
        person = _blob(rng, x, y_base - 0.42 * h, 0.13 * h, 0.42 * h, height, width).astype(np.uint8)
        _disk(person, x, y_base - 0.93 * h, 0.09 * h)
        canvas.paint(person, shade, OTHER)
    elif kind == 2:  # rock
        colour = _hsv(rng.uniform(5, 30), rng.uniform(10, 90), rng.uniform(70, 170))
        r = scale * rng.uniform(0.4, 0.9)
        rock = _blob(rng, x, y_base - 0.5 * r, r, 0.6 * r, height, width)
        canvas.paint(rock, colour + _noise(rng, height, width, height / 4, width / 4) * 10, OTHER)
    else:  # sign on a pole
        h = scale * rng.uniform(1.4, 2.2)
        pole_w = max(1.0, 0.06 * h)
        pole = _poly_mask([(x - pole_w / 2, y_base - h), (x + pole_w / 2, y_base - h), (x + pole_w / 2, y_base),
                           (x - pole_w / 2, y_base)], height, width)
        canvas.paint(pole, np.array([90, 90, 95], np.float32), OTHER)
        plate = np.zeros((height, width), np.uint8)
        _disk(plate, x, y_base - h, 0.22 * h)
        canvas.paint(plate, shade, OTHER)


def _draw_scene(rng: np.random.Generator, min_size: int, max_size: int, max_clutter: int):
    """One image: (RGB uint8 image, uint8 label map: 0 unlabelled, 1..K the classes)."""
    height, width = image_size(rng, min_size, max_size)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    canvas = _Canvas(height, width)
    hy = height * rng.uniform(0.3, 0.6)
    slope = rng.uniform(-0.1, 0.1)
    horizon = hy + slope * (xx - width / 2)

    def horizon_at(x: float) -> float:
        return hy + slope * (x - width / 2)

    def depth_scale(y: float) -> float:  # 0 at the horizon, 1 at the bottom edge
        return float(np.clip((y - hy) / max(height - hy, 1.0), 0, 1))

    sky = _sky(rng, height, width, yy, hy)
    canvas.paint(np.ones((height, width), bool), sky, SKY)
    sky_colour = sky[int(hy * 0.5), width // 2].copy()
    if rng.random() < 0.35:  # distant hills on the horizon: unlabelled
        profile = np.abs(_noise(rng, 1, width, 1, rng.uniform(2, 6))[0, :, 0]) * rng.uniform(0.04, 0.12) * height
        canvas.paint(yy >= horizon - profile[None, :] - 2, _hills(rng, height, width, sky), OTHER)

    ground = yy >= horizon
    canvas.paint(ground, _grass(rng, height, width, yy, hy), GRASS)
    if rng.random() < 0.3:  # a dirt patch: unlabelled
        cy = rng.uniform(hy + 0.2 * (height - hy), height)
        rx = width * rng.uniform(0.08, 0.25)
        dirt = _blob(rng, rng.uniform(0, width), cy, rx, rx * rng.uniform(0.2, 0.5), height, width) & ground
        canvas.paint(dirt, _hsv(rng.uniform(10, 25), rng.uniform(60, 140), rng.uniform(90, 170)) +
                     _noise(rng, height, width, height / 4, width / 4) * 12, OTHER)

    # water: a sea down to a wavy shore, or a lake
    u = rng.random()
    if u < 0.25:
        shore = horizon + (height - hy) * rng.uniform(0.2, 0.55) + _noise(rng, 1, width, 1, 6)[0, :, 0] * 3
        canvas.paint(ground & (yy < shore), _water(rng, height, width, yy, hy, sky_colour), WATER)
    elif u < 0.5:
        rx = width * rng.uniform(0.15, 0.45)
        cy = rng.uniform(hy + 0.25 * (height - hy), height)
        lake = _blob(rng, rng.uniform(0.1, 0.9) * width, cy, rx, rx * rng.uniform(0.15, 0.4), height, width)
        canvas.paint(lake & ground, _water(rng, height, width, yy, hy, sky_colour), WATER)

    # a road: to a vanishing point, or across the view
    u = rng.random()
    texture = _asphalt(rng, height, width).copy()  # C-contiguous, as cv2.line needs
    if u < 0.6:
        xv = rng.uniform(0.2, 0.8) * width
        yv = horizon_at(xv) + 1
        half_top = rng.uniform(0.5, 3.0)
        xl = rng.uniform(-0.3, 0.45) * width
        xr = xl + rng.uniform(0.35, 0.9) * width
        road = _poly_mask([(xl, height + 1), (xr, height + 1), (xv + half_top, yv), (xv - half_top, yv)], height,
                          width)
        paint = np.array([240, 240, 235], np.float32) if rng.random() < 0.6 else np.array([235, 195, 60], np.float32)
        xc = (xl + xr) / 2
        for k in range(int(rng.integers(6, 14))):  # dashes on the centre line, shorter with distance
            t0 = (k / 14) ** 0.6
            t1 = t0 + 0.45 * (((k + 1) / 14) ** 0.6 - t0)
            p0 = (xc + (xv - xc) * t0, height + (yv - height) * t0)
            p1 = (xc + (xv - xc) * t1, height + (yv - height) * t1)
            thickness = max(1, int(round((xr - xl) * 0.025 * (1 - t0))))
            cv2.line(texture, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), paint.tolist(), thickness)
    elif u < 0.8:
        y0 = hy + (height - hy) * rng.uniform(0.15, 0.7)
        band = rng.uniform(0.08, 0.2) * height
        road = (yy >= horizon + (y0 - hy)) & (yy < horizon + (y0 - hy) + band)
        line = np.abs(yy - (horizon + (y0 - hy) + band / 2)) < max(1.0, band * 0.04)
        dashes = np.mod(xx / rng.uniform(12, 24), 1) < 0.5
        texture[line & dashes] = 235
    if u < 0.8:
        canvas.paint(road & ground, texture, ROAD)

    # buildings standing on the horizon
    for _ in range(int(rng.integers(0, 5))):
        bw = width * rng.uniform(0.08, 0.3)
        x0 = rng.uniform(-0.1 * width, width - 0.5 * bw)
        base = horizon_at(x0 + bw / 2) + rng.uniform(0, 0.04) * height
        top = max(2.0, base - height * rng.uniform(0.12, 0.45))
        block = _poly_mask([(x0, top), (x0 + bw, top), (x0 + bw, base), (x0, base)], height, width)
        canvas.paint(block, _building(rng, height, width, x0, top, bw, base - top), BUILDING)

    # trees: a tree line on the horizon, and single trees sized by their distance
    foliage = _foliage(rng, height, width)
    trunk_colour = np.array([rng.uniform(70, 115), rng.uniform(50, 75), rng.uniform(25, 45)], np.float32)
    if rng.random() < 0.25:
        line = np.zeros((height, width), np.uint8)
        x = rng.uniform(-10, 10)
        x_end = rng.uniform(0.3, 1.0) * width + 10
        while x < x_end:
            r = rng.uniform(0.02, 0.05) * height
            _disk(line, x, horizon_at(x) - r * rng.uniform(0.3, 1.0), r)
            x += r * rng.uniform(0.8, 1.5)
        canvas.paint(line.astype(bool) & (yy < horizon + 3), foliage, TREE)
    for _ in range(int(rng.integers(0, 6))):
        bx = rng.uniform(0, width)
        by = rng.uniform(horizon_at(bx) + 2, height * 1.1)
        s = 0.4 + 1.6 * depth_scale(by)
        r = rng.uniform(0.05, 0.1) * min(height, width) * s
        trunk_h, trunk_w = r * rng.uniform(0.7, 1.4), max(1.5, r * rng.uniform(0.12, 0.25))
        crown = np.zeros((height, width), np.uint8)
        cy = by - trunk_h - 0.6 * r
        if rng.random() < 0.3:  # conifer: stacked triangles
            for k in range(3):
                w_k, y_k = r * (1.0 - 0.25 * k), cy + r * 0.6 - k * 0.7 * r
                crown |= _poly_mask([(bx - w_k, y_k + 0.3 * r), (bx + w_k, y_k + 0.3 * r), (bx, y_k - 0.9 * r)],
                                    height, width).astype(np.uint8)
        else:
            for _ in range(int(rng.integers(4, 9))):
                _disk(crown, bx + rng.normal(0, 0.4 * r), cy + rng.normal(0, 0.3 * r), r * rng.uniform(0.45, 0.8))
        trunk = _poly_mask([(bx - trunk_w / 2, cy), (bx + trunk_w / 2, cy), (bx + trunk_w / 2, by),
                            (bx - trunk_w / 2, by)], height, width)
        # its shadow on the ground (pixels darken, labels stay)
        shadow = _blob(rng, bx + rng.uniform(-0.8, 0.8) * r, by, r * rng.uniform(0.8, 1.4), r * 0.3, height, width)
        canvas.img[shadow & ground] *= rng.uniform(0.5, 0.75)
        canvas.paint(trunk, trunk_colour * (1 + 0.1 * _noise(rng, height, width, height / 4, 2)), TREE)
        canvas.paint(crown, foliage, TREE)

    if rng.random() < 0.35:  # cloud shadows drifting over everything under the sky
        cover = np.clip(_noise(rng, height, width, rng.uniform(2, 4), rng.uniform(2, 5))[..., 0] - rng.uniform(0, 0.6),
                        0, 1)
        canvas.img *= (1 - rng.uniform(0.25, 0.45) * cover * (canvas.label != SKY))[..., None]

    # unlabelled clutter on the ground, sized by distance
    for _ in range(int(rng.integers(0, max_clutter + 1))):
        x = rng.uniform(0, width)
        y = rng.uniform(horizon_at(x) + 3, height * 1.05)
        _clutter(rng, canvas, height, width, x, y, (0.04 + 0.12 * depth_scale(y)) * height)

    # air and camera: haze around the horizon, exposure, colour cast, blur, noise
    img = canvas.img
    if rng.random() < 0.2:
        amount = rng.uniform(0.2, 0.5) * np.exp(-np.abs(yy - horizon) / (rng.uniform(0.2, 0.5) * height))
        haze = 0.5 * sky_colour + 0.5 * rng.uniform(170, 220)
        img = img * (1 - amount[..., None]) + haze * amount[..., None]
    img = img * rng.uniform(0.8, 1.15) * rng.uniform(0.93, 1.07, 3).astype(np.float32)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(2, 5)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), canvas.label


# ----------------------------------------------------------------------------------------------------------------
# the dataset


def _write_split(split: str, images: Iterator[Tuple[int, np.random.Generator]], out_dir: str, draw: Callable,
                 jpeg_quality: int) -> dict:
    img_dir, ann_dir = make_dirs(out_dir, *_FOLDERS[split])
    counts = np.zeros(len(SEG_CLASSES) + 1, np.int64)
    images_with = np.zeros(len(SEG_CLASSES) + 1, np.int64)
    sizes = []
    for index, rng in images:
        img, label = draw(rng)
        stem = f'{index + 1:08d}'
        write_image(osp.join(img_dir, stem + '.jpg'), img[..., ::-1], jpeg_quality)
        write_image(osp.join(ann_dir, stem + '.png'), label)
        present = np.bincount(label.ravel(), minlength=len(SEG_CLASSES) + 1)
        counts += present
        images_with += present > 0
        sizes.append((img.shape[1], img.shape[0]))
    total = max(int(counts.sum()), 1)
    return dict(num_images=len(sizes),
                img_dir=img_dir,
                ann_dir=ann_dir,
                pixel_fraction={name: round(float(counts[i + 1]) / total, 4) for i, name in enumerate(SEG_CLASSES)},
                unlabelled_fraction=round(float(counts[0]) / total, 4),
                images_per_class={name: int(images_with[i + 1]) for i, name in enumerate(SEG_CLASSES)},
                min_size=[min(s[0] for s in sizes), min(s[1] for s in sizes)] if sizes else None,
                max_size=[max(s[0] for s in sizes), max(s[1] for s in sizes)] if sizes else None)


def generate_ade_semantic(out_dir: str,
                          num_train: int = 600,
                          num_val: int = 100,
                          seed: int = 0,
                          progress: bool = True,
                          *,
                          min_size: int = 160,
                          max_size: int = 320,
                          jpeg_quality: int = 92,
                          max_clutter: int = 4) -> Dict:
    """Write the synthetic outdoor-scenes dataset to ``out_dir`` (existing files of the same names are overwritten)
    in the ADE20K layout; unlabelled objects per image are drawn from ``0..max_clutter``.

    Returns ``dict(out_dir, classes, seed, train=..., val=..., seconds)``; each split holds ``num_images``,
    ``img_dir``, ``ann_dir``, ``pixel_fraction`` (per class, of all pixels), ``unlabelled_fraction``,
    ``images_per_class`` (images showing the class) and the ``min_size``/``max_size`` (width, height) seen. Raises
    ``ValueError`` for arguments out of range.
    """
    check_arguments(num_train, num_val, min_size, max_size, smallest_size=32)
    if max_clutter < 0:
        raise ValueError(f'need max_clutter >= 0, got {max_clutter}')
    draw = functools.partial(_draw_scene, min_size=int(min_size), max_size=int(max_size), max_clutter=int(max_clutter))
    write_split = functools.partial(_write_split, out_dir=out_dir, draw=draw, jpeg_quality=jpeg_quality)
    return write_dataset(out_dir, SEG_CLASSES, num_train, num_val, seed, progress, write_split)
