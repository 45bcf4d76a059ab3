"""Our configs through the libraries' own entry points, not our tools/: mmdet's packaged train.py / test.py (what
`mim train mmdet CONFIG` runs), mmdet.apis.init_detector + inference_detector, mmdet.apis.DetInferencer,
mmseg.apis.MMSegInferencer, mmpretrain's packaged train.py and mmpretrain.apis.ImageClassificationInferencer.

Each runs in a fresh interpreter, so the only thing that registers our weights-only checkpoint loading (torch >= 2.6
refuses mmengine's checkpoints otherwise) and our RNGStateHook is the import of mm*_l2vit by the config's
custom_imports; every checkpoint here was written by mmengine's Runner (message hub, numpy scalars)."""
import ast
import copy
import importlib.util
import os.path as osp
import re
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest
import torch

from helpers import CONFIG_DIR, ROOT, SMALL_ARCH, config_paths, demo_data_options, load_config, run_main, tool
from l2vit.checkpoint import load_checkpoint_file
from l2vit.testing import generate_ade_semantic, generate_coco_instances
from test_detection_e2e import DEMO_CONFIG as DET_DEMO
from test_segmentation_e2e import DEMO_CONFIG as SEG_DEMO
from test_segmentation_e2e import data_options as seg_data_options

IMAGENET_T = osp.join(ROOT, 'configs', 'imagenet', 'l2vit-t_in1k.py')


def packaged_tool(library: str, name: str) -> str:
    """``<site-packages>/<library>/.mim/tools/<name>``, found without importing the library here."""
    spec = importlib.util.find_spec(library)
    if spec is None:
        pytest.skip(f'{library} is not installed')
    path = osp.join(spec.submodule_search_locations[0], '.mim', 'tools', name)
    assert osp.isfile(path), f'{library} ships no {name}: {path}'
    return path


# ----------------------------------------------------------------------------------------- RNGStateHook in configs
def is_rng_state_hook(hook) -> bool:
    return str(hook.get('type', '')).split('.')[-1] == 'RNGStateHook'


def direct_bases(path: Path) -> List[str]:
    """The entries of a config file's ``_base_`` (local paths and ``pkg::`` names), as written."""
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == '_base_' for t in node.targets):
            value = ast.literal_eval(node.value)
            return [value] if isinstance(value, str) else list(value)
    return []


@lru_cache(maxsize=None)
def library_base(name: str):
    """A library's own config (``mmdet::...``), loaded as mmengine loads it for a config that inherits it."""
    from mmengine.config import Config
    with tempfile.TemporaryDirectory() as tmp:
        child = Path(tmp) / 'child.py'
        child.write_text(f'_base_ = {name!r}\n')
        return Config.fromfile(str(child))


def base_hooks(path: Path) -> list:
    """The custom_hooks of every config that ``path`` inherits directly."""
    hooks = []
    for base in direct_bases(path):
        cfg = library_base(base) if '::' in base else load_config((path.parent / base).resolve())
        hooks += list(cfg.get('custom_hooks') or [])
    return hooks


CONFIGS = config_paths()


@pytest.mark.parametrize('path', CONFIGS, ids=[str(p.relative_to(CONFIG_DIR)) for p in CONFIGS])
def test_config_carries_one_rng_state_hook_and_every_base_hook(path):
    """Every config trains with RNGStateHook whatever tool runs it (ours, mmdet's, `mim train`), exactly once, and
    declaring it dropped none of the hooks the inherited configs had (a child's list replaces its base's)."""
    from mmengine.registry import HOOKS, DefaultScope

    from l2vit import RNGStateHook
    cfg = load_config(path)
    hooks = list(cfg.get('custom_hooks') or [])
    assert sum(map(is_rng_state_hook, hooks)) == 1, f'{path.name}: custom_hooks = {hooks}'
    for hook in base_hooks(path):
        if not is_rng_state_hook(hook):
            assert hook in hooks, f'{path.name} lost the hook {hook} of its base: custom_hooks = {hooks}'
    # The name resolves in the config's own library (registered by its custom_imports).
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        built = HOOKS.build(copy.deepcopy(next(h for h in hooks if is_rng_state_hook(h))))
    assert isinstance(built, RNGStateHook)


