"""Training and testing from a config, the whole of ``tools/train.py`` and ``tools/test.py`` behind their argument
parsing: prepare the config (``l2vit.apis.config``), check what it needs (``l2vit.apis.checks``), build mmengine's
runner and run it."""
import json
import os
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config

from ..errors import ToolError
from . import config as prepare


def build_runner(cfg: Config):
    """mmengine's ``Runner`` for the config, or the runner class its ``runner_type`` names (e.g. FlexibleRunner)."""
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        return RUNNERS.build(cfg)
    from mmengine.runner import Runner
    return Runner.from_cfg(cfg)


def prepare_train(config: str, work_dir: Optional[str] = None, resume: Optional[str] = None, amp: bool = False,
                  auto_scale_lr: bool = False, cfg_options: Optional[dict] = None, launcher: str = 'none',
                  local_rank: int = 0) -> Config:
    """The config ``run_train`` trains with: loaded, overridden, with the RNG-state hook, AMP, LR scaling and
    resuming as asked, its inputs checked and (on CPUs) its launcher set up."""
    cfg = prepare.load_config(config, cfg_options, work_dir, launcher, local_rank)
    prepare.add_rng_state_hook(cfg)
    if amp:
        prepare.enable_amp(cfg)
    if auto_scale_lr:
        prepare.enable_auto_scale_lr(cfg)
    prepare.set_resume(cfg, resume)
    splits = ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg') else [])
    prepare.check_inputs(cfg, splits)
    prepare.setup_cpu_launcher(cfg)
    return cfg


def run_train(config: str, **options) -> None:
    """Train from ``config``; ``options`` are those of ``prepare_train``."""
    build_runner(prepare_train(config, **options)).train()


def prepare_test(config: str, checkpoint: str, tta: bool = False, out: Optional[str] = None,
                 show_dir: Optional[str] = None, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                 launcher: str = 'none', local_rank: int = 0) -> Config:
    """The config ``run_test`` tests with: ``checkpoint`` loaded (a file or an http(s) URL), test-time augmentation,
    the prediction dump and drawing as asked, the test inputs checked and (on CPUs) the launcher set up."""
    if '://' not in checkpoint and not osp.isfile(checkpoint):
        raise ToolError(f"checkpoint not found: {checkpoint} (give the path of a training checkpoint, of the "
                        f"authors' released file or of its conversion by tools/convert_official.py, or an http(s) "
                        f'URL)')
    if out is not None and not out.endswith(('.pkl', '.pickle')):
        raise ToolError(f'--out must name a .pkl or .pickle file, got {out!r}')
    cfg = prepare.load_config(config, cfg_options, work_dir, launcher, local_rank)
    cfg.load_from = checkpoint
    cfg.resume = False
    if tta:
        prepare.enable_tta(cfg)
    if out is not None:
        prepare.add_dump(cfg, out)
    if show_dir is not None:
        prepare.enable_visualization(cfg, show_dir)
    # The weights come from the checkpoint; the backbone's pretrained file is not needed to test.
    prepare.check_inputs(cfg, ['test_dataloader'], check_pretrained=False)
    prepare.setup_cpu_launcher(cfg)
    return cfg


def _number_or_text(value):
    """Metrics come as python, numpy or torch numbers (mmseg: numpy); JSON gets plain floats."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def run_test(config: str, checkpoint: str, metrics_out: Optional[str] = None, **options) -> Dict[str, float]:
    """Evaluate ``checkpoint`` on the config's test split and return the metrics (also written to ``metrics_out``,
    a JSON file, by the first process); ``options`` are those of ``prepare_test``."""
    metrics = build_runner(prepare_test(config, checkpoint, **options)).test()
    from mmengine.dist import get_rank
    if metrics_out and get_rank() == 0:  # every process gets the gathered metrics; one writes them
        os.makedirs(osp.dirname(osp.abspath(metrics_out)), exist_ok=True)
        with open(metrics_out, 'w') as f:
            json.dump({k: _number_or_text(v) for k, v in metrics.items()}, f, indent=2)
    return metrics
