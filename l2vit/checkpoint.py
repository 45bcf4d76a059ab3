"""Safe checkpoint loading (local files and URLs) and the conversion of the authors' L²ViT checkpoints.

Every file is read weights-only (a pickle can run code), with only the non-tensor types these files are known to
contain allow-listed (:data:`SAFE_GLOBALS`); :func:`register_checkpoint_loading` (run by ``import l2vit``) makes
every mmengine route read checkpoints this way. Formats understood: the authors' ImageNet checkpoints (``model``,
``model_ema``?, ``optimizer``, ``epoch``, ``scaler``, ``args``; the classifier's keys), the authors' mmdet 2.x /
mmseg 0.x checkpoints and mmengine's (``meta``, ``state_dict`` with ``backbone.`` keys), and bare state dicts.
"""
import argparse
import codecs
import hashlib
import os
import pickle
import re
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from typing import Any, Dict, List, Mapping, Optional, Tuple

import torch

from .errors import CheckpointError
from .models import L2ViT
from .models.state_dict import STEM_KEY, arch_name, arch_of, describe_keys
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
    kinds = ('Bool', 'Int', 'UInt', 'Float', 'Complex', 'Byte', 'UByte', 'Short', 'UShort', 'Long', 'ULong',
             'LongLong', 'ULongLong', 'Half', 'Double', 'LongDouble', 'CLongDouble')
    numeric_dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes)
                      if name.endswith('DType') and any(name.startswith(kind) for kind in kinds)]
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    return [
        argparse.Namespace,  # `args` in the authors' ImageNet checkpoints
        # What mmengine's Runner writes into its checkpoints (message hub, numpy statistics):
        HistoryBuffer, np.ndarray, np.dtype, *numeric_dtypes, multiarray._reconstruct, multiarray.scalar,
        codecs.encode, (_history_buffer_getattr, '__builtin__.getattr'), (_history_buffer_getattr, 'builtins.getattr'),
    ]


#: The non-tensor types the weights-only unpickler allows; a pickle that needs anything else is refused.
SAFE_GLOBALS: List[Any] = _safe_globals()


def load_checkpoint_file(path: str, map_location: Any = 'cpu') -> Any:
    """Read a checkpoint file weights-only, with clear errors for missing, hostile and corrupt files."""
    path = os.path.expanduser(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint file not found: {path!r}. Check the path, or download/convert the '
                                f'weights first (see README, "Pretrained weights").')
    not_checkpoint = describe_non_checkpoint(path)
    if not_checkpoint:
        raise CheckpointError(f'{path!r} is not a PyTorch checkpoint (a failed download?): {not_checkpoint}. Download '
                              f'it again (check the URL: a web page, e.g. a login or error page, may have been saved '
                              f'in its place), or point to the right file.')
    # Added for the process, as importing l2vit does (a set: idempotent). Not `with safe_globals(...)`: leaving that
    # block would take the list away from every later torch.load in the process, the user's own included.
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    try:
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


def _looks_like(head: bytes) -> str:
    """What the first bytes of a file that is not a checkpoint look like, in words, with the bytes themselves."""
    text = head.lstrip(b'\xef\xbb\xbf \t\r\n')
    lower = text[:100].lower()
    shown = text[:60].decode('utf-8', 'replace')
    shown = repr(shown if len(text) <= 60 else shown + '...')
    if lower.startswith((b'<!doctype html', b'<html', b'<head', b'<body')) or b'<html' in lower:
        return f'it starts like an HTML page: {shown}'
    if lower.startswith(b'<?xml') or lower.startswith(b'<'):
        return f'it starts like an XML document (e.g. a storage service\'s error reply): {shown}'
    if lower.startswith((b'{', b'[')):
        return f'it starts like JSON text (e.g. an error reply): {shown}'
    if head.startswith(b'\x1f\x8b'):
        return 'it is gzip-compressed data (decompress it first if it holds a checkpoint)'
    if all(32 <= b < 127 or b in b'\t\r\n' for b in text[:200]):
        return f'it is text: {shown}'
    return f'its first bytes ({head[:16].hex(" ")}) are those of no known checkpoint format'


#: torch's legacy format written with pickle protocol 0 or 1 starts with its magic number as text, not 0x80.
_LEGACY_ASCII_PICKLE = pickle.dumps(0x1950a86a20f9469cfc6c, protocol=0)[:-2]


