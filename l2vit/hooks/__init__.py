"""mmengine hooks that our configs carry (and ``tools/train.py`` / ``tools/test.py`` add to any config), so that a
run started by any tool (ours, mmdet's, mmseg's, mmpretrain's, ``mim``) gets the same guarantees."""
from .checkpoint import SafeCheckpointHook
from .config_check import ConfigCheckHook
from .data import DataCheckHook, NamingPipeline
from .fit import CheckpointFitHook
from .loss import FiniteLossHook
from .rng import RNGStateHook, capture_rng_states, restore_rng_states

#: Every hook class registered in each library's ``HOOKS`` by ``l2vit.register_into``.
HOOK_CLASSES = (RNGStateHook, SafeCheckpointHook, FiniteLossHook, DataCheckHook, CheckpointFitHook,
                ConfigCheckHook)

__all__ = [
    'RNGStateHook', 'SafeCheckpointHook', 'FiniteLossHook', 'DataCheckHook', 'CheckpointFitHook', 'ConfigCheckHook',
    'NamingPipeline', 'capture_rng_states', 'restore_rng_states', 'HOOK_CLASSES'
]
