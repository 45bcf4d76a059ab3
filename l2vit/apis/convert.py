"""Converting the authors' checkpoint files into mmengine checkpoints on disk (``tools/convert_official.py``):
the source is only read, and the destination is either left as it was or is the complete new file."""
import os
import tempfile

import torch

from ..checkpoint import convert_official, fsync_folder, load_checkpoint_file
from ..errors import ToolError


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
    fsync_folder(folder)


def convert_checkpoint_file(src: str, dst: str, use_ema: bool = False, force: bool = False) -> None:
    """Convert the authors' checkpoint ``src`` into an mmengine checkpoint at ``dst``, printing what was converted;
    a ``ToolError`` or ``CheckpointError`` says why nothing was written."""
    problem = destination_problem(src, dst, force)
    if problem is not None:
        raise ToolError(problem)
    try:
        checkpoint = load_checkpoint_file(src)
    except FileNotFoundError as err:
        raise ToolError(str(err)) from None
    converted, report = convert_official(checkpoint, use_ema=use_ema, source=os.path.basename(src))
    print(f'{src}:')
    for line in report:
        print(f'  {line}')
    try:
        save_atomically(converted, dst)
    except OSError as err:
        raise ToolError(f'cannot write {dst!r} ({type(err).__name__}: {err}); nothing was written there. Check '
                        f'that its folder is writable and has room, or give another DST.') from None
    print(f'wrote {len(converted["state_dict"])} tensors to {dst}')
