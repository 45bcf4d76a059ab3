"""How a user evaluates the authors' ImageNet weights: tools/test.py on configs/imagenet/ with the released file (by
path or URL, converted in memory) or with the output of tools/convert_official.py."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from helpers import ROOT, run_main
from l2vit import L2ViT
from reference_l2vit import ReferenceL2ViT
from test_checkpoint_loading import server  # noqa: F401 (the fixture)


@pytest.mark.slow
def test_evaluate_released_weights_on_imagenet_layout(tmp_path, server):  # noqa: F811
    # The authors' release format, with L2ViT-T shapes (random weights: the numbers are not the point here).
    authors = ReferenceL2ViT(**L2ViT.arch_zoo['tiny'])
    src = tmp_path / 'L2ViT-Tiny-checkpoint-best-ema.pth'
    torch.save(dict(model=authors.state_dict(), epoch=299), src)
    (server.root / src.name).write_bytes(src.read_bytes())
    dst = tmp_path / 'l2vit-t_in1k.pth'
    run_main('tools/convert_official.py', str(src), str(dst))

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

    results = {}
    for name, checkpoint in [('converted', dst), ('released file', src), ('released URL', f'{server.url}/{src.name}')]:
        metrics_file = tmp_path / f'metrics-{len(results)}.json'
        run = run_main('tools/test.py', osp.join(ROOT, 'configs', 'imagenet', 'l2vit-t_in1k.py'), str(checkpoint),
                       '--work-dir', str(tmp_path / 'work'), '--metrics-out', str(metrics_file), '--cfg-options',
                       f'test_dataloader.dataset.data_root={root}', 'test_dataloader.batch_size=2',
                       'test_dataloader.num_workers=0', 'test_dataloader.persistent_workers=False')
        if name != 'converted':
            assert "the authors' ImageNet checkpoint; its 'model' weights are used" in run.stdout + run.stderr
        results[name] = json.loads(metrics_file.read_text())
    metrics = results['converted']
    assert 0.0 <= metrics['accuracy/top1'] <= 100.0 and 'accuracy/top5' in metrics
    assert results['released file'] == metrics and results['released URL'] == metrics, results
    assert server.requests == [f'/{src.name}']
