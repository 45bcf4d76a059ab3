"""Output folders and devices the tools are given, checked before any work is done."""
import os
import os.path as osp
import tempfile
from typing import Optional

from ..errors import ToolError


def writable_dir(path: str, option: str, fix: Optional[str] = None) -> None:
    """Make the folder ``path`` (given by ``option``, e.g. ``--work-dir``) and check that a file can be written in
    it, so that a run stops at once with the reason (and ``fix``) instead of failing at its first log line, picture,
    checkpoint or, after the whole evaluation, its results file."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as err:
        blocker = osp.abspath(path)
        while blocker != osp.dirname(blocker) and not osp.isfile(blocker):
            blocker = osp.dirname(blocker)
        reason = (f'{blocker} is a file, not a folder' if osp.isfile(blocker) else
                  f'{err.strerror or err} ({type(err).__name__})')
        fix = fix or f'Give a folder you can write to ({option} DIR).'
        raise ToolError(f'{option} {path} cannot be written to: {reason}. {fix}') from None


def writable_file(path: str, option: str) -> None:
    """``writable_dir`` for the folder of the file ``path`` that ``option`` names (e.g. ``--out``)."""
    writable_dir(osp.dirname(osp.abspath(path)), f'{option} {path}: its folder',
                 f'Give a file in a folder you can write to ({option} FILE).')


def check_device(device: str) -> None:
    """Refuse a ``--device`` torch does not know, or a CUDA device this machine does not have."""
    import torch
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as err:
        raise ToolError(f'--device {device!r} is not a device torch knows ({err}); use cpu, cuda or cuda:N.') from None
    if parsed.type != 'cuda':
        return
    if not torch.cuda.is_available():
        raise ToolError(f'--device {device}: no CUDA GPU is visible on this machine (torch.cuda.is_available() is '
                        f'False; check the driver and CUDA_VISIBLE_DEVICES); use --device cpu.')
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise ToolError(f'--device {device}: only {count} CUDA GPU(s) are visible (cuda:0 to cuda:{count - 1}); '
                        f'choose one of them or use --device cpu.')