def describe_non_checkpoint(path: str) -> Optional[str]:
    """Why the file at ``path`` is not a PyTorch checkpoint, judged from its first bytes, or None when it may be one.

    torch's zip format (``PK\\x03\\x04`` with a ``data.pkl`` inside), its legacy format (a pickle: first byte
    0x80, or the magic number as text for pickle protocols 0 and 1), safetensors (an 8-byte header length, then
    ``{``), empty files and truncated zips are left to ``torch.load`` (and its errors). Anything else, and a readable
    zip without ``data.pkl``, is not one.
    """
    with open(path, 'rb') as f:
        head = f.read(512)
    size = os.path.getsize(path)
    if not head or head[0] == 0x80 or head.startswith(_LEGACY_ASCII_PICKLE):
        return None
    if head.startswith(b'PK\x03\x04'):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except (zipfile.BadZipFile, OSError):
            return None  # a torch zip cut short: torch.load says "truncated"
        if any(name == 'data.pkl' or name.endswith('/data.pkl') for name in names):
            return None
        return f'it is a zip archive, but not torch\'s (no data.pkl; it holds {describe_keys(names, 6)})'
    if len(head) > 8 and head[8:9] == b'{' and struct.unpack('<Q', head[:8])[0] < size:
        return None  # safetensors
    return _looks_like(head)


# ------------------------------------------------------------------------------------------ writing to disk
def fsync_path(path: str) -> None:
    """Flush the file or folder ``path`` to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_folder(folder: str) -> None:
    """Make the renames in ``folder`` durable, where the file system can flush a folder (errors are ignored)."""
    try:
        fsync_path(folder)
    except OSError:
        pass


# ---------------------------------------------------------------------------------------------------- URLs
_SHA256 = re.compile(r'^sha256=([0-9a-fA-F]{64})$')


def hub_checkpoint_dir() -> str:
    """Where downloaded checkpoints are kept: torch's hub cache, ``$TORCH_HOME/hub/checkpoints`` (by default
    ``~/.cache/torch/hub/checkpoints``), the folder ``torch.hub.load_state_dict_from_url`` uses."""
    return os.path.join(torch.hub.get_dir(), 'checkpoints')


def _offline_hint(path: str, url: str) -> str:
    return (f'Without internet (e.g. a cluster node), download it elsewhere and copy it to {path} (the hub cache; '
            f'TORCH_HOME moves it), or point the config at a local file instead of {url}.')


def download_checkpoint(url: str, model_dir: Optional[str] = None, progress: bool = True) -> str:
    """The local path of the checkpoint at ``url``, downloaded into the hub cache the first time (through a
    ``.partial`` file renamed once complete, so a failed download leaves nothing). ``url`` may end in
    ``#sha256=<hex>``: the file (new or cached) must then have that SHA-256."""
    plain, fragment = urllib.parse.urldefrag(url)
    match = _SHA256.match(fragment)
    if fragment and match is None:
        raise CheckpointError(f'{url!r}: the only URL fragment understood is #sha256=<64 hex digits> (the file\'s '
                              f'SHA-256), got #{fragment}.')
    name = os.path.basename(urllib.parse.urlparse(plain).path)
    if not name:
        raise CheckpointError(f'{url!r} names no file; expected a URL ending in the checkpoint\'s file name.')
    model_dir = model_dir or hub_checkpoint_dir()
    path = os.path.join(model_dir, name)
    if not os.path.isfile(path):
        os.makedirs(model_dir, exist_ok=True)
        _download(plain, path, progress)
    if match is not None:
        sha256 = match.group(1).lower()
        digest = hashlib.sha256()
        with open(path, 'rb') as f:
            for chunk in iter(lambda: f.read(1 << 20), b''):
                digest.update(chunk)
        actual = digest.hexdigest()
        if actual != sha256:
            raise CheckpointError(f'{path} (from {plain}) has SHA-256 {actual}, but the URL asks for {sha256}. The '
                                  f'file is corrupt or not the one meant: delete it to download it again, or fix '
                                  f'the #sha256= of the URL.')
    return path


