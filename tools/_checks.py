"""Checks our tools run before anything is built: the data, the weights and the model wiring a config needs.

Each failure names what is wrong, where it was expected and the ``--cfg-options`` that fix it, instead of a stack
trace from deep inside a library.
"""
import json
import os.path as osp
from typing import List, Optional

from mmengine.config import Config


def as_list(value) -> List:
    """A config entry that may be one dict or a list of dicts, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


#: The expected on-disk layout per dataset type, shown when a dataset is missing.
DATASET_LAYOUTS = {
    'CocoDataset': ('COCO 2017', 'data/coco/\n'
                    '      annotations/instances_train2017.json\n'
                    '      annotations/instances_val2017.json\n'
                    '      train2017/*.jpg\n'
                    '      val2017/*.jpg'),
    'ADE20KDataset': ('ADE20K (ADEChallengeData2016)', 'data/ade/ADEChallengeData2016/\n'
                      '      images/training/*.jpg       annotations/training/*.png\n'
                      '      images/validation/*.jpg     annotations/validation/*.png'),
    'ImageNet': ('ImageNet-1k', 'data/imagenet/\n'
                 '      train/<class>/*.JPEG  (or train/ + meta/train.txt)\n'
                 '      val/<class>/*.JPEG    (or val/ + meta/val.txt)'),
}


def leaf_datasets(dataset) -> List:
    """The datasets inside dataset wrappers (RepeatDataset, ConcatDataset, ClassBalancedDataset, ...)."""
    if not isinstance(dataset, dict):
        return []
    if 'datasets' in dataset:
        return [leaf for d in dataset['datasets'] for leaf in leaf_datasets(d)]
    if 'dataset' in dataset:
        return leaf_datasets(dataset['dataset'])
    return [dataset]


def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def missing_data(cfg: Config, splits) -> List[str]:
    """Describe every dataset file or folder the given dataloaders need that does not exist."""
    problems = []
    for split in splits:
        loader = cfg.get(split)
        if not loader:
            continue
        for dataset in leaf_datasets(loader.get('dataset')):
            root = dataset.get('data_root') or ''
            kind = str(dataset.get('type', 'dataset')).split('.')[-1]
            needed = []
            if root:
                needed.append((root, f'{split}.dataset.data_root'))
            if dataset.get('ann_file'):
                needed.append((_join(root, dataset['ann_file']), f'{split}.dataset.ann_file'))
            prefix = dataset.get('data_prefix') or {}
            for key, folder in (prefix.items() if isinstance(prefix, dict) else []):
                if isinstance(folder, str) and folder:
                    needed.append((_join(root, folder), f'{split}.dataset.data_prefix.{key}'))
            for path, key in needed:
                if not osp.exists(path):
                    problems.append((kind, root, split, f'{path} ({key})'))
                    break  # the first missing piece says enough for this dataset
    for split in splits:
        evaluator_key = split.replace('_dataloader', '_evaluator')
        for evaluator in as_list(cfg.get(evaluator_key)) if cfg.get(split) else []:
            ann_file = evaluator.get('ann_file') if isinstance(evaluator, dict) else None
            if ann_file and not osp.exists(ann_file):
                problems.append(('', '', evaluator_key, f'{ann_file} ({evaluator_key}.ann_file)'))
    if not problems:
        return []
    lines = ['the dataset is missing:']
    lines += [f'  {what}' for _, _, _, what in problems]
    for kind in dict.fromkeys(p[0] for p in problems):
        name, layout = DATASET_LAYOUTS.get(kind, (kind, None))
        if layout:
            lines.append(f'Expected layout for {name} (relative to the working directory):\n    {layout}')
    overrides = ' '.join(f'{split}.dataset.data_root=/path/to/data/' if split.endswith('_dataloader') else
                         f'{split}.ann_file=/path/to/annotations.json' for split in dict.fromkeys(p[2] for p in problems))
    lines.append(f'Put the data there (a symlink is fine), or point elsewhere: --cfg-options {overrides}')
    return lines


def _pretrained_checkpoints(node, path: str = 'model'):
    """(config key, checkpoint) of every init_cfg=dict(type='Pretrained', checkpoint=...) under ``node``."""
    if isinstance(node, dict):
        init = node.get('init_cfg')
        for item in as_list(init):
            if isinstance(item, dict) and item.get('type') == 'Pretrained' and isinstance(item.get('checkpoint'), str):
                yield f'{path}.init_cfg.checkpoint', item['checkpoint']
        for key, value in node.items():
            if key != 'init_cfg':
                yield from _pretrained_checkpoints(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _pretrained_checkpoints(value, f'{path}.{i}')


def missing_pretrained(cfg: Config) -> List[str]:
    """Describe every local pretrained-weights file named by an ``init_cfg`` that does not exist."""
    lines = []
    for key, checkpoint in _pretrained_checkpoints(cfg.get('model')):
        if '://' in checkpoint or osp.isfile(checkpoint):
            continue
        init_key = key[:-len('.checkpoint')]
        lines += [f'pretrained weights not found: {checkpoint} ({key})',
                  "  Convert the authors' ImageNet checkpoint: python tools/convert_official.py "
                  f'L2ViT-<Tiny|Small|Base>-checkpoint-best-ema.pth {checkpoint}   (see README, "Pretrained weights"),',
                  f'  or point elsewhere: --cfg-options {key}=/path/to/weights.pth,',
                  f'  or train from scratch: --cfg-options {init_key}=None']
    return lines


#: Above this size an annotation file is only sniffed (its first MiB), not parsed, to keep start-up quick.
FULL_PARSE_LIMIT = 64 * 2**20
COCO_KEYS = ('images', 'annotations', 'categories')


def coco_annotation_problems(cfg: Config, splits) -> List[str]:
    """Annotation files of COCO-style datasets that are not COCO instance annotations."""
    problems = []
    for split in splits:
        for dataset in leaf_datasets((cfg.get(split) or {}).get('dataset')):
            ann_file = dataset.get('ann_file')
            if not ann_file or not str(dataset.get('type', '')).endswith('CocoDataset'):
                continue
            path = _join(dataset.get('data_root') or '', ann_file)
            if not osp.isfile(path):
                continue  # reported by missing_data
            reason = _coco_format_problem(path)
            if reason:
                problems.append(f'{path} ({split}.dataset.ann_file) is not a COCO annotation file: {reason}. '
                                f'Expected a JSON object with "images", "annotations" and "categories" lists, '
                                f'as in COCO\'s instances_train2017.json.')
    return problems


def _coco_format_problem(path: str) -> Optional[str]:
    if osp.getsize(path) > FULL_PARSE_LIMIT:
        with open(path, 'rb') as f:
            head = f.read(2**20).lstrip()
        if not head.startswith(b'{') or b'"images"' not in head and b'"annotations"' not in head:
            return 'its beginning is not a JSON object with COCO keys'
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return f'it is not valid JSON ({err})'
    if not isinstance(data, dict):
        return f'it holds a JSON {type(data).__name__}, not an object'
    missing = [key for key in COCO_KEYS if not isinstance(data.get(key), list)]
    if missing:
        return f'it has no {", ".join(repr(k) for k in missing)} list (top-level keys: {sorted(data)[:10]})'
    return None


def _is_l2vit(backbone) -> bool:
    return isinstance(backbone, dict) and str(backbone.get('type', '')).split('.')[-1] == 'L2ViT'


def neck_problems(cfg: Config) -> List[str]:
    """A neck whose ``in_channels`` do not match the widths of the L2ViT stages it receives."""
    model = cfg.get('model') or {}
    backbone, neck = model.get('backbone'), model.get('neck')
    if not _is_l2vit(backbone) or not isinstance(neck, dict) or not isinstance(neck.get('in_channels'), (list, tuple)):
        return []
    from l2vit.models.backbone import L2ViT
    try:
        dims = L2ViT.parse_arch(backbone.get('arch', 'tiny'))['embed_dims']
        out_indices = L2ViT.parse_out_indices(backbone.get('out_indices', (0, 1, 2, 3)))
    except ValueError as err:
        return [f'model.backbone: {err}']
    expected = [dims[i] for i in out_indices]
    if list(neck['in_channels']) == expected:
        return []
    return [f'model.neck.in_channels is {list(neck["in_channels"])}, but the L2ViT backbone (embed_dims {dims}, '
            f'out_indices {out_indices}) outputs {expected} channels. Fix: --cfg-options '
            f'model.neck.in_channels="{expected}" (or change the backbone arch/out_indices).']


def _num_classes_entries(node, path: str = 'model'):
    if isinstance(node, dict):
        if isinstance(node.get('num_classes'), int):
            yield f'{path}.num_classes', node['num_classes']
        for key, value in node.items():
            if key not in ('train_cfg', 'test_cfg', 'data_preprocessor'):
                yield from _num_classes_entries(value, f'{path}.{key}')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _num_classes_entries(value, f'{path}.{i}')


def _dataset_classes(cfg: Config, dataset: dict) -> Optional[tuple]:
    metainfo = dataset.get('metainfo') or {}
    if metainfo.get('classes'):
        return tuple(metainfo['classes'])
    from mmengine.registry import DATASETS
    kind = dataset.get('type')
    if not isinstance(kind, str) or not cfg.get('default_scope'):
        return None
    with DATASETS.switch_scope_and_registry(cfg.default_scope) as registry:
        dataset_class = registry.get(kind)
    classes = (getattr(dataset_class, 'METAINFO', None) or {}).get('classes')
    return tuple(classes) if classes else None


def num_classes_problems(cfg: Config, split: str) -> List[str]:
    """Heads whose ``num_classes`` differ from the number of classes of the ``split`` dataset."""
    datasets = leaf_datasets((cfg.get(split) or {}).get('dataset'))
    if not datasets:
        return []
    classes = _dataset_classes(cfg, datasets[0])
    if not classes:
        return []
    wrong = [(key, value) for key, value in _num_classes_entries(cfg.get('model')) if value != len(classes)]
    if not wrong:
        return []
    shown = ', '.join(classes[:8]) + (', ...' if len(classes) > 8 else '')
    fixes = ' '.join(f'{key}={len(classes)}' for key, _ in wrong)
    return [f'{", ".join(f"{key} is {value}" for key, value in wrong)}, but the dataset ({split}.dataset, '
            f'{datasets[0].get("type")}) has {len(classes)} classes ({shown}). Fix: --cfg-options {fixes} '
            f'(or give the dataset the classes of your model through its metainfo).']


def input_problems(cfg: Config, splits, check_pretrained: bool = True) -> List[str]:
    """Everything wrong with the data, the weights and the model wiring that the given dataloaders need."""
    missing = missing_data(cfg, splits)
    problems = missing + (missing_pretrained(cfg) if check_pretrained else []) + neck_problems(cfg)
    if not missing:  # these read the dataset's files and metainfo, so only once they are there
        problems += coco_annotation_problems(cfg, splits)
        problems += num_classes_problems(cfg, splits[0]) if splits else []
    return problems
