"""What the preflight costs on a COCO-size annotation file (``tools/analysis/preflight_cost.py``).

:func:`write_annotations` writes a COCO-format instance file the size of COCO's ``instances_train2017.json``
(images without pixels: nothing reads them); :func:`measure` times, in a fresh process each, the preflight of a
config that trains on it and the library's own load of the same dataset (``DATASETS.build`` + ``full_init``), with
each process's peak memory.
"""
import json
import os
import os.path as osp
import resource
import subprocess
import sys
import time
from typing import Dict, Sequence

import numpy as np

from ..testing import metainfo


def write_annotations(path: str, images: int = 118287, per_image: int = 8, vertices: int = 24, seed: int = 0) -> int:
    """A COCO-format file of ``images`` 640x480 images with ``per_image`` polygon instances each (of the synthetic
    COCO set's classes); returns its size in bytes."""
    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    annotations = []
    for image_id in range(1, images + 1):
        centres, radii = rng.uniform(60, 420, (per_image, 2)), rng.uniform(8, 50, per_image)
        for (cx, cy), r in zip(centres.round(1), radii.round(1)):
            polygon = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).round(1).ravel().tolist()
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id, category_id=len(annotations) % 4 + 1,
                                    bbox=[cx - r, cy - r, 2 * r, 2 * r], area=round(np.pi * r * r, 1), iscrowd=0,
                                    segmentation=[polygon]))
    data = dict(images=[dict(id=i, file_name=f'{i:012d}.jpg', height=480, width=640) for i in range(1, images + 1)],
                annotations=annotations,
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
