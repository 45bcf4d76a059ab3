"""How a user evaluates the authors' ImageNet weights: convert them, then tools/test.py on configs/imagenet/."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from helpers import ROOT, tool
from reference_l2vit import ReferenceL2ViT

from l2vit import L2ViT


@pytest.mark.slow
def test_convert_then_evaluate_on_imagenet_layout(tmp_path):
    # The authors' release format, with L2ViT-T shapes (random weights: the numbers are not the point here).
    authors = ReferenceL2ViT(**L2ViT.arch_zoo['tiny'])
    src = tmp_path / 'L2ViT-Tiny-checkpoint-best-ema.pth'
    torch.save(dict(model=authors.state_dict(), epoch=299), src)
    dst = tmp_path / 'l2vit-t_in1k.pth'
    tool('tools/convert_official.py', str(src), str(dst))

    # data/imagenet in mmpretrain's "meta/val.txt" layout, 4 images.
    root = tmp_path / 'imagenet'
    (root / 'val').mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = []
    for i in range(4):
        name = f'ILSVRC2012_val_{i + 1:08d}.JPEG'
        cv2.imwrite(str(root / 'val' / name), rng.integers(0, 255, (180 + 7 * i, 240, 3), dtype=np.uint8))
        lines.append(f'{name} {i * 100}')
    (root / 'meta').mkdir()
    (root / 'meta' / 'val.txt').write_text('\n'.join(lines) + '\n')

    metrics_file = tmp_path / 'metrics.json'
    tool('tools/test.py', osp.join(ROOT, 'configs', 'imagenet', 'l2vit-t_in1k.py'), str(dst), '--work-dir',
         str(tmp_path / 'work'), '--metrics-out', str(metrics_file), '--cfg-options',
         f'test_dataloader.dataset.data_root={root}', 'test_dataloader.batch_size=2',
         'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False')
    metrics = json.loads(metrics_file.read_text())
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0 and 'accuracy/top5' in metrics
