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
import os
import sys
import tempfile

import torch

from l2vit.checkpoint import CheckpointError, convert_official, load_checkpoint_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('src', help="the authors' checkpoint (.pth); only read")
    parser.add_argument('dst', help='where to write the mmengine checkpoint (a new file, unless --force)')
    parser.add_argument('--use-ema', action='store_true', help="convert 'model_ema' instead of 'model'")
    parser.add_argument('--force', action='store_true', help='replace DST if it exists (never when DST is SRC)')
    return parser.parse_args(argv)


def _same_file(a: str, b: str) -> bool:
    """Whether paths ``a`` and ``b`` name one file (symlinks, hard links, ``..`` and case-folding included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare what the paths resolve to
        return os.path.realpath(a) == os.path.realpath(b)


def destination_problem(src: str, dst: str, force: bool):
    """Why DST must not be written (a message that names the fix), or None."""
    if _same_file(src, dst):
        return (f'DST {dst!r} is the source checkpoint {src!r} itself; converting in place would destroy the '
                f"authors' file (and its 'model_ema' weights). Give another DST, e.g. checkpoints/l2vit-t_in1k.pth.")
    if os.path.isdir(dst):
        return (f'DST {dst!r} is a folder; give the path of the file to write, '
                f'e.g. {os.path.join(dst, "l2vit_in1k.pth")!r}.')
    if os.path.lexists(dst) and not force:
        return f'DST {dst!r} already exists; add --force to replace it, or give another DST.'
    return None


def _fsync_folder(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_atomically(obj, dst: str) -> None:
    """``torch.save(obj, dst)`` through a temporary file in DST's folder and ``os.replace``: DST is either left as
    it was or is the complete new file; the temporary file is removed on any error (a SIGKILL may leave one, named
    ``.DST.*.tmp``, never a truncated DST)."""
    folder = os.path.dirname(os.path.abspath(dst))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f'.{os.path.basename(dst)}.', suffix='.tmp')
    try:
        with os.fdopen(fd, 'wb') as f:
            umask = os.umask(0)
            os.umask(umask)
            if hasattr(os, 'fchmod'):  # mkstemp makes it 0600; DST gets the mode open() would give
                os.fchmod(f.fileno(), 0o666 & ~umask)
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dst)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_folder(folder)


def main(argv=None) -> int:
    args = parse_args(argv)
    problem = destination_problem(args.src, args.dst, args.force)
    if problem is None:
        try:
            checkpoint = load_checkpoint_file(args.src)
            converted, report = convert_official(checkpoint, use_ema=args.use_ema,
                                                 source=os.path.basename(args.src))
        except (FileNotFoundError, CheckpointError) as err:
            problem = str(err)
    if problem is not None:
        print(f'error: {problem}', file=sys.stderr)
        return 2
    print(f'{args.src}:')
    for line in report:
        print(f'  {line}')
    try:
        save_atomically(converted, args.dst)
    except OSError as err:
        print(f'error: cannot write {args.dst!r} ({type(err).__name__}: {err}); nothing was written there. Check '
              f'that its folder is writable and has room, or give another DST.', file=sys.stderr)
        return 2
    print(f'wrote {len(converted["state_dict"])} tensors to {args.dst}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
