"""Tests of the L²ViT backbone: parity with an independent re-statement of the authors' model, the attention cores,
shapes, training behaviour (freezing, norm_eval, checkpointing, gradients), argument checking, layer ids and init."""
import copy
import os
from typing import Dict, List

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

import l2vit
from helpers import projection_loss, randomize_
from l2vit.models import backbone as backbone_module
from l2vit.models.attention import WindowAttention, linear_attention
from reference_l2vit import ReferenceL2ViT

# The authors' released checkpoints' parameter names and shapes (copied from shared/reference/).
KEYS_TSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'official_{}_keys.tsv')

SMALL = dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 4, 2], num_heads=[1, 2, 4, 8])
WINDOW = 3


def reference_to_backbone_state(ref_state: Dict[str, torch.Tensor],
                                extra_norms: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Authors' classifier keys -> backbone keys: ``norm.*`` -> ``norm3.*``, ``head.*`` dropped."""
    out = {}
    for k, v in ref_state.items():
        if k.startswith('head.'):
            continue
        out['norm3.' + k[len('norm.'):] if k.startswith('norm.') else k] = v
    out.update(extra_norms)
    return out


def layer_norm_nchw(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1], ), weight, bias).permute(0, 3, 1, 2)


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def bn_buffers(model: nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.named_buffers()}


# ---------------------------------------------------------------------------------------------------- reference
def _read_tsv(arch: str):
    rows, header = [], []
    with open(KEYS_TSV.format(arch)) as f:
        for line in f:
            line = line.rstrip('\n')
            if not line.strip():
                continue
            if line.startswith('#'):
                header.append(line)
                continue
            name, shape = line.split('\t')
            rows.append((name, tuple(int(s) for s in shape.strip('()').split(',') if s.strip())))
    return rows, header


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_reference_state_dict_matches_official_keys(arch):
    rows, header = _read_tsv(arch)
    ref = ReferenceL2ViT(**l2vit.L2ViT.arch_zoo[arch])
    state = ref.state_dict()
    assert [n for n, _ in rows] == list(state), 'names (and order) differ from the authors\' checkpoint'
    for name, shape in rows:
        assert tuple(state[name].shape) == shape, (name, tuple(state[name].shape), shape)
    n_params = sum(p.numel() for p in ref.parameters())
    declared = [int(h.split(':')[1]) for h in header if 'parameters' in h]
    assert declared and n_params == declared[0]


@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_backbone_state_dict_matches_official_keys(arch):
    """Our backbone has the authors' names (norm -> norm3, no head, norms 0-2 extra)."""
    rows, _ = _read_tsv(arch)
    ours = l2vit.L2ViT(arch, out_indices=(0, 1, 2, 3)).state_dict()
    expected = {n: s for n, s in rows if not n.startswith('head.')}
    expected = {('norm3.' + n[5:] if n.startswith('norm.') else n): s for n, s in expected.items()}
    for i, c in enumerate(l2vit.L2ViT.arch_zoo[arch]['embed_dims'][:3]):
        expected[f'norm{i}.weight'] = expected[f'norm{i}.bias'] = (c, )
    assert sorted(ours) == sorted(expected)
    for name, shape in expected.items():
        assert tuple(ours[name].shape) == shape, name


# ---------------------------------------------------------------------------------------------------- parity
PARITY_SIZES = [(61, 93), (29, 53)]


@pytest.fixture(scope='module')
def parity_models():
    torch.manual_seed(0)
    ref = randomize_(ReferenceL2ViT(num_classes=10, window_size=WINDOW, **SMALL).double(), seed=1).eval()
    ours = l2vit.L2ViT(arch=copy.deepcopy(SMALL), window_size=WINDOW, out_indices=(0, 1, 2, 3)).double()
    g = torch.Generator().manual_seed(2)
    extra = {}
    for i, c in enumerate(SMALL['embed_dims'][:3]):
        extra[f'norm{i}.weight'] = (1 + 0.2 * torch.randn(c, generator=g, dtype=torch.float64))
        extra[f'norm{i}.bias'] = 0.1 * torch.randn(c, generator=g, dtype=torch.float64)
    ours.load_state_dict(reference_to_backbone_state(ref.state_dict(), extra), strict=True)
    ours.eval()
    return ref, ours


