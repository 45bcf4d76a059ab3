"""Checkpoints that do not fit the config, files that are not checkpoints, and the tools' handling of bad folders,
devices and images (docs/reliability.md, "Checkpoints that don't fit, files that aren't checkpoints, demo tools").

The checkpoints are made without training: the demo config's model built with other settings, saved in mmengine's
format."""
import os
import os.path as osp
import threading
import zipfile
from typing import Optional

import pytest
import torch

from helpers import CONFIG_DIR, demo_data_options, run_main, tool
from l2vit import CheckpointError, L2ViT
from l2vit.checkpoint import download_checkpoint, load_checkpoint_file
from l2vit.testing import generate_ade_semantic, generate_coco_instances
from test_checkpoint import ARCH
from test_checkpoint_loading import _Server
from test_detection_e2e import DEMO_CONFIG
from test_entry_points import packaged_tool
from test_segmentation_e2e import DEMO_CONFIG as SEG_DEMO
from test_segmentation_e2e import data_options as seg_data_options

HTML = b'<!DOCTYPE html>\n<html><head><title>Sign in - Example Drive</title></head><body>...</body></html>\n'


def save_model_checkpoint(config: str, path, cfg_options: Optional[dict] = None) -> str:
    """The config's model (with ``cfg_options``), randomly initialised, saved as mmengine's Runner saves weights."""
    from mmengine.runner.checkpoint import save_checkpoint

    from l2vit.apis import build_model, read_config
    model = build_model(read_config(config, cfg_options), pretrained=False)
    model.init_weights()
    save_checkpoint({'meta': {}, 'state_dict': model.state_dict()}, str(path))
    return str(path)


@pytest.fixture(scope='module')
def coco(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('coco'))
    generate_coco_instances(root, num_train=2, num_val=1, seed=6, progress=False)
    return root


@pytest.fixture(scope='module')
def checkpoints(tmp_path_factory):
    """{'fits': the demo detector's own weights, 'two_classes': the same detector with 2 classes}."""
    root = tmp_path_factory.mktemp('checkpoints')
    return dict(fits=save_model_checkpoint(DEMO_CONFIG, root / 'fits.pth'),
                two_classes=save_model_checkpoint(DEMO_CONFIG, root / 'two_classes.pth', cfg_options={
                    'model.roi_head.bbox_head.num_classes': 2, 'model.roi_head.mask_head.num_classes': 2}))


def assert_names_num_classes(message: str) -> None:
    assert "roi_head.bbox_head was trained for 2 classes (fc_cls.weight 3x256); the config's has 4 (5x256)" in message
    assert 'model.roi_head.bbox_head.num_classes=2' in message
    assert 'roi_head.mask_head was trained for 2 classes' in message and 'model.roi_head.mask_head.num_classes=2' \
        in message


