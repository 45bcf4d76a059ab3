"""Training and testing from a config, the whole of ``tools/train.py`` and ``tools/test.py`` behind their argument
parsing: the config prepared and checked (``l2vit.apis.config.prepare_train`` / ``prepare_test``), then mmengine's
runner built and run."""
import json
import os
import os.path as osp
from typing import Dict, Optional

from mmengine.config import Config

from ..quiet import quiet_logger
from .config import prepare_test, prepare_train
from .paths import writable_file


def build_runner(cfg: Config):
    """mmengine's ``Runner`` for the config, or the runner class its ``runner_type`` names (e.g. FlexibleRunner); its
    logger leaves out mmengine's notices about itself (``l2vit.quiet``)."""
    if 'runner_type' in cfg:
        from mmengine.registry import RUNNERS
        runner = RUNNERS.build(cfg)
    else:
        from mmengine.runner import Runner
        runner = Runner.from_cfg(cfg)
    quiet_logger(runner.logger)
    return runner


def run_train(config: str, **options) -> None:
    """Train from ``config``; ``options`` are those of ``prepare_train``."""
    build_runner(prepare_train(config, **options)).train()


def _number_or_text(value):
    """Metrics come as python, numpy or torch numbers (mmseg: numpy); JSON gets plain floats."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def run_test(config: str, checkpoint: str, metrics_out: Optional[str] = None, **options) -> Dict[str, float]:
    """Evaluate ``checkpoint`` on the config's test split and return the metrics (also written to ``metrics_out``,
    a JSON file, by the first process); ``options`` are those of ``prepare_test``."""
    if metrics_out:
        writable_file(metrics_out, '--metrics-out')  # before the evaluation it would come after
    metrics = build_runner(prepare_test(config, checkpoint, **options)).test()
    from mmengine.dist import get_rank
    if metrics_out and get_rank() == 0:  # every process gets the gathered metrics; one writes them
        os.makedirs(osp.dirname(osp.abspath(metrics_out)), exist_ok=True)
        with open(metrics_out, 'w') as f:
            json.dump({k: _number_or_text(v) for k, v in metrics.items()}, f, indent=2)
    return metrics