def test_parity_sizes_exercise_padding():
    """The second input is not a multiple of the window at any stage; both need stem padding; one needs
    downsampling padding (odd map before a 2x2 conv)."""
    H, W = PARITY_SIZES[1]
    for s in (4, 8, 16, 32):
        assert ceil_div(H, s) % WINDOW and ceil_div(W, s) % WINDOW
    assert all(h % 4 and w % 4 for h, w in PARITY_SIZES)
    assert any(ceil_div(d, s) % 2 for d in PARITY_SIZES[1] for s in (4, 8, 16))


@pytest.mark.parametrize('size', PARITY_SIZES)
def test_parity_with_reference(parity_models, size):
    ref, ours = parity_models
    torch.manual_seed(3)
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        ref_maps = ref.forward_features(x)
        ref_logits = ref(x)
        outs = ours(x)
    assert len(outs) == 4
    for i, (o, m) in enumerate(zip(outs, ref_maps)):
        stride = 4 * 2**i
        assert o.shape == (2, SMALL['embed_dims'][i], ceil_div(size[0], stride), ceil_div(size[1], stride))
        norm = getattr(ours, f'norm{i}')
        expected = layer_norm_nchw(m, norm.weight, norm.bias)
        torch.testing.assert_close(o, expected, rtol=1e-10, atol=1e-10, msg=lambda s: f'stage {i}: {s}')
        assert expected.abs().max() > 0.1  # not trivially small
    # Classifier: backbone norm3 output (= the authors' final `norm`) -> global average pool -> head.
    logits = F.linear(outs[3].mean(dim=(2, 3)), ref.head.weight, ref.head.bias)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-10, atol=1e-10)
    assert ref_logits.std() > 1e-2


def test_torch_export_with_dynamic_height_and_width():
    """``torch.export`` with dynamic H and W: one program serves sizes that need padding (to whole windows, to even
    sizes before downsampling) and sizes that need none, and computes what eager mode computes. torch.export
    specializes dimensions of size 1, so the program asks for at least two windows a side in the last stage."""
    from torch.export import Dim
    model = randomize_(l2vit.L2ViT(arch=copy.deepcopy(SMALL), window_size=WINDOW), seed=40).eval()
    dynamic = {2: Dim.DYNAMIC, 3: Dim.DYNAMIC}
    exported = torch.export.export(model, (torch.randn(1, 3, 192, 224), ), dynamic_shapes=(dynamic, )).module()
    # 192: 48, 24, 12, 6 tokens a side, whole windows everywhere; the others are padded at every stage
    for size in [(192, 192), (131, 157), (100, 250)]:
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            expected = model(x)
        got = exported(x)
        for a, b in zip(got, expected):
            assert a.shape == b.shape
            torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    with pytest.raises(AssertionError, match='Guard failed'):  # one window a side in the last stage
        exported(torch.randn(1, 3, 61, 75))


# ---------------------------------------------------------------------------------------------------- attention cores
def _explicit_linear_attention(q, k, v, temperature):
    """N x N formulation on (B, N, h, d) tensors: A = relu(q) relu(k)^T; (A v) * temperature / clamp(A.sum(-1))."""
    q = torch.relu(q).permute(0, 2, 1, 3)
    k = torch.relu(k).permute(0, 2, 1, 3)
    v = v.permute(0, 2, 1, 3)
    A = q @ k.transpose(-2, -1)  # (B, h, N, N)
    denom = A.sum(-1, keepdim=True)
    out = (A @ v) * temperature / denom.clamp(min=100.0)
    return out.permute(0, 2, 1, 3), denom


