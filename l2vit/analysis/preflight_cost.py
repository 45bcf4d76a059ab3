"""What the preflight costs on a COCO-size annotation file (``tools/analysis/preflight_cost.py``).

:func:`write_annotations` writes a COCO-format instance file the size of COCO's ``instances_train2017.json``
(images without pixels: nothing reads them); :func:`measure` times, in a fresh process each, the preflight of a
config that trains on it and the library's own load of the same dataset (``DATASETS.build`` + ``full_init``), with
each process's peak memory. :func:`write_image_layout` and :func:`time_data_checks` time what
``l2vit.hooks.DataCheckHook`` adds at the start of a run: the image headers of a 100k-image layout, and the re-read
of a COCO file's categories.
"""
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time
from typing import Dict, Sequence, Tuple

import numpy as np

from ..testing import metainfo


def write_annotations(path: str, images: int = 118287, per_image: int = 8, vertices: int = 24, seed: int = 0,
                      size: Tuple[int, int] = (480, 640)) -> int:
    """A COCO-format file of ``images`` images of ``size`` (H, W) named ``<id:012d>.jpg``, with ``per_image``
    polygon instances each (of the synthetic COCO set's classes); returns its size in bytes."""
    rng, scale = np.random.default_rng(seed), size[1] / 640
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    annotations = []
    for image_id in range(1, images + 1):
        centres = rng.uniform(60 * scale, 420 * scale, (per_image, 2))
        radii = rng.uniform(8 * scale, 50 * scale, per_image)
        for (cx, cy), r in zip(centres.round(1), radii.round(1)):
            polygon = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).round(1).ravel().tolist()
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=len(annotations) % 4 + 1,
                                    bbox=[cx - r, cy - r, 2 * r, 2 * r], area=round(np.pi * r * r, 1), iscrowd=0,
                                    segmentation=[polygon]))
    data = dict(images=[dict(id=i, file_name=f'{i:012d}.jpg', height=size[0], width=size[1])
                        for i in range(1, images + 1)], annotations=annotations,
                categories=[dict(id=i + 1, name=name) for i, name in enumerate(metainfo()['classes'])])
    with open(path, 'w') as f:
        json.dump(data, f)
    return osp.getsize(path)


def _options(data_root: str, ann_file: str) -> Dict[str, str]:
    os.makedirs(osp.join(data_root, 'images'), exist_ok=True)
    return {'train_dataloader.dataset.data_root': data_root, 'train_dataloader.dataset.ann_file': ann_file,
            'train_dataloader.dataset.data_prefix.img': 'images/'}


def run_one(what: str, config: str, data_root: str, ann_file: str) -> Dict[str, float]:
    """In this process: ``what`` is 'preflight' (``l2vit.apis.checks.preflight`` on the train split) or 'full_init'
    (the library's ``DATASETS.build`` + ``full_init`` of the same dataset)."""
    from mmengine.registry import DATASETS, init_default_scope

    from ..apis.checks import preflight
    from ..apis.config import read_config
    cfg = read_config(config, _options(data_root, ann_file))
    start = time.perf_counter()
    if what == 'preflight':
        problems = preflight(cfg, ['train_dataloader'], check_pretrained=False)
        if problems:
            raise RuntimeError('\n'.join(problems))
    else:
        init_default_scope(cfg.default_scope)
        DATASETS.build(cfg.train_dataloader.dataset).full_init()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return dict(seconds=time.perf_counter() - start, peak_rss_mb=peak)


def measure(config: str, data_root: str, ann_file: str, what: Sequence[str] = ('preflight', 'full_init'),
            repeats: int = 2) -> Dict[str, list]:
    """Each of ``what`` ``repeats`` times, alternating, each in a fresh interpreter."""
    results: Dict[str, list] = {name: [] for name in what}
    for _ in range(repeats):
        for name in what:
            code = ('import json, sys; from l2vit.analysis.preflight_cost import run_one; '
                    'print(json.dumps(run_one(*sys.argv[1:])))')
            out = subprocess.run([sys.executable, '-c', code, name, config, data_root, ann_file], check=True,
                                 capture_output=True, text=True).stdout
            results[name].append(json.loads(out.strip().splitlines()[-1]))
    return results


def write_image_layout(data_root: str, images: int = 100000) -> str:
    """``images`` copies of one small JPEG (64x48) under ``data_root/images/``, and a COCO file listing them with one
    instance each (:func:`write_annotations`); returns the file's path."""
    from PIL import Image
    folder = osp.join(data_root, 'images')
    os.makedirs(folder, exist_ok=True)
    Image.new('RGB', (64, 48), (90, 120, 150)).save(osp.join(folder, 'template.jpg'))
    with open(osp.join(folder, 'template.jpg'), 'rb') as f:
        data = f.read()
    for i in range(1, images + 1):
        with open(osp.join(folder, f'{i:012d}.jpg'), 'wb') as f:
            f.write(data)
    path = osp.join(data_root, 'instances_images.json')
    write_annotations(path, images, per_image=1, size=(48, 64))
    return path


def time_data_checks(data_root: str, image_ann_file: str, large_ann_file: str) -> Dict[str, float]:
    """In this process: DataCheckHook's image checks (``image_problems``: every header, in threads) on mmdet's
    ``CocoDataset`` of :func:`write_image_layout`'s layout, and its category check (``category_problems``: the
    file's categories and annotations read again) on a dataset of ``large_ann_file`` (built without images)."""
    from mmengine.registry import DATASETS, init_default_scope

    from ..data_checks import category_problems, image_problems
    init_default_scope('mmdet')
    classes = metainfo()['classes']
    timings = {}
    dataset = DATASETS.build(dict(type='CocoDataset', data_root=data_root, ann_file=image_ann_file,
                                  data_prefix=dict(img='images/'), metainfo=dict(classes=classes),
                                  pipeline=[dict(type='LoadImageFromFile')]))
    start = time.perf_counter()
    problems = image_problems(dataset, 'train_dataloader.dataset')
    timings.update(images=len(dataset), image_seconds=time.perf_counter() - start)
    if problems:
        raise RuntimeError('\n'.join(problems))
    dataset = DATASETS.build(dict(type='CocoDataset', ann_file=large_ann_file, metainfo=dict(classes=classes),
                                  data_prefix=dict(img='images/'), pipeline=[]))
    start = time.perf_counter()
    errors, _ = category_problems(dataset, 'train_dataloader.dataset')
    timings.update(category_seconds=time.perf_counter() - start,
                   peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if errors:
        raise RuntimeError('\n'.join(errors))
    return timings
