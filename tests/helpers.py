"""Helpers shared by the tests."""
import contextlib
import copy
import importlib.util
import io
import math
import os
import re
import runpy
import subprocess
import sys
import traceback
from functools import lru_cache
from pathlib import Path
from typing import List, Optional

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / 'configs'
# Keys of other backbones that must not survive in an L2ViT backbone dict (a missing `_delete_=True` leaks them).
FOREIGN_BACKBONE_KEYS = {
    'depth', 'num_stages', 'style', 'strides', 'dilations', 'stem_channels', 'base_channels', 'deep_stem',  # ResNet
    'embed_dims', 'patch_size', 'depths', 'num_heads', 'mlp_ratio', 'qkv_bias', 'qk_scale', 'drop_rate',  # Swin
    'attn_drop_rate', 'patch_norm', 'convert_weights', 'pretrain_img_size', 'use_abs_pos_embed', 'act_cfg',
    'layer_scale_init_value', 'gap_before_final_norm', 'pretrained',  # ConvNeXt, old-style weights
}
#: A small L2ViT that every config can be built with quickly.
SMALL_ARCH = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2], num_heads=[1, 2, 4, 8])


def config_paths() -> List[Path]:
    """Every config under configs/ (files and folders starting with ``_`` are bases or helpers, not configs)."""
    return sorted(p for p in CONFIG_DIR.rglob('*.py')
                  if not any(part.startswith('_') for part in p.relative_to(CONFIG_DIR).parts))


def packages_needed(path: Path, seen: Optional[set] = None) -> set:
    """Packages a config's ``pkg::`` bases need, following its local ``_base_`` files."""
    seen = set() if seen is None else seen
    if path in seen or not path.is_file():
        return set()
    seen.add(path)
    text = path.read_text()
    needed = set(re.findall(r'''['"]([A-Za-z_]\w*)::''', text))
    for rel in re.findall(r'''['"](\.{1,2}/[^'"]+\.py)['"]''', text):
        needed |= packages_needed((path.parent / rel).resolve(), seen)
    return needed


def projection_loss(outs, seed: int = 123):
    """A loss on all outputs whose gradient does not vanish through the output LayerNorms (a plain sum would)."""
    g = torch.Generator().manual_seed(seed)
    loss = 0
    for o in outs:
        r = torch.randn(o.shape, generator=g, dtype=torch.float64).to(o.dtype)
        loss = loss + (o * r).sum() + 0.1 * (o**2).sum()
    return loss


