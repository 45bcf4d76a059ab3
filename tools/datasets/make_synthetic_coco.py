#!/usr/bin/env python
"""Write the synthetic shapes instance-segmentation dataset (COCO 2017 layout) used by the detection demo.

    python tools/datasets/make_synthetic_coco.py OUT_DIR [--num-train N] [--num-val N] [--seed S]

OUT_DIR gets ``annotations/instances_{train,val}2017.json`` and ``{train,val}2017/*.jpg``; point an mmdet config's
``data_root`` at it and pass ``metainfo=l2vit.datasets.metainfo()`` to its datasets. The same seed always gives the
same files. See ``l2vit/datasets/synthetic_coco.py`` for what the images contain.
"""
import argparse
import json

from l2vit.datasets import generate_coco_instances


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('out_dir', help='dataset root to write (data_root of the config)')
    parser.add_argument('--num-train', type=int, default=1000, help='training images (default: 1000)')
    parser.add_argument('--num-val', type=int, default=200, help='validation images (default: 200)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.num_train < 0 or args.num_val < 0:
        raise SystemExit('error: --num-train and --num-val must be >= 0')
    summary = generate_coco_instances(args.out_dir,
                                      num_train=args.num_train,
                                      num_val=args.num_val,
                                      seed=args.seed,
                                      progress=not args.no_progress)
    print(json.dumps(summary, indent=2))


if __name__ == '__main__':
    main()
