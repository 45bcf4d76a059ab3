"""What the `make demo*` orchestrators (run_detection_demo.py, run_segmentation_demo.py) share: running each step as
an ordinary, printed command with its wall time, finding the trained checkpoint, and the closing summary.

The orchestrators import this file as a sibling module: running ``python tools/demo/run_*.py`` puts
``tools/demo/`` first on ``sys.path``, whatever the current directory is.
"""
import os
import os.path as osp
import subprocess
import time
from typing import Dict, List, Mapping, Sequence

from l2vit.errors import fail

#: The repository root: every step runs there, and relative paths are relative to it.
ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def run(cmd: Sequence[str], timings: Dict[str, float], name: str) -> None:
    """Print and run one step in the repository root (stopping the demo if it fails), recording its wall time."""
    print(f'\n[demo] {name}: {" ".join(cmd)}', flush=True)
    start = time.perf_counter()
    result = subprocess.run(list(cmd), cwd=ROOT)
    if result.returncode != 0:
        fail(f'the {name} step failed (exit code {result.returncode}); its messages are above. The command was: '
             f'{" ".join(cmd)}')
    timings[name] = time.perf_counter() - start


def data_root_options(data_root: str, default_root: str, extra: Sequence[str] = ()) -> List[str]:
    """``--cfg-options`` pointing the train/val/test datasets (and ``extra`` keys) at ``data_root``; nothing when it
    is the config's own ``default_root``."""
    if data_root == default_root:
        return []
    return ['--cfg-options', f'train_dataloader.dataset.data_root={data_root}/',
            f'val_dataloader.dataset.data_root={data_root}/', f'test_dataloader.dataset.data_root={data_root}/',
            *extra]


def last_checkpoint(work_dir: str) -> str:
    """The checkpoint the Runner saved last in ``work_dir`` (it writes its path into ``last_checkpoint``)."""
    with open(osp.join(ROOT, work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def report(title: str, metrics: Mapping[str, str], timings: Mapping[str, float], checkpoint: str, metrics_file: str,
           pictures: str, show_total: bool = False) -> None:
    """Print the closing summary: the (formatted) metrics, the time of each step, and where the outputs are."""
    print(f'\n[demo] {title}:')
    for key, value in metrics.items():
        print(f'  {key:18s} {value}')
    steps = [f'{name} {seconds / 60:.1f} min' for name, seconds in timings.items()]
    if show_total:
        steps.append(f'total {sum(timings.values()) / 60:.1f} min')
    print('[demo] time: ' + ', '.join(steps))
    print(f'[demo] checkpoint: {checkpoint}')
    print(f'[demo] metrics:    {metrics_file}')
    print(f'[demo] pictures:   {pictures}/ ({len(os.listdir(osp.join(ROOT, pictures)))} PNGs)')
