#!/usr/bin/env python
"""Write the synthetic outdoor-scenes semantic-segmentation dataset (ADE20K layout) used by the segmentation demo.

    python tools/datasets/make_synthetic_ade.py OUT_DIR [--num-train N] [--num-val N] [--seed S]

OUT_DIR gets ``images/{training,validation}/*.jpg`` and ``annotations/{training,validation}/*.png`` (label maps:
0 unlabelled, 1..6 the classes, as in ADE20K); point an mmseg config's ``data_root`` at it, with mmseg's
``BaseSegDataset``, ``metainfo=l2vit.datasets.seg_metainfo()`` and ``reduce_zero_label=True``. The same seed always
gives the same files. See ``l2vit/datasets/synthetic_ade.py`` for what the images contain.
"""
from _cli import run_generator

from l2vit.datasets import generate_ade_semantic

if __name__ == '__main__':
    run_generator(__doc__, generate_ade_semantic, num_train=600, num_val=100)
