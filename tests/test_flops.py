"""l2vit/analysis/flops.py and tools/analysis/get_flops.py: the attention products are counted as multiply-adds by
the hand formula (and as mmengine counts the same products written as matmuls), and the tool reproduces the published
FLOPs and parameter counts of the ImageNet models (its main called in this process)."""
import math
import os.path as osp
import re

import pytest
import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn

from helpers import ROOT, SMALL_ARCH, run_main
from l2vit.analysis import flops as flops_module
from l2vit.analysis.flops import count_flops, flop_analyzer
from l2vit.analysis.report import table
from l2vit.models import L2ViT
from l2vit.models.attention import LinearAttention, WindowAttention

TOOL = osp.join(ROOT, 'tools', 'analysis', 'get_flops.py')


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def window_attention_macs(H: int, W: int, C: int, ws: int) -> int:
    """q·kᵀ and attn·v over the zero-padded windows: windows · (ws²)² · C, twice (heads · head_dim = C)."""
    windows = _ceil_div(H, ws) * _ceil_div(W, ws)
    return 2 * windows * ws**2 * ws**2 * C


def linear_attention_macs(N: int, C: int, heads: int) -> int:
    """kᵀv and q·(kᵀv): N · heads · d · d each; q·Σk: N · heads · d."""
    d = C // heads
    return 2 * N * heads * d * d + N * heads * d


def hand_counts(arch: dict, H: int, W: int, ws: int):
    """(window attention, linear attention) multiply-adds of an L2ViT on an H×W image, from the formulas."""
    h, w = _ceil_div(H, 4), _ceil_div(W, 4)
    window = linear = 0
    for i, (C, depth, heads) in enumerate(zip(arch['embed_dims'], arch['depths'], arch['num_heads'])):
        if i > 0:
            h, w = _ceil_div(h, 2), _ceil_div(w, 2)
        for j in range(depth):
            if j % 2 == 0:
                window += window_attention_macs(h, w, C, ws)
            else:
                linear += linear_attention_macs(h * w, C, heads)
    return window, linear


# ---------------------------------------------------------------------------------------------------- handles
@pytest.mark.parametrize('size,ws', [((64, 80), 7), ((50, 37), 3)])
def test_attention_counts_equal_hand_formula(size, ws):
    model = L2ViT(SMALL_ARCH, window_size=ws).eval()
    analyzer = flop_analyzer(model, torch.randn(1, 3, *size))
    by_op = analyzer.by_operator()
    window, linear = hand_counts(SMALL_ARCH, *size, ws)
    assert by_op['scaled_dot_product_attention'] == window
    assert by_op['einsum'] == linear
    # Nothing that multiplies matrices is left uncounted.
    skipped = set(analyzer.unsupported_ops())
    assert not skipped & {'aten::scaled_dot_product_attention', 'aten::matmul', 'aten::bmm', 'aten::einsum'}, skipped


def test_attention_counts_per_block():
    model = L2ViT(SMALL_ARCH).eval()
    analyzer = flop_analyzer(model, torch.randn(1, 3, 56, 56))
    per_module = analyzer.by_module_and_operator()
    # Stage 0: 14×14 tokens, C=16, 1 head; stage 1: 7×7, C=32, 2 heads.
    assert per_module['stages.0.0.attn']['scaled_dot_product_attention'] == window_attention_macs(14, 14, 16, 7)
    assert per_module['stages.0.1.attn']['einsum'] == linear_attention_macs(14 * 14, 16, 1)
    assert per_module['stages.1.0.attn']['scaled_dot_product_attention'] == window_attention_macs(7, 7, 32, 7)
    assert per_module['stages.1.1.attn']['einsum'] == linear_attention_macs(7 * 7, 32, 2)