@pytest.mark.parametrize('regime', ['clamp_active', 'clamp_inactive'])
def test_linear_attention_equals_explicit_formulation(regime):
    g = torch.Generator().manual_seed(7)
    B, N, h, d = 2, 37, 3, 8
    q = torch.randn(B, N, h, d, generator=g, dtype=torch.float64)
    k = torch.randn(B, N, h, d, generator=g, dtype=torch.float64)
    v = torch.randn(B, N, h, d, generator=g, dtype=torch.float64)
    temperature = 0.1 + torch.rand(h, 1, 1, generator=g, dtype=torch.float64)
    if regime == 'clamp_active':
        q, k = 0.3 * q, 0.3 * k
    else:
        # Every token keeps a positive feature so that q . sum(k) is far above 100 everywhere.
        q[..., 0] = q[..., 0].abs() + 1
        k[..., 0] = k[..., 0].abs() + 1
        q, k = 5 * q, 5 * k
    expected, denom = _explicit_linear_attention(q, k, v, temperature)
    if regime == 'clamp_active':
        assert denom.max() < 100, denom.max()
    else:
        assert denom.min() > 100, denom.min()
    out = linear_attention(q, k, v, temperature)
    assert out.dtype == torch.float64 and out.shape == (B, N, h, d)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


def test_linear_attention_mixed_clamp():
    """Rows on both sides of the clamp in the same call."""
    g = torch.Generator().manual_seed(8)
    q = torch.randn(1, 50, 2, 4, generator=g, dtype=torch.float64)
    k = torch.randn(1, 50, 2, 4, generator=g, dtype=torch.float64) * 2
    q = q * torch.linspace(0.01, 4, 50, dtype=torch.float64).view(1, 50, 1, 1)
    v = torch.randn(1, 50, 2, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0.5, 0.25], dtype=torch.float64).view(2, 1, 1)
    expected, denom = _explicit_linear_attention(q, k, v, t)
    assert denom.min() < 100 < denom.max()
    torch.testing.assert_close(linear_attention(q, k, v, t), expected, rtol=1e-12, atol=1e-12)


def test_window_attention_equals_naive_loop():
    torch.manual_seed(9)
    dim, heads, n = 24, 3, 16
    attn = randomize_(WindowAttention(dim, heads).double(), seed=10)
    x = torch.randn(5, n, dim, dtype=torch.float64)
    with torch.no_grad():
        out = attn(x)
        hd = dim // heads
        qkv = F.linear(x, attn.qkv.weight, attn.qkv.bias)
        expected = torch.empty_like(x)
        for w in range(x.shape[0]):
            per_head = []
            for hh in range(heads):
                q = qkv[w, :, hh * hd:(hh + 1) * hd]
                k = qkv[w, :, dim + hh * hd:dim + (hh + 1) * hd]
                v = qkv[w, :, 2 * dim + hh * hd:2 * dim + (hh + 1) * hd]
                s = q @ k.t() * hd**-0.5
                p = torch.exp(s - s.max(-1, keepdim=True).values)
                p = p / p.sum(-1, keepdim=True)
                per_head.append(p @ v)
            expected[w] = F.linear(torch.cat(per_head, -1), attn.proj.weight, attn.proj.bias)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize('arch', ['tiny', 'small', 'base'])
def test_output_shapes_official_archs(arch):
    model = l2vit.L2ViT(arch).eval()
    dims = l2vit.L2ViT.arch_zoo[arch]['embed_dims']
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, dims[i], 64 // 4 // 2**i, 64 // 4 // 2**i) for i in range(4)]
    assert all(torch.isfinite(o).all() for o in outs)


@pytest.mark.parametrize('size', [(61, 93), (230, 317)])
def test_output_shapes_odd_sizes(size):
    model = l2vit.L2ViT(copy.deepcopy(SMALL), window_size=WINDOW).eval()
    with torch.no_grad():
        outs = model(torch.randn(1, 3, *size))
    for i, o in enumerate(outs):
        stride = 4 * 2**i
        assert tuple(o.shape) == (1, SMALL['embed_dims'][i], ceil_div(size[0], stride), ceil_div(size[1], stride))
        assert o.is_contiguous()


