"""The eager-CPU fast paths (l2vit.models.cpu): their outputs, gradients and BatchNorm statistics equal those of the
plain model, checked by gradcheck in float64, against an independent re-statement of the model
(tests/reference_l2vit.py) in training mode with and without them, with and without gradient checkpointing, and under
bf16 autocast; and they save what they claim."""
import copy
from typing import Dict, List, Sequence, Tuple

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import l2vit
from helpers import projection_loss, randomize_
from l2vit.models import use_cpu_fast_paths
from l2vit.models.cpu import functions as cpu_functions
from l2vit.models.cpu.functions import (FAST_WEIGHT_GRAD_WIDTH, after_recomputed, depthwise_conv, depthwise_weight_grad,
                                        patch_conv, patch_weight_grad)
from l2vit.models.cpu.modules import DepthwiseConv2d, PatchConv2d, lcm_after_norm, mlp_after_norm, side_effect_free
from l2vit.models.layers import LocalConcentration, Mlp
from reference_l2vit import ReferenceL2ViT

SMALL = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 4, 2], num_heads=[1, 2, 4, 8])
WINDOW = 3


def channels_last(x: Tensor) -> Tensor:
    return x.to(memory_format=torch.channels_last)


def in_layout(x: Tensor, layout: str) -> Tensor:
    """``x`` (NCHW) as 'contiguous', 'channels_last', or a 'permuted view': (B, H, W, C) tokens viewed as NCHW, which
    is how the maps of LCM and of the downsampling layers arrive."""
    if layout == 'channels_last':
        return channels_last(x)
    if layout == 'permuted view':
        return x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    return x


def aten_weight_grad(x: Tensor, weight: Tensor, generator: torch.Generator, stride: Sequence[int] = (1, 1),
                     padding: Sequence[int] = (0, 0), groups: int = 1) -> Tuple[Tensor, Tensor]:
    """A random gradient (drawn from ``generator``) of ``F.conv2d(x, weight, ...)``'s output, and aten's weight
    gradient for it: the reference our weight gradients are checked against."""
    out = F.conv2d(x, weight, stride=stride, padding=padding, groups=groups)
    grad = torch.randn(out.shape, generator=generator, dtype=x.dtype)
    expected = torch.ops.aten.convolution_backward(grad, x, weight, None, list(stride), list(padding), [1, 1], False,
                                                   [0, 0], groups, [False, True, False])[1]
    return grad, expected


