#!/usr/bin/env python
"""Write the synthetic outdoor-scenes semantic-segmentation dataset (ADE20K layout) used by the segmentation demo.

    python tools/datasets/make_synthetic_ade.py OUT_DIR [--num-train N] [--num-val N] [--seed S] [--no-progress]

OUT_DIR gets ``images/{training,validation}/*.jpg`` and ``annotations/{training,validation}/*.png`` (label maps:
0 unlabelled, 1..6 the classes, as in ADE20K); point an mmseg config's ``data_root`` at it, with mmseg's
``BaseSegDataset``, ``metainfo=l2vit.testing.seg_metainfo()`` and ``reduce_zero_label=True``. The same seed always
gives the same files. See ``l2vit/testing/ade.py`` for what the images contain.
"""
import sys

from l2vit.testing import generate_ade_semantic
from l2vit.testing.common import run_cli


def main(argv=None) -> int:
    return run_cli(generate_ade_semantic, __doc__, argv)


if __name__ == '__main__':
    sys.exit(main())
