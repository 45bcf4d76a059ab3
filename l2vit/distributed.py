"""Sharded training (mmengine's ``FSDPStrategy``): which modules of a model become their own FSDP unit."""
from torch import nn

from .models.blocks import LinearGlobalBlock, LocalWindowBlock

FSDP_UNITS = (LocalWindowBlock, LinearGlobalBlock)


def fsdp_wrap_l2vit_blocks(module: nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
    """FSDP ``auto_wrap_policy``: every L²ViT block is sharded (and gathered) on its own, so a rank holds the full
    parameters of one block at a time; whatever is left (stem, downsampling, norms, neck, heads) belongs to the root
    unit. Name it in a config as ``auto_wrap_policy=dict(type='l2vit.distributed.fsdp_wrap_l2vit_blocks')``."""
    if recurse:
        return True  # look inside every module for blocks
    return isinstance(module, FSDP_UNITS)