def test_imagenet_configs_keep_their_ema_hook():
    for name in ('l2vit-t_in1k.py', 'l2vit-s_in1k.py', 'l2vit-b_in1k.py', 'l2vit-b_in1k-384px.py'):
        hooks = load_config(CONFIG_DIR / 'imagenet' / name).custom_hooks
        assert [h.type for h in hooks] == ['EMAHook', 'DataCheckHook', 'ConfigCheckHook', 'RNGStateHook',
                                           'FiniteLossHook', 'CheckpointFitHook'], name


def test_our_train_tool_adds_no_second_rng_state_hook():
    from l2vit.apis import add_run_hooks
    for path in (Path(DET_DEMO), Path(IMAGENET_T)):
        cfg = copy.deepcopy(load_config(path))
        before = list(cfg.custom_hooks)
        add_run_hooks(cfg)
        assert list(cfg.custom_hooks) == before, path.name
        # A config of the user's own without it still gets one, after its own hooks.
        own = [h for h in before if not is_rng_state_hook(h)]
        cfg.custom_hooks = list(own)
        add_run_hooks(cfg)
        assert list(cfg.custom_hooks) == own + [dict(type='RNGStateHook')], path.name


# ------------------------------------------------------------------------------------ fresh-interpreter scripts
#: Run first in every script: nothing of ours is imported before the entry point runs (torch allow-lists a few
#: types of its own).
PRELUDE = '''import sys
import torch
assert not [m for m in sys.modules if m == 'l2vit' or m.endswith('_l2vit')]
torch_own = torch.serialization.get_safe_globals()
'''
#: Run last: the config's custom_imports imported the package, and nothing but our list was allow-listed (torch adds
#: types of its own as its modules are imported).
POSTLUDE = """
assert PACKAGE in sys.modules
from l2vit.checkpoint import SAFE_GLOBALS
others = [g for g in torch.serialization.get_safe_globals() if g not in torch_own and g not in SAFE_GLOBALS
          and not getattr(g[0] if isinstance(g, tuple) else g, '__module__', '').startswith('torch.')]
assert not others, others
print('OK')
"""


def run_script(tmp_path: Path, name: str, body: str, package: str = 'mmdet_l2vit'):
    """Run ``body`` in a fresh interpreter and check that the config's custom_imports imported ``package``."""
    script = tmp_path / f'{name}.py'
    script.write_text(PRELUDE + body + POSTLUDE.replace('PACKAGE', repr(package)))
    result = tool(str(script))
    assert result.stdout.rstrip().endswith('OK'), result.stdout[-2000:]
    return result


def test_importing_a_package_registers_the_allow_list_for_good(tmp_path):
    """`import mmdet_l2vit` (custom_imports) lets torch's weights-only default read what mmengine's Runner saves
    (message hub: HistoryBuffer, numpy scalars), and the list stays registered after mmengine loaded a checkpoint
    through our loader, so a plain torch.load of the user's still works afterwards."""
    from mmengine.logging import MessageHub
    hub = MessageHub.get_instance('test_entry_points')
    hub.update_scalar('train/loss', np.float64(0.5))
    hub.update_info('epoch', np.int64(1))
    checkpoint = str(tmp_path / 'epoch_1.pth')
    torch.save(dict(meta=dict(epoch=1, seed=np.int64(0)), state_dict={'w': torch.ones(2)},
                    message_hub=hub.state_dict()), checkpoint)
    run_script(tmp_path, 'allow_list', f'''
import mmdet_l2vit
from l2vit.checkpoint import SAFE_GLOBALS
def missing():
    allowed = torch.serialization.get_safe_globals()
    return [g for g in SAFE_GLOBALS if g not in allowed]
assert not missing(), missing()
assert torch.load({checkpoint!r})['meta']['epoch'] == 1  # torch's default: weights-only
from mmengine.runner.checkpoint import CheckpointLoader
assert CheckpointLoader.load_checkpoint({checkpoint!r}, map_location='cpu')['meta']['epoch'] == 1  # init_detector's
gone = missing()
assert not gone, f'loading a checkpoint unregistered {{len(gone)}} of our {{len(SAFE_GLOBALS)}} allow-listed types'
assert torch.load({checkpoint!r})['meta']['epoch'] == 1
''')


def tensors_equal(a: dict, b: dict) -> list:
    """The keys whose tensors differ (the key sets must match)."""
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