class _ExplicitWindowAttention(nn.Module):
    """The window attention written with matmuls, which mmengine's own handles count."""

    def __init__(self, attn: WindowAttention) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x):
        B, N, C = x.shape
        a = self.attn
        qkv = a.qkv(x).view(B, N, 3, a.num_heads, C // a.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        w = torch.softmax(q @ k.transpose(-2, -1) * (C // a.num_heads)**-0.5, dim=-1)
        return a.proj((w @ v).transpose(1, 2).reshape(B, N, C))


class _ExplicitLinearAttention(nn.Module):
    """The linear attention written with matmuls (what an einsum could lower to)."""

    def __init__(self, attn: LinearAttention) -> None:
        super().__init__()
        self.attn = attn

    def forward(self, x):
        B, N, C = x.shape
        a = self.attn
        qkv = a.qkv(x).view(B, N, 3, a.num_heads, C // a.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = torch.relu(qkv[0]), torch.relu(qkv[1]), qkv[2]  # (B, heads, N, d)
        kv = k.transpose(-2, -1) @ v * a.temperature
        denom = (q @ k.sum(dim=2, keepdim=True).transpose(-2, -1)).clamp_min(100)
        return a.proj(((q @ kv) / denom).transpose(1, 2).reshape(B, N, C))


def test_convention_matches_mmengine_matmul_counting():
    """Our handles count exactly what mmengine counts for the same products written as matmuls: multiply-adds."""
    torch.manual_seed(0)
    x = torch.randn(4, 49, 32)
    window = WindowAttention(32, 4).eval()
    ours = flop_analyzer(window, x).total()
    theirs = FlopAnalyzer(_ExplicitWindowAttention(window), (x, ))
    theirs.unsupported_ops_warnings(False)
    assert ours == theirs.total() == 4 * 49 * 32 * 96 + 4 * 49 * 32 * 32 + 2 * 4 * 49 * 49 * 32
    assert torch.allclose(window(x), _ExplicitWindowAttention(window)(x), atol=1e-5)

    x = torch.randn(2, 300, 48)
    linear = LinearAttention(48, 3).eval()
    ours = flop_analyzer(linear, x).total()
    theirs = FlopAnalyzer(_ExplicitLinearAttention(linear), (x, ))
    theirs.unsupported_ops_warnings(False)
    assert ours == theirs.total() == 2 * 300 * 48 * 144 + 2 * 300 * 48 * 48 + linear_attention_macs(2 * 300, 48, 3)
    assert torch.allclose(linear(x), _ExplicitLinearAttention(linear)(x), atol=1e-5)


class _Einsums(nn.Module):
    def forward(self, a, b):
        return torch.einsum('...ij,...jk->...ik', a, b), torch.einsum('bi,bj->bij', a[0, :, :, 0], b[0, :, 0, :3])


def test_einsum_handle_exact_with_ellipsis_and_outer_product():
    a, b = torch.randn(2, 5, 7, 11), torch.randn(2, 5, 11, 13)
    flops = flop_analyzer(_Einsums(), (a, b)).total()
    assert flops == 2 * 5 * 7 * 11 * 13 + 5 * 7 * 3


def test_count_flops_returns_totals_and_table():
    model = L2ViT(SMALL_ARCH, out_indices=(3, )).eval()
    flops, params, table = count_flops(model, torch.randn(1, 3, 64, 64))
    assert params == sum(p.numel() for p in model.parameters())
    assert flops == flop_analyzer(model, torch.randn(1, 3, 64, 64)).total()
    assert 'stages' in table and '#flops' in table


# ---------------------------------------------------------------------------------------------------- the tool
def test_table_and_classifier_test_size_from_plain_values():
    from mmengine.config import ConfigDict
    assert table(['part', 'FLOPs'], [['backbone', '4.20'], ['whole model', '—']]) == [
        '| part | FLOPs |', '|---|---:|', '| backbone | 4.20 |', '| whole model | — |']
    resize_crop = [dict(type='ResizeEdge', scale=438, edge='short'), dict(type='CenterCrop', crop_size=384)]
    assert flops_module.classifier_test_size(ConfigDict(test_dataloader=dict(dataset=dict(pipeline=resize_crop)))) \
        == (384, 384)
    resize = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(320, 256))]  # mmpretrain's (w, h)
    assert flops_module.classifier_test_size(ConfigDict(test_pipeline=resize)) == (256, 320)
    assert flops_module.classifier_test_size(ConfigDict(test_pipeline=[dict(type='PackInputs')])) is None


ROW = r'\|\s*{}\s*\|\s*([\d.]+)\s*\|\s*([\d.]+|—)\s*\|'


def run_tool(*args):
    out = run_main(TOOL, *args).stdout
    assert 'multiply-adds (mmengine convention), attention products included' in out, out
    rows = {}
    for part in ('backbone', 'whole model'):
        m = re.search(ROW.format(part), out)
        assert m, f'no {part} row in:\n{out}'
        rows[part] = (float(m.group(1)), None if m.group(2) == '—' else float(m.group(2)))
    return out, rows


@pytest.mark.parametrize('arch,gflops,mparams', [
    ('t', 4.71, 28.60),
    ('s', 9.02, 50.20),  # a few seconds each (the tool's main in this process): not marked slow
    ('b', 15.86, 88.58),
])
def test_tool_reproduces_published_imagenet_numbers(arch, gflops, mparams):
    out, rows = run_tool(f'configs/imagenet/l2vit-{arch}_in1k.py')
    assert 'input shape: 1x3x224x224' in out
    params, flops = rows['whole model']
    assert math.isclose(flops, gflops, rel_tol=0.01), out
    assert math.isclose(params, mparams, rel_tol=0.01), out


def test_tool_detection_backbone_and_whole_model():
    out, rows = run_tool('configs/mask_rcnn/mask-rcnn_l2vit-t_fpn_1x_coco.py', '--shape', '320', '480')
    assert 'input shape: 1x3x320x480' in out
    b_params, b_flops = rows['backbone']
    w_params, w_flops = rows['whole model']
    assert w_flops is not None, out
    assert 0 < b_flops < w_flops and 0 < b_params < w_params, out
    assert math.isclose(b_params, 27.83, rel_tol=0.01), out  # the classifier's 28.60 M less norm and head


def test_tool_untraceable_whole_model_still_reports_backbone(monkeypatch):
    def untraceable(model, scope, shape):
        def forward(x):
            raise RuntimeError('no trace for you')
        model.forward = forward
        return model

    monkeypatch.setattr(flops_module, 'whole_model_forward', untraceable)
    out, rows = run_tool('configs/retinanet/retinanet_l2vit-t_fpn_1x_coco.py', '--shape', '96', '128')
    assert rows['backbone'][1] > 0 and rows['whole model'][1] is None, out
    assert 'whole model could not be traced (RuntimeError: no trace for you)' in out, out
