"""How an L²ViT backbone reads a state dict: the authors' key layout, wrapper prefixes, and refusing misfits.

:func:`adapt_state_dict` is called by :meth:`L2ViT._load_from_state_dict`, so it applies to every way mmengine and
torch load weights (``init_cfg`` as a dict or a list, ``Pretrained`` with or without ``prefix``, ``load_from``,
``mmengine.runner.load_checkpoint``, ``Module.load_state_dict``), whatever the strictness they ask for.
"""
import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from mmengine.logging import print_log

from ..errors import CheckpointError

#: A key every L²ViT state dict holds (the first stem convolution), without prefix.
STEM_KEY = 'downsample_layers.0.proj.proj.0.weight'
#: Prefixes that wrap a backbone's keys in a whole model's (or a DataParallel) state dict.
WRAPPERS = ('module.', 'backbone.', 'module.backbone.')
_OUT_NORM = re.compile(r'^norm[0-3]\.')


def describe_keys(keys: List[str], limit: int = 12) -> str:
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def arch_of(state_dict: Mapping[str, Any], prefix: str = '') -> Dict[str, List[int]]:
    """Read ``embed_dims``, ``depths`` and ``num_heads`` off an L²ViT state dict (keys under ``prefix``; values are
    tensors or shapes)."""
    shapes = {k[len(prefix):]: tuple(getattr(v, 'shape', v)) for k, v in state_dict.items() if k.startswith(prefix)}
    dims, depths, heads = [], [], []
    for i in range(4):
        if i == 0:
            dims.append(int(shapes[STEM_KEY.replace('proj.0', 'proj.3')][0]))
        else:
            dims.append(int(shapes[f'downsample_layers.{i}.proj.weight'][0]))
        blocks = {int(k.split('.')[2]) for k in shapes if k.startswith(f'stages.{i}.')}
        depths.append(max(blocks) + 1 if blocks else 0)
        temp = shapes.get(f'stages.{i}.1.attn.temperature')
        heads.append(int(temp[0]) if temp is not None else 0)
    return dict(embed_dims=dims, depths=depths, num_heads=heads)


def arch_name(arch: Dict[str, List[int]], arch_zoo: Mapping[str, Any]) -> str:
    """The name of ``arch`` in ``arch_zoo`` (``'tiny'``, ...) when it is one of them, else the dict as text."""
    return next((name for name, spec in arch_zoo.items() if spec == arch), str(arch))


def _move(state_dict: Dict[str, Any], old: str, new: str) -> None:
    """Rename every key starting with ``old`` to start with ``new`` instead, in place."""
    for key in [k for k in state_dict if k.startswith(old)]:
        state_dict[new + key[len(old):]] = state_dict.pop(key)


def adapt_state_dict(state_dict: Dict[str, Any], prefix: str, expected: Mapping[str, Tuple[int, ...]],
                     version: Optional[int] = None, arch_zoo: Optional[Mapping[str, Any]] = None) -> None:
    """Bring the entries under ``prefix`` into this backbone's layout, in place, or refuse them.

    ``expected`` maps every key of the backbone (without prefix) to its shape; ``arch_zoo`` names the known
    architectures in messages. In order:

    1. a wrapper around the backbone's keys (``module.``, ``backbone.``) is stripped; a whole model's other modules
       (``neck.``, heads) are set aside;
    2. the authors' layout (state dicts before version 2): the classifier's final ``norm.*`` is ``norm3.*``; their
       ``head.*`` is set aside, and so are output norms this backbone does not have (``out_indices``);
    3. then what is left must fit: any backbone key missing (except the output norms ``norm0``-``norm3``, which an
       ImageNet checkpoint lacks, and BatchNorm's ``num_batches_tracked``), any unexpected key and any shape mismatch
       raises :class:`CheckpointError` naming them, before any weight is copied.
    """
    if prefix + STEM_KEY not in state_dict:
        wrapper = next((w for w in WRAPPERS if prefix + w + STEM_KEY in state_dict), None)
        if wrapper is None:
            sample = describe_keys([k[len(prefix):] for k in state_dict if k.startswith(prefix)], limit=8)
            raise CheckpointError(
                f'The checkpoint holds no L2ViT weights (no {prefix + STEM_KEY!r}). Its keys start with: '
                f'{sample or "(none)"}. Point init_cfg/load_from at an L2ViT checkpoint (the authors\' release or the '
                f'output of tools/convert_official.py).')
        others = [k for k in state_dict if k.startswith(prefix) and not k.startswith(prefix + wrapper)]
        for key in others:
            del state_dict[key]
        _move(state_dict, prefix + wrapper, prefix)
        if others:
            print_log(f'Ignored (not part of the backbone): {describe_keys(others)}', logger='current')
    set_aside = []
    if (version is None or version < 2) and prefix + 'norm.weight' in state_dict:
        _move(state_dict, prefix + 'norm.', prefix + 'norm3.')
    for key in [k for k in state_dict if k.startswith(prefix)]:
        name = key[len(prefix):]
        if name.startswith('head.') or (_OUT_NORM.match(name) and name not in expected):
            set_aside.append(name)
            del state_dict[key]
    given = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {expected[k]}' for k, v in given.items()
                  if k in expected and hasattr(v, 'shape') and tuple(v.shape) != expected[k]]
    missing = [k for k in expected if k not in given]
    fatal_missing = [k for k in missing if not _OUT_NORM.match(k) and not k.endswith('.num_batches_tracked')]
    unexpected = [k for k in given if k not in expected]
    if mismatched or fatal_missing or unexpected:
        arch_zoo = arch_zoo or {}
        model_arch = arch_name(arch_of(expected), arch_zoo)
        try:
            file_arch = arch_name(arch_of(given), arch_zoo)
        except (KeyError, IndexError, AttributeError):
            file_arch = 'unknown'
        parts = [f'The checkpoint does not fit this L2ViT (checkpoint arch: {file_arch}; model arch: {model_arch}). '
                 f'Nothing was loaded.']
        if mismatched:
            parts.append(f'shape mismatch: {describe_keys(mismatched, 6)}')
        if fatal_missing:
            parts.append(f'missing in checkpoint: {describe_keys(fatal_missing)}')
        if unexpected:
            parts.append(f'unexpected in checkpoint: {describe_keys(unexpected)}')
        parts.append('Set the backbone arch to the checkpoint\'s, or use the checkpoint of the arch you want.')
        raise CheckpointError('\n  '.join(parts))
    norms = [k for k in missing if _OUT_NORM.match(k) and k.endswith('weight')]
    if norms:
        print_log(f'Not in the checkpoint, left at their initialisation: output norms '
                  f'{", ".join(sorted({n.split(".")[0] for n in norms}))}', logger='current')
    if set_aside:
        print_log(f'Set aside (not part of this backbone): {describe_keys(set_aside)}', logger='current')
