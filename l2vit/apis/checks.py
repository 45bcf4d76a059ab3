"""Checks run before anything is built: the data, the weights and the model wiring a config needs.

``preflight(cfg, splits)`` returns one message per problem, each naming what is wrong, where it was expected and
the ``--cfg-options`` that fix it, instead of a stack trace from deep inside a library once training has started.
It reads the config and the files it names; it changes nothing.
"""
import json
import os.path as osp
from typing import List, Optional, Sequence

from mmengine.config import Config

from .config_tree import as_list, config_dicts, leaf_datasets, pretrained_checkpoints

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
    splits = dict.fromkeys(p[2] for p in problems)
    overrides = ' '.join(f'{split}.dataset.data_root=/path/to/data/' if split.endswith('_dataloader') else
                         f'{split}.ann_file=/path/to/annotations.json' for split in splits)
    lines.append(f'Put the data there (a symlink is fine), or point elsewhere: --cfg-options {overrides}')
    return lines


def missing_pretrained(cfg: Config) -> List[str]:
    """Describe every local pretrained-weights file named by an ``init_cfg`` that does not exist."""
    lines = []
    for key, checkpoint in pretrained_checkpoints(cfg.get('model')):
        if '://' in checkpoint or osp.isfile(checkpoint):
            continue
        init_key = key[:-len('.checkpoint')]
        lines += [f'pretrained weights not found: {checkpoint} ({key})',
                  "  Download the authors' ImageNet checkpoint (L2ViT-<Tiny|Small|Base>-checkpoint-best-ema.pth, "
                  'their GitHub release) to that path: it is read as released (see README, "Pretrained weights"),',
                  '  or convert it first: python tools/convert_official.py '
                  f'L2ViT-<Tiny|Small|Base>-checkpoint-best-ema.pth {checkpoint},',
                  f'  or name the release URL: --cfg-options {key}=https://github.com/ChuanyangZheng/L2ViT/'
                  'releases/download/v1.0/L2ViT-Tiny-checkpoint-best-ema.pth,',
                  f'  or point elsewhere: --cfg-options {key}=/path/to/weights.pth,',
                  f'  or train from scratch: --cfg-options {init_key}=None']
    return lines


#: Above this size an annotation file is only sniffed (its first MiB), not parsed, to keep start-up quick; the keys
#: of its entries are then not checked either.
FULL_PARSE_LIMIT = 64 * 2**20
COCO_KEYS = ('images', 'annotations', 'categories')

#: How to fill in each entry key that the pinned mmdet (CocoDataset, CocoMetric) and pycocotools (COCO, COCOeval)
#: read. 'info' and 'licenses' are not among them: pycocotools >= 2.0.11 reads 'info' with .get(), and nothing reads
#: 'licenses'; so is every other optional key ('supercategory', an image's 'license', 'coco_url', ...).
COCO_ENTRY_FIXES = {
    ('images', 'id'): "a unique integer per image (the annotations' 'image_id' refer to it)",
    ('images', 'file_name'): "the image's path relative to the dataset's data_prefix.img folder",
    ('images', 'height'): 'the image height in pixels (PIL: Image.open(path).size is (width, height))',
    ('images', 'width'): 'the image width in pixels (PIL: Image.open(path).size is (width, height))',
    ('annotations', 'id'): 'a unique integer per annotation (e.g. its index + 1)',
    ('annotations', 'image_id'): "the 'id' of the image the annotation belongs to",
    ('annotations', 'category_id'): "the 'id' of its category in 'categories'",
    ('annotations', 'bbox'): '[x, y, width, height] of the object in pixels',
    ('annotations', 'area'): 'the area of the object in pixels: pycocotools.mask.area of its segmentation, or '
                             'width * height of its bbox for box-only data',
    ('annotations', 'iscrowd'): '0 for an object (1 only for a crowd region)',
    ('annotations', 'segmentation'): "the object's polygons [[x1, y1, x2, y2, ...], ...] or RLE; for box-only data "
                                     'train a model without a mask head, with LoadAnnotations(with_mask=False) in '
                                     "the pipelines and CocoMetric(metric='bbox')",
    ('categories', 'id'): "a unique integer per category (the annotations' 'category_id' refer to it)",
    ('categories', 'name'): "the class name, as in the dataset's metainfo classes",
}