def assert_same_layer(ours: nn.Module, plain: nn.Module, x: Tensor) -> None:
    """``ours`` and ``plain`` (same state dict) trained on ``x`` in float64: equal outputs; the gradients of the
    input and of every parameter equal to 1e-12."""
    grads = []
    for m in (ours, plain):
        inp = x.clone().requires_grad_(True)
        out = m(inp)
        (out * torch.linspace(-1, 2, out.numel(), dtype=torch.float64).view(out.shape)).sum().backward()
        grads.append((out, inp.grad, [p.grad for p in m.parameters()]))
    (o1, gx1, gp1), (o2, gx2, gp2) = grads
    assert torch.equal(o1, o2)
    torch.testing.assert_close(gx1, gx2, rtol=1e-12, atol=1e-12)
    for a, b in zip(gp1, gp2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------- depthwise conv
@pytest.mark.parametrize('kernel', [7, 5, 3, (7, 5)])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last', 'permuted view'])
def test_depthwise_weight_grad_equals_aten(kernel, layout):
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    padding = (kh // 2, kw // 2)
    g = torch.Generator().manual_seed(0)
    x = in_layout(torch.randn(2, 5, 13, 17, generator=g, dtype=torch.float64), layout)
    weight = torch.randn(5, 1, kh, kw, generator=g, dtype=torch.float64)
    grad, expected = aten_weight_grad(x, weight, g, padding=padding, groups=5)
    got = depthwise_weight_grad(grad, x, weight, padding)
    assert got.shape == weight.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('conv', ['depthwise', 'patch'])
def test_conv_functions_gradcheck(conv):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 9, 11, generator=g, dtype=torch.float64, requires_grad=True)
    out_channels, in_channels, kernel = (3, 1, 7) if conv == 'depthwise' else (4, 3, 2)
    weight = torch.randn(out_channels, in_channels, kernel, kernel, generator=g, dtype=torch.float64,
                         requires_grad=True)
    bias = torch.randn(out_channels, generator=g, dtype=torch.float64, requires_grad=True)
    function = (lambda *a: depthwise_conv(*a, (3, 3))) if conv == 'depthwise' else patch_conv
    assert torch.autograd.gradcheck(function, (x, weight, bias))


@pytest.mark.parametrize('bias', [True, False])
def test_depthwise_conv2d_module_matches_conv2d(bias):
    torch.manual_seed(2)
    ours = DepthwiseConv2d(6, 6, 7, padding=3, groups=6, bias=bias).double()
    plain = nn.Conv2d(6, 6, 7, padding=3, groups=6, bias=bias).double()
    plain.load_state_dict(ours.state_dict())
    x = channels_last(torch.randn(2, 6, 12, 15, dtype=torch.float64))
    assert_same_layer(ours, plain, x)


def test_depthwise_conv2d_takes_the_strip_path_only_where_it_helps(monkeypatch):
    calls: List[int] = []
    real = cpu_functions._DepthwiseConv.apply
    monkeypatch.setattr(cpu_functions._DepthwiseConv, 'apply', lambda *a: calls.append(1) or real(*a))
    wide = DepthwiseConv2d(4, 4, 7, padding=3, groups=4)
    narrow = DepthwiseConv2d(4, 4, FAST_WEIGHT_GRAD_WIDTH, padding=1, groups=4)
    x = torch.randn(1, 4, 8, 8)
    wide(x)
    narrow(x)
    assert len(calls) == 1  # only the 7x7 in training
    with torch.no_grad():
        wide(x)
    wide.weight.requires_grad_(False)
    wide(x.requires_grad_(True))
    assert len(calls) == 1  # not in inference, not without a weight gradient


# ------------------------------------------------------------------------------------------------- patch conv
@pytest.mark.parametrize('patch', [2, 3])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last', 'permuted view'])
@pytest.mark.parametrize('size', [(8, 10), (9, 11)])  # whole patches, and a remainder the convolution drops
def test_patch_weight_grad_equals_aten(patch, layout, size):
    g = torch.Generator().manual_seed(4)
    x = in_layout(torch.randn(2, 5, *size, generator=g, dtype=torch.float64), layout)
    weight = torch.randn(7, 5, patch, patch, generator=g, dtype=torch.float64)
    grad, expected = aten_weight_grad(x, weight, g, stride=(patch, patch))
    got = patch_weight_grad(grad, x, weight)
    assert got.shape == weight.shape
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize('bias', [True, False])
def test_patch_conv2d_module_matches_conv2d(bias, monkeypatch):
    calls: List[int] = []
    real = cpu_functions._PatchConv.apply
    monkeypatch.setattr(cpu_functions._PatchConv, 'apply', lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(6)
    ours = PatchConv2d(6, 10, 2, stride=2, bias=bias).double()
    plain = nn.Conv2d(6, 10, 2, stride=2, bias=bias).double()
    plain.load_state_dict(ours.state_dict())
    x = channels_last(torch.randn(2, 6, 12, 14, dtype=torch.float64))
    assert_same_layer(ours, plain, x)
    assert calls == [1]  # ours took its path in training, once
    with torch.no_grad():
        ours(x)
    ours.weight.requires_grad_(False)
    ours(x.clone().requires_grad_(True))
    assert calls == [1]  # not in inference, not without a weight gradient


# -------------------------------------------------------------------------------------------- after_recomputed
@pytest.mark.parametrize('rowwise', [False, True])
def test_after_recomputed_gradcheck(rowwise, monkeypatch):
    monkeypatch.setattr(cpu_functions, 'ROWWISE_CHUNK', 4)  # 6 rows: a whole piece and a partial one
    g = torch.Generator().manual_seed(3)
    norm = nn.LayerNorm(5).double()
    with torch.no_grad():
        norm.weight.copy_(1 + 0.3 * torch.randn(5, generator=g, dtype=torch.float64))
        norm.bias.copy_(0.1 * torch.randn(5, generator=g, dtype=torch.float64))
    linear = nn.Linear(5, 4).double()
    x = torch.randn(3, 2, 5, generator=g, dtype=torch.float64, requires_grad=True)

    def run(x, w, b, nw, nb):
        fn = lambda t: F.layer_norm(t, (5, ), nw, nb)  # noqa: E731
        return cpu_functions._AfterRecomputed.apply(linear, fn, fn, rowwise, x, w, b, nw, nb)

    assert torch.autograd.gradcheck(run, (x, linear.weight, linear.bias, norm.weight, norm.bias))

    def gelu_then(op):
        return lambda x, w, b: cpu_functions._AfterRecomputed.apply(op, F.gelu, F.gelu, rowwise, x, w, b)

    assert torch.autograd.gradcheck(gelu_then(linear), (x, linear.weight, linear.bias))
    if rowwise:
        return
    conv = DepthwiseConv2d(3, 3, 7, padding=3, groups=3).double()
    img = torch.randn(1, 3, 8, 9, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(gelu_then(conv), (img, conv.weight, conv.bias))


def test_after_recomputed_refuses_other_ops():
    with pytest.raises(TypeError, match=r'op must be an nn.Linear or a stride-1 depthwise nn.Conv2d'):
        after_recomputed(nn.Conv2d(4, 4, 3, stride=2, groups=4), F.gelu, torch.randn(1, 4, 8, 8))
    with pytest.raises(TypeError, match=r'rowwise needs a linear op'):
        after_recomputed(nn.Conv2d(4, 4, 7, padding=3, groups=4), F.gelu, torch.randn(1, 4, 8, 8), rowwise=True)


def saved_bytes(fn, exclude: Sequence[Tensor] = ()) -> int:
    """Bytes of the distinct storages autograd keeps for backward while ``fn()`` runs (but those of ``exclude``)."""
    storages: Dict[int, int] = {}
    excluded = {t.untyped_storage().data_ptr() for t in exclude}

    def pack(t: Tensor) -> Tensor:
        if t.untyped_storage().data_ptr() not in excluded:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(storages.values())


@pytest.mark.parametrize('chunk', [2048, 16])
def test_mlp_saves_less_and_matches_the_plain_graph(chunk, monkeypatch):
    """With pieces of 16 rows the 84 tokens go in 6 pieces, the last one partial."""
    monkeypatch.setattr(cpu_functions, 'ROWWISE_CHUNK', chunk)
    torch.manual_seed(4)
    dim, hidden = 8, 32
    mlp = randomize_(Mlp(dim, hidden).double(), seed=5)
    norm = randomize_(nn.LayerNorm(dim).double(), seed=6)
    x = torch.randn(2, 6, 7, dim, dtype=torch.float64)

    def plain(inp):
        return mlp.fc2(mlp.act(mlp.fc1(norm(inp))))

    results = []
    for f in (lambda inp: mlp_after_norm(mlp, norm, inp), plain):
        inp = x.clone().requires_grad_(True)
        out = f(inp)
        out.pow(2).sum().backward()
        params = [p.grad.clone() for p in list(mlp.parameters()) + list(norm.parameters())]
        results.append((out.detach(), inp.grad, params))
        mlp.zero_grad()
        norm.zero_grad()
    (o1, gx1, gp1), (o2, gx2, gp2) = results
    assert torch.equal(o1, o2)
    torch.testing.assert_close(gx1, gx2, rtol=1e-12, atol=1e-12)
    for a, b in zip(gp1, gp2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)

    inp = x.clone().requires_grad_(True)
    new, old = saved_bytes(lambda: mlp_after_norm(mlp, norm, inp)), saved_bytes(lambda: plain(inp))
    token_bytes = x.numel() * x.element_size()
    # plain: LN input, LN output, fc1 output, GELU output (1 + 1 + 4 + 4 maps); ours: x and fc1 output (1 + 4)
    assert old - new >= (1 + hidden // dim) * token_bytes, (old, new)


def test_mlp_under_bf16_autocast_matches_the_plain_graph():
    torch.manual_seed(7)
    mlp = Mlp(16, 64)
    norm = randomize_(nn.LayerNorm(16), seed=8)
    x = torch.randn(2, 40, 16)
    results = []
    for fused in (True, False):
        inp = x.clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = mlp_after_norm(mlp, norm, inp) if fused else mlp.fc2(mlp.act(mlp.fc1(norm(inp))))
        assert out.dtype == torch.bfloat16
        out.float().pow(2).sum().backward()
        params = list(mlp.parameters()) + list(norm.parameters())
        results.append((out.float(), inp.grad, [p.grad.clone() for p in params]))
        assert all(p.grad.dtype == torch.float32 for p in mlp.parameters())
        mlp.zero_grad()
        norm.zero_grad()
    (o1, gx1, gp1), (o2, gx2, gp2) = results
    torch.testing.assert_close(o1, o2, rtol=0, atol=0)
    torch.testing.assert_close(gx1, gx2, rtol=2e-2, atol=1e-3)
    for a, b in zip(gp1, gp2):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=1e-2)


def test_depthwise_conv2d_under_bf16_autocast_matches_conv2d():
    torch.manual_seed(9)
    ours = DepthwiseConv2d(8, 8, 7, padding=3, groups=8)
    plain = nn.Conv2d(8, 8, 7, padding=3, groups=8)
    plain.load_state_dict(ours.state_dict())
    x = channels_last(torch.randn(1, 8, 20, 24))
    results = []
    for m in (ours, plain):
        inp = x.clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = m(inp)
        assert out.dtype == torch.bfloat16
        out.float().pow(2).sum().backward()
        results.append((out.float(), inp.grad, m.weight.grad, m.bias.grad))
    for a, b in zip(*results):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)


def lcm_plain(lcm: LocalConcentration, norm: nn.Module, x: Tensor) -> Tensor:
    """LCM as the plain graph computes it (nn.Conv2d's forward: no strips, nothing recomputed)."""
    def conv(m: nn.Conv2d, t: Tensor) -> Tensor:
        return F.conv2d(t, m.weight, m.bias, padding=m.padding, groups=m.groups)

    t = norm(x).permute(0, 3, 1, 2)
    return conv(lcm.conv2, lcm.bn(lcm.act(conv(lcm.conv1, t)))).permute(0, 2, 3, 1)


@pytest.mark.parametrize('bn_mode', ['train', 'eval'])
def test_lcm_saves_less_and_matches_the_plain_graph(bn_mode):
    dim = 6
    lcm = randomize_(LocalConcentration(dim).double(), seed=13)
    norm = randomize_(nn.LayerNorm(dim).double(), seed=14)
    lcm.bn.train(bn_mode == 'train')
    x = torch.randn(2, 9, 11, dim, dtype=torch.float64)
    start = {k: v.clone() for k, v in lcm.bn.state_dict().items()}
    results = []
    for f in (lambda inp: lcm_after_norm(lcm, norm, inp), lambda inp: lcm_plain(lcm, norm, inp)):
        lcm.bn.load_state_dict(start)
        inp = x.clone().requires_grad_(True)
        out = f(inp)
        (out * torch.linspace(-2, 1, out.numel(), dtype=torch.float64).view(out.shape)).sum().backward()
        params = [p.grad.clone() for p in list(lcm.parameters()) + list(norm.parameters())]
        results.append((out.detach(), inp.grad, params, {k: v.clone() for k, v in lcm.bn.state_dict().items()}))
        lcm.zero_grad()
        norm.zero_grad()
    (o1, gx1, gp1, bn1), (o2, gx2, gp2, bn2) = results
    torch.testing.assert_close(o1, o2, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(gx1, gx2, rtol=1e-12, atol=1e-12)
    for a, b in zip(gp1, gp2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    for k in bn1:  # running statistics updated once, as by the plain graph (or not at all in eval mode)
        torch.testing.assert_close(bn1[k], bn2[k], rtol=1e-14, atol=1e-14, msg=lambda m: f'{k}: {m}')
    assert torch.equal(bn1['num_batches_tracked'], start['num_batches_tracked'] + (bn_mode == 'train'))

    inp = x.clone().requires_grad_(True)
    new, old = saved_bytes(lambda: lcm_after_norm(lcm, norm, inp)), saved_bytes(lambda: lcm_plain(lcm, norm, inp))
    assert old - new >= 3 * x.numel() * x.element_size(), (old, new)  # LN output, GELU output, BN output


def test_sync_bn_in_training_is_not_recomputed():
    sync = nn.SyncBatchNorm(4).train()
    assert side_effect_free(sync) is None
    assert side_effect_free(sync.eval()) is sync
    bn = nn.BatchNorm2d(4).train()
    t = torch.randn(2, 4, 3, 3)
    before = bn.running_mean.clone()
    torch.testing.assert_close(side_effect_free(bn)(t), bn(t))
    assert not torch.equal(bn.running_mean, before)  # bn(t) updated the statistics
    after_one = bn.running_mean.clone()
    side_effect_free(bn)(t)
    assert torch.equal(bn.running_mean, after_one)


def test_lcm_under_bf16_autocast_matches_the_plain_graph():
    torch.manual_seed(15)
    lcm, norm = LocalConcentration(8), nn.LayerNorm(8)
    x = torch.randn(1, 12, 14, 8)
    start = copy.deepcopy(lcm.bn.state_dict())
    results = []
    for f in (lambda inp: lcm_after_norm(lcm, norm, inp), lambda inp: lcm_plain(lcm, norm, inp)):
        lcm.bn.load_state_dict(start)
        inp = x.clone().requires_grad_(True)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = f(inp)
        out.float().pow(2).sum().backward()
        results.append((out.float(), inp.grad, [p.grad.clone() for p in lcm.parameters()], lcm.bn.running_var.clone()))
        assert all(p.grad.dtype == torch.float32 for p in lcm.parameters())
        lcm.zero_grad()
    (o1, gx1, gp1, v1), (o2, gx2, gp2, v2) = results
    torch.testing.assert_close(o1, o2, rtol=0, atol=0)
    torch.testing.assert_close(v1, v2, rtol=0, atol=0)
    torch.testing.assert_close(gx1, gx2, rtol=2e-2, atol=2e-2)
    for a, b in zip(gp1, gp2):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=5e-2)


# --------------------------------------------------------------------------------- the whole backbone, training
def reference_name(name: str) -> str:
    return 'norm.' + name[len('norm3.'):] if name.startswith('norm3.') else name


@pytest.mark.parametrize('with_cp', [False, True])
@pytest.mark.parametrize('fast', [True, False])
def test_training_step_matches_reference(with_cp, fast):
    """One training step (train mode: BN on batch statistics) of ours, with and without the CPU fast paths, and of
    the independent reference, in float64: outputs, every parameter's gradient and the BN running statistics agree."""
    torch.manual_seed(10)
    ref = randomize_(ReferenceL2ViT(num_classes=10, window_size=WINDOW, **SMALL).double(), seed=11).train()
    ours = l2vit.L2ViT(arch=copy.deepcopy(SMALL), window_size=WINDOW, with_cp=with_cp, cpu_fast_paths=fast).double()
    randomize_(ours, seed=12)
    state = {reference_name(k): v for k, v in ours.state_dict().items()}
    ref.load_state_dict({k: state.get(k, v) for k, v in ref.state_dict().items()}, strict=True)
    ours.train()
    x = torch.randn(2, 3, 45, 59, dtype=torch.float64)

    outs = ours(x)
    projection_loss(outs).backward()
    maps = ref.forward_features(x)
    # the output norms: the reference's own final norm for stage 3, detached copies of ours for stages 0-2
    norms = [getattr(ours, f'norm{i}') for i in range(3)]
    ref_outs = [F.layer_norm(m.permute(0, 2, 3, 1), (m.shape[1], ), *((n.weight.detach(), n.bias.detach())
                             if i < 3 else (ref.norm.weight, ref.norm.bias))).permute(0, 3, 1, 2)
                for i, (m, n) in enumerate(zip(maps, norms + [None]))]
    projection_loss(ref_outs).backward()

    for i, (a, b) in enumerate(zip(outs, ref_outs)):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10, msg=lambda s: f'stage {i}: {s}')
    ref_params = dict(ref.named_parameters())
    checked = 0
    for name, p in ours.named_parameters():
        if name.startswith(('norm0.', 'norm1.', 'norm2.')):
            continue  # applied outside the reference above, on detached copies
        assert p.grad is not None and p.grad.abs().max() > 0, name
        torch.testing.assert_close(p.grad, ref_params[reference_name(name)].grad, rtol=1e-9, atol=1e-10,
                                   msg=lambda s: f'{name}: {s}')
        checked += 1
    assert checked == len(ref_params) - 2  # all but the classifier head
    ref_buffers = dict(ref.named_buffers())
    for name, buf in ours.named_buffers():
        torch.testing.assert_close(buf, ref_buffers[name], rtol=1e-12, atol=1e-12, msg=lambda s: f'{name}: {s}')


def test_backbone_training_keeps_less_for_backward():
    """What the whole backbone keeps for backward with the CPU fast paths, against the plain model."""
    model = l2vit.L2ViT(arch=copy.deepcopy(SMALL), window_size=7).train()
    x = torch.randn(1, 3, 128, 160)
    params = list(model.parameters())
    plain = saved_bytes(lambda: model(x), exclude=params)
    ours = saved_bytes(lambda: use_cpu_fast_paths(model)(x), exclude=params)
    assert ours < 0.7 * plain, (ours, plain)  # 0.68 when written


def test_swap_is_in_place_exact_and_reversible():
    model = l2vit.L2ViT(arch=copy.deepcopy(SMALL), window_size=WINDOW)
    plain_types = [type(m) for m in model.modules()]
    state = {k: v.data_ptr() for k, v in model.state_dict().items()}
    assert use_cpu_fast_paths(model) is model
    swapped = [(a, type(m)) for a, m in zip(plain_types, model.modules()) if type(m) is not a]
    assert {a.__name__ for a, _ in swapped} == {'LocalWindowBlock', 'LinearGlobalBlock', 'LinearAttention', 'Conv2d'}
    assert all(issubclass(b, a) for a, b in swapped)
    assert {k: v.data_ptr() for k, v in model.state_dict().items()} == state  # same tensors, same keys
    assert [type(m) for m in use_cpu_fast_paths(model, enable=False).modules()] == plain_types

    class MyBlock(l2vit.models.LocalWindowBlock):
        pass

    mine = MyBlock(8, 2, WINDOW)
    assert type(use_cpu_fast_paths(mine)) is MyBlock  # a user's subclass is left alone


@pytest.mark.parametrize('size', [(45, 59), (42, 63)])  # windows padded; whole windows at every stage
def test_inference_in_pieces_matches_the_plain_model(size, monkeypatch):
    """CPU inference goes in chunks of tokens (MLP) and bands of window rows; tiny pieces here, so that every
    stage is cut into several, the last one partial: the outputs are those of the plain model."""
    from l2vit.models.cpu import modules
    monkeypatch.setattr(modules, 'CHUNK_TOKENS', 7)
    monkeypatch.setattr(modules, 'BAND_TOKENS', 1)  # one row of windows per band
    plain = randomize_(l2vit.L2ViT(arch=copy.deepcopy(SMALL), window_size=WINDOW).double(), seed=30).eval()
    fast = use_cpu_fast_paths(copy.deepcopy(plain))
    x = torch.randn(1, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        for a, b in zip(plain(x), fast(x)):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_fast_paths_under_bf16_autocast_match_the_plain_model():
    """A bf16-autocast training step of the whole backbone with and without the fast paths: the two differ by no
    more than bf16 rounding, measured as the plain model's own distance from a float32 step."""
    plain = randomize_(l2vit.L2ViT(arch=copy.deepcopy(SMALL), window_size=WINDOW), seed=31).train()
    fast, fp32 = use_cpu_fast_paths(copy.deepcopy(plain)), copy.deepcopy(plain)
    x = torch.randn(1, 3, 40, 52, generator=torch.Generator().manual_seed(32))
    results = []
    for model, bf16 in ((plain, True), (fast, True), (fp32, False)):
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            outs = model(x)
        projection_loss([o.float() for o in outs]).backward()
        results.append(([o.float() for o in outs], [p.grad for p in model.parameters()],
                        [b.clone() for b in model.buffers()]))
    (o1, g1, b1), (o2, g2, b2), (_, g32, _) = results
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-2)
    for a, b, ref in zip(g1, g2, g32):  # element by element bf16 rounding differs; as vectors they agree
        assert b is not None and torch.isfinite(b).all()
        assert (a - b).norm() <= 0.05 * a.norm() + 2 * (a - ref).norm(), ((a - b).norm(), a.norm())
    for a, b in zip(b1, b2):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2)


def test_the_old_environment_switch_is_not_silently_ignored(monkeypatch):
    import importlib

    import l2vit.models.cpu
    monkeypatch.setenv('L2VIT_CACHE_BLOCKED', '0')
    with pytest.warns(UserWarning, match=r'L2VIT_CACHE_BLOCKED is no longer read(.|\n)*cpu_fast_paths'):
        importlib.reload(l2vit.models.cpu)