@pytest.mark.parametrize('out_indices, expected', [((1, 3), (1, 3)), ((-1, ), (3, )), ((0, -2), (0, 2)), (2, (2, ))])
def test_out_indices_subsets(out_indices, expected):
    model = l2vit.L2ViT(copy.deepcopy(SMALL), window_size=WINDOW, out_indices=out_indices).eval()
    assert model.out_indices == expected
    with torch.no_grad():
        outs = model(torch.randn(1, 3, 40, 40))
    assert len(outs) == len(expected)
    for o, i in zip(outs, expected):
        assert o.shape[1] == SMALL['embed_dims'][i] and o.shape[2] == ceil_div(40, 4 * 2**i)
    for i in range(4):
        assert hasattr(model, f'norm{i}') == (i in expected)
    norm_keys = {k.split('.')[0] for k in model.state_dict() if k.startswith('norm')}
    assert norm_keys == {f'norm{i}' for i in expected}


# ------------------------------------------------------------------------------------------- training behaviour
def _stage_modules(model, i):
    mods = [('downsample_layers', model.downsample_layers[i]), ('stages', model.stages[i])]
    if hasattr(model, f'norm{i}'):
        mods.append(('norm', getattr(model, f'norm{i}')))
    return mods


@pytest.mark.parametrize('frozen_stages', [0, 1, 3])
def test_frozen_stages(frozen_stages):
    torch.manual_seed(11)
    model = l2vit.L2ViT(copy.deepcopy(SMALL), window_size=WINDOW, frozen_stages=frozen_stages).double()
    randomize_(model, seed=12)
    model.train()
    for i in range(4):
        frozen = i <= frozen_stages
        for _, mod in _stage_modules(model, i):
            for sub in mod.modules():
                assert sub.training != frozen, (i, sub)
            for p in mod.parameters():
                assert p.requires_grad != frozen, i
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    x = torch.randn(2, 3, 37, 45, dtype=torch.float64)
    if not trainable:  # frozen_stages=3: everything frozen
        assert frozen_stages == 3
        outs = model(x)
        assert not any(o.requires_grad for o in outs)
    else:
        opt = torch.optim.SGD(trainable, lr=0.1)
        projection_loss(model(x)).backward()
        opt.step()
    after = model.state_dict()
    for name, value in after.items():
        stage = int(name.split('.')[1]) if name.split('.')[0] in ('downsample_layers', 'stages') else int(name[4])
        if stage <= frozen_stages:
            assert torch.equal(value, before[name]), f'frozen {name} changed'
        elif name.endswith(('weight', 'bias', 'temperature')):
            assert not torch.equal(value, before[name]), f'trainable {name} did not change'


