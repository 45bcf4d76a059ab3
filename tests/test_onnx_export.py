"""ONNX export (tools/deployment/export_onnx.py, l2vit/deploy/): real exports of small models, run in onnxruntime.

Each model is exported once with dynamic axes at one size and run at other batch sizes and sizes, odd ones included
(61x83: no side a multiple of 4, 7 or 32), against torch; and every bad input gets its clear error.
"""
import copy
import sys

import pytest
import torch

from helpers import CONFIG_DIR, SMALL_ARCH, randomize_, run_main

onnx = pytest.importorskip('onnx', reason='ONNX export needs the [deploy] extra (make setup installs it)')
pytest.importorskip('onnxruntime', reason='the parity checks need onnxruntime (make setup installs it)')

from l2vit.deploy import ExportRequest, export_onnx, verify  # noqa: E402

TOOL = 'tools/deployment/export_onnx.py'
DETECTOR = str(CONFIG_DIR / 'demo' / 'mask-rcnn_l2vit-demo_synthetic.py')
SEGMENTOR = str(CONFIG_DIR / 'demo' / 'l2vit-demo_upernet_synthetic.py')
CLASSIFIER = CONFIG_DIR / 'imagenet' / 'l2vit-t_in1k.py'
#: Sizes the dynamic exports run at besides their own: batch 2 at an odd size, and a size that is no multiple of
#: 4, 7 or 32 on either side.
OTHER_SIZES = [(2, 61, 83), (1, 97, 45)]
TOLERANCE = 1e-4


@pytest.fixture(scope='module')
def classifier_config(tmp_path_factory):
    """configs/imagenet/l2vit-t_in1k.py with the small arch (its head reads 128 channels)."""
    path = tmp_path_factory.mktemp('configs') / 'l2vit-small_in1k.py'
    path.write_text(f'_base_ = [{str(CLASSIFIER)!r}]\n'
                    f'model = dict(backbone=dict(arch=dict(_delete_=True, **{SMALL_ARCH!r})), '
                    f'head=dict(in_channels={SMALL_ARCH["embed_dims"][-1]}, num_classes=10))\n')
    return str(path)


def assert_parity(exported, sizes):
    rows = verify(exported.path, exported.reference, exported.output_names, sizes, TOLERANCE)
    assert {r.input_shape for r in rows} == {(b, 3, h, w) for b, h, w in sizes}
    bad = [r for r in rows if not r.ok]
    assert not bad, bad
    return rows


def metadata(path) -> dict:
    """The file's ``metadata_props``, with the channel order under one key whatever the library's name for it."""
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert not {'to_rgb', 'rgb_to_bgr'} & set(meta), meta
    return meta


def test_detector_backbone_and_fpn_dynamic(tmp_path):
    """The backbone + FPN of the Mask R-CNN config (--part neck), traced at 64x96, runs at other batch sizes and
    sizes: the padding to whole windows and strides is computed in the graph."""
    exported = export_onnx(ExportRequest(DETECTOR, str(tmp_path / 'neck.onnx'), (64, 96), part='neck', dynamic=True))
    assert exported.output_names == [f'neck{i}' for i in range(5)]
    rows = assert_parity(exported, [(1, 64, 96)] + OTHER_SIZES)
    shapes = {r.output: r.output_shape for r in rows if r.input_shape == (2, 3, 61, 83)}
    assert shapes['neck0'] == (2, 64, 16, 21) and shapes['neck4'] == (2, 64, 1, 2)
    model = onnx.load(exported.path)
    assert {n.op_type for n in model.graph.node} >= {'Pad', 'Einsum', 'LayerNormalization'}
    meta = metadata(exported.path)
    assert meta['part'] == 'neck' and 'mean' in meta and meta['bgr_to_rgb'] == 'True'


def test_segmentor_logits_at_input_size(tmp_path):
    """UperNet (pyramid pooling included) exports whole: logits at the input size, at any size."""
    exported = export_onnx(ExportRequest(SEGMENTOR, str(tmp_path / 'seg.onnx'), (64, 64), dynamic=True))
    assert exported.output_names == ['seg_logits']
    rows = assert_parity(exported, [(1, 64, 64)] + OTHER_SIZES)
    assert {r.input_shape[2:]: r.output_shape[2:] for r in rows}[(61, 83)] == (61, 83)
    assert metadata(exported.path)['bgr_to_rgb'] == 'True'


