#!/usr/bin/env python
"""Write the synthetic shapes instance-segmentation dataset (COCO 2017 layout) used by the detection demo.

    python tools/datasets/make_synthetic_coco.py OUT_DIR [--num-train N] [--num-val N] [--seed S] [--no-progress]

OUT_DIR gets ``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/*.jpg``; point an mmdet config's
``data_root`` at it and pass ``metainfo=l2vit.testing.metainfo()`` to its datasets. The same seed always gives the
same files. See ``l2vit/testing/coco.py`` for what the images contain.
"""
import sys

from l2vit.testing import generate_coco_instances
from l2vit.testing.common import run_cli


def main(argv=None) -> int:
    return run_cli(generate_coco_instances, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