# --------------------------------------------------------------------------------------------------- detection
@pytest.fixture(scope='module')
def det_run(tmp_path_factory):
    """mmdet's packaged train.py on the demo config, tiny: 2 epochs of 2 iterations, validating and saving after each,
    with stochastic depth and random flips (so that resuming has randomness to get right)."""
    tmp = tmp_path_factory.mktemp('det')
    data = str(tmp / 'coco')
    generate_coco_instances(data, num_train=4, num_val=2, seed=11, progress=False)
    options = ['--cfg-options', *demo_data_options(data), 'train_cfg.max_epochs=2', 'train_cfg.val_interval=1',
               'default_hooks.checkpoint.interval=1', 'randomness.seed=0', 'randomness.deterministic=True',
               'model.backbone.drop_path_rate=0.2']
    work = tmp / 'straight'
    tool(packaged_tool('mmdet', 'train.py'), DET_DEMO, '--work-dir', str(work), *options)
    return dict(tmp=tmp, data=data, options=options, work=work, checkpoint=str(work / 'epoch_2.pth'),
                image=osp.join(data, 'val2017', '000000000001.jpg'))


@pytest.mark.slow
def test_mmdet_train_tool_resumes_exactly(det_run):
    """`train.py --resume epoch_1.pth` of mmdet (no wrapper: torch's weights-only default loads the mmengine
    checkpoint because custom_imports registered our loading) repeats epoch 2 bit for bit: the config's RNGStateHook
    put the RNG states in the checkpoint."""
    first = det_run['work'] / 'epoch_1.pth'
    assert 'rng_states' in load_checkpoint_file(first)
    resumed = det_run['tmp'] / 'resumed'
    result = tool(packaged_tool('mmdet', 'train.py'), DET_DEMO, '--work-dir', str(resumed), '--resume', str(first),
                  *det_run['options'])
    assert 'resumed epoch: 1' in result.stdout + result.stderr
    different = tensors_equal(load_checkpoint_file(det_run['checkpoint'])['state_dict'],
                              load_checkpoint_file(resumed / 'epoch_2.pth')['state_dict'])
    assert not different, f'{len(different)} tensors differ after resuming, e.g. {different[:5]}'


@pytest.mark.slow
def test_mmdet_test_tool_evaluates_the_checkpoint(det_run):
    result = tool(packaged_tool('mmdet', 'test.py'), DET_DEMO, det_run['checkpoint'], '--work-dir',
                  str(det_run['tmp'] / 'test'), *det_run['options'])
    found = re.search(r'coco/bbox_mAP: (-?\d+\.\d+)', result.stdout + result.stderr)
    assert found and -1.0 <= float(found.group(1)) <= 1.0, (result.stdout + result.stderr)[-3000:]
    assert 'coco/segm_mAP' in result.stdout + result.stderr


@pytest.mark.slow
def test_init_detector_and_inference_detector(det_run, tmp_path):
    run_script(tmp_path, 'init_detector', f'''
from mmdet.apis import inference_detector, init_detector
model = init_detector({DET_DEMO!r}, {det_run['checkpoint']!r}, device='cpu')
result = inference_detector(model, {det_run['image']!r})
assert model.dataset_meta['classes'] == ('ellipse', 'rectangle', 'triangle', 'star'), model.dataset_meta
pred = result.pred_instances
assert len(pred) > 0 and pred.bboxes.shape == (len(pred), 4) and pred.masks.shape[0] == len(pred)
assert ((0 <= pred.scores) & (pred.scores <= 1)).all() and ((0 <= pred.labels) & (pred.labels < 4)).all()
''', 'mmdet_l2vit')


@pytest.mark.slow
def test_det_inferencer(det_run, tmp_path):
    run_script(tmp_path, 'det_inferencer', f'''
from mmdet.apis import DetInferencer
inferencer = DetInferencer(model={DET_DEMO!r}, weights={det_run['checkpoint']!r}, device='cpu', show_progress=False)
result = inferencer({det_run['image']!r}, no_save_vis=True, pred_score_thr=0.0)
pred = result['predictions'][0]
assert len(pred['labels']) > 0 and len(pred['bboxes']) == len(pred['scores']) == len(pred['labels']), pred.keys()
assert all(len(box) == 4 for box in pred['bboxes']) and 'masks' in pred
''', 'mmdet_l2vit')


