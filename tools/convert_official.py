#!/usr/bin/env python
"""Convert an authors' L²ViT checkpoint into an mmengine checkpoint.

    python tools/convert_official.py SRC DST [--use-ema]

SRC is either an authors' ImageNet checkpoint (``L2ViT-*-checkpoint-best-ema.pth``: ``model`` is converted, or
``model_ema`` with ``--use-ema``) or an authors' mmdet 2.x / mmseg 0.x checkpoint (``state_dict`` with ``backbone.``
keys). DST holds ``{'meta', 'state_dict'}``; its backbone keys are ``backbone.*`` (from ImageNet: the final ``norm``
becomes ``backbone.norm3`` and ``head`` becomes ``head.fc``), so it loads

* as backbone initialisation: ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``;
* as a whole into an mmpretrain ImageClassifier (configs/imagenet/*), e.g. ``tools/test.py CONFIG DST``.

SRC is read weights-only: no code in it runs.
"""
import argparse
import os
import sys

import torch

from l2vit.checkpoint import CheckpointError, convert_official, load_checkpoint_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help="the authors' checkpoint (.pth)")
    parser.add_argument('dst', help='where to write the mmengine checkpoint')
    parser.add_argument('--use-ema', action='store_true', help="convert 'model_ema' instead of 'model'")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        checkpoint = load_checkpoint_file(args.src)
        converted, report = convert_official(checkpoint, use_ema=args.use_ema, source=os.path.basename(args.src))
    except (FileNotFoundError, CheckpointError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    print(f'{args.src}:')
    for line in report:
        print(f'  {line}')
    os.makedirs(os.path.dirname(os.path.abspath(args.dst)), exist_ok=True)
    torch.save(converted, args.dst)
    print(f'wrote {len(converted["state_dict"])} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
