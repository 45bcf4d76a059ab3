"""l2vit.analysis (attention, attention_maps) and tools/analysis/attention_maps.py: the per-query
attention weights reproduce the model's attention exactly, the hooks change nothing, and the tool (its main, called in
this process) writes its maps and statistics."""
import json
import math
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from torch.testing import assert_close

from helpers import ROOT, SMALL_ARCH, randomize_, run_main
from l2vit.analysis import report
from l2vit.analysis.attention import (AttentionRecorder, analyse_attention, attention_statistics, block_attention,
                                      linear_attention_weights, split_qkv, token_of_pixel, window_attention_weights)
from l2vit.analysis.attention_maps import attention_stats
from l2vit.models import L2ViT, linear_attention, window_reverse
from l2vit.models.attention import LINEAR_ATTENTION_DENOM_MIN

TOOL = osp.join(ROOT, 'tools', 'analysis', 'attention_maps.py')
IMAGENET_CONFIG = osp.join(ROOT, 'configs', 'imagenet', 'l2vit-t_in1k.py')
EXACT = dict(rtol=1e-12, atol=1e-12)


def small_model(window_size: int = 3, **kwargs) -> L2ViT:
    model = L2ViT(SMALL_ARCH, window_size=window_size, **kwargs)
    return randomize_(model, 0).double().eval()


# ---------------------------------------------------------------------------------------------------- linear
@pytest.mark.parametrize('case', ['clamp inactive', 'clamp active', 'mixed'])
def test_implied_linear_weights_reproduce_linear_attention(case):
    g = torch.Generator().manual_seed(1)
    N, heads, d = 40, 3, 4
    q, k, v = (torch.randn(N, heads, d, generator=g, dtype=torch.float64) for _ in range(3))
    # Shifted so that relu keeps a part of every query (some entries still go negative and are cut).
    q, k = q + 1.0, k + 0.5
    scales = {'clamp inactive': [20., 20., 20.], 'clamp active': [.05, .05, .05], 'mixed': [20., .05, 20.]}[case]
    q = q * torch.tensor(scales, dtype=torch.float64)[None, :, None]
    temperature = torch.tensor([0.3, 0.7, 1.1], dtype=torch.float64).view(heads, 1, 1)
    expected = linear_attention(q[None], k[None], v[None], temperature)[0]  # (N, heads, d)
    totals = torch.einsum('nhd,hd->nh', q.relu(), k.relu().sum(0))
    for i in range(N):
        lw = linear_attention_weights(q, k, temperature, i)
        # Which case we are in, per head.
        want_clamped = torch.tensor([s < 1 for s in scales])
        assert torch.equal(lw.clamped, want_clamped), (case, i, totals[i])
        assert torch.equal(lw.clamped, totals[i] < LINEAR_ATTENTION_DENOM_MIN)
        assert_close(lw.denominator, totals[i].clamp_min(LINEAR_ATTENTION_DENOM_MIN), **EXACT)
        # Applying the implied weights to v is the linear attention's output for this query.
        assert_close(torch.einsum('hn,nhe->he', lw.weights, v), expected[i], **EXACT)
        # Row sums: temperature * min(1, q.sum(k) / 100); the normalised row is a distribution.
        assert_close(lw.weights.sum(-1), temperature.view(-1) * (totals[i] / lw.denominator), **EXACT)
        assert_close(lw.normalized.sum(-1), torch.ones(heads, dtype=torch.float64), **EXACT)
        assert bool((lw.weights >= 0).all())


def test_a_head_that_attends_to_nothing_has_zero_weights_and_no_statistics():
    q = -torch.ones(5, 1, 2, dtype=torch.float64)  # relu(q) = 0
    k = torch.ones(5, 1, 2, dtype=torch.float64)
    lw = linear_attention_weights(q, k, torch.ones(1), 0)
    assert torch.equal(lw.weights, torch.zeros(1, 5, dtype=torch.float64))
    assert torch.equal(lw.normalized, torch.zeros(1, 5, dtype=torch.float64))
    stats = attention_statistics(lw.normalized.view(1, 1, 5), (0, 0), 1)
    assert math.isnan(stats['entropy'].item()) and math.isnan(stats['local_mass'].item())


