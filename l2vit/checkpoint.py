"""Safe checkpoint loading and the conversion of the authors' L²ViT checkpoints, as pure functions.

Every file is read weights-only (``torch.load(weights_only=True)``): a checkpoint is a pickle, and a pickle can run
code. Only the harmless non-tensor types these files are known to contain are allow-listed (:data:`SAFE_GLOBALS`).

Formats understood:

* the authors' ImageNet checkpoints: ``{'model', 'model_ema'?, 'optimizer', 'epoch', 'scaler', 'args'}`` with the
  classifier's keys (``downsample_layers.*``, ``stages.*``, ``norm.*``, ``head.*``);
* the authors' mmdet 2.x / mmseg 0.x checkpoints and mmengine checkpoints: ``{'meta', 'state_dict'}`` with keys
  prefixed ``backbone.`` (and ``neck.``, heads, ...);
* a bare state dict.
"""
import argparse
import os
import pickle
import re
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import nn

from .version import __version__

def _history_buffer_getattr(obj: Any, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while unpickling: mmengine's checkpoints store HistoryBuffer's statistics
    methods as ``getattr(HistoryBuffer, 'mean')`` and so on; that lookup, and nothing else, is allowed."""
    from mmengine.logging import HistoryBuffer
    if obj is HistoryBuffer and name in ('min', 'max', 'current', 'mean'):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'getattr({obj!r}, {name!r}) is not allowed in a checkpoint')


def _safe_globals() -> List[Any]:
    import numpy as np
    from mmengine.logging import HistoryBuffer
    numeric_dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith('DType') and any(
        name.startswith(kind) for kind in ('Bool', 'Int', 'UInt', 'Float', 'Complex', 'Byte', 'UByte', 'Short',
                                            'UShort', 'Long', 'ULong', 'LongLong', 'ULongLong', 'Half', 'Double',
                                            'LongDouble', 'CLongDouble'))]
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    import codecs
    return [
        argparse.Namespace,  # `args` in the authors' ImageNet checkpoints
        # What mmengine's Runner writes into its checkpoints (message hub, numpy statistics):
        HistoryBuffer, np.ndarray, np.dtype, *numeric_dtypes, multiarray._reconstruct, multiarray.scalar,
        codecs.encode, (_history_buffer_getattr, '__builtin__.getattr'), (_history_buffer_getattr, 'builtins.getattr'),
    ]


#: Non-tensor types found in the checkpoints we load, allowed by the weights-only unpickler. Nothing else is: a
#: pickle that would import or call anything outside this list is refused.
SAFE_GLOBALS: List[Any] = _safe_globals()


def allow_safe_globals() -> None:
    """Make every local checkpoint that mmengine loads in this process (``load_from``, resuming, ``init_cfg``,
    mmdet's ``init_detector``) go through :func:`load_checkpoint_file`: weights-only with :data:`SAFE_GLOBALS`, and
    the same clear errors for missing, hostile and corrupt files. Our tools call this at start."""
    from mmengine.runner.checkpoint import CheckpointLoader
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    CheckpointLoader.register_scheme(prefixes='', loader=load_checkpoint_file, force=True)

#: A key every L²ViT state dict holds (the first stem convolution), without prefix.
STEM_KEY = 'downsample_layers.0.proj.proj.0.weight'
_OUT_NORM = re.compile(r'^norm[0-3]\.')


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message says what is wrong and how to fix it."""


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint file weights-only, with clear errors for missing, hostile and corrupt files."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path!r}. Check the path, or download/convert the '
                                f'weights first (see README, "Pretrained weights").')
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        # torch's message suggests weights_only=False; keep only what it found in the file.
        detail = str(err).split('WeightsUnpickler error:')[-1].split('Check the documentation')[0].strip()
        raise CheckpointError(
            f'Refusing to load {path!r}: it is not a plain weights file (loading it would need to run or import '
            f'code the weights-only loader does not allow: {detail}). Only load checkpoints from sources you '
            f'trust; if this is one, re-save its tensors as a plain state dict.') from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f'Cannot read checkpoint {path!r}: the file is truncated or not a PyTorch checkpoint '
                              f'({type(err).__name__}: {err}). Download or convert it again.') from None


def _strip(state_dict: Dict[str, Any], prefix: str) -> Dict[str, Any]:
    return {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}


def is_l2vit_state_dict(state_dict: Dict[str, Any], prefix: str = '') -> bool:
    """Whether ``state_dict`` holds L²ViT backbone weights under ``prefix``."""
    return isinstance(state_dict, dict) and prefix + STEM_KEY in state_dict