def test_classifier_with_checkpoint(tmp_path, classifier_config):
    """The classifier's logits, with weights from a checkpoint (read by the safe loader), at several sizes."""
    from l2vit.apis.config import read_config
    from l2vit.deploy.export import load_model
    model = randomize_(load_model(read_config(classifier_config)), seed=3)
    checkpoint = tmp_path / 'classifier.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, checkpoint)
    exported = export_onnx(ExportRequest(classifier_config, str(tmp_path / 'cls.onnx'), (64, 64),
                                         checkpoint=str(checkpoint), dynamic=True))
    state = exported.reference.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    rows = assert_parity(exported, [(1, 64, 64)] + OTHER_SIZES)
    assert rows[-1].output == 'logits' and rows[-1].output_shape == (1, 10)
    # mmpretrain calls it to_rgb; the file uses the same key as the detector's and the segmentor's.
    assert metadata(exported.path)['bgr_to_rgb'] == 'True'


# ------------------------------------------------------------------------------------------------------ errors
def error_of(*args):
    result = run_main(TOOL, *args, check=False)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert 'Traceback' not in result.stderr
    return result.stderr


def test_unknown_model_type(tmp_path):
    config = tmp_path / 'other.py'
    config.write_text("default_scope = 'mmseg'\nmodel = dict(type='CascadeEncoderDecoder', num_stages=2)\n")
    err = error_of(config, '--shape', '64', '--out', tmp_path / 'x.onnx')
    assert "model type 'CascadeEncoderDecoder' (mmseg) is not one this tool exports whole" in err
    assert 'ImageClassifier (mmpretrain), EncoderDecoder (mmseg)' in err and '--part backbone' in err


def test_whole_detector_is_refused(tmp_path):
    err = error_of(DETECTOR, '--shape', '64', '--out', tmp_path / 'x.onnx')
    assert 'whole detectors' in err and '--part neck' in err


def test_part_the_model_lacks(tmp_path):
    err = error_of(SEGMENTOR, '--part', 'neck', '--shape', '64', '--out', tmp_path / 'x.onnx')
    assert 'has no neck' in err


def test_shape_smaller_than_a_stride(tmp_path):
    err = error_of(DETECTOR, '--part', 'backbone', '--shape', '16', '40', '--out', tmp_path / 'x.onnx')
    assert '--shape 16 40 is smaller than one stride' in err and '32' in err


def test_opset_too_low_names_the_op(tmp_path):
    err = error_of(DETECTOR, '--part', 'backbone', '--shape', '64', '--opset', '13', '--out', tmp_path / 'x.onnx')
    assert '--opset 13 is too low' in err and 'aten::scaled_dot_product_attention' in err
    err = error_of(DETECTOR, '--part', 'backbone', '--shape', '64', '--opset', '11', '--out', tmp_path / 'x.onnx')
    assert 'aten::scaled_dot_product_attention' in err and 'aten::einsum' in err
    err = error_of(DETECTOR, '--part', 'backbone', '--shape', '64', '--opset', '21', '--out', tmp_path / 'x.onnx')
    assert 'opsets up to 20' in err


def test_verify_without_onnxruntime(tmp_path, monkeypatch):
    """No onnxruntime: --verify stops before exporting, with the install hint."""
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # what `import onnxruntime` sees when it is missing
    out = tmp_path / 'x.onnx'
    err = error_of(DETECTOR, '--part', 'backbone', '--shape', '64', '--out', out, '--verify')
    assert 'onnxruntime, which is not installed' in err and 'pip install -e ".[deploy]"' in err
    assert not out.exists()


def test_checkpoint_that_does_not_fit(tmp_path):
    """A checkpoint of another L²ViT size is refused with the mismatching keys named; nothing is written."""
    from l2vit.models import L2ViT
    other = L2ViT(copy.deepcopy(SMALL_ARCH))  # 16..128 wide; the demo detector's backbone is 32..256
    checkpoint = tmp_path / 'small.pth'
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in other.state_dict().items()}}, checkpoint)
    out = tmp_path / 'x.onnx'
    err = error_of(DETECTOR, '--part', 'backbone', '--checkpoint', checkpoint, '--shape', '64', '--out', out)
    assert f'--checkpoint {checkpoint} does not fit the backbone of {DETECTOR}' in err
    assert not out.exists()
    err = error_of(DETECTOR, '--part', 'backbone', '--checkpoint', tmp_path / 'missing.pth', '--shape', '64',
                   '--out', out)
    assert 'no such file' in err


