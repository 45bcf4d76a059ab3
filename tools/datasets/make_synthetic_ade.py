#!/usr/bin/env python
"""Write the synthetic outdoor-scenes semantic-segmentation dataset (ADE20K layout) used by the segmentation demo.

    python tools/datasets/make_synthetic_ade.py OUT_DIR [--num-train N] [--num-val N] [--seed S]

OUT_DIR gets ``images/{training,validation}/*.jpg`` and ``annotations/{training,validation}/*.png`` (label maps:
0 unlabelled, 1..6 the classes, as in ADE20K); point an mmseg config's ``data_root`` at it, with mmseg's
``BaseSegDataset``, ``metainfo=l2vit.datasets.seg_metainfo()`` and ``reduce_zero_label=True``. The same seed always
gives the same files. See ``l2vit/datasets/synthetic_ade.py`` for what the images contain.
"""
import argparse
import json

from l2vit.datasets import generate_ade_semantic


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', help='dataset root to write (data_root of the config)')
    parser.add_argument('--num-train', type=int, default=600, help='training images (default: 600)')
    parser.add_argument('--num-val', type=int, default=100, help='validation images (default: 100)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.num_train < 0 or args.num_val < 0:
        raise SystemExit('error: --num-train and --num-val must be >= 0')
    summary = generate_ade_semantic(args.out_dir,
                                    num_train=args.num_train,
                                    num_val=args.num_val,
                                    seed=args.seed,
                                    progress=not args.no_progress)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