# ------------------------------------------------------------------------------------ heads that do not fit
def test_test_tool_refuses_a_checkpoint_for_other_classes(coco, checkpoints, tmp_path):
    result = run_main('tools/test.py', DEMO_CONFIG, checkpoints['two_classes'], '--work-dir', tmp_path / 'work',
                      '--cfg-options', *demo_data_options(coco), check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert_names_num_classes(result.stderr)
    assert 'coco/bbox_mAP' not in result.stdout + result.stderr  # nothing was evaluated


def test_test_tool_adds_the_fit_check_to_a_config_without_it(coco, checkpoints, tmp_path):
    # A user's config that replaced custom_hooks: tools/test.py adds CheckpointFitHook (prepare_test).
    result = run_main('tools/test.py', DEMO_CONFIG, checkpoints['two_classes'], '--work-dir', tmp_path / 'work',
                      '--cfg-options', *demo_data_options(coco), 'custom_hooks=[]', check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert_names_num_classes(result.stderr)


def test_mmdet_test_tool_refuses_a_checkpoint_for_other_classes(coco, checkpoints, tmp_path):
    # mmdet's own test.py (what `mim test mmdet` runs): the config's custom_hooks carry the check.
    result = tool(packaged_tool('mmdet', 'test.py'), DEMO_CONFIG, checkpoints['two_classes'], '--work-dir',
                  tmp_path / 'work', '--cfg-options', *demo_data_options(coco), check=False)
    assert result.returncode != 0
    assert_names_num_classes(result.stderr)
    assert 'coco/bbox_mAP' not in result.stdout + result.stderr


def test_a_fitting_checkpoint_is_tested_and_fine_tuning_to_other_classes_goes_on(coco, checkpoints, tmp_path):
    # Controls: the same tools with a checkpoint that fits run through; and training from load_from (fine-tuning a
    # checkpoint to other classes is the normal workflow) goes on, with the misfit summarised in its log.
    result = run_main('tools/test.py', DEMO_CONFIG, checkpoints['fits'], '--work-dir', tmp_path / 'test',
                      '--cfg-options', *demo_data_options(coco))
    assert 'coco/bbox_mAP' in result.stdout + result.stderr
    result = run_main('tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path / 'train', '--cfg-options',
                      *demo_data_options(coco), f'load_from={checkpoints["two_classes"]}', 'train_cfg.max_epochs=1',
                      'train_cfg.val_interval=2')
    log = result.stdout + result.stderr
    assert 'not everything fits this model' in log and 'trained for 2 classes' in log
    assert osp.isfile(tmp_path / 'train' / 'epoch_1.pth')


def test_resuming_from_a_checkpoint_that_does_not_fit_is_refused(coco, checkpoints, tmp_path):
    result = run_main('tools/train.py', DEMO_CONFIG, '--work-dir', tmp_path / 'train', '--resume',
                      checkpoints['two_classes'], '--cfg-options', *demo_data_options(coco), check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert_names_num_classes(result.stderr)


def test_image_demo_refuses_a_checkpoint_for_other_classes(coco, checkpoints, tmp_path):
    result = run_main('tools/demo/image_demo.py', osp.join(coco, 'val2017'), DEMO_CONFIG, checkpoints['two_classes'],
                      '--out-dir', tmp_path / 'pictures', check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert_names_num_classes(result.stderr)
    assert not os.listdir(tmp_path / 'pictures')


def test_missing_head_tensors_and_other_shapes_are_named(checkpoints):
    from l2vit.apis import build_model, read_config
    from l2vit.checkpoint import check_checkpoint_fits
    model = build_model(read_config(DEMO_CONFIG), pretrained=False)
    checkpoint = load_checkpoint_file(checkpoints['fits'])
    state = checkpoint['state_dict']
    del state['neck.lateral_convs.0.conv.weight']
    state['rpn_head.rpn_conv.weight'] = state['rpn_head.rpn_conv.weight'][:32]
    state['extra.weight'] = torch.zeros(1)
    with pytest.raises(CheckpointError) as err:
        check_checkpoint_fits(checkpoint, model, 'x.pth')
    message = str(err.value)
    assert 'missing in the checkpoint: neck.lateral_convs.0.conv.weight' in message
    assert 'rpn_head.rpn_conv.weight (checkpoint 32x64x3x3, model 64x64x3x3)' in message
    assert 'in the checkpoint but not in the model: extra.weight' in message
    del state['extra.weight']
    state['rpn_head.rpn_conv.weight'] = torch.zeros(64, 64, 3, 3)
    state['neck.lateral_convs.0.conv.weight'] = torch.zeros(64, 32, 1, 1)
    assert check_checkpoint_fits(checkpoint, model) == []  # control: the whole checkpoint fits


@pytest.fixture(scope='module')
def seg(tmp_path_factory):
    """(ADE-layout data root, one image, a checkpoint of the seg demo model trained for 3 classes more)."""
    from l2vit.apis import read_config
    root = tmp_path_factory.mktemp('seg')
    generate_ade_semantic(str(root / 'ade'), num_train=1, num_val=1, seed=3, progress=False)
    classes = read_config(SEG_DEMO).model.decode_head.num_classes + 3
    checkpoint = save_model_checkpoint(SEG_DEMO, root / 'seg.pth', cfg_options={
        'model.decode_head.num_classes': classes, 'model.auxiliary_head.num_classes': classes})
    return str(root / 'ade'), next((root / 'ade').rglob('*.jpg')), checkpoint, classes


def test_seg_demo_refuses_a_checkpoint_for_other_classes(seg, tmp_path):
    _, image, checkpoint, classes = seg
    result = run_main('tools/demo/seg_demo.py', image, SEG_DEMO, checkpoint, '--out-dir', tmp_path / 'out',
                      check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f'decode_head was trained for {classes} classes' in result.stderr
    assert f'model.decode_head.num_classes={classes}' in result.stderr


def test_mmseg_test_tool_refuses_a_checkpoint_for_other_classes(seg, tmp_path):
    data, _, checkpoint, classes = seg
    result = tool(packaged_tool('mmseg', 'test.py'), SEG_DEMO, checkpoint, '--work-dir', tmp_path / 'work',
                  '--cfg-options', *seg_data_options(data), check=False)
    assert result.returncode != 0
    assert f'decode_head was trained for {classes} classes' in result.stderr, result.stderr[-3000:]
    assert 'aAcc:' not in result.stdout + result.stderr  # no metrics


@pytest.mark.parametrize('config,key,excerpt,fix', [
    ('retinanet/retinanet_l2vit-t_fpn_1x_coco.py', 'model.bbox_head.num_classes',
     "bbox_head was trained for 3 classes (retina_cls.weight 27x256x3x3); the config's has 80 (720x256x3x3)",
     'set model.bbox_head.num_classes=3'),
    ('upernet/l2vit-t_upernet_8xb2-160k_ade20k-512x512.py', 'model.decode_head.num_classes',
     "decode_head was trained for 3 classes (conv_seg.weight 3x512x1x1); the config's has 150",
     'model.decode_head.num_classes=3'),
    ('imagenet/l2vit-t_in1k.py', 'model.head.num_classes',
     "head was trained for 3 classes (fc.weight 3x768); the config's has 1000 (1000x768)", 'model.head.num_classes=3'),
    ('cascade_rcnn/cascade-mask-rcnn_l2vit-t_fpn_4conv1fc-giou_ms-crop-3x_coco.py',
     'model.roi_head.mask_head.num_classes',
     "roi_head.mask_head (stages 0, 1, 2) were trained for 3 classes (conv_logits.weight 3x256x1x1); the config's "
     'have 80', 'set num_classes=3 in each stage of model.roi_head.mask_head'),
])
def test_num_classes_is_read_off_each_kind_of_head(config, key, excerpt, fix):
    # One class per anchor (RetinaNet), per pixel (UperNet), per image (ImageNet), the stages of a cascade in one
    # line; Mask R-CNN's softmax has one more (the background): tested above.
    from l2vit.apis import build_model, read_config
    from l2vit.checkpoint import check_checkpoint_fits
    path = str(CONFIG_DIR / config)
    model = build_model(read_config(path), pretrained=False)
    other = build_model(read_config(path, {key: 3}), pretrained=False)
    with pytest.raises(CheckpointError) as err:
        check_checkpoint_fits({'state_dict': other.state_dict()}, model)
    assert excerpt in str(err.value) and fix in str(err.value)


# --------------------------------------------------------------------------------------- the demo tools
def test_image_demo_skips_an_unreadable_image_and_fails_at_the_end(coco, checkpoints, tmp_path):
    folder = tmp_path / 'images'
    folder.mkdir()
    for name in sorted(os.listdir(osp.join(coco, 'train2017')))[:2]:
        (folder / f'b_{name}').write_bytes(open(osp.join(coco, 'train2017', name), 'rb').read())
    (folder / 'a_empty.jpg').write_bytes(b'')
    (folder / 'c_notes.jpg').write_text('not an image\n')
    result = run_main('tools/demo/image_demo.py', folder, DEMO_CONFIG, checkpoints['fits'], '--out-dir',
                      tmp_path / 'pictures', '--score-thr', '0.0', check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    assert f'cannot read image {folder / "a_empty.jpg"}: the file is empty' in result.stderr
    assert f'cannot read image {folder / "c_notes.jpg"}: it is not an image' in result.stderr
    assert '2 of 4 images could not be read and were skipped' in result.stderr
    drawn = sorted(os.listdir(tmp_path / 'pictures'))
    assert len(drawn) == 2 and all(name.startswith('b_') for name in drawn)  # the one after the bad one too


@pytest.mark.skipif(torch.cuda.is_available(), reason='a machine without a CUDA GPU')
@pytest.mark.parametrize('device', ['cuda', 'cuda:1'])
def test_demo_device_cuda_without_a_gpu(coco, checkpoints, tmp_path, device):
    result = run_main('tools/demo/image_demo.py', osp.join(coco, 'val2017'), DEMO_CONFIG, checkpoints['fits'],
                      '--out-dir', tmp_path / 'pictures', '--device', device, check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert 'no CUDA GPU is visible' in result.stderr and 'use --device cpu' in result.stderr
    assert not (tmp_path / 'pictures').exists()  # before any work


def test_demo_unwritable_out_dir(coco, checkpoints, tmp_path):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    for script, config, image, checkpoint in (
            ('tools/demo/image_demo.py', DEMO_CONFIG, osp.join(coco, 'val2017'), checkpoints['fits']),
            ('tools/demo/seg_demo.py', SEG_DEMO, osp.join(coco, 'val2017'), checkpoints['fits'])):
        result = run_main(script, image, config, checkpoint, '--out-dir', blocker / 'pictures', check=False)
        assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
        assert f'--out-dir {blocker / "pictures"} cannot be written to: {blocker} is a file, not a folder' \
            in result.stderr, script


@pytest.mark.parametrize('script', ['tools/train.py', 'tools/test.py'])
def test_unwritable_work_dir_is_refused_before_anything_is_built(coco, checkpoints, tmp_path, script):
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    args = [checkpoints['fits']] if script.endswith('test.py') else []
    result = run_main(script, DEMO_CONFIG, *args, '--work-dir', blocker / 'work', '--cfg-options',
                      *demo_data_options(coco), check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert f'--work-dir {blocker / "work"} cannot be written to: {blocker} is a file, not a folder' in result.stderr


@pytest.mark.parametrize('option,name', [('--metrics-out', 'metrics.json'), ('--out', 'predictions.pkl')])
def test_test_tool_output_file_that_cannot_be_written(coco, checkpoints, tmp_path, option, name):
    # Refused before the evaluation, which it would otherwise come after (the metrics file) or end (the dump).
    blocker = tmp_path / 'a_file'
    blocker.write_text('x')
    target = blocker / name
    result = run_main('tools/test.py', DEMO_CONFIG, checkpoints['fits'], '--work-dir', tmp_path / 'work', option,
                      target, '--cfg-options', *demo_data_options(coco), check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert f'{option} {target}: its folder {blocker} cannot be written to: {blocker} is a file' in result.stderr
    assert 'coco/bbox_mAP' not in result.stdout + result.stderr


@pytest.mark.skipif(hasattr(os, 'geteuid') and os.geteuid() == 0, reason='root writes into read-only folders')
def test_read_only_work_dir_is_refused(coco, tmp_path):
    locked = tmp_path / 'locked'
    locked.mkdir()
    locked.chmod(0o500)
    try:
        result = run_main('tools/train.py', DEMO_CONFIG, '--work-dir', locked / 'work', '--cfg-options',
                          *demo_data_options(coco), check=False)
    finally:
        locked.chmod(0o700)
    assert result.returncode == 2 and 'cannot be written to' in result.stderr and 'Permission denied' in result.stderr


# ------------------------------------------------------------------------------- files that are not checkpoints
def not_checkpoints(folder) -> dict:
    """{name: (path, what the message says it looks like)}."""
    files = {'html': ('page.pth', HTML, 'it starts like an HTML page'),
             'text': ('notes.pth', b'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1234\n',
                      'it is text'),
             'json': ('reply.pth', b'{"error": "not found"}', 'it starts like JSON text')}
    found = {}
    for kind, (name, data, what) in files.items():
        (folder / name).write_bytes(data)
        found[kind] = (folder / name, what)
    with zipfile.ZipFile(folder / 'weights.zip.pth', 'w') as archive:
        archive.writestr('weights/readme.txt', 'hello')
    found['zip'] = (folder / 'weights.zip.pth', "it is a zip archive, but not torch's (no data.pkl")
    return found


def test_files_that_are_not_checkpoints_are_named_so(tmp_path):
    for kind, (path, what) in not_checkpoints(tmp_path).items():
        with pytest.raises(CheckpointError) as err:
            load_checkpoint_file(path)
        message = str(err.value)
        assert 'is not a PyTorch checkpoint (a failed download?)' in message, kind
        assert what in message and 'Download it again' in message, (kind, message)
        assert 'run or import code' not in message, kind


def test_checkpoints_still_load_and_other_refusals_stay(tmp_path):
    # Controls: torch's zip and legacy formats load; an empty file is still "truncated" (not sniffed as text).
    torch.save({'w': torch.ones(2)}, tmp_path / 'zip.pth')
    torch.save({'w': torch.ones(2)}, tmp_path / 'legacy.pth', _use_new_zipfile_serialization=False)
    for name in ('zip.pth', 'legacy.pth'):
        assert load_checkpoint_file(tmp_path / name)['w'].sum() == 2
    (tmp_path / 'empty.pth').write_bytes(b'')
    with pytest.raises(CheckpointError, match='truncated or not a PyTorch checkpoint'):
        load_checkpoint_file(tmp_path / 'empty.pth')


def test_an_html_page_given_to_init_cfg(tmp_path):
    (tmp_path / 'l2vit-t.pth').write_bytes(HTML)
    backbone = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'l2vit-t.pth')))
    with pytest.raises(CheckpointError, match=r'not a PyTorch checkpoint \(a failed download\?\): it starts like an '
                       r'HTML page'):
        backbone.init_weights()


def test_an_html_page_given_to_the_train_tools_init_cfg(coco, tmp_path):
    # A user's config that inherits ours and points init_cfg at what a failed download left.
    (tmp_path / 'l2vit-t.pth').write_bytes(HTML)
    config = tmp_path / 'my_config.py'
    init_cfg = dict(_delete_=True, type='Pretrained', checkpoint=str(tmp_path / 'l2vit-t.pth'))
    config.write_text(f'_base_ = {DEMO_CONFIG!r}\nmodel = dict(backbone=dict(init_cfg={init_cfg!r}))\n')
    result = run_main('tools/train.py', config, '--work-dir', tmp_path / 'work', '--cfg-options',
                      *demo_data_options(coco),
                      check=False)
    assert result.returncode == 2 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    # The preflight stops it before the model is built, with the ways to get the weights.
    assert f'pretrained weights {tmp_path / "l2vit-t.pth"} (model.backbone.init_cfg.checkpoint) are not a PyTorch ' \
        'checkpoint (a failed download?): it starts like an HTML page' in result.stderr
    assert "Download the authors' ImageNet checkpoint" in result.stderr and 'Traceback' not in result.stderr


def test_test_tool_with_files_that_are_not_checkpoints(coco, tmp_path):
    for kind, (path, what) in not_checkpoints(tmp_path).items():
        result = run_main('tools/test.py', DEMO_CONFIG, path, '--work-dir', tmp_path / 'work', '--cfg-options',
                          *demo_data_options(coco), check=False)
        assert result.returncode == 2 and 'Traceback' not in result.stderr, (kind, result.stderr[-3000:])
        assert 'is not a PyTorch checkpoint (a failed download?)' in result.stderr and what in result.stderr, kind


def test_a_url_that_returns_an_html_page(tmp_path, monkeypatch):
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    (tmp_path / 'served').mkdir()
    (tmp_path / 'served' / 'l2vit-t.pth').write_bytes(HTML)
    server = _Server(tmp_path / 'served')
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(CheckpointError) as err:
            download_checkpoint(f'{server.url}/l2vit-t.pth', progress=False)
    finally:
        server.shutdown()
        server.server_close()
    message = str(err.value)
    assert f'{server.url}/l2vit-t.pth did not send a PyTorch checkpoint (a failed download?)' in message
    assert 'it starts like an HTML page' in message and 'Nothing was kept' in message
    cache = tmp_path / 'torch_home' / 'hub' / 'checkpoints'
    assert not cache.exists() or not os.listdir(cache)  # the next try downloads again
