"""Checks run before a run starts: the data, the weights and the model wiring a config needs.

``preflight(cfg, splits)`` returns one message per problem, each naming what is wrong, the config key that names it
and the ``--cfg-options`` that fix it, instead of a stack trace from deep inside a library once training has started.
What only the libraries know is asked of them: each dataset is built through its library's registry and loaded
(``full_init``: the annotation file parsed whole, by the library's own code), the annotation loading of its pipeline
runs on every sample (without reading images or rasterizing masks), and each evaluator is built and evaluates one
probe prediction, so that an exception it would raise after the first epoch is raised here. Nothing is changed.
"""
import contextlib
import gc
import io
import json
import logging
import os.path as osp
import traceback
from typing import Dict, List, Optional, Sequence

from mmengine.config import Config

from .config_tree import CLASS_COUNTS, RunInputs, config_dicts, run_inputs

#: The expected on-disk layout per dataset type, shown when a dataset is missing.
DATASET_LAYOUTS = {
    'CocoDataset': ('COCO 2017', 'data/coco/\n'
                    '      annotations/instances_train2017.json\n'
                    '      annotations/instances_val2017.json\n'
                    '      train2017/*.jpg\n'
                    '      val2017/*.jpg'),
    'CocoPanopticDataset': ('COCO 2017 panoptic (panoptic_annotations_trainval2017.zip from cocodataset.org, its '
                            'inner zips unpacked into annotations/)',
                            'data/coco/\n'
                            '      annotations/panoptic_train2017.json   annotations/panoptic_train2017/*.png\n'
                            '      annotations/panoptic_val2017.json     annotations/panoptic_val2017/*.png\n'
                            '      train2017/*.jpg  val2017/*.jpg'),
    'ADE20KDataset': ('ADE20K (ADEChallengeData2016)', 'data/ade/ADEChallengeData2016/\n'
                      '      images/training/*.jpg       annotations/training/*.png\n'
                      '      images/validation/*.jpg     annotations/validation/*.png'),
    'ImageNet': ('ImageNet-1k', 'data/imagenet/\n'
                 '      train/<class>/*.JPEG  (or train/ + meta/train.txt)\n'
                 '      val/<class>/*.JPEG    (or val/ + meta/val.txt)'),
}


def preflight(cfg: Config, splits: Sequence[str], check_pretrained: bool = True) -> List[str]:
    """Everything wrong with the data, the weights and the model wiring that the given dataloaders
    (e.g. ``['train_dataloader', 'val_dataloader']``) need; an empty list when nothing is."""
    inputs = run_inputs(cfg, splits)
    missing = missing_data(inputs)
    packages = panopticapi_problems(inputs)
    problems = missing + packages + (missing_pretrained(inputs) if check_pretrained else []) + \
        wiring_problems(cfg) + training_config_problems(cfg)
    if not missing and not packages:  # the libraries read the files only once they (and their readers) are there
        problems += loading_problems(cfg, inputs)
    return problems


def panopticapi_problems(inputs: RunInputs) -> List[str]:
    """mmdet's COCO panoptic reading (``LoadPanopticAnnotations``) and PQ (``CocoPanopticMetric``) without
    panopticapi, which is not on the package index."""
    import importlib.util
    users = [f'{key}.pipeline ({step["type"]})' for _, key, node in inputs.datasets
             for step in node.get('pipeline') or [] if isinstance(step, dict)
             and str(step.get('type', '')).split('.')[-1] == 'LoadPanopticAnnotations']
    users += [f'{key} ({node["type"]})' for _, key, node in inputs.evaluators
              if str(node.get('type', '')).split('.')[-1] == 'CocoPanopticMetric']
    if not users or importlib.util.find_spec('panopticapi') is not None:
        return []
    return [f'panopticapi is not installed, and {", ".join(users)} need it (COCO panoptic annotations and PQ). It '
            f'is not on the package index: pip install git+https://github.com/cocodataset/panopticapi.git '
            f'(docs/mask2former.md).']