def captured_attention(model, image):
    """Record the blocks' attention inputs and, separately, every attention module's output."""
    outputs = {}
    handles = []
    for i, stage in enumerate(model.stages):
        for j, block in enumerate(stage):
            handles.append(block.attn.register_forward_hook(
                lambda m, args, out, key=(i, j): outputs.__setitem__(key, out.detach())))
    with torch.no_grad(), AttentionRecorder(model) as recorder:
        model(image)
    for h in handles:
        h.remove()
    return recorder.records, outputs


def test_implied_weights_of_a_recorded_linear_block_reproduce_its_attention_output():
    model = small_model()
    image = torch.randn(1, 3, 37, 45, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    records, outputs = captured_attention(model, image)
    linear = [r for r in records if r.kind == 'linear']
    assert [(r.stage, r.block) for r in linear] == [(i, 1) for i in range(4)]
    for r in linear:
        H, W = r.size
        attn = r.module.attn
        _, _, v = split_qkv(attn, r.tokens[0].reshape(H * W, -1))
        out = outputs[(r.stage, r.block)][0]  # (N, C) after proj
        for y, x in {(0, 0), (H // 2, W // 2), (H - 1, W - 1)}:
            result = block_attention(r, (y, x), radius=1)
            implied = result.implied_weights.reshape(attn.num_heads, H * W)
            mixed = torch.einsum('hn,nhe->he', implied, v).reshape(-1)
            assert_close(attn.proj(mixed), out[y * W + x], **EXACT)
            assert_close(result.weights.sum(dim=(-2, -1)), torch.ones(attn.num_heads, dtype=torch.float64),
                         **EXACT)


# ---------------------------------------------------------------------------------------------------- window
def test_window_weights_sum_to_one_and_reproduce_window_attention_output():
    model = small_model(window_size=3)
    # 37 x 45 -> stage maps 10x12, 5x6, 3x3, 2x2: every stage but stage 2 is padded to whole windows.
    image = torch.randn(1, 3, 37, 45, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    records, outputs = captured_attention(model, image)
    window = [r for r in records if r.kind == 'window']
    assert [(r.stage, r.block) for r in window] == [(i, 0) for i in range(4)]
    padded_seen = False
    for r in window:
        H, W = r.size
        ws = r.module.window_size
        Hp, Wp = r.tokens.shape[1:3]
        assert (Hp, Wp) == (H + (-H % ws), W + (-W % ws))
        attn = r.module.attn
        q, k, v = split_qkv(attn, r.tokens[0])  # (Hp, Wp, heads, d)
        out = window_reverse(outputs[(r.stage, r.block)], ws, Hp, Wp)[0]  # (Hp, Wp, C) after proj
        for y, x in {(0, 0), (H // 2, W // 2), (H - 1, W - 1)}:
            weights = window_attention_weights(q, k, ws, (y, x))
            assert weights.shape == (attn.num_heads, Hp, Wp)
            assert_close(weights.sum(dim=(-2, -1)), torch.ones(attn.num_heads, dtype=torch.float64), **EXACT)
            outside = torch.ones(Hp, Wp, dtype=torch.bool)
            outside[y // ws * ws:y // ws * ws + ws, x // ws * ws:x // ws * ws + ws] = False
            assert bool((weights[:, outside] == 0).all())
            mixed = torch.einsum('hab,abhe->he', weights, v).reshape(-1)
            assert_close(attn.proj(mixed), out[y, x], **EXACT)

            result = block_attention(r, (y, x), radius=1)
            assert result.weights.shape == (attn.num_heads, H, W)
            assert_close(result.weights, weights[:, :H, :W], **EXACT)
            padded = torch.tensor(result.statistics['padded_mass_per_head'], dtype=torch.float64)
            assert_close(result.weights.sum(dim=(-2, -1)) + padded, torch.ones(attn.num_heads, dtype=torch.float64),
                         **EXACT)
            if (y // ws + 1) * ws > H or (x // ws + 1) * ws > W:
                padded_seen = True
                assert bool((padded > 0).all())
            else:
                assert_close(padded, torch.zeros_like(padded), **EXACT)
    assert padded_seen


# ---------------------------------------------------------------------------------------------------- hooks, stats
def test_hooks_leave_the_outputs_unchanged_and_are_removed():
    model = small_model(window_size=3)
    image = torch.randn(1, 3, 37, 45, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        before = model(image)
        with AttentionRecorder(model) as recorder:
            during = model(image)
        after = model(image)
    for a, b, c in zip(before, during, after):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert len(recorder.records) == sum(SMALL_ARCH['depths'])
    assert not any(m._forward_pre_hooks for m in model.modules())


def test_attention_statistics():
    one_hot = torch.zeros(5, 7)
    one_hot[2, 3] = 4.0  # not normalised: the function normalises
    stats = attention_statistics(one_hot, (2, 3), 0)
    assert stats['entropy'].item() == 0 and stats['local_mass'].item() == 1
    uniform = torch.ones(2, 5, 7)
    stats = attention_statistics(uniform, (0, 0), 1)  # Chebyshev radius 1 at a corner: a 2x2 square
    assert_close(stats['entropy'], torch.full((2, ), math.log(35)))
    assert_close(stats['local_mass'], torch.full((2, ), 4 / 35))
    stats = attention_statistics(uniform[0], (2, 3), 2)  # a full 5x5 square: Chebyshev, not Euclidean
    assert_close(stats['local_mass'], torch.tensor(25 / 35))
    with pytest.raises(ValueError):
        attention_statistics(-uniform, (0, 0), 1)


def test_analyse_attention_gives_every_block_for_every_point():
    model = small_model(window_size=3).float()
    image = torch.randn(1, 3, 50, 61, generator=torch.Generator().manual_seed(5))
    points = [(25, 30), (0, 0), (49, 60)]
    results = analyse_attention(model, image, points, radius=2)
    assert len(results) == 3
    for point, blocks in zip(points, results):
        assert [(b.stage, b.block, b.kind) for b in blocks] == [
            (i, j, 'window' if j == 0 else 'linear') for i in range(4) for j in range(2)]
        assert [b.depth for b in blocks] == list(range(8))
        for b in blocks:
            assert b.query_yx == token_of_pixel(point, b.stage, b.size)
            assert b.mean_weights.shape == b.size and b.weights.shape == (b.num_heads, *b.size)
            assert bool((b.weights >= 0).all())
            s = b.statistics
            assert 0 <= s['entropy'] <= s['max_entropy'] + 1e-5
            assert 0 <= s['local_mass'] <= 1 + 1e-6 and 0 < s['uniform_local_mass'] <= 1
    assert results[0][0].size == (13, 16) and results[2][0].query_yx == (12, 15)


# ---------------------------------------------------------------------------------------------------- stats, drawing
def test_stats_record_is_json_and_the_grid_is_drawn(tmp_path):
    model = small_model(window_size=3).float()
    image = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(7))
    points, points_in = [(20, 40), (78, 111)], [(10, 20), (39, 55.5)]  # the input: the image at half its size
    results = analyse_attention(model, image, points_in, radius=1)
    stats = attention_stats(results, points, points_in, 1, 3, config='c.py', image='i.png')
    assert json.loads(json.dumps(stats)) == stats  # plain JSON values only (no tuples, no tensors)
    assert list(stats)[:2] == ['config', 'image'] and stats['radius'] == 1 and stats['window_size'] == 3
    assert [(b['stage'], b['block'], b['kind']) for b in stats['blocks']] == [
        (b.stage, b.block, b.kind) for b in results[0]]
    for point, (y, x), (yi, xi), blocks in zip(stats['points'], points, points_in, results):
        assert point['point_yx'] == [y, x] and point['input_yx'] == [yi, xi]
        assert [b['entropy'] for b in point['blocks']] == [b.statistics['entropy'] for b in blocks]
    report.plot_attention(np.zeros((40, 56, 3), np.uint8), results[0], (10, 20), SMALL_ARCH['depths'], 'title',
                          str(tmp_path / 'grid.png'))
    grid = cv2.imread(str(tmp_path / 'grid.png'))
    assert grid is not None and grid.std() > 0


# ---------------------------------------------------------------------------------------------------- the tool
def write_inputs(tmp_path):
    config = tmp_path / 'small_cls.py'
    arch = dict(_delete_=True, **SMALL_ARCH)  # replaces the base's arch='tiny'
    config.write_text(f'_base_ = {IMAGENET_CONFIG!r}\n'
                      f'model = dict(backbone=dict(arch={arch!r}, window_size=3, drop_path_rate=0.0),\n'
                      f'             head=dict(num_classes=5, in_channels={SMALL_ARCH["embed_dims"][-1]}))\n')
    backbone = randomize_(L2ViT(SMALL_ARCH, window_size=3, out_indices=(3, )), 6)
    checkpoint = tmp_path / 'small.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in backbone.state_dict().items()}}, checkpoint)
    yy, xx = np.mgrid[0:48, 0:64]
    image = np.stack([yy * 5, xx * 4, (yy + xx) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    image_path = tmp_path / 'scene.jpg'
    cv2.imwrite(str(image_path), image)
    return str(config), str(checkpoint), str(image_path)


def test_tool_writes_maps_and_statistics(tmp_path):
    config, checkpoint, image = write_inputs(tmp_path)
    out_dir = tmp_path / 'maps'
    result = run_main(TOOL, config, checkpoint, image, '--out-dir', str(out_dir), '--points', '24,32', '5,60',
                      '--radius', '2')
    pngs = sorted(p.name for p in out_dir.glob('attention_*.png'))
    assert pngs == ['attention_p0_y24_x32.png', 'attention_p1_y5_x60.png'], pngs
    for name in pngs + ['stats_by_depth.png']:
        picture = cv2.imread(str(out_dir / name))
        assert picture is not None and picture.shape[0] > 100 and picture.shape[1] > 100
        assert picture.std() > 0
    assert 'stats.json' in result.stdout and 'stats_by_depth.png' in result.stdout

    stats = json.loads((out_dir / 'stats.json').read_text())
    # The config's test resize (mmpretrain ResizeEdge, short side 256) is applied; its centre crop is not.
    assert stats['image_size'] == [48, 64] and stats['input_size'] == [256, 341]
    assert stats['radius'] == 2 and stats['window_size'] == 3
    assert len(stats['blocks']) == sum(SMALL_ARCH['depths'])
    assert [p['point_yx'] for p in stats['points']] == [[24, 32], [5, 60]]
    for point in stats['points']:
        assert len(point['blocks']) == sum(SMALL_ARCH['depths'])
        for block, head_count in zip(point['blocks'], [h for h in SMALL_ARCH['num_heads'] for _ in range(2)]):
            assert block['kind'] == ('window' if block['block'] == 0 else 'linear')
            assert block['num_heads'] == head_count
            assert len(block['entropy_per_head']) == len(block['local_mass_per_head']) == head_count
            assert 0 <= block['entropy'] <= block['max_entropy'] + 1e-5
            assert 0 <= block['local_mass'] <= 1 + 1e-6
            assert all(e >= 0 for e in block['entropy_per_head'])
            assert all(0 <= m <= 1 + 1e-6 for m in block['local_mass_per_head'])
            if block['kind'] == 'window':
                assert 0 <= block['padded_mass'] <= 1 and len(block['window']) == 4
            else:
                assert len(block['clamped']) == len(block['implied_weight_sum']) == head_count


def test_tool_refuses_a_model_without_l2vit(tmp_path):
    config, checkpoint, image = write_inputs(tmp_path)
    resnet = tmp_path / 'resnet.py'
    resnet.write_text(f'_base_ = {IMAGENET_CONFIG!r}\n'
                      "model = dict(backbone=dict(_delete_=True, type='ResNet', depth=18),\n"
                      "             head=dict(in_channels=512))\n")
    result = run_main(TOOL, str(resnet), checkpoint, image, '--out-dir', str(tmp_path / 'out'), check=False)
    assert result.returncode == 2
    assert 'no L2ViT backbone' in result.stderr and 'ResNet' in result.stderr
    assert 'Traceback' not in result.stderr
