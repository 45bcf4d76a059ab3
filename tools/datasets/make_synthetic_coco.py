#!/usr/bin/env python
"""Write the synthetic shapes instance-segmentation dataset (COCO 2017 layout) used by the detection demo.

    python tools/datasets/make_synthetic_coco.py OUT_DIR [--num-train N] [--num-val N] [--seed S]

OUT_DIR gets ``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/*.jpg``; point an mmdet config's
``data_root`` at it and pass ``metainfo=l2vit.datasets.metainfo()`` to its datasets. The same seed always gives the
same files. See ``l2vit/datasets/synthetic_coco.py`` for what the images contain.
"""
from _cli import run_generator

from l2vit.datasets import generate_coco_instances

if __name__ == '__main__':
    run_generator(__doc__, generate_coco_instances, num_train=1000, num_val=200)