def test_norm_eval():
    torch.manual_seed(13)
    model = l2vit.L2ViT(copy.deepcopy(SMALL), window_size=WINDOW, norm_eval=True).double()
    randomize_(model, seed=14)
    model.train()
    bns = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    assert len(bns) == 2 + sum(d // 2 for d in SMALL['depths'])
    assert all(not m.training for m in bns)
    assert all(m.training for m in model.modules() if isinstance(m, nn.LayerNorm))
    before = {k: v.clone() for k, v in model.named_buffers()}
    projection_loss(model(torch.randn(2, 3, 33, 47, dtype=torch.float64))).backward()
    for k, v in model.named_buffers():
        assert torch.equal(v, before[k]), k
    # Control: without norm_eval the same forward changes the running statistics.
    model.norm_eval = False
    model.train()
    model(torch.randn(2, 3, 33, 47, dtype=torch.float64))
    assert any(not torch.equal(v, before[k]) for k, v in model.named_buffers() if 'running_mean' in k)


def test_with_cp_matches_plain(monkeypatch):
    torch.manual_seed(15)
    kwargs = dict(arch=copy.deepcopy(SMALL), window_size=WINDOW, drop_path_rate=0.3)
    plain = randomize_(l2vit.L2ViT(**kwargs).double(), seed=16).train()
    ckpt = l2vit.L2ViT(with_cp=True, **kwargs).double()
    ckpt.load_state_dict(plain.state_dict())
    ckpt.train()
    calls = []
    real = backbone_module._checkpointed
    monkeypatch.setattr(backbone_module, '_checkpointed', lambda block, x: calls.append(1) or real(block, x))

    x = torch.randn(2, 3, 45, 59, dtype=torch.float64)
    results = []
    for model in (plain, ckpt):
        torch.manual_seed(100)
        outs = model(x)
        projection_loss(outs).backward()
        results.append((outs, {n: p.grad for n, p in model.named_parameters()}, bn_buffers(model)))
    assert len(calls) == sum(SMALL['depths']) + 4  # every block and downsampling layer of the second model

    (o1, g1, b1), (o2, g2, b2) = results
    for a, b in zip(o1, o2):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert g1.keys() == g2.keys()
    for n in g1:
        assert g1[n] is not None and g2[n] is not None, n
        torch.testing.assert_close(g1[n], g2[n], rtol=1e-10, atol=1e-12, msg=lambda s: f'{n}: {s}')
    assert b1.keys() == b2.keys()
    for n in b1:
        if 'num_batches_tracked' in n:
            assert torch.equal(b1[n], b2[n]), n
        torch.testing.assert_close(b1[n], b2[n], rtol=1e-12, atol=1e-12, msg=lambda s: f'{n}: {s}')

    # Control: drop path really is random here, so the equal seeding above mattered.
    with torch.no_grad():
        torch.manual_seed(101)
        other = plain(x)
    assert any(not torch.allclose(a, b) for a, b in zip(o1, other))


@pytest.mark.parametrize('norm_eval', [False, True])
def test_every_parameter_gets_gradient(norm_eval):
    torch.manual_seed(17)
    model = l2vit.L2ViT(copy.deepcopy(SMALL), window_size=WINDOW, norm_eval=norm_eval)
    model.init_weights()
    model.train()
    outs = model(torch.randn(2, 3, 50, 70))
    assert all(torch.isfinite(o).all() for o in outs)
    projection_loss(outs).backward()
    # In train mode a conv bias directly followed by a BatchNorm has an exactly-zero gradient (the batch mean
    # removes it): the two stem conv biases. That is the architecture, not a bug; with BN in eval (norm_eval) it is
    # non-zero like every other gradient.
    cancelled = {'downsample_layers.0.proj.proj.0.bias', 'downsample_layers.0.proj.proj.3.bias'}
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        if name in cancelled and not norm_eval:
            weight_grad = dict(model.named_parameters())[name[:-len('bias')] + 'weight'].grad
            assert p.grad.abs().max() < 1e-4 * weight_grad.abs().max(), name
        else:
            assert p.grad.abs().max() > 0, f'{name} got a zero gradient'


# ---------------------------------------------------------------------------------------------------- argument checks
def test_unknown_arch_lists_accepted_names():
    with pytest.raises(ValueError, match='Unknown L2ViT arch') as info:
        l2vit.L2ViT('huge')
    for name in ('tiny', 'small', 'base'):
        assert name in str(info.value)


def test_arch_aliases():
    for alias, name in (('t', 'tiny'), ('s', 'small'), ('b', 'base'), ('T', 'tiny')):
        assert l2vit.L2ViT.parse_arch(alias) == l2vit.L2ViT.arch_zoo[name]
    model = l2vit.L2ViT('t')
    assert model.depths == [2, 2, 6, 2] and model.embed_dims == [96, 192, 384, 768]


@pytest.mark.parametrize('kwargs, match', [
    (dict(arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2])), r"missing \['num_heads'\]"),
    (dict(arch=dict(embed_dims=[16, 32, 64], depths=[2, 2, 2], num_heads=[1, 2, 4])), 'must be 4 positive ints'),
    (dict(arch=dict(embed_dims=[16, 32, 64, 128], depths=[2, 2, 2, 2], num_heads=[1, 3, 4, 8])),
     'not divisible by num_heads'),
    (dict(arch=SMALL, out_indices=(0, 4)), 'out_indices must be stage indices'),
    (dict(arch=SMALL, out_indices=(-5, )), 'out_indices must be stage indices'),
    (dict(arch=SMALL, frozen_stages=4), 'frozen_stages must be an int in'),
    (dict(arch=SMALL, frozen_stages=-2), 'frozen_stages must be an int in'),
    (dict(arch=SMALL, window_size=0), 'window_size must be a positive int'),
])
def test_constructor_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        l2vit.L2ViT(**copy.deepcopy(kwargs))