# ------------------------------------------------------------------------------------------- files and weights
def _join(root: str, path: str) -> str:
    return path if not root or osp.isabs(path) else osp.join(root, path)


def _ann_file(dataset: dict) -> Optional[str]:
    return _join(dataset.get('data_root') or '', dataset['ann_file']) if dataset.get('ann_file') else None


def missing_data(inputs: RunInputs) -> List[str]:
    """Describe every dataset file or folder the dataloaders need that does not exist."""
    problems = []  # (dataset type, split, what)
    for split, key, dataset in inputs.datasets:
        root = dataset.get('data_root') or ''
        needed = [(root, f'{key}.data_root')] if root else []
        if dataset.get('ann_file'):
            needed.append((_ann_file(dataset), f'{key}.ann_file'))
        prefix = dataset.get('data_prefix') or {}
        needed += [(_join(root, folder), f'{key}.data_prefix.{name}')
                   for name, folder in (prefix.items() if isinstance(prefix, dict) else []) if folder and
                   isinstance(folder, str)]
        absent = next((f'{path} ({where})' for path, where in needed if not osp.exists(path)), None)
        if absent:  # the first missing piece says enough for this dataset
            problems.append((str(dataset.get('type', 'dataset')).split('.')[-1], split, absent))
    for _, key, metric in inputs.evaluators:
        if metric.get('ann_file') and not osp.exists(metric['ann_file']):
            problems.append(('', key, f'{metric["ann_file"]} ({key}.ann_file)'))
    if not problems:
        return []
    lines = ['the dataset is missing:'] + [f'  {what}' for _, _, what in problems]
    for kind in dict.fromkeys(kind for kind, _, _ in problems):
        name, layout = DATASET_LAYOUTS.get(kind, (kind, None))
        if layout:
            lines.append(f'Expected layout for {name} (relative to the working directory):\n    {layout}')
    overrides = ' '.join(f'{where}.dataset.data_root=/path/to/data/' if where.endswith('_dataloader') else
                         f'{where}.ann_file=/path/to/annotations.json'
                         for where in dict.fromkeys(where for _, where, _ in problems))
    lines.append(f'Put the data there (a symlink is fine), or point elsewhere: --cfg-options {overrides}')
    return lines


def missing_pretrained(inputs: RunInputs) -> List[str]:
    """Describe every local pretrained-weights file named by an ``init_cfg`` that does not exist, or is not a
    checkpoint at all (a web page saved by a failed download: ``l2vit.checkpoint.describe_non_checkpoint``)."""
    from ..checkpoint import describe_non_checkpoint
    lines = []
    for key, checkpoint in inputs.pretrained:
        if '://' in checkpoint:
            continue
        if osp.isfile(checkpoint):
            not_checkpoint = describe_non_checkpoint(checkpoint)
            if not_checkpoint is None:
                continue
            header = (f'pretrained weights {checkpoint} ({key}) are not a PyTorch checkpoint (a failed download?): '
                      f'{not_checkpoint}')
        else:
            header = f'pretrained weights not found: {checkpoint} ({key})'
        init_key = key[:-len('.checkpoint')]
        lines += [header,
                  "  Download the authors' ImageNet checkpoint (L2ViT-<Tiny|Small|Base>-checkpoint-best-ema.pth, "
                  'their GitHub release) to that path: it is read as released (see README, "Pretrained weights"),',
                  '  or convert it first: python tools/convert_official.py '
                  f'L2ViT-<Tiny|Small|Base>-checkpoint-best-ema.pth {checkpoint},',
                  f'  or name the release URL: --cfg-options {key}=https://github.com/ChuanyangZheng/L2ViT/'
                  'releases/download/v1.0/L2ViT-Tiny-checkpoint-best-ema.pth,',
                  f'  or point elsewhere: --cfg-options {key}=/path/to/weights.pth,',
                  f'  or train from scratch: --cfg-options {init_key}=None']
    return lines