def infer_arch(state_dict: Dict[str, Any], prefix: str = '') -> Dict[str, List[int]]:
    """Read ``embed_dims``, ``depths`` and ``num_heads`` off an L²ViT state dict (keys without/with ``prefix``)."""
    sd = _strip(state_dict, prefix)
    dims, depths, heads = [], [], []
    for i in range(4):
        if i == 0:
            dims.append(int(sd[STEM_KEY.replace('proj.0', 'proj.3')].shape[0]))
        else:
            dims.append(int(sd[f'downsample_layers.{i}.proj.weight'].shape[0]))
        blocks = {int(k.split('.')[2]) for k in sd if k.startswith(f'stages.{i}.')}
        depths.append(max(blocks) + 1 if blocks else 0)
        temp = sd.get(f'stages.{i}.1.attn.temperature')
        heads.append(int(temp.shape[0]) if temp is not None else 0)
    return dict(embed_dims=dims, depths=depths, num_heads=heads)


def arch_name(arch: Dict[str, List[int]]) -> str:
    """``'tiny'``/``'small'``/``'base'`` when ``arch`` is a released variant, else the dict as text."""
    from .models.backbone import L2ViT
    for name, spec in L2ViT.arch_zoo.items():
        if spec == arch:
            return name
    return str(arch)


def _describe_keys(keys: List[str], limit: int = 12) -> str:
    keys = sorted(keys)
    shown = ', '.join(keys[:limit])
    return shown + (f', ... ({len(keys) - limit} more)' if len(keys) > limit else '')