@pytest.mark.parametrize('shape, match', [
    ((3, 32, 32), r'expects a batch of images shaped \(B, 3, H, W\)'),
    ((1, 1, 32, 32), r'expects a batch of images shaped \(B, 3, H, W\)'),
    ((0, 3, 32, 32), 'empty input'),
    ((1, 3, 0, 32), 'empty input'),
])
def test_forward_input_errors(shape, match):
    model = l2vit.L2ViT(copy.deepcopy(SMALL), window_size=WINDOW).eval()
    with pytest.raises(ValueError, match=match):
        model(torch.zeros(shape))


# ---------------------------------------------------------------------------------------------------- layer ids / init
def test_get_layer_depth():
    model = l2vit.L2ViT(copy.deepcopy(SMALL), window_size=WINDOW)
    depths = SMALL['depths']
    num_layers = sum(depths) + 2
    seen = set()
    for name, _ in model.named_parameters():
        parts = name.split('.')
        if parts[0] == 'downsample_layers':
            expected = sum(depths[:int(parts[1])])
        elif parts[0] == 'stages':
            i, j = int(parts[1]), int(parts[2])
            expected = sum(depths[:i]) + j + 1
        else:
            assert parts[0] in {f'norm{i}' for i in range(4)}, name
            expected = num_layers - 1
        assert model.get_layer_depth(name) == (expected, num_layers), name
        assert model.get_layer_depth('backbone.' + name, prefix='backbone.') == (expected, num_layers), name
        seen.add(expected)
    assert model.get_layer_depth('downsample_layers.0.proj.proj.0.weight') == (0, num_layers)
    assert model.get_layer_depth('stages.2.3.attn.qkv.weight') == (2 + 2 + 3 + 1, num_layers)
    assert model.get_layer_depth('norm3.weight') == (num_layers - 1, num_layers)
    assert model.get_layer_depth('head.fc.weight', prefix='backbone.') == (num_layers - 1, num_layers)
    assert model.get_layer_depth('neck.lateral.weight', prefix='backbone.') == (num_layers - 1, num_layers)
    assert seen == set(range(num_layers))


def test_init_weights_defaults():
    torch.manual_seed(18)
    model = l2vit.L2ViT(copy.deepcopy(SMALL), window_size=WINDOW)
    model.init_weights()
    for i, stage in enumerate(model.stages):
        head_dim = SMALL['embed_dims'][i] // SMALL['num_heads'][i]
        for j, block in enumerate(stage):
            if j % 2:
                torch.testing.assert_close(block.attn.temperature.detach(),
                                           torch.full((SMALL['num_heads'][i], 1, 1), head_dim**-0.5))
    # Randomise everything, re-initialise: the checks below can only pass through init_weights.
    randomize_(model, seed=19)
    model.init_weights()
    linear_w: List[torch.Tensor] = []
    for name, m in model.named_modules():
        if isinstance(m, nn.LayerNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), name
        elif isinstance(m, nn.Linear):
            assert torch.all(m.bias == 0), name
            linear_w.append(m.weight.detach().flatten())
        elif isinstance(m, _BatchNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0), name
    w = torch.cat(linear_w)
    assert w.numel() > 100_000
    assert abs(w.std().item() - 0.02) < 0.001 and abs(w.mean().item()) < 0.001