def _l2vit_into_neck(cfg: Config, neck_type: Optional[str] = None):
    """``(neck config, L2ViT embed_dims, out_indices, [])`` when the model's L2ViT backbone feeds a neck (of
    ``neck_type``) with listed ``in_channels``, by the backbone's own parse of its ``arch`` and ``out_indices``
    (nothing is built); ``(None, ..., [problem])`` when that parse fails; ``(None, None, None, [])`` otherwise."""
    model = cfg.get('model') or {}
    backbone, neck = model.get('backbone'), model.get('neck')
    if not isinstance(backbone, dict) or str(backbone.get('type', '')).split('.')[-1] != 'L2ViT' or \
            not isinstance(neck, dict) or not isinstance(neck.get('in_channels'), (list, tuple)) or \
            (neck_type is not None and str(neck.get('type', '')).split('.')[-1] != neck_type):
        return None, None, None, []
    from ..models.backbone import L2ViT
    try:
        dims = L2ViT.parse_arch(backbone.get('arch', 'tiny'))['embed_dims']
        out_indices = L2ViT.parse_out_indices(backbone.get('out_indices', (0, 1, 2, 3)))
    except ValueError as err:
        return None, None, None, [f'model.backbone: {err}']
    return neck, dims, out_indices, []


def neck_problems(cfg: Config) -> List[str]:
    """A neck whose ``in_channels`` do not match the widths of the L2ViT stages it receives."""
    neck, dims, out_indices, problems = _l2vit_into_neck(cfg)
    if neck is None:
        return problems
    expected = [dims[i] for i in out_indices]
    if list(neck['in_channels']) == expected:
        return []
    return [f'model.neck.in_channels is {list(neck["in_channels"])}, but the L2ViT backbone (embed_dims {dims}, '
            f'out_indices {out_indices}) outputs {expected} channels. Fix: --cfg-options '
            f'model.neck.in_channels="{expected}" (or change the backbone arch/out_indices).']


def wiring_problems(cfg: Config) -> List[str]:
    """The neck that does not fit the L2ViT stages it receives: a DETR-style ChannelMapper's levels, or any neck's
    widths (``l2vit.hooks.ConfigCheckHook`` runs this for the libraries' own tools, training or testing)."""
    return channel_mapper_problems(cfg) or neck_problems(cfg)


def training_config_problems(cfg: Config) -> List[str]:
    """What a config says inconsistently about training: a Mask2Former/MaskFormer ``class_weight`` for another
    class count, an ``image_size`` / ``crop_size`` restated without the crops and padding the base built from it
    (``l2vit.hooks.ConfigCheckHook`` runs this for the libraries' own tools when training starts)."""
    return mask_head_problems(cfg) + crop_size_problems(cfg)


def channel_mapper_problems(cfg: Config) -> List[str]:
    """A DETR-style detector (DINO, Deformable DETR) whose L2ViT ``out_indices``, ChannelMapper ``in_channels`` and
    ``num_outs`` and the transformer's feature levels do not fit together; mmdet would stop with a bare
    ``AssertionError`` in channel_mapper.py or a channel error at the first forward. Nothing is built."""
    neck, dims, out_indices, problems = _l2vit_into_neck(cfg, 'ChannelMapper')
    if neck is None:
        return problems
    model = cfg.get('model') or {}
    in_channels = list(neck['in_channels'])
    num_outs = neck.get('num_outs') or len(in_channels)
    levels = {'model.neck.num_outs': num_outs}
    if 'encoder' in model or 'num_feature_levels' in model:  # a deformable transformer: 4 levels unless stated
        levels['model.num_feature_levels'] = model.get('num_feature_levels', 4)
    for key, path in (('model.encoder.layer_cfg.self_attn_cfg.num_levels', ('encoder', 'self_attn_cfg')),
                      ('model.decoder.layer_cfg.cross_attn_cfg.num_levels', ('decoder', 'cross_attn_cfg'))):
        attn = ((model.get(path[0]) or {}).get('layer_cfg') or {}).get(path[1])
        if isinstance(attn, dict) and 'num_levels' in attn:
            levels[key] = attn['num_levels']
    expected = [dims[i] for i in out_indices]
    if in_channels == expected and len(set(levels.values())) == 1 and num_outs >= len(in_channels):
        return []
    # The usual layout: the last stages, and one extra level by a strided conv (4-scale: 1-3, 5-scale: 0-3).
    scales = max(levels.values()) if levels else num_outs
    stages = tuple(range(max(4 - (scales - 1), 0), 4)) if 2 <= scales <= 5 else out_indices
    fix = (f'"model.backbone.out_indices={stages}" "model.neck.in_channels={[dims[i] for i in stages]}" '
           + ' '.join(f'{key}={scales}' for key, value in levels.items() if value != scales))
    return [f'the backbone and the neck of this {scales}-level detector do not fit: model.backbone.out_indices '
            f'{tuple(out_indices)} gives {len(out_indices)} feature maps of {expected} channels (L2ViT embed_dims '
            f'{dims}), model.neck.in_channels is {in_channels}, feature levels: '
            + ', '.join(f'{key} {value}' for key, value in levels.items())
            + f'. A {scales}-scale DINO takes stages {stages} and adds one level. Fix: --cfg-options {fix.strip()} '
            '(see configs/dino/ for the 4-scale and 5-scale settings).']