def _download(url: str, path: str, progress: bool) -> None:
    partial = f'{path}.{os.getpid()}.{time.monotonic_ns()}.partial'
    not_checkpoint = None
    try:
        request = urllib.request.Request(url, headers={'User-Agent': 'l2vit'})
        with urllib.request.urlopen(request, timeout=60) as response, open(partial, 'wb') as out:
            length = response.headers.get('Content-Length')
            total = int(length) if length and length.isdigit() else None
            received = 0
            with torch.hub.tqdm(total=total, disable=not progress, unit='B', unit_scale=True, unit_divisor=1024,
                                desc=os.path.basename(path)) as bar:
                for chunk in iter(lambda: response.read(1 << 20), b''):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if total is not None and received != total:
            raise CheckpointError(f'Download of {url} broke off after {received} of {total} bytes; nothing was '
                                  f'kept. Try again. {_offline_hint(path, url)}')
        not_checkpoint = describe_non_checkpoint(partial)
        if not_checkpoint is None:
            os.replace(partial, path)
    except (urllib.error.URLError, OSError, ValueError) as err:  # HTTPError is a URLError
        raise CheckpointError(f'Cannot download {url}: {err}. {_offline_hint(path, url)}') from None
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    if not_checkpoint is not None:
        raise CheckpointError(f'{url} did not send a PyTorch checkpoint (a failed download?): {not_checkpoint}. '
                              f'Nothing was kept. Check the URL (some servers send a login, error or "file moved" '
                              f'page with status 200) and try again. {_offline_hint(path, url)}')


def load_checkpoint_url(url: str, map_location: Any = 'cpu', model_dir: Optional[str] = None) -> Any:
    """Download (once, see :func:`download_checkpoint`) and read a checkpoint weights-only. With several processes,
    the first process of each machine downloads while the others wait."""
    from mmengine.dist import barrier, get_world_size
    path = download_checkpoint(url, model_dir) if int(os.environ.get('LOCAL_RANK', 0)) == 0 else None
    if get_world_size() > 1:
        barrier()
    path = path or download_checkpoint(url, model_dir, progress=False)
    try:
        return load_checkpoint_file(path, map_location)
    except CheckpointError as err:
        raise CheckpointError(f'{url} (cached as {path}): {err}') from None


# ---------------------------------------------------------------------------------------------------- mmengine
def as_mmengine_checkpoint(checkpoint: Any, source: str = 'checkpoint') -> Any:
    """An authors' ImageNet checkpoint becomes, in memory, what :func:`convert_official` writes (its ``model``
    weights as ``backbone.*`` / ``head.fc.*``); anything else is returned unchanged."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('model'), dict) and 'state_dict' not in checkpoint:
        model = checkpoint['model']
        if STEM_KEY in model or 'module.' + STEM_KEY in model:
            from mmengine.logging import print_log
            converted, _ = convert_official(checkpoint, source=source)
            print_log(f'{source}: the authors\' ImageNet checkpoint; its \'model\' weights are used, converted in '
                      f'memory (backbone.*, head.fc.*; run tools/convert_official.py --use-ema for the EMA ones).',
                      logger='current')
            return converted
    return checkpoint


def _mmengine_local_loader(filename: str, map_location: Any = None) -> Any:
    return as_mmengine_checkpoint(load_checkpoint_file(filename, map_location), source=filename)


def _mmengine_url_loader(filename: str, map_location: Any = None) -> Any:
    return as_mmengine_checkpoint(load_checkpoint_url(filename, map_location), source=filename)


def register_checkpoint_loading() -> None:
    """Make every checkpoint that mmengine loads in this process (``init_cfg``, ``load_from``, resuming,
    ``load_checkpoint``, mmdet's ``init_detector``, the inferencers) weights-only: torch's unpickler learns
    :data:`SAFE_GLOBALS`, and local paths and ``http(s)://`` URLs (mmengine's own URL loader would unpickle with
    ``weights_only=False``) go through our loaders, the authors' ImageNet files converted in memory. Idempotent."""
    from mmengine.runner.checkpoint import CheckpointLoader
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    CheckpointLoader.register_scheme(prefixes='', loader=_mmengine_local_loader, force=True)
    CheckpointLoader.register_scheme(prefixes=('http://', 'https://'), loader=_mmengine_url_loader, force=True)


# ------------------------------------------------------------------------------------- does it fit the model?
def checkpoint_state_dict(checkpoint: Any) -> Dict[str, Any]:
    """The weights of a loaded checkpoint as mmengine's ``load_checkpoint`` takes them: its ``state_dict`` (or the
    whole dict), with ``module.`` prefixes stripped."""
    state = checkpoint.get('state_dict', checkpoint) if isinstance(checkpoint, dict) else {}
    return {re.sub(r'^module\.', '', str(k)): v for k, v in state.items()}


def _shape(shape: Tuple[int, ...]) -> str:
    return 'x'.join(map(str, shape)) or 'scalar'