def coco_annotation_problems(cfg: Config, splits) -> List[str]:
    """Annotation files of COCO-style datasets (and of their CocoMetric evaluators) that are not COCO instance
    annotations, or whose entries lack a key that loading the dataset or evaluating it reads (a KeyError there
    would come only once the dataset is built, or after the first training epoch)."""
    files = {}  # path -> {'keys': config keys naming it, 'readers': [(kind, detail, class names)]}

    def use(path: str, key: str, reader: tuple) -> None:
        entry = files.setdefault(path, dict(keys=[], readers=[]))
        entry['keys'].append(key)
        entry['readers'].append(reader)

    for split in splits:
        datasets = [d for d in leaf_datasets((cfg.get(split) or {}).get('dataset'))
                    if str(d.get('type', '')).endswith('CocoDataset')]
        for dataset in datasets:
            if not dataset.get('ann_file'):
                continue
            path = _join(dataset.get('data_root') or '', dataset['ann_file'])
            if osp.isfile(path):  # a missing file is reported by missing_data
                reader = ('dataset', _loads_masks(dataset), _classes_or_none(cfg, dataset))
                use(path, f'{split}.dataset.ann_file', reader)
        evaluator_key = split.replace('_dataloader', '_evaluator')
        for evaluator in as_list(cfg.get(evaluator_key)) if cfg.get(split) else []:
            if not isinstance(evaluator, dict) or not str(evaluator.get('type', '')).endswith('CocoMetric'):
                continue
            path = evaluator.get('ann_file')
            if isinstance(path, str) and osp.isfile(path) and not evaluator.get('format_only'):
                metrics = tuple(as_list(evaluator.get('metric', 'bbox')))
                classes = _classes_or_none(cfg, datasets[0]) if datasets else None
                use(path, f'{evaluator_key}.ann_file', ('evaluator', metrics, classes))

    problems = []
    for path, entry in files.items():
        where = ', '.join(dict.fromkeys(entry['keys']))
        reason, data = _read_coco(path)
        if reason:
            problems.append(f'{path} ({where}) is not a COCO annotation file: {reason}. '
                            f'Expected a JSON object with "images", "annotations" and "categories" lists, '
                            f'as in COCO\'s instances_train2017.json.')
        elif data is not None:
            lines = _missing_entry_keys(data, entry['readers'])
            if lines:
                problems.append(f'{path} ({where}) lacks keys that training or evaluation reads (each would stop '
                                f'the run with a KeyError):\n' + '\n'.join(lines))
    return problems


def _loads_masks(dataset: dict) -> bool:
    """Whether the dataset's pipeline loads instance masks (LoadAnnotations with with_mask=True)."""
    return any(isinstance(t, dict) and str(t.get('type', '')).endswith('LoadAnnotations') and t.get('with_mask')
               for t in as_list(dataset.get('pipeline')))


def _classes_or_none(cfg: Config, dataset: dict) -> Optional[tuple]:
    try:
        return _dataset_classes(cfg, dataset)
    except Exception:  # an unregistered type or scope: then every category counts
        return None