# ---------------------------------------------------------------------------------- Mask2Former: classes, crop size
#: Heads whose classification loss has one class more than the head's classes ("no object"), weighted per class.
MASK_HEADS = ('Mask2FormerHead', 'MaskFormerHead')


def mask_head_problems(cfg: Config) -> List[str]:
    """What a Mask2Former/MaskFormer config (mmdet's or mmseg's) would only show mid-run or never: ``class_weight``
    lengths that do not match the head's classes, and an ``image_size`` that did not reach the crop and the padding."""
    heads = [head for _, head in config_dicts(cfg.get('model'), 'model')
             if str(head.get('type', '')).split('.')[-1] in MASK_HEADS]
    return (class_weight_problems(cfg) + image_size_problems(cfg)) if heads else []


def class_weight_problems(cfg: Config) -> List[str]:
    """A mask head's ``loss_cls.class_weight`` whose length is not its classes + 1 (the last weight is for "no
    object"): the cross-entropy fails at the first iteration with "weight tensor should be defined either for all N
    classes or no classes"."""
    problems = []
    for key, head in config_dicts(cfg.get('model'), 'model'):
        if str(head.get('type', '')).split('.')[-1] not in MASK_HEADS or not isinstance(head.get('loss_cls'), dict):
            continue
        weights = head['loss_cls'].get('class_weight')
        if 'num_things_classes' in head:  # mmdet: things + stuff
            num_classes = head['num_things_classes'] + head.get('num_stuff_classes', 0)
            counted = (f'num_things_classes {head["num_things_classes"]} + num_stuff_classes '
                       f'{head.get("num_stuff_classes", 0)}')
        else:  # mmseg
            num_classes, counted = head.get('num_classes'), f'num_classes {head.get("num_classes")}'
        if not isinstance(weights, (list, tuple)) or not isinstance(num_classes, int) or \
                len(weights) == num_classes + 1:
            continue
        fixed = '[' + ','.join(['1.0'] * num_classes + ['0.1']) + ']'
        problems.append(f'{key}.loss_cls.class_weight has {len(weights)} weights, but the head has {num_classes} '
                        f'classes ({counted}) and needs one weight per class plus the last for "no object" '
                        f'({num_classes + 1}); training would stop at the first loss. Fix (the recipe\'s weights): '
                        f'--cfg-options "{key}.loss_cls.class_weight={fixed}", or set it beside the class count in '
                        f'the config: class_weight=[1.0] * {num_classes} + [0.1].')
    return problems


def _size(value) -> Optional[tuple]:
    return tuple(value) if isinstance(value, (list, tuple)) else None