def _classes_in(size: int, model_size: int, num_classes: int) -> Optional[int]:
    """How many classes an output of ``size`` rows stands for, given that ``model_size`` rows stand for the
    config's ``num_classes``: as many (a sigmoid or segmentation classifier), one more (softmax with background),
    or a multiple (one per anchor)."""
    if model_size == num_classes:
        found = size
    elif model_size == num_classes + 1:
        found = size - 1
    elif num_classes > 0 and model_size % num_classes == 0 and size % (model_size // num_classes) == 0:
        found = size // (model_size // num_classes)
    else:
        return None
    return found if found > 0 else None


def _classes_shown(owner: str, num_classes: int, keys: List[str], given: Mapping[str, Tuple[int, ...]],
                   expected: Mapping[str, Tuple[int, ...]]) -> Optional[Tuple[int, str, str, str]]:
    """(classes, tensor, its shape in the checkpoint, in the model) when the shapes of ``owner``'s mismatched
    tensors show it was trained for another number of classes; the classifier's tensor is preferred."""
    classifiers_first = sorted(keys, key=lambda k: (not any(tag in k for tag in ('cls', 'logits', 'seg', 'fc.')),
                                                    'weight' not in k, k))
    for key in classifiers_first:
        if len(given[key]) != len(expected[key]) or given[key][1:] != expected[key][1:]:
            continue
        found = _classes_in(given[key][0], expected[key][0], num_classes)
        if found is not None and found != num_classes:
            return found, key[len(owner) + 1:], _shape(given[key]), _shape(expected[key])
    return None


def _class_lines(shown: Mapping[str, Tuple[int, int, str, str, str]]) -> List[str]:
    """One line per head, ``{owner: (num_classes, classes, tensor, checkpoint shape, model shape)}``; the stages
    of a cascade (``roi_head.bbox_head.0``, ``.1``, ...) that show the same are told in one line."""
    groups: Dict[Tuple, List[str]] = {}
    for owner, facts in shown.items():
        parent, _, index = owner.rpartition('.')
        key = (parent, *facts) if index.isdigit() else (owner, *facts)
        groups.setdefault(key, []).append(owner)
    lines = []
    for (head, num_classes, found, name, given, expected), owners in groups.items():
        if len(owners) > 1:
            stages = ', '.join(owner.rpartition('.')[2] for owner in owners)
            what, where = f'{head} (stages {stages}) were', f'num_classes={found} in each stage of model.{head}'
        else:
            what, where = f'{owners[0]} was', f'model.{owners[0]}.num_classes={found}'
        lines.append(f"the checkpoint's {what} trained for {found} classes ({name} {given}); the config's "
                     f"{'have' if len(owners) > 1 else 'has'} {num_classes} ({expected}): set {where} (and the "
                     f"dataset's metainfo classes to the checkpoint's), or give a checkpoint trained for {num_classes} "
                     f'classes')
    return lines


def checkpoint_fit(state_dict: Mapping[str, Any], model: torch.nn.Module) -> Tuple[List[str], List[str]]:
    """Compare a checkpoint's weights with ``model``'s: (problems, notes), each a list of lines.

    Problems are the model's tensors the checkpoint would leave at their initialisation: tensors whose shapes differ
    (with ``num_classes`` spelled out where a head's classifier shows it) and tensors the checkpoint lacks. Notes are
    the checkpoint's tensors the model has no place for. L²ViT backbones are left out: they check what they load
    themselves (:mod:`l2vit.models.state_dict`), and so are BatchNorm's ``num_batches_tracked`` counters."""
    from mmengine.model import BaseTTAModel, is_model_wrapper
    if is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    modules = dict(model.named_modules())
    backbones = tuple(f'{name}.' for name, module in modules.items() if isinstance(module, L2ViT) and name)
    if isinstance(model, L2ViT):
        return [], []

    def counted(key: str) -> bool:
        return not key.startswith(backbones) and not key.endswith('num_batches_tracked')

    expected = {k: tuple(v.shape) for k, v in model.state_dict().items() if counted(k)}
    given = {k: tuple(getattr(v, 'shape', ())) for k, v in state_dict.items() if counted(k)}
    mismatched = [k for k in expected if k in given and given[k] != expected[k]]
    missing = [k for k in expected if k not in given]
    unexpected = [k for k in given if k not in expected]
    problems, explained = [], set()
    by_owner: Dict[str, List[str]] = {}
    for key in mismatched:
        parts = key.split('.')
        owner = next(('.'.join(parts[:i]) for i in range(len(parts) - 1, 0, -1)
                      if isinstance(getattr(modules.get('.'.join(parts[:i])), 'num_classes', None), int)), None)
        if owner is not None:
            by_owner.setdefault(owner, []).append(key)
    shown = {}
    for owner, keys in by_owner.items():
        facts = _classes_shown(owner, modules[owner].num_classes, keys, given, expected)
        if facts:
            shown[owner] = (modules[owner].num_classes, *facts)
            explained.update(keys)
    problems += _class_lines(shown)
    others = [f'{k} (checkpoint {_shape(given[k])}, model {_shape(expected[k])})' for k in mismatched
              if k not in explained]
    if others:
        problems.append(f'shapes that differ: {describe_keys(others, 6)}')
    if missing:
        problems.append(f'missing in the checkpoint: {describe_keys(missing, 8)}')
    notes = [f'in the checkpoint but not in the model: {describe_keys(unexpected, 8)}'] if unexpected else []
    return problems, notes


def check_checkpoint_fits(checkpoint: Any, model: torch.nn.Module, source: str = 'the checkpoint') -> List[str]:
    """Raise :class:`CheckpointError` when the weights of ``checkpoint`` (loaded) would leave tensors of ``model``
    at their initialisation (see :func:`checkpoint_fit`); otherwise return the notes (unused tensors), if any."""
    problems, notes = checkpoint_fit(checkpoint_state_dict(checkpoint), model)
    if problems:
        raise CheckpointError('\n  '.join([
            f'{source} does not fit the model of this config; it was not used (its tensors that do not fit would '
            f'keep their random initialisation):', *problems, *notes,
            'Use the config the checkpoint was trained with (or fix the settings above), or a checkpoint trained '
            'with this config.']))
    return notes


def unwrap_module_prefix(state_dict: Dict[str, Any]) -> Dict[str, Any]:
    """Strip the ``module.`` prefix that (Distributed)DataParallel adds."""
    if state_dict and all(k.startswith('module.') for k in state_dict):
        return {k[len('module.'):]: v for k, v in state_dict.items()}
    return state_dict


def load_pretrained(backbone: torch.nn.Module, path: str, logger: Any = 'current') -> None:
    """Load L²ViT weights from ``path`` (any checkpoint format above, a file or a URL) into ``backbone``; weights
    that do not fit are refused by name and nothing is loaded (see :mod:`l2vit.models.state_dict`)."""
    from mmengine.runner.checkpoint import load_checkpoint
    load_checkpoint(backbone, path, map_location='cpu', strict=False, logger=logger)


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
        model = unwrap_module_prefix(checkpoint[key])
        if not isinstance(model, dict) or STEM_KEY not in model:
            raise CheckpointError(f'{source}[{key!r}] holds no L2ViT weights (no {STEM_KEY!r}); its keys start with '
                                  f'{describe_keys(list(model), 8)}.')
        state_dict = {}
        for k, v in model.items():
            if k.startswith('head.'):
                state_dict['head.fc.' + k[len('head.'):]] = v
            elif k.startswith('norm.'):
                state_dict['backbone.norm3.' + k[len('norm.'):]] = v
            else:
                state_dict['backbone.' + k] = v
        report.append(f'read {len(model)} tensors from {key!r} (authors ImageNet classifier; arch '
                      f'{arch_name(arch_of(model), L2ViT.arch_zoo)})')
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
        state_dict = unwrap_module_prefix(checkpoint['state_dict'])
        if not isinstance(state_dict, dict) or 'backbone.' + STEM_KEY not in state_dict:
            raise CheckpointError(f'{source}["state_dict"] holds no L2ViT backbone (no "backbone.{STEM_KEY}"); its '
                                  f'keys start with {describe_keys(list(state_dict), 8)}.')
        state_dict = dict(state_dict)
        modules = sorted({k.split('.')[0] for k in state_dict})
        report.append(f'read {len(state_dict)} tensors from "state_dict" (authors mmdet 2.x / mmseg 0.x; arch '
                      f'{arch_name(arch_of(state_dict, "backbone."), L2ViT.arch_zoo)}; modules {", ".join(modules)})')
        report.append('kept every key unchanged (backbone.* keys already match)')
        reasons = {'optimizer': 'optimizer state, not needed for inference or fine-tuning',
                   'meta': 'replaced by new meta (the old one is mmcv 1.x bookkeeping)'}
        meta_extra = {}
    else:
        raise CheckpointError(f'{source} is not an authors\' L2ViT checkpoint: expected "model" (ImageNet) or '
                              f'"state_dict" (mmdet/mmseg), found keys {describe_keys([str(k) for k in checkpoint])}.')
    report += [f'dropped {k!r}: {reasons.get(k, "not model weights")}' for k in checkpoint if k != selected]
    meta = dict(l2vit_version=__version__, converted_from=source, use_ema=use_ema, **meta_extra)
    return dict(meta=meta, state_dict=state_dict), report