def _read_coco(path: str):
    """(why ``path`` is not a COCO annotation file or None, its content or None when only sniffed)."""
    if osp.getsize(path) > FULL_PARSE_LIMIT:
        with open(path, 'rb') as f:
            head = f.read(2**20).lstrip()
        if not head.startswith(b'{') or b'"images"' not in head and b'"annotations"' not in head:
            return 'its beginning is not a JSON object with COCO keys', None
        return None, None
    try:
        with open(path) as f:
            data = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return f'it is not valid JSON ({err})', None
    if not isinstance(data, dict):
        return f'it holds a JSON {type(data).__name__}, not an object', None
    missing = [key for key in COCO_KEYS if not isinstance(data.get(key), list)]
    if missing:
        return f'it has no {", ".join(repr(k) for k in missing)} list (top-level keys: {sorted(data)[:10]})', None
    return None, data


def _has(entry, key: str, nonempty: bool = False) -> bool:
    if not isinstance(entry, dict) or entry.get(key) is None:
        return False
    return bool(entry[key]) if nonempty else True


def _missing_entry_keys(data: dict, readers) -> List[str]:
    """One line per (list, key) that some entries lack although a reader of the file reads it there.

    What reads what, in mmdet 3.3.0 with pycocotools 2.0.11:

    * ``COCO.createIndex`` (every reader): images' and categories' ``id``; annotations' ``id``, ``image_id`` and
      ``category_id``. ``getCatIds(cat_names=classes)``: categories' ``name``.
    * ``CocoDataset.parse_data_info``: images' ``file_name``, ``height``, ``width``; then, per annotation not marked
      ``ignore``: ``bbox``; ``area`` when the box overlaps the image; a non-empty ``segmentation`` when the box is
      kept (area > 0, sides >= 1, category among the classes) and the pipeline loads masks (LoadAnnotations raises
      KeyError: 'mask' otherwise).
    * ``COCOeval`` (CocoMetric), per annotation of an evaluated class: ``area`` and ``iscrowd``; ``bbox`` for the
      bbox / proposal metrics; ``segmentation`` and its image's ``height`` and ``width`` for 'segm'.
    """
    images, annotations, categories = data['images'], data['annotations'], data['categories']
    readers_of = {}  # (list, key) -> {what reads it: None}
    lacking = {}  # (list, key) -> indices of the entries without it
    nonempty = set()  # (list, key) that must also not be empty

    def require(collection: str, key: str, index: int, entry, reader: str, not_empty: bool = False) -> None:
        readers_of.setdefault((collection, key), {})[reader] = None
        if not_empty:
            nonempty.add((collection, key))
        if not _has(entry, key, not_empty):
            lacking.setdefault((collection, key), []).append(index)

    image_by_id = {img.get('id'): img for img in images if isinstance(img, dict)}
    for kind, detail, classes in readers:
        class_ids = None if classes is None else {
            c.get('id') for c in categories if isinstance(c, dict) and c.get('name') in set(classes)}
        if kind == 'dataset':
            reader = "mmdet's CocoDataset (loading the file)"
            mask_reader = 'LoadAnnotations(with_mask=True) in the pipeline (a mask per instance)'
        else:
            reader = f"COCOeval (CocoMetric's {'/'.join(detail)} evaluation, once the predictions are in)"
        for i, img in enumerate(images):
            require('images', 'id', i, img, reader)
            if kind == 'dataset':
                for key in ('file_name', 'height', 'width'):
                    require('images', key, i, img, reader)
        for i, cat in enumerate(categories):
            require('categories', 'id', i, cat, reader)
            require('categories', 'name', i, cat, reader)
        eval_images = set()
        for i, ann in enumerate(annotations):
            for key in ('id', 'image_id', 'category_id'):
                require('annotations', key, i, ann, reader)
            if not isinstance(ann, dict):
                continue
            of_a_class = class_ids is None or ann.get('category_id') in class_ids
            if kind == 'dataset':
                if ann.get('ignore'):
                    continue
                require('annotations', 'bbox', i, ann, reader)
                box = _box(ann.get('bbox'))
                img = image_by_id.get(ann.get('image_id'))
                if box is None or not _overlaps(box, img):
                    continue
                require('annotations', 'area', i, ann, reader)
                area = ann.get('area')
                kept = isinstance(area, (int, float)) and area > 0 and box[2] >= 1 and box[3] >= 1 and of_a_class
                if kept and detail:  # detail: the pipeline loads masks
                    require('annotations', 'segmentation', i, ann, mask_reader, not_empty=True)
            elif of_a_class:
                require('annotations', 'area', i, ann, reader)
                require('annotations', 'iscrowd', i, ann, reader)
                if {'bbox', 'proposal', 'proposal_fast'} & set(detail):
                    require('annotations', 'bbox', i, ann, reader)
                if 'segm' in detail:
                    require('annotations', 'segmentation', i, ann, reader)
                    eval_images.add(ann.get('image_id'))
        if eval_images:
            for i, img in enumerate(images):
                if isinstance(img, dict) and img.get('id') in eval_images:
                    require('images', 'height', i, img, reader)
                    require('images', 'width', i, img, reader)

    lines = []
    for (collection, key), fix in COCO_ENTRY_FIXES.items():
        indices = sorted(set(lacking.get((collection, key), ())))
        if not indices:
            continue
        first = data[collection][indices[0]]
        ident = f', id {first["id"]}' if _has(first, 'id') and key != 'id' else ''
        empty = ' (or an empty)' if (collection, key) in nonempty else ''
        readers = ' and '.join(readers_of[collection, key])
        lines.append(f"  {len(indices)} of the {len(data[collection])} {collection} have no{empty} '{key}' "
                     f'(e.g. {collection}[{indices[0]}]{ident}); read by {readers}. '
                     f"Fix: give every one of them '{key}': {fix}.")
    return lines