def image_size_problems(cfg: Config) -> List[str]:
    """A top-level ``image_size`` (the LSJ crop of mmdet's Mask2Former/DETR bases) that differs from the sizes the
    base derived from it when it was read: the train pipeline's ``RandomResize.scale``/``RandomCrop.crop_size`` and
    the batch padding (``model.data_preprocessor.batch_augments``). Restating ``image_size`` in a child changes none
    of them, silently."""
    size = _size(cfg.get('image_size'))
    if size is None:
        return []
    loader = cfg.get('train_dataloader') or {}
    dataset = loader.get('dataset') or {}
    pipeline = dataset.get('pipeline') or (dataset.get('dataset') or {}).get('pipeline') or []
    key = 'train_dataloader.dataset.' + ('pipeline' if dataset.get('pipeline') else 'dataset.pipeline')
    stale = [(f'{key}.{i}.{field}', _size(step.get(field))) for i, step in enumerate(pipeline)
             if isinstance(step, dict) for kind, field in (('RandomResize', 'scale'), ('RandomCrop', 'crop_size'))
             if step.get('type') == kind and _size(step.get(field)) is not None]
    augments = ((cfg.get('model') or {}).get('data_preprocessor') or {}).get('batch_augments') or []
    stale += [(f'model.data_preprocessor.batch_augments.{i}.size', _size(step.get('size')))
              for i, step in enumerate(augments) if isinstance(step, dict) and _size(step.get('size')) is not None]
    stale = [(k, v) for k, v in stale if v != size]
    if not stale:
        return []
    text = f'({size[0]},{size[1]})'
    found = ', '.join(f'{k} is {v}' for k, v in stale)
    return [f'image_size is {size}, but {found}: the base config applied its own image_size to them when it was '
            'read, so restating image_size alone changes nothing. Fix: restate them too, e.g. --cfg-options ' +
            ' '.join(f'{k}={text}' for k, _ in stale) + '.']


# ------------------------------------------------------------------------------------- the libraries' own loading
def loading_problems(cfg: Config, inputs: RunInputs) -> List[str]:
    """Build and load every dataset and evaluator with its library, as the Runner would, and report what they raise;
    then compare the heads' ``num_classes`` with the classes of the first split's dataset."""
    from mmengine.registry import DATASETS, METRICS, TRANSFORMS
    users: Dict[str, List[str]] = {}  # annotation file -> the config keys that name it
    for path, key in [(_ann_file(node), key) for _, key, node in inputs.datasets] + \
            [(node.get('ann_file'), key) for _, key, node in inputs.evaluators]:
        if isinstance(path, str) and path:
            users.setdefault(path, []).append(f'{key}.ann_file')
    failed = {}  # annotation file (or dataset key) -> its problem
    metainfo = {}  # split -> the metainfo of its first dataset
    with DATASETS.switch_scope_and_registry(cfg.get('default_scope')) as datasets, _loading():
        for split, key, node in inputs.datasets:
            path = _ann_file(node)
            if (path or key) in failed:
                continue
            what = f"{cfg.get('default_scope')}'s {node.get('type')}"
            try:
                dataset = datasets.build(_unserialized(node, datasets))
                if hasattr(dataset, 'full_init'):
                    dataset.full_init()
            except Exception as err:
                failed[path or key] = _failure(path, users.get(path, [key]), f'{what} ({key}) stops loading it', err)
                continue
            if len(dataset) == 0:
                failed[path or key] = (f'{path or key} ({", ".join(users.get(path, [key]))}): {what} finds no '
                                       f'samples in it{_classes_note(dataset)}. Fix: --cfg-options '
                                       f'{key}.ann_file=/path/to/annotations.json (or the classes in its metainfo).')
                continue
            metainfo.setdefault(split, dataset.metainfo)
            problem = _annotation_problem(dataset, node, key, path, users, TRANSFORMS)
            if problem:
                failed[path or key] = problem
        for split, key, node in inputs.evaluators:
            path = node.get('ann_file')
            if path in failed or split not in metainfo:
                continue
            try:
                metric = METRICS.build(node)
                metric.dataset_meta = metainfo[split]  # as the Runner sets it
                _probe(metric)
            except Exception as err:
                failed[path or key] = _failure(path, users.get(path, [key]), f'{node.get("type")} ({key}) stops on '
                                               f'it (loading it, or evaluating one probe prediction as after each '
                                               f'validation)', err)
    problems = list(failed.values())
    if inputs.datasets and inputs.datasets[0][0] in metainfo:
        problems += num_classes_problems(inputs, metainfo[inputs.datasets[0][0]])
    return problems