# ------------------------------------------------------------------------------------------------ segmentation
@pytest.mark.slow
def test_mmseg_inferencer(tmp_path):
    data = str(tmp_path / 'ade')
    generate_ade_semantic(data, num_train=4, num_val=1, seed=12, progress=False)
    work = tmp_path / 'work'
    # mmseg ships no train tool in its package; ours runs the same mmengine Runner, which writes the checkpoint.
    run_main('tools/train.py', SEG_DEMO, '--work-dir', str(work), '--cfg-options', *seg_data_options(data),
             'train_cfg.max_iters=2', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2')
    checkpoint = str(work / 'iter_2.pth')
    image = osp.join(data, 'images', 'validation', '00000001.jpg')
    height, width = cv2.imread(image).shape[:2]
    run_script(tmp_path, 'mmseg_inferencer', f'''
from mmseg.apis import MMSegInferencer
inferencer = MMSegInferencer(model={SEG_DEMO!r}, weights={checkpoint!r}, device='cpu')
result = inferencer({image!r})
labels = result['predictions']
assert labels.shape == ({height}, {width}), labels.shape
assert labels.min() >= 0 and labels.max() < 6
''', 'mmseg_l2vit')


# -------------------------------------------------------------------------------------------- classification
def write_imagenet_layout(root: Path) -> None:
    """data/imagenet in mmpretrain's layout (``{split}/`` + ``meta/{split}.txt``): 4 train, 2 val images."""
    rng = np.random.default_rng(0)
    (root / 'meta').mkdir(parents=True)
    for split, count in (('train', 4), ('val', 2)):
        (root / split).mkdir()
        lines = []
        for i in range(count):
            name = f'{split}_{i:04d}.JPEG'
            cv2.imwrite(str(root / split / name), rng.integers(0, 255, (72 + 8 * i, 96, 3), dtype=np.uint8))
            lines.append(f'{name} {i * 250}')
        (root / 'meta' / f'{split}.txt').write_text('\n'.join(lines) + '\n')


@pytest.mark.slow
def test_mmpretrain_train_tool_then_image_classification_inferencer(tmp_path):
    """configs/imagenet/l2vit-t_in1k.py with a small L2ViT: mmpretrain's packaged train.py writes the checkpoint
    (EMA and RNG states included), ImageClassificationInferencer classifies an image with it."""
    root = tmp_path / 'imagenet'
    write_imagenet_layout(root)
    config = tmp_path / 'l2vit-small-arch_in1k.py'
    config.write_text(f'_base_ = [{IMAGENET_T!r}]\n'
                      f'model = dict(backbone=dict(arch=dict(_delete_=True, **{SMALL_ARCH!r})), '
                      f'head=dict(in_channels={SMALL_ARCH["embed_dims"][-1]}))\n'
                      # one epoch: the recipe's cosine decay starts after 20 warm-up epochs
                      "train_cfg = dict(max_epochs=1)\n"
                      "param_scheduler = [dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=2)]\n")
    work = tmp_path / 'work'
    loaders = [f'{split}_dataloader.{option}' for split in ('train', 'val')
               for option in ('num_workers=0', 'persistent_workers=False', 'batch_size=2')]
    tool(packaged_tool('mmpretrain', 'train.py'), str(config), '--work-dir', str(work), '--cfg-options',
         f'train_dataloader.dataset.data_root={root}', f'val_dataloader.dataset.data_root={root}', *loaders)
    checkpoint = str(work / 'epoch_1.pth')
    saved = load_checkpoint_file(checkpoint)
    assert 'rng_states' in saved and 'ema_state_dict' in saved
    image = str(root / 'val' / 'val_0000.JPEG')
    run_script(tmp_path, 'classification_inferencer', f'''
from mmpretrain.apis import ImageClassificationInferencer
inferencer = ImageClassificationInferencer(model={str(config)!r}, pretrained={checkpoint!r}, device='cpu')
result = inferencer({image!r})[0]
assert 0 <= result['pred_label'] < 1000 and 0.0 <= result['pred_score'] <= 1.0, result
assert len(result['pred_scores']) == 1000 and isinstance(result['pred_class'], str), result
''', 'mmpretrain_l2vit')