def _box(bbox) -> Optional[tuple]:
    if isinstance(bbox, (list, tuple)) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox):
        return tuple(bbox)
    return None


def _overlaps(box: tuple, img) -> bool:
    """Whether the box overlaps its image, as CocoDataset decides before reading 'area' (True when unknown)."""
    width, height = (img.get('width'), img.get('height')) if isinstance(img, dict) else (None, None)
    if not isinstance(width, (int, float)) or not isinstance(height, (int, float)):
        return True
    x, y, w, h = box
    return max(0, min(x + w, width) - max(x, 0)) * max(0, min(y + h, height) - max(y, 0)) > 0


def _is_l2vit(backbone) -> bool:
    return isinstance(backbone, dict) and str(backbone.get('type', '')).split('.')[-1] == 'L2ViT'


def neck_problems(cfg: Config) -> List[str]:
    """A neck whose ``in_channels`` do not match the widths of the L2ViT stages it receives."""
    model = cfg.get('model') or {}
    backbone, neck = model.get('backbone'), model.get('neck')
    if not _is_l2vit(backbone) or not isinstance(neck, dict) or not isinstance(neck.get('in_channels'), (list, tuple)):
        return []
    from ..models.backbone import L2ViT
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


def _num_classes_entries(model) -> List[tuple]:
    """(config key, value) of every int ``num_classes`` of the model's heads."""
    return [(f'{key}.num_classes', cfg['num_classes'])
            for key, cfg in config_dicts(model, 'model', skip=('train_cfg', 'test_cfg', 'data_preprocessor'))
            if isinstance(cfg.get('num_classes'), int)]


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


def preflight(cfg: Config, splits: Sequence[str], check_pretrained: bool = True) -> List[str]:
    """Everything wrong with the data, the weights and the model wiring that the given dataloaders
    (e.g. ``['train_dataloader', 'val_dataloader']``) need; an empty list when nothing is."""
    missing = missing_data(cfg, splits)
    problems = missing + (missing_pretrained(cfg) if check_pretrained else []) + neck_problems(cfg)
    if not missing:  # these read the dataset's files and metainfo, so only once they are there
        problems += coco_annotation_problems(cfg, splits)
        problems += num_classes_problems(cfg, splits[0]) if splits else []
    return problems