def _unserialized(node: dict, registry) -> dict:
    """The dataset config, for an mmengine ``BaseDataset`` with ``serialize_data=False``: its samples are checked in
    place, not pickled into one buffer (which ends with a ``gc.collect()``, 0.3 s in a large process)."""
    from mmengine.dataset import BaseDataset
    kind = node.get('type')
    kind = registry.get(kind) if isinstance(kind, str) else kind
    return dict(node, serialize_data=False) if isinstance(kind, type) and issubclass(kind, BaseDataset) else node


@contextlib.contextmanager
def _loading():
    """While the libraries load: without their progress prints and log lines ('loading annotations into
    memory...'), and without the cyclic garbage collector, which otherwise takes half of the time of parsing a large
    annotation file (its millions of new objects trigger collections that traverse them all; refcounting still
    frees them)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level, collecting = logger.level, gc.isenabled()
    logger.setLevel(logging.ERROR)
    gc.disable()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
        if collecting:
            gc.enable()


def _annotation_problem(dataset, node: dict, key: str, path: Optional[str], users, transforms) -> Optional[str]:
    """Run the annotation loading of the dataset's pipeline (mmdet's ``LoadAnnotations(with_mask=True)``; its masks
    kept as polygons, no file read) on every sample, as training would one batch at a time."""
    for i, step in enumerate(node.get('pipeline') or []):
        if not (isinstance(step, dict) and step.get('with_mask')):
            continue
        try:
            load = transforms.build(dict(step, poly2mask=False, with_seg=False))
        except Exception:  # not mmdet's LoadAnnotations (no such options): its own build is the Runner's
            continue
        # Unserialized (see _unserialized), the samples are read in place, not deep-copied: the dataset is dropped.
        samples = dataset.data_list if getattr(dataset, 'serialize_data', True) is False else map(
            dataset.get_data_info, range(len(dataset)))
        for index, info in enumerate(samples):
            try:
                load(dict(info, ori_shape=(info.get('height'), info.get('width'))))
            except Exception as err:
                sample = info.get('img_path') or info.get('img_id') or index
                return _failure(path, users.get(path, [key]), f'{step["type"]} ({key}.pipeline.{i}) stops on sample '
                                f'{index} ({sample})', err, pipeline_fix=f'{key}.pipeline.{i}.with_mask=False')
    return None


def _probe(metric) -> None:
    """Evaluate one prediction (a 1-pixel mask, or box, of the first class in the first image) with the COCOeval an
    mmdet ``CocoMetric`` evaluates with, on its classes' categories and every image, as after each validation: it
    reads every ground-truth entry's area and iscrowd (for 'segm' also the segmentation and the image's size). To
    cost about one reading of the file it runs once ('segm' when asked: it reads what 'bbox' reads), over one area
    range, and per image rather than per image and category (``useCats=0``: then segmentations of categories that
    are not among the classes are read too)."""
    coco = getattr(metric, '_coco_api', None)
    if coco is None or metric.format_only:
        return
    import numpy as np
    from mmdet.datasets.api_wrappers import COCOeval
    from pycocotools import mask as mask_utils
    classes = metric.dataset_meta['classes']
    cat_ids = coco.get_cat_ids(cat_names=classes)
    image = next(iter(coco.imgs.values()), None)
    if image is None or not cat_ids:
        raise ValueError(f'it has no images, or none of the classes {tuple(classes)[:8]} among its categories')
    probe = dict(image_id=image.get('id'), category_id=cat_ids[0], score=1.0, bbox=[0., 0., 1., 1.])
    iou_type = 'segm' if 'segm' in metric.metrics else 'bbox'
    if iou_type == 'segm':
        mask = np.zeros((image.get('height') or 1, image.get('width') or 1), np.uint8, order='F')
        mask[0, 0] = 1
        rle = mask_utils.encode(mask)
        probe = dict(probe, segmentation=dict(size=rle['size'], counts=rle['counts'].decode()))
        del probe['bbox']
    evaluation = COCOeval(coco, coco.loadRes([probe]), iou_type)
    evaluation.params.catIds, evaluation.params.imgIds = cat_ids, coco.get_img_ids()
    evaluation.params.areaRng, evaluation.params.areaRngLbl = evaluation.params.areaRng[:1], ['all']
    evaluation.params.useCats = 0
    evaluation.evaluate()


def _failure(path: Optional[str], keys: List[str], reader: str, err: Exception, pipeline_fix: str = '') -> str:
    """One message: the file and the config keys naming it, who stopped on it with which exception, and where."""
    frame = traceback.extract_tb(err.__traceback__)[-1]
    source, line = frame.filename.split('site-packages/')[-1], ' '.join((frame.line or '').split())
    what = f'{path} ({", ".join(keys)})' if path else keys[0]
    lines = [f'{what}: {reader}: {type(err).__name__}: {err} '
             f'(raised in {source}:{frame.lineno}, {frame.name}: `{line}`)']
    if isinstance(err, KeyError) and path and not pipeline_fix:  # the pipeline reads the dataset's samples
        lines += _lacking(path, err)
    fixes = [pipeline_fix] if pipeline_fix else []
    fixes += [f'{k}=/path/to/annotations.json' for k in keys if k.endswith('ann_file')]
    lines.append(f'  Fix the file, or: --cfg-options {" ".join(fixes)}' if fixes else '  Fix the dataset.')
    return '\n'.join(lines)


def _lacking(path: str, err: KeyError) -> List[str]:
    """Which entries of the JSON annotation file lack the key of ``err``: those of the list whose entry the library
    was reading when it raised (a dict among the locals of the innermost frame). The file is read again, only
    once something stopped on it."""
    key, frame = err.args[0], err.__traceback__
    while frame.tb_next:
        frame = frame.tb_next
    read = [v for v in frame.tb_frame.f_locals.values() if isinstance(v, dict) and key not in v]
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return []
    lines = []
    for name, entries in (data.items() if isinstance(data, dict) else []):
        lacking = [i for i, e in enumerate(entries if isinstance(entries, list) else [])
                   if isinstance(e, dict) and key not in e]
        if any(set(entries[i]) <= set(d) and entries[i].get('id') == d.get('id') for i in lacking for d in read):
            first = entries[lacking[0]]
            ident = f', id {first["id"]}' if 'id' in first else ''
            lines.append(f"  {len(lacking)} of the {len(entries)} {name} have no '{key}' (e.g. {name}[{lacking[0]}]"
                         f'{ident}): give every one of them one.')
    if not lines and isinstance(data, dict) and key not in data:
        lines.append(f"  The file has no '{key}' (its top-level keys: {sorted(data)[:10]}).")
    return lines


def _classes_note(dataset) -> str:
    classes = (dataset.metainfo or {}).get('classes')
    return f' of the classes {tuple(classes)[:8]}' if classes else ''


def num_classes_problems(inputs: RunInputs, metainfo: dict) -> List[str]:
    """Heads whose ``num_classes`` (or a panoptic head's ``num_things_classes`` / ``num_stuff_classes``) differ from
    the classes of the first dataset the run reads."""
    metainfo = metainfo or {}
    if not metainfo.get('classes'):
        return []
    wrong = []  # (key, value, the dataset's classes it counts, their metainfo entry)
    for key, value in inputs.num_classes:
        entries = CLASS_COUNTS[key.rsplit('.', 1)[-1]]
        entry = next((e for e in entries if e in metainfo), entries[0])
        names = tuple(metainfo.get(entry) or ())
        if value != len(names):
            wrong.append((key, value, names, entry))
    if not wrong:
        return []
    _, dataset_key, dataset = inputs.datasets[0]
    counted = []
    for entry, names in {entry: names for _, _, names, entry in wrong}.items():
        shown = ', '.join(names[:8]) + (', ...' if len(names) > 8 else '')
        counted.append(f'{len(names)} {entry} ({shown})' if names else f'no {entry}')
    fixes = ' '.join(f'{key}={len(names)}' for key, _, names, _ in wrong)
    return [f'{", ".join(f"{key} is {value}" for key, value, _, _ in wrong)}, but the dataset ({dataset_key}, '
            f'{dataset.get("type")}) has {" and ".join(counted)}. Fix: --cfg-options {fixes} '
            f'(or give the dataset the classes of your model through its metainfo).']


# ------------------------------------------------------------------------------------------ Mask2Former's traps
#: The versions of the OpenMMLab libraries we support (setup.cfg's extras), for the install hint.
LIBRARY_REQUIREMENTS = {'mmdet': 'mmdet>=3.3.0,<3.4', 'mmseg': 'mmsegmentation>=1.2.2,<1.3',
                        'mmpretrain': 'mmpretrain>=1.2.0,<1.3'}


def missing_library_problem(path: str, err: ImportError) -> Optional[str]:
    """The message for a config whose ``custom_imports`` fail because one of the OpenMMLab libraries is not
    importable (mmseg's Mask2Former head is built from mmdet's components, for one); None for another import error.

    ``err`` is what ``Config.fromfile`` raised: mmengine wraps the library's ``ModuleNotFoundError``."""
    cause = err
    while cause is not None and not isinstance(cause, ModuleNotFoundError):
        cause = cause.__cause__ or cause.__context__
    library = str(getattr(cause, 'name', '') or '').split('.')[0]
    if library not in LIBRARY_REQUIREMENTS:
        return None
    return (f'{path} needs {library}, which cannot be imported ({cause}): its custom_imports import it (mmseg\'s '
            f'Mask2Former head, for one, is built from mmdet\'s components). Fix: pip install '
            f'"{LIBRARY_REQUIREMENTS[library]}" (the versions we support), or run with a config that does not need it.')


def crop_size_problems(cfg: Config) -> List[str]:
    """A top-level ``crop_size`` (mmseg's configs) that differs from the sizes it was used for when the base was
    read: the data preprocessor's ``size`` and the training pipeline's ``RandomCrop``. A child config restating
    ``crop_size`` alone changes neither (mmengine evaluates each base once), so the run would silently crop and pad
    to the base's size."""
    crop_size = cfg.get('crop_size')
    if not isinstance(crop_size, (list, tuple)):
        return []
    crop_size = tuple(crop_size)
    used = []  # (key, size) where the crop size should have gone
    preprocessor = (cfg.get('model') or {}).get('data_preprocessor') or {}
    if isinstance(preprocessor.get('size'), (list, tuple)):
        used.append(('model.data_preprocessor.size', tuple(preprocessor['size'])))
    dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
    for i, step in enumerate(dataset.get('pipeline') or []):
        if isinstance(step, dict) and str(step.get('type', '')).split('.')[-1] == 'RandomCrop' and \
                isinstance(step.get('crop_size'), (list, tuple)):
            used.append((f'train_dataloader.dataset.pipeline[{i}] (RandomCrop) crop_size', tuple(step['crop_size'])))
    wrong = [f'{key} is {size}' for key, size in used if size != crop_size]
    if not wrong:
        return []
    return [f'crop_size is {crop_size}, but {" and ".join(wrong)}: restating crop_size in a config does not change '
            f'what its base built from it. Fix: restate them in the config too, e.g. '
            f'model = dict(data_preprocessor=dict(size=crop_size)) and the train pipeline with '
            f'dict(type=\'RandomCrop\', crop_size=crop_size, ...) (or set crop_size back to what they are).']