def randomize_(model: nn.Module, seed: int) -> nn.Module:
    """Give every parameter and every BN buffer a random, non-default value (deterministic for ``seed``)."""
    g = torch.Generator().manual_seed(seed)

    def rn(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.dtype)

    def ru(t: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
        return (lo + (hi - lo) * torch.rand(t.shape, generator=g, dtype=torch.float64)).to(t.dtype)

    done = set()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(rn(m.weight) / math.sqrt(fan_in))
                m.bias.copy_(0.1 * rn(m.bias))
                done.update([id(m.weight), id(m.bias)])
            elif isinstance(m, nn.LayerNorm):
                m.weight.copy_(1 + 0.2 * rn(m.weight))
                m.bias.copy_(0.1 * rn(m.bias))
                done.update([id(m.weight), id(m.bias)])
            elif isinstance(m, _BatchNorm):
                m.weight.copy_(1 + 0.2 * rn(m.weight))
                m.bias.copy_(0.1 * rn(m.bias))
                m.running_mean.copy_(0.2 * rn(m.running_mean))
                m.running_var.copy_(ru(m.running_var, 0.5, 1.5))
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
                done.update([id(m.weight), id(m.bias)])
        for name, p in model.named_parameters():
            if id(p) in done:
                continue
            assert name.endswith('temperature'), f'randomize_ does not know parameter {name}'
            p.copy_(ru(p, 0.1, 1.0))
    return model


#: Files of the checkout that are not the project's: what a copy of the source (``source_copy``) leaves out.
NOT_SOURCE = ('.venv', '.git', '__pycache__', 'work_dirs', 'data', 'checkpoints', 'outputs', '*.egg-info', 'build',
              'dist', '.pytest_cache', '*.pth', '.mim')


def source_copy(dest: Path) -> Path:
    """A copy of the checkout's source at ``dest`` (no venv, build outputs, data or ``l2vit/.mim`` links): what an
    sdist or a fresh clone holds, to build from without touching the checkout."""
    import shutil
    shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    return dest


#: A warning in a tool's output: Python's (``file:line: UserWarning: ...``), torch's C++ ones (``[W1206 21:00:00...]``,
#: ``Warning: ...``) or a logged one (mmengine's ``- WARNING -``, the logging module's ``WARNING:``).
WARNING_LINE = re.compile(r'\b\w*Warning: |\bWARNING\b|^\[W\d{4} ')


def warning_lines(text: str) -> List[str]:
    """The lines of ``text`` that are warnings (``WARNING_LINE``)."""
    return [line for line in text.splitlines() if WARNING_LINE.search(line)]


def tool(*args, cwd=ROOT, check=True, timeout=None, warnings=False):
    """Run one of our tools in a fresh interpreter (as a user would), returning the completed process; Python's
    warnings are silenced unless ``warnings`` (then they print as they would for a user)."""
    env = dict(os.environ, OMP_NUM_THREADS='1')
    if warnings:
        env.pop('PYTHONWARNINGS', None)
    else:
        env['PYTHONWARNINGS'] = 'ignore'
    result = subprocess.run([sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env,
                            timeout=timeout)
    if check:
        assert result.returncode == 0, f'{args[0]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result


def _manager_instances() -> dict:
    """{class: names} of every live mmengine ManagerMixin instance (DefaultScope, MessageHub, MMLogger, visualizers)."""
    from mmengine.utils import ManagerMixin

    def classes(cls):
        yield cls
        for sub in cls.__subclasses__():
            yield from classes(sub)

    return {cls: set(cls._instance_dict) for cls in classes(ManagerMixin) if '_instance_dict' in vars(cls)}


def _drop_new_instances(before: dict) -> None:
    """Forget the ManagerMixin instances a tool created, as its process ending would: a second run in this process
    must not get the first one's visualizer (fixed name 'visualizer', old save_dir) or message hub back."""
    import logging
    for cls in _manager_instances():
        for name in set(cls._instance_dict) - before.get(cls, set()):
            instance = cls._instance_dict.pop(name)
            if isinstance(instance, logging.Logger):
                for handler in list(instance.handlers):
                    handler.close()
                    instance.removeHandler(handler)


def run_main(script, *args, cwd=ROOT, check=True) -> subprocess.CompletedProcess:
    """Call one of our tools' ``main(argv)`` in this process: what ``tool`` does, without a new interpreter.

    The result looks like ``tool``'s: the exit code (0, the ``SystemExit`` code, or 1 with the traceback on stderr
    for an uncaught exception) and everything printed to stdout and stderr, mmengine's log included."""
    path = Path(script) if Path(script).is_absolute() else ROOT / script
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    before = _manager_instances()
    old_cwd, old_path = os.getcwd(), list(sys.path)
    code = 0
    try:
        os.chdir(cwd)
        sys.path.insert(0, str(path.parent))  # what running the script does
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                namespace = runpy.run_path(str(path), run_name='l2vit_tool_under_test')
                returned = namespace['main'](argv)
                code = returned if isinstance(returned, int) else 0  # `sys.exit(main())` in the script
            except SystemExit as exc:
                if exc.code is None or isinstance(exc.code, int):
                    code = exc.code or 0
                else:
                    print(exc.code, file=sys.stderr)
                    code = 1
            except Exception:  # what the interpreter would print before exiting with 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        _drop_new_instances(before)
    result = subprocess.CompletedProcess([str(path), *argv], code, out.getvalue(), err.getvalue())
    if check:
        assert code == 0, f'{script} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}'
    return result


@lru_cache(maxsize=None)
def _load_config_once(path: Path):
    from mmengine.config import Config
    return Config.fromfile(str(path))


def load_config(path: Path):
    """The loaded config: parsed once per path, a fresh copy each call (a test may change it freely)."""
    return copy.deepcopy(_load_config_once(Path(path)))


def configs_of_scope(scope: str) -> List[Path]:
    """Every config under configs/ whose ``default_scope`` is ``scope`` (configs of libraries that are not
    installed are skipped)."""
    selected = []
    for path in config_paths():
        if any(importlib.util.find_spec(pkg) is None for pkg in packages_needed(path)):
            continue
        if load_config(path).get('default_scope') == scope:
            selected.append(path)
    return selected


def flatten(cfg, prefix: str = '') -> dict:
    """{'a.b.c': value} for every leaf of nested dicts (lists are leaves)."""
    if not isinstance(cfg, dict):
        return {prefix: cfg}
    flat = {}
    for key, value in cfg.items():
        flat.update(flatten(value, f'{prefix}{key}.') if isinstance(value, dict) else {f'{prefix}{key}': value})
    return flat


def config_differences(a, b) -> set:
    """The flattened keys whose values differ between two loaded configs."""
    flat_a, flat_b = flatten(a.to_dict()), flatten(b.to_dict())
    return {k for k in flat_a.keys() | flat_b.keys() if flat_a.get(k, '<missing>') != flat_b.get(k, '<missing>')}


#: The authors' released ImageNet weights per L2ViT size, as the configs name them.
RELEASED_WEIGHTS = {
    size: f'https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/L2ViT-{name}-checkpoint-best-ema.pth'
    for size, name in (('t', 'Tiny'), ('s', 'Small'), ('b', 'Base'))
}


def demo_data_options(root: str) -> list:
    """``--cfg-options`` that point the demo detection config at a synthetic COCO set in ``root``, read in the main
    process (no DataLoader workers), 2 images a batch."""
    return [f'train_dataloader.dataset.data_root={root}/', f'val_dataloader.dataset.data_root={root}/',
            f'test_dataloader.dataset.data_root={root}/',
            f'val_evaluator.ann_file={root}/annotations/instances_val2017.json',
            f'test_evaluator.ann_file={root}/annotations/instances_val2017.json',
            'train_dataloader.num_workers=0', 'train_dataloader.persistent_workers=False',
            'val_dataloader.num_workers=0', 'val_dataloader.persistent_workers=False', 'train_dataloader.batch_size=2']
