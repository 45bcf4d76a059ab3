"""l2vit/analysis/ablation.py: the LCM ablation variants build from the public L2ViT with the stated structure and
train (forward and backward, CPU fast paths included); the effective receptive field of blocks whose reach is known;
the variants through compare_backbones (names, parameter counts, several seeds) and a tiny run end to end."""
import json
import math

import pytest
import torch
from torch import nn

from helpers import CONFIG_DIR, ROOT, SMALL_ARCH, demo_data_options, load_config, run_main
from l2vit.analysis.ablation import (RADII, VARIANTS, LinearBlockWithoutLCM, _erf_statistics, ablate, ablated_l2vit,
                                     effective_receptive_field, token_mixings)
from l2vit.analysis.compare import backbone_variants, check_backbones
from l2vit.errors import ToolError
from l2vit.models import L2ViT
from l2vit.models.blocks import LinearGlobalBlock, LocalWindowBlock
from l2vit.models.cpu.modules import CPULinearGlobalBlock, CPULocalWindowBlock

DEMO_CONFIG = str(CONFIG_DIR / 'demo' / 'mask-rcnn_l2vit-demo_synthetic.py')
TOOL = str(ROOT / 'tools' / 'analysis' / 'compare_backbones.py')

#: Per variant, the class of block j (even: window slot, odd: global slot) with and without CPU fast paths.
STRUCTURE = {
    'full': ((LocalWindowBlock, LinearGlobalBlock), (CPULocalWindowBlock, CPULinearGlobalBlock)),
    'no-lcm': ((LocalWindowBlock, LinearBlockWithoutLCM), (CPULocalWindowBlock, LinearBlockWithoutLCM)),
    'window-only': ((LocalWindowBlock, LocalWindowBlock), (CPULocalWindowBlock, CPULocalWindowBlock)),
    'linear-only': ((LinearGlobalBlock, LinearGlobalBlock), (CPULinearGlobalBlock, CPULinearGlobalBlock)),
}


def _blocks(backbone):
    return [(j, block) for stage in backbone.stages for j, block in enumerate(stage)]


@pytest.mark.parametrize('fast', [False, True], ids=['plain', 'cpu-fast-paths'])
@pytest.mark.parametrize('variant', VARIANTS)
def test_every_variant_has_its_structure_and_trains(variant, fast):
    backbone = ablated_l2vit(variant, arch=dict(SMALL_ARCH), drop_path_rate=0.1, cpu_fast_paths=fast)
    assert isinstance(backbone, L2ViT)
    for j, block in _blocks(backbone):
        assert type(block) is STRUCTURE[variant][fast][j % 2], (variant, j, type(block))
        assert hasattr(block, 'local_mp') == (variant != 'no-lcm' and isinstance(block, LinearGlobalBlock))
    # what changed: the blocks replaced keep width, heads, MLP and their stochastic depth
    plain = L2ViT(arch=dict(SMALL_ARCH), drop_path_rate=0.1)
    for (_, new), (_, old) in zip(_blocks(backbone), _blocks(plain)):
        assert new.norm1.normalized_shape == old.norm1.normalized_shape
        assert new.attn.num_heads == old.attn.num_heads and new.mlp.fc1.out_features == old.mlp.fc1.out_features
        assert getattr(new.drop_path, 'drop_prob', 0) == getattr(old.drop_path, 'drop_prob', 0)
    assert set(backbone.state_dict_shapes) == set(backbone.state_dict())
    backbone.init_weights()
    backbone.train()
    outs = backbone(torch.randn(2, 3, 64, 96))
    assert [o.shape[1] for o in outs] == SMALL_ARCH['embed_dims']
    sum(o.square().mean() for o in outs).backward()
    unused = [n for n, p in backbone.named_parameters() if p.grad is None]
    assert not unused, unused
    # its own weights load back strictly (a trained ablation's checkpoint)
    again = ablated_l2vit(variant, arch=dict(SMALL_ARCH))
    again.load_state_dict(backbone.state_dict())


def test_parameter_counts_differ_as_the_variants_say():
    counts = {v: sum(p.numel() for p in ablated_l2vit(v, arch=dict(SMALL_ARCH)).parameters()) for v in VARIANTS}
    plain = sum(p.numel() for p in L2ViT(arch=dict(SMALL_ARCH)).parameters())
    assert counts['full'] == plain
    lcm = sum(p.numel() for b in L2ViT(arch=dict(SMALL_ARCH)).modules() if isinstance(b, LinearGlobalBlock)
              for m in (b.local_mp, b.norm3) for p in m.parameters())
    assert counts['no-lcm'] == plain - lcm
    assert counts['window-only'] < plain < counts['linear-only']


def test_ablate_refuses_an_unknown_variant_and_a_swapped_backbone():
    with pytest.raises(ToolError, match="unknown ablation variant 'no-mlp'.*full, no-lcm"):
        ablate(L2ViT(arch=dict(SMALL_ARCH)), 'no-mlp')
    with pytest.raises(ToolError, match='cpu_fast_paths=False'):
        ablate(L2ViT(arch=dict(SMALL_ARCH), cpu_fast_paths=True), 'no-lcm')


# ------------------------------------------------------------------------------------------ effective receptive field
def test_a_7x7_depthwise_convolution_has_all_its_erf_within_radius_3():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 7, padding=3, groups=8)
    x = torch.randn(1, 20, 24, 8)
    query = (9, 13)
    erf = effective_receptive_field(lambda t: conv(t.permute(0, 3, 1, 2)).permute(0, 2, 3, 1), x, query)
    assert erf.shape == (20, 24)
    ys, xs = torch.nonzero(erf, as_tuple=True)
    assert (ys - query[0]).abs().max() == 3 and (xs - query[1]).abs().max() == 3  # exactly the 7x7 square
    stats = _erf_statistics([erf.double()], [query])
    assert stats['local_mass_r3'] == pytest.approx(1.0) and stats['local_mass_r6'] == pytest.approx(1.0)
    assert stats['uniform_local_mass_r3'] == pytest.approx(49 / (20 * 24))
    assert stats['uniform_entropy'] == pytest.approx(math.log(20 * 24)) and stats['tokens'] == 20 * 24
    assert 0 < stats['entropy'] <= math.log(49) + 1e-9


