"""What the tools do, as functions: preparing and checking a config, training and testing from it, the demos.

``tools/*.py`` parse their arguments and make one call here; everything is importable and testable in-process.
"""
from .checks import preflight
from .cli import add_image_args, add_run_args, run_options
from .config import (add_dump, add_run_hooks, build_model, check_inputs, enable_amp, enable_auto_scale_lr, enable_tta,
                     enable_visualization, load_config, prepare_test, prepare_train, read_config, set_resume,
                     setup_cpu_launcher)
from .config_tree import as_list, config_dicts, drop_pretrained, leaf_datasets, pretrained_checkpoints, sync_bn_to_bn
from .run import build_runner, run_test, run_train

__all__ = [
    'add_image_args', 'add_run_args', 'run_options', 'add_dump', 'add_run_hooks', 'build_model', 'check_inputs',
    'enable_amp', 'enable_auto_scale_lr', 'enable_tta', 'enable_visualization', 'load_config', 'read_config',
    'set_resume', 'setup_cpu_launcher', 'as_list', 'config_dicts', 'drop_pretrained', 'leaf_datasets',
    'pretrained_checkpoints', 'sync_bn_to_bn', 'preflight', 'build_runner', 'prepare_test', 'prepare_train',
    'run_test', 'run_train'
]