def _unwrap_module_prefix(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """Strip the ``module.`` prefix that (Distributed)DataParallel adds."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return _strip(state_dict, 'module.')
    return state_dict


def backbone_state_dict(checkpoint: Any, prefix: Optional[str] = 'backbone.',
                        source: str = 'checkpoint') -> Tuple[Dict[str, torch.Tensor], List[str]]:
    """The L²ViT backbone weights in ``checkpoint`` (any of the formats above), with unprefixed keys.

    Returns the state dict and the names of the entries that were set aside (classifier head, other modules).
    Raises :class:`CheckpointError` when the file holds no L²ViT weights.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{source} is a {type(checkpoint).__name__}, not a checkpoint dict.')
    if 'model' in checkpoint and isinstance(checkpoint['model'], dict):  # the authors' ImageNet format
        state_dict = _unwrap_module_prefix(checkpoint['model'])
    elif 'state_dict' in checkpoint and isinstance(checkpoint['state_dict'], dict):
        state_dict = _unwrap_module_prefix(checkpoint['state_dict'])
    else:
        state_dict = _unwrap_module_prefix(checkpoint)
    if prefix and any(k.startswith(prefix) for k in state_dict):
        ignored = [k for k in state_dict if not k.startswith(prefix)]
        state_dict = _strip(state_dict, prefix)
    else:
        ignored = []
    if not is_l2vit_state_dict(state_dict):
        sample = _describe_keys([k for k in state_dict if isinstance(k, str)], limit=8)
        raise CheckpointError(
            f'{source} holds no L2ViT weights (no {STEM_KEY!r}{f" under prefix {prefix!r}" if prefix else ""}). '
            f'Its keys start with: {sample or "(none)"}. Point init_cfg/--load-from at an L2ViT checkpoint '
            f'(the authors\' release or the output of tools/convert_official.py).')
    out = {}
    for key, value in state_dict.items():
        if key.startswith('head.'):
            ignored.append(key)
        elif key.startswith('norm.'):  # the classifier's final norm is the backbone's last output norm
            out['norm3.' + key[len('norm.'):]] = value
        else:
            out[key] = value
    return out, ignored


def load_pretrained(backbone: nn.Module, path: str, prefix: Optional[str] = 'backbone.', logger=None) -> None:
    """Load L²ViT weights from ``path`` into ``backbone``, refusing anything that does not fit.

    Missing output norms (``norm0``-``norm2`` when starting from ImageNet weights) keep their initialisation and are
    reported. Any other missing or unexpected backbone key, or a shape mismatch (e.g. a checkpoint of another L²ViT
    size), raises :class:`CheckpointError` naming the keys; nothing is loaded then.
    """
    from mmengine.logging import print_log
    checkpoint = load_checkpoint_file(path)
    state_dict, ignored = backbone_state_dict(checkpoint, prefix or 'backbone.', source=f'Checkpoint {path!r}')
    own = backbone.state_dict()
    mismatched = [f'{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}'
                  for k, v in state_dict.items() if k in own and tuple(v.shape) != tuple(own[k].shape)]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    fatal_missing = [k for k in missing if not _OUT_NORM.match(k)]
    if mismatched or fatal_missing or unexpected:
        model_arch = dict(embed_dims=backbone.embed_dims, depths=backbone.depths, num_heads=backbone.num_heads)
        try:
            file_arch = arch_name(infer_arch(state_dict))
        except KeyError:
            file_arch = 'unknown'
        parts = [f'Checkpoint {path!r} does not fit this L2ViT (checkpoint arch: {file_arch}; model arch: '
                 f'{arch_name(model_arch)}). Nothing was loaded.']
        if mismatched:
            parts.append(f'shape mismatch: {_describe_keys(mismatched, 6)}')
        if fatal_missing:
            parts.append(f'missing in checkpoint: {_describe_keys(fatal_missing)}')
        if unexpected:
            parts.append(f'unexpected in checkpoint: {_describe_keys(unexpected)}')
        parts.append('Set the backbone arch to the checkpoint\'s, or use the checkpoint of the arch you want.')
        raise CheckpointError('\n  '.join(parts))
    backbone.load_state_dict(state_dict, strict=False)
    print_log(f'Loaded L2ViT backbone weights from {path} ({len(state_dict)} tensors).', logger=logger)
    if missing:
        print_log(f'Not in the checkpoint, left at their initialisation: {_describe_keys(missing)}', logger=logger)
    if ignored:
        print_log(f'Ignored (not part of the backbone): {_describe_keys(ignored)}', logger=logger)


def convert_official(checkpoint: Dict[str, Any], use_ema: bool = False,
                     source: str = 'checkpoint') -> Tuple[Dict[str, Any], List[str]]:
    """Convert an authors' checkpoint into an mmengine checkpoint ``{'meta', 'state_dict'}``.

    From an ImageNet checkpoint (``model``, or ``model_ema`` with ``use_ema``) the backbone keys become
    ``backbone.*``, the final ``norm`` becomes ``backbone.norm3`` and ``head`` becomes ``head.fc`` (mmpretrain's
    ``LinearClsHead``). From an mmdet 2.x / mmseg 0.x checkpoint the ``state_dict`` is kept as it is (its
    ``backbone.`` keys already match). Returns the new checkpoint and a report: one line per decision.
    """
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f'{source} is a {type(checkpoint).__name__}, not a checkpoint dict.')
    report: List[str] = []
    if 'model' in checkpoint or 'model_ema' in checkpoint:
        key = selected = 'model_ema' if use_ema else 'model'
        if key not in checkpoint:
            other = 'model' if use_ema else 'model_ema'
            raise CheckpointError(f'{source} has no {key!r} weights (it has {other!r}); '
                                  f'{"drop" if use_ema else "add"} --use-ema.')
        model = _unwrap_module_prefix(checkpoint[key])
        if not is_l2vit_state_dict(model):
            raise CheckpointError(f'{source}[{key!r}] holds no L2ViT weights (no {STEM_KEY!r}); its keys start with '
                                  f'{_describe_keys(list(model), 8)}.')
        state_dict = {}
        for k, v in model.items():
            if k.startswith('head.'):
                state_dict['head.fc.' + k[len('head.'):]] = v
            elif k.startswith('norm.'):
                state_dict['backbone.norm3.' + k[len('norm.'):]] = v
            else:
                state_dict['backbone.' + k] = v
        fmt = 'authors ImageNet classifier'
        report.append(f'read {len(model)} tensors from {key!r} ({fmt}; arch {arch_name(infer_arch(model))})')
        report.append("renamed 'norm.*' -> 'backbone.norm3.*', 'head.*' -> 'head.fc.*', the rest -> 'backbone.*'")
        reasons = {'model': 'not selected (--use-ema chose model_ema)', 'model_ema': 'not selected (pass --use-ema '
                   'to convert the EMA weights)', 'optimizer': 'optimizer state, not needed for inference or '
                   'fine-tuning', 'scaler': 'AMP loss-scaler state', 'epoch': 'training progress',
                   'args': 'the authors\' training arguments (an argparse.Namespace)'}
        meta_extra = {'epoch': checkpoint.get('epoch')} if isinstance(checkpoint.get('epoch'), int) else {}
    elif 'state_dict' in checkpoint:
        if use_ema:
            raise CheckpointError(f'{source} is an mmdet/mmseg checkpoint (state_dict); it has no EMA weights, '
                                  f'drop --use-ema.')
        selected = 'state_dict'
        state_dict = _unwrap_module_prefix(checkpoint['state_dict'])
        if not is_l2vit_state_dict(state_dict, 'backbone.'):
            raise CheckpointError(f'{source}["state_dict"] holds no L2ViT backbone (no "backbone.{STEM_KEY}"); its '
                                  f'keys start with {_describe_keys(list(state_dict), 8)}.')
        state_dict = dict(state_dict)
        modules = sorted({k.split('.')[0] for k in state_dict})
        report.append(f'read {len(state_dict)} tensors from "state_dict" (authors mmdet 2.x / mmseg 0.x; arch '
                      f'{arch_name(infer_arch(state_dict, "backbone."))}; modules {", ".join(modules)})')
        report.append('kept every key unchanged (backbone.* keys already match)')
        reasons = {'optimizer': 'optimizer state, not needed for inference or fine-tuning',
                   'meta': 'replaced by new meta (the old one is mmcv 1.x bookkeeping)'}
        meta_extra = {}
    else:
        raise CheckpointError(f'{source} is not an authors\' L2ViT checkpoint: expected "model" (ImageNet) or '
                              f'"state_dict" (mmdet/mmseg), found keys {_describe_keys([str(k) for k in checkpoint])}.')
    for k in checkpoint:
        if k == selected:
            continue
        report.append(f'dropped {k!r}: {reasons.get(k, "not model weights")}')
    meta = dict(l2vit_version=__version__, converted_from=source, use_ema=use_ema, **meta_extra)
    return dict(meta=meta, state_dict=state_dict), report