def test_the_token_mixings_reach_as_far_as_they_should():
    """A window block mixes only its own 7x7 window; linear attention reaches every token; LCM's two 7x7 convs
    after it add mass near the query."""
    torch.manual_seed(0)
    backbone = L2ViT(arch=dict(SMALL_ARCH)).eval()
    window, linear = backbone.stages[0][0], backbone.stages[0][1]
    x = torch.randn(1, 14, 21, SMALL_ARCH['embed_dims'][0])
    erf = effective_receptive_field(token_mixings(window)['attn'], x, (8, 10))
    inside = torch.zeros_like(erf, dtype=torch.bool)
    inside[7:14, 7:14] = True
    assert erf[~inside].abs().max() == 0 and erf[inside].min() > 0
    mixings = token_mixings(linear)
    assert set(mixings) == {'attn', 'attn+lcm'}
    attn = effective_receptive_field(mixings['attn'], x, (8, 10))
    assert float((attn > 0).double().mean()) > 0.9  # (a key whose relu(k) misses the query's relu(q) gets none)
    with torch.no_grad():  # LCM strong enough to be seen: its 7x7 convs reach 6 tokens
        linear.local_mp.conv2.weight.mul_(50)
    both = effective_receptive_field(mixings['attn+lcm'], x, (8, 10))
    s_attn, s_both = (_erf_statistics([m.double()], [(8, 10)]) for m in (attn, both))
    assert s_both['local_mass_r6'] > 0.95 > s_attn['local_mass_r6']
    assert s_both['local_mass_r3'] > s_attn['local_mass_r3']
    assert 'attn+lcm' not in token_mixings(ablated_l2vit('no-lcm', arch=dict(SMALL_ARCH)).stages[0][1])


# ------------------------------------------------------------------------------------------ through compare_backbones
def test_the_variants_are_backbones_of_compare_backbones():
    cfg = load_config(DEMO_CONFIG)
    names = ['l2vit-t'] + [f'l2vit-t:{v}' for v in VARIANTS]
    variants = backbone_variants(cfg, names)
    params = {v.name: v.settings['backbone_params'] for v in variants}
    assert params['l2vit-t'] == params['l2vit-t:full'] > params['l2vit-t:window-only'] > params['l2vit-t:no-lcm']
    assert params['l2vit-t:linear-only'] > params['l2vit-t']
    for v in variants[2:]:
        assert v.cfg.model.backbone['type'] == 'L2ViTAblation' and 'l2vit.analysis.ablation' in \
            v.cfg.custom_imports['imports']
        assert v.cfg.optim_wrapper == cfg.optim_wrapper  # one recipe
    with pytest.raises(ToolError, match="unknown backbone 'l2vit-t:no-mlp'.*l2vit-t:no-lcm"):
        check_backbones(['l2vit-t:full', 'l2vit-t:no-mlp'])


@pytest.mark.slow
def test_a_tiny_ablation_end_to_end(tmp_path):
    """Two variants, two seeds, two iterations each: mean ± std table, concentration by block and the plots."""
    from l2vit.testing import generate_coco_instances
    data = str(tmp_path / 'coco')
    generate_coco_instances(data, num_train=4, num_val=2, seed=1, progress=False)
    out = tmp_path / 'out'
    options = demo_data_options(data)
    run_main(TOOL, DEMO_CONFIG, '--backbones', 'l2vit-t:full', 'l2vit-t:no-lcm', '--train', '2', '--eval-interval',
             '2', '--seed', '0', '1', '--erf-images', '2', '--out-dir', str(out), '--time-size', '64',
             '--flops-size', '64', '--warmup', '1', '--repeats', '1', '--cfg-options', *options)
    record = json.loads((out / 'compare.json').read_text())
    for entry in record['backbones'].values():
        assert [r['seed'] for r in entry['trainings']] == [0, 1]
        assert all([e['iter'] for e in r['evals']] == [2] for r in entry['trainings'])
    assert record['backbones']['l2vit-t:full']['trainings'][0]['losses'] != \
        record['backbones']['l2vit-t:full']['trainings'][1]['losses']  # the seeds differ
    found = json.loads((out / 'ablation.json').read_text())['concentration']
    full, no_lcm = found['l2vit-t:full'][0]['blocks'], found['l2vit-t:no-lcm'][0]['blocks']
    assert len(found['l2vit-t:full']) == 2 and len(full) == 8
    assert [sorted(b['erf']) for b in full[:2]] == [['attn'], ['attn', 'attn+lcm']]
    assert [sorted(b['erf']) for b in no_lcm[:2]] == [['attn'], ['attn']]
    for block in full:
        for stats in block['erf'].values():
            assert 0 < stats['local_mass_r3'] <= stats['local_mass_r6'] <= 1 + 1e-9
        assert 0 <= block['attention']['local_mass'] <= 1
    md = (out / 'ablation.md').read_text()
    assert '| `l2vit-t:no-lcm` |' in md and ' ± ' in md and 'attn+lcm' in md
    for name in ('curves', 'by_depth', 'erf_maps'):
        assert (out / f'ablation_{name}.png').read_bytes()[:4] == b'\x89PNG'
    assert RADII == (3, 6)