def test_tool_exports_at_a_size_that_needs_no_padding(tmp_path):
    """Traced at 224² (no padding anywhere: 56, 28, 14, 7 tokens, all whole windows), the file still pads at sizes
    that need it: the padding is computed in the graph, not chosen at trace time."""
    out = tmp_path / 'backbone.onnx'
    result = run_main(TOOL, DETECTOR, '--part', 'backbone', '--shape', '224', '--out', out, '--dynamic', '--verify')
    text = result.stdout
    assert 'no --checkpoint' in text and "config's initialisation" in text
    assert 'outputs: stage0, stage1, stage2, stage3' in text
    assert text.count('| stage3 |') == 3 and 'parity: every output within 0.0001 relative' in text
    exported = export_onnx(ExportRequest(DETECTOR, str(tmp_path / 'again.onnx'), (224, 224), part='backbone',
                                         dynamic=True))
    assert_parity(exported, OTHER_SIZES)


def test_linear_attention_float32_island_survives_export(tmp_path):
    """A half-precision export keeps the linear attention's core in float32: every Einsum of the graph takes and
    gives float32, while the outputs are float16; onnxruntime runs it close to the float32 model."""
    from l2vit.deploy.export import export_module
    from l2vit.deploy.runtime import run_session, session
    from l2vit.models import L2ViT
    torch.manual_seed(0)
    model = L2ViT(copy.deepcopy(SMALL_ARCH)).eval()
    half = copy.deepcopy(model).half()
    path = str(tmp_path / 'half.onnx')
    export_module(half, torch.randn(1, 3, 64, 96).half(), path, [f'stage{i}' for i in range(4)], dynamic=True)
    graph = onnx.shape_inference.infer_shapes(onnx.load(path)).graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    einsums = [n for n in graph.node if n.op_type == 'Einsum']
    assert len(einsums) == 3 * 4  # kᵀv, q·Σk, q·(kᵀv) in the one global block of each stage
    assert {types[name] for n in einsums for name in [*n.input, *n.output]} == {onnx.TensorProto.FLOAT}
    assert {o.type.tensor_type.elem_type for o in graph.output} == {onnx.TensorProto.FLOAT16}
    image = torch.randn(2, 3, 61, 83)
    got = run_session(session(path), image.half())
    with torch.no_grad():
        expected = model(image)
    for ours, theirs in zip(got, expected):
        assert abs(torch.from_numpy(ours).float() - theirs).max() / theirs.abs().max() < 5e-3


def test_benchmark_onnxruntime_row(tmp_path):
    """tools/analysis/benchmark.py --onnxruntime (and --openvino where OpenVINO is installed): L²ViT-T exported and
    timed beside torch eager, its time over eager's in the record and on the page."""
    import importlib.util
    import json
    runtimes = ['l2vit-t+onnxruntime'] + (['l2vit-t+openvino'] if importlib.util.find_spec('openvino') else [])
    out = tmp_path / 'bench'
    result = run_main('tools/analysis/benchmark.py', '--sizes', '64', '61x83', '--modes', 'infer', '--models',
                      'l2vit-t', '--onnxruntime', *(['--openvino'] if len(runtimes) > 1 else []), '--repeats', '1',
                      '--warmup', '1', '--no-flops', '--out-dir', out, '--docs', tmp_path / 'page.md')
    report = json.loads((out / 'benchmark.json').read_text())
    for runtime in runtimes:
        rows = [e for e in report['results'] if e['model'] == runtime]
        expected = [('64x64', 'measured', None), ('61x83', 'measured', None)]
        assert [(e['size'], e['status'], e['memory_bytes']) for e in rows] == expected
        ratios = [r for r in report['derived']['vs_eager'] if r['model'] == runtime]
        assert [r['size'] for r in ratios] == ['64x64', '61x83']
        for r, e in zip(ratios, rows):
            assert r['time_vs_eager'] == pytest.approx(e['median_s'] / r['eager_median_s'])
        assert f'| 61x83 | {runtime} | infer |' in (tmp_path / 'page.md').read_text()
    assert report['settings']['onnxruntime']['provider'] == 'CPUExecutionProvider'
    assert 'L²ViT-T in other runtimes against torch eager' in result.stdout
