#!/usr/bin/env python
"""Convert an authors' L²ViT checkpoint into an mmengine checkpoint.

    python tools/convert_official.py SRC DST [--use-ema] [--force]

SRC is either an authors' ImageNet checkpoint (``L2ViT-*-checkpoint-best-ema.pth``: ``model`` is converted, or
``model_ema`` with ``--use-ema``) or an authors' mmdet 2.x / mmseg 0.x checkpoint (``state_dict`` with ``backbone.``
keys). DST holds ``{'meta', 'state_dict'}``; its backbone keys are ``backbone.*`` (from ImageNet: the final ``norm``
becomes ``backbone.norm3`` and ``head`` becomes ``head.fc``), so it loads

* as backbone initialisation: ``init_cfg=dict(type='Pretrained', checkpoint=DST, prefix='backbone.')``;
* as a whole into an mmpretrain ImageClassifier (configs/imagenet/*), e.g. ``tools/test.py CONFIG DST``.

SRC is read weights-only: no code in it runs, and it is never written to: a DST that is SRC (also through a
symlink, a hard link or another spelling of the path) is refused, and so is an existing DST unless ``--force``.
DST is written to a temporary file in its folder and renamed over DST only once complete, so an interrupted run
never leaves a truncated checkpoint. Errors print ``error: ...`` and exit with code 2.
"""
import argparse
import sys

from l2vit.apis.convert import convert_checkpoint_file
from l2vit.errors import CheckpointError, ToolError, error_message


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help="the authors' checkpoint (.pth); only read")
    parser.add_argument('dst', help='where to write the mmengine checkpoint (a new file, unless --force)')
    parser.add_argument('--use-ema', action='store_true', help="convert 'model_ema' instead of 'model'")
    parser.add_argument('--force', action='store_true', help='replace DST if it exists (never when DST is SRC)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        convert_checkpoint_file(args.src, args.dst, use_ema=args.use_ema, force=args.force)
    except (ToolError, CheckpointError) as err:
        return error_message(str(err))
    return 0


if __name__ == '__main__':
    sys.exit(main())
