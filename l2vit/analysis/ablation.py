"""Ablations of the local concentration module (LCM), made from the public L2ViT by replacing modules after
construction (:func:`ablate`: ``full``; ``no-lcm``, the global blocks without LCM; ``window-only``, every global
block a window block; ``linear-only``, every window block a global one), trained by ``compare_backbones.py
--backbones l2vit-t:<variant>``; and the concentration of the trained models' token mixing (:func:`concentration`):
the attention tool's statistics and the effective receptive field (ERF) of each block's mixing, identity path taken
out (:func:`token_mixings`).
"""
import json
import math
import os.path as osp
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch
from mmengine.registry import MODELS
from torch import Tensor, nn

from ..errors import ToolError
from ..models.backbone import L2ViT
from ..models.blocks import LinearGlobalBlock, LocalWindowBlock
from .attention import analyse_attention, attention_statistics

VARIANTS = ('full', 'no-lcm', 'window-only', 'linear-only')
RADII = (3, 6)


class LinearBlockWithoutLCM(LinearGlobalBlock):
    """A :class:`LinearGlobalBlock` whose LCM branch was removed::

        x = CPE(x);  x = x + DropPath(LinearAttention(LN_1(x)));  x = x + DropPath(MLP(LN_2(x)))
    """

    def forward(self, x: Tensor) -> Tensor:
        x = self.cpe[0](x)
        x = x + self.drop_path(self.global_attention(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


def _block_settings(block: nn.Module) -> Dict[str, Any]:
    dim = block.norm1.normalized_shape[0]
    return dict(dim=dim, num_heads=block.attn.num_heads, mlp_ratio=block.mlp.fc1.out_features / dim,
                drop_path=float(getattr(block.drop_path, 'drop_prob', 0.0)))


def ablate(backbone: L2ViT, variant: str, norm_cfg: Optional[dict] = None) -> L2ViT:
    """Turn ``backbone`` (a plain, freshly built L2ViT) into ``variant`` in place; returns it. ``norm_cfg``: the
    LCM norm of blocks made global (``linear-only``)."""
    if variant not in VARIANTS:
        raise ToolError(f'unknown ablation variant {variant!r}; the variants are {", ".join(VARIANTS)}')
    for stage in backbone.stages:
        for j, block in enumerate(stage):
            if type(block) not in (LinearGlobalBlock, LocalWindowBlock):
                raise ToolError(f'ablate needs a plain L2ViT (build it with cpu_fast_paths=False and apply '
                                f'use_cpu_fast_paths afterwards); found a {type(block).__name__}')
            if variant == 'no-lcm' and isinstance(block, LinearGlobalBlock):
                del block.norm3, block.local_mp
                block.__class__ = LinearBlockWithoutLCM
            elif variant == 'window-only' and isinstance(block, LinearGlobalBlock):
                s = _block_settings(block)
                stage[j] = LocalWindowBlock(s['dim'], s['num_heads'], backbone.window_size, s['mlp_ratio'],
                                            s['drop_path'])
            elif variant == 'linear-only' and isinstance(block, LocalWindowBlock):
                s = _block_settings(block)
                stage[j] = LinearGlobalBlock(s['dim'], s['num_heads'], s['mlp_ratio'], s['drop_path'], norm_cfg)
    backbone.state_dict_shapes = {k: tuple(v.shape) for k, v in backbone.state_dict().items()}
    backbone._freeze_stages()
    return backbone


def ablated_l2vit(variant: str = 'full', **kwargs) -> L2ViT:
    """``L2ViT(**kwargs)`` made into ``variant`` (registered as ``L2ViTAblation`` in mmengine's MODELS, which the
    mmdet/mmseg/mmpretrain registries search too); ``cpu_fast_paths`` is applied after the ablation."""
    from ..models.cpu import use_cpu_fast_paths
    fast = kwargs.pop('cpu_fast_paths', False)
    backbone = ablate(L2ViT(**kwargs), variant, kwargs.get('norm_cfg'))
    return use_cpu_fast_paths(backbone) if fast else backbone


MODELS.register_module(name='L2ViTAblation', module=ablated_l2vit, force=True)


# --------------------------------------------------------------------------------------------------- concentration
def effective_receptive_field(mixing: Callable[[Tensor], Tensor], x: Tensor, query_yx: Sequence[int]) -> Tensor:
    """(H, W) map: |d Σ_c mixing(x)[0, y, x, c] / d x| summed over channels, ``x`` a (1, H, W, C) token map."""
    x = x.detach().clone().requires_grad_(True)
    out = mixing(x)
    grad, = torch.autograd.grad(out[0, query_yx[0], query_yx[1]].sum(), x)
    return grad[0].abs().sum(-1)


def token_mixings(block: nn.Module) -> Dict[str, Callable[[Tensor], Tensor]]:
    """A block's token mixing, identity path excluded: ``attn``, ``a = attn(LN1(x))`` (a window block's attention
    within windows) and, with an LCM, ``attn+lcm``, ``a + LCM(LN3(x + a))`` (the block before its MLP, less x)."""
    if isinstance(block, LocalWindowBlock):
        return {'attn': lambda x: block.window_attention(block.norm1(x))}
    mixings = {'attn': lambda x: block.global_attention(block.norm1(x))}
    if hasattr(block, 'local_mp'):
        def attn_lcm(x: Tensor) -> Tensor:
            a = block.global_attention(block.norm1(x))
            return a + block.local_mp(block.norm3(x + a))
        mixings['attn+lcm'] = attn_lcm
    return mixings


def _erf_statistics(maps: Sequence[Tensor], queries: List[Sequence[int]]) -> Dict[str, float]:
    """Mean entropy and local mass (r in :data:`RADII`) of ERF maps ((H, W) each, sizes may differ), and of uniform
    maps of their sizes; ``tokens``: their mean number of tokens."""
    stats: Dict[str, float] = dict(tokens=float(np.mean([m.numel() for m in maps])))
    for prefix, chosen in (('', maps), ('uniform_', [torch.ones_like(m) for m in maps])):
        for radius in RADII:
            found = [attention_statistics(m, q, radius) for m, q in zip(chosen, queries)]
            stats[f'{prefix}local_mass_r{radius}'] = float(np.mean([float(f['local_mass']) for f in found]))
        stats[f'{prefix}entropy'] = float(np.mean([float(f['entropy']) for f in found]))
    return stats


def concentration(backbone: L2ViT, images: Sequence[Tensor], queries: int = 16, seed: int = 0) -> Dict[str, Any]:
    """Per block (depth order): the attention tool's entropy and local mass (r = 3) and, for each token mixing
    (:func:`token_mixings`), the ERF statistics, averaged over ``images`` ((3, H, W) each, normalised) and
    ``queries`` random query tokens each; plus, in stages 0-1, the ERF map of the first image's central token."""
    inputs: Dict[int, Tensor] = {}
    blocks = [(i, j, b) for i, stage in enumerate(backbone.stages) for j, b in enumerate(stage)]
    handles = [b.register_forward_pre_hook(lambda m, a, d=d: inputs.__setitem__(d, a[0].detach()))
               for d, (_, _, b) in enumerate(blocks)]
    generator, rows = torch.Generator().manual_seed(seed), []
    backbone.eval()
    try:
        per_image = []
        for image in images:
            with torch.no_grad():
                backbone(image[None])
            per_image.append(dict(inputs))
    finally:
        for handle in handles:
            handle.remove()
    for depth, (i, j, block) in enumerate(blocks):
        H, W = per_image[0][depth].shape[1:3]
        row: Dict[str, Any] = dict(stage=i, block=j, depth=depth, kind=type(block).__name__, size=[H, W], erf={},
                                   examples={})
        for name, mixing in token_mixings(block).items():
            maps, points = [], []
            for k, recorded in enumerate(per_image):
                x = recorded[depth]
                qs = [(int(y), int(x_)) for y, x_ in zip(torch.randint(0, x.shape[1], (queries,), generator=generator),
                                                         torch.randint(0, x.shape[2], (queries,), generator=generator))]
                if k == 0:
                    qs[0] = (x.shape[1] // 2, x.shape[2] // 2)
                maps += [effective_receptive_field(mixing, x, q) for q in qs]
                points += qs
            row['erf'][name] = _erf_statistics([m.double() for m in maps], points)
            if i < 2:  # stages 0-1: the maps drawn, scaled to their maximum
                row['examples'][name] = np.round((maps[0] / maps[0].max().clamp_min(1e-30)).numpy(), 4).tolist()
        rows.append(row)
    _attention_statistics(backbone, images, rows, queries, generator)
    return dict(queries=queries, images=len(images), radii=list(RADII), blocks=rows)


def _attention_statistics(backbone: L2ViT, images: Sequence[Tensor], rows: List[Dict[str, Any]], queries: int,
                          generator: torch.Generator) -> None:
    """Add the attention tool's mean entropy, local mass (r = 3) and their uniform references to ``rows``."""
    sums: Dict[int, Dict[str, List[float]]] = {}
    for image in images:
        H, W = image.shape[-2:]
        points = torch.stack([torch.randint(0, H, (queries,), generator=generator),
                              torch.randint(0, W, (queries,), generator=generator)], 1).tolist()
        for per_point in analyse_attention(backbone, image[None], points):
            for result in per_point:
                for key in ('entropy', 'local_mass', 'max_entropy', 'uniform_local_mass'):
                    if result.statistics.get(key) is not None:
                        sums.setdefault(result.depth, {}).setdefault(key, []).append(result.statistics[key])
    for row in rows:
        row['attention'] = {k: float(np.mean(v)) for k, v in sums.get(row['depth'], {}).items()}


# --------------------------------------------------------------------------------------------------- trained models
def _runs(entry: Dict[str, Any]) -> List[Dict[str, Any]]:
    return entry.get('trainings') or ([entry['training']] if entry.get('training') else [])


def trained_concentration(record: Dict[str, Any], images: int = 4, queries: int = 16) -> Dict[str, List[Any]]:
    """:func:`concentration` of every model :func:`~l2vit.analysis.compare.compare` trained (its work dir's last
    checkpoint), on the first ``images`` images of the config's val set as the model preprocesses them."""
    from mmengine.config import Config
    from mmengine.registry import DATASETS, DefaultScope
    from mmengine.runner import load_checkpoint

    from .benchmark import build_detector, one_process
    found: Dict[str, List[Any]] = {}
    for name, entry in record['backbones'].items():
        for run in _runs(entry):
            cfg = one_process(Config.fromfile(run['config']))
            model = build_detector(cfg, 'cpu')[0]
            load_checkpoint(model, osp.join(osp.dirname(run['config']), f'iter_{run["iters"]}.pth'),
                            map_location='cpu', logger='silent')
            with DefaultScope.overwrite_default_scope(cfg.default_scope):
                dataset = DATASETS.build(cfg.val_dataloader.dataset)
                data = [model.eval().data_preprocessor(dict(inputs=[item['inputs']], data_samples=[
                    item['data_samples']]), False)['inputs'][0] for item in map(dataset.__getitem__, range(
                        min(images, len(dataset))))]
            found.setdefault(name, []).append(concentration(model.backbone, data, queries, run['seed']))
    return found


def _mean_std(values: List[float]) -> str:
    return '—' if not values else f'{np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}'


def _mean(items: List[Dict[str, float]], key: str) -> str:
    return f'{np.mean([i[key] for i in items]):.2f}' if all(key in i for i in items) else '—'


def ablation_markdown(record: Dict[str, Any], found: Dict[str, List[Any]]) -> str:
    """Accuracy (mean ± sample std over seeds) with parameter counts, then concentration by block."""
    from .report import table
    s, full = record['settings'], record['backbones'].get('l2vit-t:full', {}).get('backbone_params')
    rows, metrics = [], ('coco/bbox_mAP', 'coco/segm_mAP', 'mIoU')
    shown = [m for m in metrics if any(m in r['evals'][-1]['metrics'] for e in record['backbones'].values()
                                       for r in _runs(e) if r['evals'])]
    for name, entry in record['backbones'].items():
        finals = [r['evals'][-1]['metrics'] for r in _runs(entry) if r['evals']]
        count = entry['backbone_params']
        rows.append([f'`{name}`', f'{count / 1e6:.3f}', '—' if not full else f'{(count - full) / full:+.1%}']
                    + [_mean_std([f[m] for f in finals if isinstance(f.get(m), float)]) for m in shown]
                    + [' / '.join(f'{f.get(shown[0], float("nan")):.3f}' for f in finals)])
    lines = [f'Command: `{record["command"]}`', f'Machine: {record["machine"].get("cpu")}, '
             f'{record["machine"].get("threads")} threads, torch {record["machine"].get("torch")}; {record["date"]}.',
             '', f'Accuracy after {s["train_iters"]} iterations, seeds {s.get("seeds", [s["seed"]])} (mean ± sample '
             'std); backbone parameters and their difference from `full`:', '']
    lines += table(['variant', 'backbone params (M)', 'vs full'] + [f'{m} ({s["train_iters"]} it)' for m in shown]
                   + [f'{shown[0]} per seed'], rows)
    header = ['variant', 'block', 'tokens', 'attn H (nats)', 'attn local r3', 'ERF mixing', 'ERF H', 'ERF r3',
              'ERF r6', 'uniform H', 'uniform r3', 'uniform r6']
    rows = []
    for name, runs in found.items():
        for k, block in enumerate(runs[0]['blocks']):
            att = [r['blocks'][k].get('attention', {}) for r in runs]
            for mixing in block['erf']:
                erf = [r['blocks'][k]['erf'][mixing] for r in runs]
                rows.append([f'`{name}`', f's{block["stage"]}b{block["block"]} {block["kind"]}',
                             f'{erf[0]["tokens"]:.0f}',
                             _mean(att, 'entropy'), _mean(att, 'local_mass'), mixing] + [_mean(erf, key) for key in (
                                 'entropy', 'local_mass_r3', 'local_mass_r6', 'uniform_entropy',
                                 'uniform_local_mass_r3', 'uniform_local_mass_r6')])
    lines += ['', 'Concentration of the trained models, by block (means over seeds, images and query tokens): the '
              "attention tool's entropy H and mass within 3 tokens of the normalised implied weights (`attn`); the "
              'ERF of the token mixing (identity path excluded): entropy and share of the gradient mass within r = 3 '
              'and r = 6 tokens, against a uniform map over the stage\'s tokens.', '']
    return '\n'.join(lines + table(header, rows) + ['']) + '\n'


def plot_ablation(record: Dict[str, Any], found: Dict[str, List[Any]], out_dir: str) -> List[str]:
    """ablation_curves.png (metric mean ± std against iterations), ablation_by_depth.png (attention and ERF
    concentration by depth, a line per variant and mixing) and ablation_erf_maps.png (example ERF maps)."""
    from .report import _pyplot, _save
    plt, paths = _pyplot(), [osp.join(out_dir, f'ablation_{n}.png') for n in ('curves', 'by_depth', 'erf_maps')]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, entry in record['backbones'].items():
        for ax, metric in zip(axes, ('coco/bbox_mAP', 'coco/segm_mAP') if record['task'] == 'mmdet' else ('mIoU',)):
            runs = [r for r in _runs(entry) if r['evals']]
            iters = [e['iter'] for e in runs[0]['evals']] if runs else []
            values = np.array([[e['metrics'].get(metric, np.nan) for e in r['evals']] for r in runs], dtype=float)
            if values.size:
                ax.errorbar(iters, values.mean(0), values.std(0, ddof=1) if len(runs) > 1 else 0 * values[0],
                            marker='o', capsize=3, label=name)
                ax.set(xlabel='iteration', ylabel=metric, title=f'{metric}, mean ± sample std, {len(runs)} seeds')
    _save(fig, paths[0])
    fig, axes = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    for name, runs in found.items():
        blocks = runs[0]['blocks']
        depth = [b['depth'] for b in blocks]
        for ax, key in zip(axes[0], ('entropy', 'local_mass')):
            ax.plot(depth, [np.mean([r['blocks'][k].get('attention', {}).get(key, np.nan) for r in runs])
                            for k in range(len(blocks))], marker='o', label=name)
            ax.set(title=f'attention tool: {key.replace("_", " ")}' + (' (r = 3)' if key != 'entropy' else ''))
        for mixing, style in (('attn', '-'), ('attn+lcm', '--')):
            for ax, key in zip(axes[1], ('entropy', 'local_mass_r3')):
                ys = [np.mean([r['blocks'][k]['erf'][mixing][key] for r in runs]) if mixing in b['erf'] else np.nan
                      for k, b in enumerate(blocks)]
                if not all(math.isnan(y) for y in ys):
                    ax.plot(depth, ys, style, marker='o', label=f'{name} {mixing}')
                    ax.set(title=f'ERF of the token mixing: {key.replace("_", " ")}', xlabel='block depth')
    for ax, key in zip(axes[1], ('uniform_entropy', 'uniform_local_mass_r3')):
        blocks = next(iter(found.values()))[0]['blocks']
        ax.plot([b['depth'] for b in blocks], [b['erf']['attn'][key] for b in blocks], ':', color='k', label='uniform')
    _save(fig, paths[1])
    examples = [(name, b, mixing) for name, runs in found.items() for b in runs[0]['blocks'] if b['stage'] < 2
                and b['block'] % 2 for mixing in b['examples']]
    fig, axes = plt.subplots(1, max(1, len(examples)), figsize=(2.2 * max(1, len(examples)), 3.2), squeeze=False)
    for ax, (name, b, mixing) in zip(axes[0], examples):
        ax.imshow(np.array(b['examples'][mixing]), cmap='magma')
        ax.set_title(f'{name}\ns{b["stage"]}b{b["block"]} {mixing}', fontsize=7)
        ax.axis('off')
    _save(fig, paths[2])
    return paths


def write_ablation(record: Dict[str, Any], out_dir: str, images: int = 4, queries: int = 16,
                   found: Optional[Dict[str, List[Any]]] = None) -> List[str]:
    """ablation.json, ablation.md and the :func:`plot_ablation` PNGs of a comparison of ablation variants; ``found``:
    the concentration measured before (ablation.json's), to render again without measuring."""
    found = found or trained_concentration(record, images, queries)
    paths = [osp.join(out_dir, 'ablation.json'), osp.join(out_dir, 'ablation.md')]
    with open(paths[0], 'w', encoding='utf-8') as f:
        json.dump(dict(command=record['command'], machine=record['machine'], concentration=found), f)
    with open(paths[1], 'w', encoding='utf-8') as f:
        f.write(ablation_markdown(record, found))
    return paths + plot_ablation(record, found, out_dir)
