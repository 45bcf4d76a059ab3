"""Data that would train wrong stops the run before its first iteration, naming the files and the fix, and a file
that breaks later names itself (l2vit.hooks.DataCheckHook, carried by our configs): through tools/train.py and
through mmdet's / mmseg's own packaged train.py, on the synthetic COCO and ADE20K-layout sets."""
import json
import os
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
from PIL import Image

from helpers import CONFIG_DIR, config_paths, demo_data_options, load_config, tool
from l2vit.testing import generate_ade_semantic, generate_coco_instances
from test_entry_points import DET_DEMO, IMAGENET_T, SEG_DEMO, packaged_tool, seg_data_options, write_imagenet_layout

#: One short epoch, no validation: the runs that must go on stay short.
DET_SHORT = ['train_cfg.max_epochs=1', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2']
SEG_SHORT = ['train_cfg.max_iters=1', 'train_cfg.val_interval=2', 'default_hooks.checkpoint.interval=2']


GENERATORS = dict(coco=generate_coco_instances, ade=generate_ade_semantic)


@pytest.fixture(scope='module')
def sources(tmp_path_factory):
    """Each synthetic set (4 train, 2 val images), generated once, when first asked for."""
    made = {}

    def source(name: str) -> str:
        if name not in made:
            made[name] = str(tmp_path_factory.mktemp(name) / name)
            GENERATORS[name](made[name], num_train=4, num_val=2, seed=3, progress=False)
        return made[name]
    return source


@pytest.fixture
def coco(sources, tmp_path):
    """A fresh copy of the synthetic COCO set (the test may spoil it)."""
    shutil.copytree(sources('coco'), tmp_path / 'coco')
    return str(tmp_path / 'coco')


@pytest.fixture
def ade(sources, tmp_path):
    """A fresh copy of the synthetic ADE20K-layout set."""
    shutil.copytree(sources('ade'), tmp_path / 'ade')
    return str(tmp_path / 'ade')


def train_ann(root: str) -> str:
    return osp.join(root, 'annotations', 'instances_train2017.json')


def edit_json(path: str, edit) -> None:
    with open(path) as f:
        data = json.load(f)
    edit(data)
    with open(path, 'w') as f:
        json.dump(data, f)


def first_train_image(root: str) -> str:
    with open(train_ann(root)) as f:
        return osp.join(root, 'train2017', json.load(f)['images'][0]['file_name'])


def train_det(root: str, *extra: str, script: str = 'tools/train.py', work: str = None, config: str = DET_DEMO):
    work = work or osp.join(root, '..', 'work')
    return tool(script, config, '--work-dir', work, '--cfg-options', *demo_data_options(root), *DET_SHORT, *extra,
                check=False)


def train_seg(root: str, *extra: str, script: str = 'tools/train.py', config: str = SEG_DEMO):
    return tool(script, config, '--work-dir', osp.join(root, '..', 'work'), '--cfg-options', *seg_data_options(root),
                *SEG_SHORT, *extra, check=False)


def stopped(result, *needles: str, ours: bool = True) -> str:
    """The run failed (our tools: with exit 2 and ``error:``) and its stderr names every needle; returns stderr."""
    err = result.stderr
    if ours:
        assert result.returncode == 2, f'exit {result.returncode}:\n{result.stdout[-2000:]}\n{err[-3000:]}'
        assert 'error:' in err
    else:
        assert result.returncode != 0, result.stdout[-2000:]
        assert 'DataError' in err, err[-3000:]
    for needle in needles:
        assert needle in err, f'{needle!r} not in:\n{err[-3000:]}'
    assert not any(f'{unit}(train)' in result.stdout + err for unit in ('Epoch', 'Iter')), 'it trained first'
    return err


# ----------------------------------------------------------------------------------------------------- wiring
@pytest.mark.parametrize('path', config_paths(), ids=[str(p.relative_to(CONFIG_DIR)) for p in config_paths()])
def test_every_config_carries_one_data_check_hook(path):
    """Whatever tool trains or tests with our configs (ours, mmdet's, mmseg's, mmpretrain's, `mim`), the hook runs:
    the name resolves in the config's library, registered by its custom_imports."""
    from mmengine.registry import HOOKS, DefaultScope

    from l2vit.hooks import DataCheckHook
    cfg = load_config(path)
    hooks = [h for h in cfg.get('custom_hooks') or [] if str(h.get('type')).split('.')[-1] == 'DataCheckHook']
    assert len(hooks) == 1, f'{path.name}: custom_hooks = {cfg.get("custom_hooks")}'
    with DefaultScope.overwrite_default_scope(cfg.default_scope):
        assert isinstance(HOOKS.build(dict(hooks[0])), DataCheckHook)


def test_our_tools_add_the_hook_to_a_config_lacking_it():
    from l2vit.apis.config import add_run_hooks
    cfg = load_config(DET_DEMO)
    cfg.custom_hooks = [dict(type='RNGStateHook')]
    add_run_hooks(cfg)
    add_run_hooks(cfg)
    assert [h['type'] for h in cfg.custom_hooks] == ['RNGStateHook', 'DataCheckHook', 'ConfigCheckHook',
                                                     'FiniteLossHook', 'CheckpointFitHook']


# ------------------------------------------------------------------------------------------------ COCO categories
def rename_category(data, old='rectangle', new='Rectangle'):
    for category in data['categories']:
        if category['name'] == old:
            category['name'] = new


@pytest.mark.parametrize('library_tool', [False, True], ids=['ours', 'mmdet'])
def test_category_differing_in_case_stops_the_run(coco, library_tool):
    edit_json(train_ann(coco), rename_category)
    script = packaged_tool('mmdet', 'train.py') if library_tool else 'tools/train.py'
    err = stopped(train_det(coco, script=script), "'rectangle'", "'Rectangle'", 'typo', ours=not library_tool)
    assert 'train_dataloader.dataset.metainfo.classes' in err


def test_class_without_category_stops_the_run(coco):
    edit_json(train_ann(coco), lambda d: rename_category(d, 'star', 'hexagon'))
    # 'hexagon' is not near 'star': the class has no category, and the file's is an extra one.
    stopped(train_det(coco), "'star'", 'has no category')


def test_extra_category_is_a_warning_and_the_run_goes_on(coco):
    def add(data):
        data['categories'].append(dict(id=99, name='hexagon'))
        data['annotations'].append(dict(data['annotations'][0], id=10**6, category_id=99))
    edit_json(train_ann(coco), add)
    result = train_det(coco)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert 'hexagon' in log and 'drops their 1 annotations' in log


# ------------------------------------------------------------------------------------------------------- images
@pytest.mark.parametrize('library_tool', [False, True], ids=['ours', 'mmdet'])
def test_exif_orientation_stops_the_run_with_the_loader_option(coco, library_tool):
    path = first_train_image(coco)
    image = Image.open(path)
    exif = Image.Exif()
    exif[0x0112] = 6
    image.save(path, exif=exif.tobytes())
    script = packaged_tool('mmdet', 'train.py') if library_tool else 'tools/train.py'
    stopped(train_det(coco, script=script), osp.basename(path), 'orientation 6',
            'train_dataloader.dataset.pipeline.0.color_type=color_ignore_orientation', ours=not library_tool)


def test_exif_orientation_ignored_by_the_loader_trains(coco):
    path = first_train_image(coco)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(path).save(path, exif=exif.tobytes())
    result = train_det(coco, 'train_dataloader.dataset.pipeline.0.color_type=color_ignore_orientation')
    assert result.returncode == 0, result.stderr[-3000:]


def test_image_size_differing_from_the_annotation_stops_the_run(coco):
    def taller(data):
        data['images'][1]['height'] += 40
    edit_json(train_ann(coco), taller)
    with open(train_ann(coco)) as f:
        name = json.load(f)['images'][1]['file_name']
    stopped(train_det(coco), name, 'another size than their annotation')


@pytest.mark.parametrize('spoil', ['zero-byte', 'missing'])
def test_unreadable_or_missing_image_stops_the_run(coco, spoil):
    path = first_train_image(coco)
    if spoil == 'missing':
        os.remove(path)
    else:
        open(path, 'w').close()
    stopped(train_det(coco), path, 'cannot be read', 'missing' if spoil == 'missing' else 'empty')


DELETING_HOOK = '''
import os
from mmengine.hooks import Hook
from mmdet.registry import HOOKS as DET_HOOKS
from mmseg.registry import HOOKS as SEG_HOOKS


@DET_HOOKS.register_module()
@SEG_HOOKS.register_module()
class DeleteAfterCheck(Hook):
    """Spoil a file once the run has started (after DataCheckHook's before_train)."""
    priority = 'LOWEST'

    def __init__(self, path, empty=False):
        self.path, self.empty = path, empty

    def before_train_epoch(self, runner):
        if self.empty:
            open(self.path, 'w').close()
        else:
            os.remove(self.path)
'''


def spoiling_config(tmp_path, monkeypatch, base: str, path: str, empty: bool, package: str = 'mmdet_l2vit') -> str:
    """A user's config on ``base`` whose run spoils ``path`` once started (DeleteAfterCheck, importable through
    PYTHONPATH, which the tools' interpreters inherit)."""
    (tmp_path / 'delete_after_check.py').write_text(DELETING_HOOK)
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    config = tmp_path / 'user_config.py'
    config.write_text(f'_base_ = [{base!r}]\n'
                      f"custom_imports = dict(imports=[{package!r}, 'delete_after_check'], allow_failed_imports=False)"
                      "\ncustom_hooks = [dict(type='DataCheckHook'), dict(type='RNGStateHook'), "
                      f'dict(type="DeleteAfterCheck", path={path!r}, empty={empty})]\n')
    return str(config)


@pytest.mark.parametrize('library_tool,workers', [(False, 0), (True, 1)], ids=['ours', 'mmdet-worker'])
def test_image_spoiled_mid_run_names_itself(coco, tmp_path, monkeypatch, library_tool, workers):
    """The file is deleted (ours) or emptied (mmdet's tool, a DataLoader worker reads it) after the check: the
    error raised mid-epoch names it."""
    path = first_train_image(coco)
    config = spoiling_config(tmp_path, monkeypatch, DET_DEMO, path, empty=library_tool)
    script = packaged_tool('mmdet', 'train.py') if library_tool else 'tools/train.py'
    result = train_det(coco, f'train_dataloader.num_workers={workers}', script=script, config=str(config))
    assert result.returncode != 0
    assert path in result.stderr and 'LoadImageFromFile' in result.stderr, result.stderr[-3000:]
    assert ('FileNotFoundError' if not library_tool else 'DataLoader worker') in result.stderr


def test_image_emptied_mid_run_names_itself_from_an_iteration_loops_worker(ade, tmp_path, monkeypatch):
    """mmseg's packaged train.py, IterBasedTrainLoop with a persistent DataLoader worker (started when the loop was
    built, before any hook: the hook starts it again with the wrapped pipeline): an image emptied once the run has
    started is named when a later iteration reads it."""
    path = sorted(os.listdir(osp.join(ade, 'images', 'training')))[0]
    path = osp.join(ade, 'images', 'training', path)
    config = spoiling_config(tmp_path, monkeypatch, SEG_DEMO, path, empty=True, package='mmseg_l2vit')
    result = train_seg(ade, 'train_dataloader.num_workers=1', 'train_dataloader.persistent_workers=True',
                       'train_cfg.max_iters=6', 'train_cfg.val_interval=10', script=packaged_tool('mmseg', 'train.py'),
                       config=config)
    assert result.returncode != 0
    assert path in result.stderr and 'LoadImageFromFile' in result.stderr, result.stderr[-3000:]


@pytest.mark.slow
def test_unreadable_test_image_stops_testing(coco, tmp_path):
    """tools/test.py and mmdet's packaged test.py: the test dataset is checked before the first test iteration."""
    work = str(tmp_path / 'work')
    result = train_det(coco, work=work)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(osp.join(coco, 'annotations', 'instances_val2017.json')) as f:
        path = osp.join(coco, 'val2017', json.load(f)['images'][0]['file_name'])
    open(path, 'w').close()
    for script in ('tools/test.py', packaged_tool('mmdet', 'test.py')):
        result = tool(script, DET_DEMO, osp.join(work, 'epoch_1.pth'), '--work-dir', work, '--cfg-options',
                      *demo_data_options(coco), check=False)
        stopped(result, path, 'test_dataloader.dataset', 'cannot be read', ours=script == 'tools/test.py')


@pytest.mark.slow
def test_restarting_an_iteration_loops_workers_changes_nothing(ade, tmp_path):
    """The hook starts an IterBasedTrainLoop's persistent worker again (see above); the run trains on the same
    batches with the same randomness as one without the hook: the same weights after 3 iterations."""
    import torch
    no_hook = tmp_path / 'no_hook.py'
    no_hook.write_text(f"_base_ = [{SEG_DEMO!r}]\ncustom_hooks = [dict(type='RNGStateHook')]\n")
    weights = []
    for name, config in (('with_hook', SEG_DEMO), ('without', str(no_hook))):
        work = str(tmp_path / name)
        tool(packaged_tool('mmseg', 'train.py'), config, '--work-dir', work, '--cfg-options', *seg_data_options(ade),
             'train_dataloader.num_workers=1', 'train_dataloader.persistent_workers=True', 'train_cfg.max_iters=3',
             'train_cfg.val_interval=10', 'default_hooks.checkpoint.interval=3', 'randomness.seed=0')
        weights.append(torch.load(osp.join(work, 'iter_3.pth'), map_location='cpu')['state_dict'])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_classification_images_may_be_oriented_but_not_unreadable(tmp_path):
    """mmpretrain's ImageNet dataset, as configs/imagenet builds it: without boxes or label maps an EXIF orientation
    cannot disagree with anything (no error), a zero-byte image can."""
    from mmengine.registry import DATASETS, DefaultScope

    import mmpretrain_l2vit  # noqa: F401  (what the config's custom_imports do)
    from l2vit.data_checks import check_dataset
    root = tmp_path / 'imagenet'
    write_imagenet_layout(root)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.open(root / 'train' / 'train_0000.JPEG').save(root / 'train' / 'train_0000.JPEG', exif=exif.tobytes())
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        dataset = DATASETS.build(dict(load_config(IMAGENET_T).train_dataloader.dataset, data_root=str(root)))
    assert check_dataset(dataset, 'train_dataloader.dataset') == ([], [])
    open(root / 'train' / 'train_0001.JPEG', 'w').close()
    errors, _ = check_dataset(dataset, 'train_dataloader.dataset')
    assert len(errors) == 1 and 'train_0001.JPEG (empty (0 bytes))' in errors[0]
    # Under dataset wrappers, each leaf is checked, named by its config key.
    from mmengine.dataset import ConcatDataset, RepeatDataset

    from l2vit.data_checks import leaf_datasets
    assert leaf_datasets(RepeatDataset(dataset, times=2), 'd') == [('d.dataset', dataset)]
    assert leaf_datasets(ConcatDataset([dataset, dataset]), 'd') == [(f'd.datasets.{i}', dataset) for i in (0, 1)]


def test_naming_pipeline_pickles_and_keeps_the_compose_attributes():
    from mmengine.dataset import Compose

    from l2vit.errors import DataError
    from l2vit.hooks import NamingPipeline
    pipeline = NamingPipeline(Compose([dict(type='mmcv.LoadImageFromFile')]))
    copy = pickle.loads(pickle.dumps(pipeline))
    assert len(copy.transforms) == 1 and type(copy.transforms[0]).__name__ == 'LoadImageFromFile'
    with pytest.raises(DataError, match='/nowhere.jpg: LoadImageFromFile failed'):
        copy(dict(img_path='/nowhere.jpg'))
    assert DataError('one string')  # torch re-raises a worker's exception as its type with one string


# ------------------------------------------------------------------------------------------ segmentation labels
def label_maps(root: str, split: str = 'training'):
    folder = osp.join(root, 'annotations', split)
    return sorted(osp.join(folder, f) for f in os.listdir(folder))


@pytest.mark.parametrize('library_tool', [False, True], ids=['ours', 'mmseg'])
def test_rgb_label_maps_stop_the_run(ade, library_tool):
    path = label_maps(ade)[1]
    Image.open(path).convert('RGB').save(path)
    script = packaged_tool('mmseg', 'train.py') if library_tool else 'tools/train.py'
    stopped(train_seg(ade, script=script), path, 'not single-channel', ours=not library_tool)


@pytest.mark.parametrize('library_tool', [False, True], ids=['ours', 'mmseg'])
def test_label_values_beyond_the_classes_stop_the_run(ade, library_tool):
    path = label_maps(ade)[0]
    labels = np.array(Image.open(path))
    labels[:8] = 150  # ADE20K's own ids: beyond the 6 classes
    Image.fromarray(labels).save(path)
    script = packaged_tool('mmseg', 'train.py') if library_tool else 'tools/train.py'
    stopped(train_seg(ade, script=script), path, 'values 149', ours=not library_tool)


def test_label_maps_ignored_everywhere_stop_the_run(ade):
    for path in label_maps(ade):
        labels = np.array(Image.open(path))
        Image.fromarray(np.where(labels > 0, 255, 0).astype(np.uint8)).save(path)  # 0/255 masks
    stopped(train_seg(ade), 'ignored at every pixel', 'reduce_zero_label=False')


def test_ignored_batches_are_warned_about_unchecked(ade):
    """With the start-up check off, each batch whose pixels are all ignored is a warning naming its label maps."""
    for path in label_maps(ade):
        labels = np.array(Image.open(path))
        Image.fromarray(np.where(labels > 0, 255, 0).astype(np.uint8)).save(path)
    result = train_seg(ade, 'custom_hooks.0.check=False')
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert 'iteration 1: every pixel of this batch is ignored' in log and osp.join('annotations', 'training') in log


def test_label_values_beyond_the_classes_stop_training_unchecked(ade):
    """With the start-up check off, the batch check stops the run at the batch that holds them, naming the file."""
    for path in label_maps(ade):
        labels = np.array(Image.open(path))
        labels[::4] = 150  # in every crop
        Image.fromarray(labels).save(path)
    result = train_seg(ade, 'custom_hooks.0.check=False')
    assert result.returncode == 2 and 'at iteration 1' in result.stderr, result.stderr[-3000:]
    assert 'values 149' in result.stderr and osp.join('annotations', 'training') in result.stderr


def test_rgb_label_maps_stop_training_unchecked(ade):
    """With the start-up check off, the batch check names an RGB label map (instead of torch.stack's size error)."""
    path = label_maps(ade)[0]
    Image.open(path).convert('RGB').save(path)
    result = train_seg(ade, 'custom_hooks.0.check=False', 'train_dataloader.batch_size=4')
    assert result.returncode == 2 and 'not single-channel' in result.stderr, result.stderr[-3000:]
    assert path in result.stderr
