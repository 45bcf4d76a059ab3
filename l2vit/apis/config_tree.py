"""Walking the nested dicts and lists of an mmengine config: the one walker, what a run reads (``run_inputs``: the
preflight's one walk) and the edits made with it."""
from typing import Collection, Iterator, List, NamedTuple, Sequence, Tuple


def as_list(value) -> List:
    """A config entry that may be one dict or a list of dicts, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def config_dicts(node, path: str = '', skip: Collection[str] = ()) -> Iterator[Tuple[str, dict]]:
    """Every dict in a config tree, depth first, each with its dotted key (``model.roi_head.bbox_head.0``); the
    values of the keys in ``skip`` are not entered. A dict may be changed in place while it is being walked, as long
    as no key is added or removed."""
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            if key not in skip:
                yield from config_dicts(value, f'{path}.{key}' if path else str(key), skip)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from config_dicts(value, f'{path}.{i}' if path else str(i), skip)


def dataset_leaves(dataset, path: str = '') -> Iterator[Tuple[str, dict]]:
    """(config key, dataset) of the datasets inside dataset wrappers (RepeatDataset, ConcatDataset,
    ClassBalancedDataset, ...)."""
    if not isinstance(dataset, dict):
        return
    if 'datasets' in dataset:
        for i, inner in enumerate(dataset['datasets']):
            yield from dataset_leaves(inner, f'{path}.datasets.{i}')
    elif 'dataset' in dataset:
        yield from dataset_leaves(dataset['dataset'], f'{path}.dataset')
    else:
        yield path, dataset


def leaf_datasets(dataset) -> List[dict]:
    """The datasets inside dataset wrappers, without their keys."""
    return [leaf for _, leaf in dataset_leaves(dataset)]


#: The class counts a head states, each with the dataset metainfo entries it counts, the first one present (none:
#: 0; an instance dataset has ``classes`` and no ``stuff_classes``).
CLASS_COUNTS = {'num_classes': ('classes',), 'num_things_classes': ('thing_classes', 'classes'),
                'num_stuff_classes': ('stuff_classes',)}


class RunInputs(NamedTuple):
    """What a run's dataloaders, evaluators and model read, each with its config key."""
    datasets: List[Tuple[str, str, dict]]  # (split, key, leaf dataset), e.g. ('train_dataloader', ..., {...})
    evaluators: List[Tuple[str, str, dict]]  # (split whose dataset it evaluates, key, metric config)
    pretrained: List[Tuple[str, str]]  # (key of an init_cfg checkpoint, checkpoint)
    num_classes: List[Tuple[str, int]]  # (key, value) of every int num_classes (and num_things_classes,
    # num_stuff_classes: mmdet's panoptic heads) of the model's heads


def run_inputs(cfg: dict, splits: Sequence[str]) -> RunInputs:
    """The one walk over what the dataloaders ``splits`` (with their evaluators) and the model of ``cfg`` read."""
    datasets, evaluators = [], []
    for split in splits:
        loader = cfg.get(split)
        if not loader:
            continue
        datasets += [(split, key, leaf) for key, leaf in dataset_leaves(loader.get('dataset'), f'{split}.dataset')]
        evaluator_key = split.replace('_dataloader', '_evaluator')
        metrics = as_list(cfg.get(evaluator_key))
        evaluators += [(split, f'{evaluator_key}.{i}' if len(metrics) > 1 else evaluator_key, metric)
                       for i, metric in enumerate(metrics) if isinstance(metric, dict)]
    model = cfg.get('model')
    num_classes = [(f'{key}.{name}', node[name])
                   for key, node in config_dicts(model, 'model', skip=('train_cfg', 'test_cfg', 'data_preprocessor'))
                   for name in CLASS_COUNTS if isinstance(node.get(name), int)]
    return RunInputs(datasets, evaluators, list(pretrained_checkpoints(model)), num_classes)


def is_pretrained(init) -> bool:
    """Whether an ``init_cfg`` entry loads a checkpoint (``type='Pretrained'``)."""
    return isinstance(init, dict) and init.get('type') == 'Pretrained'


def pretrained_checkpoints(node, path: str = 'model') -> Iterator[Tuple[str, str]]:
    """(config key, checkpoint) of every ``init_cfg=dict(type='Pretrained', checkpoint=...)`` under ``node``."""
    for key, cfg in config_dicts(node, path, skip=('init_cfg',)):
        for item in as_list(cfg.get('init_cfg')):
            if is_pretrained(item) and isinstance(item.get('checkpoint'), str):
                yield f'{key}.init_cfg.checkpoint', item['checkpoint']


def drop_pretrained(node) -> None:
    """Remove, in place, every ``init_cfg`` (and old-style ``pretrained``) under ``node`` that would load a file."""
    for _, cfg in config_dicts(node, skip=('init_cfg',)):
        init = cfg.get('init_cfg')
        if is_pretrained(init):
            cfg['init_cfg'] = None
        elif isinstance(init, list):
            cfg['init_cfg'] = [c for c in init if not is_pretrained(c)]
        if isinstance(cfg.get('pretrained'), str):
            cfg['pretrained'] = None


def sync_bn_to_bn(node, path: str = 'model') -> List[str]:
    """Turn every ``type='SyncBN'`` norm config under ``node`` into ``'BN'``, in place; return their config keys."""
    replaced = []
    for key, cfg in config_dicts(node, path):
        if cfg.get('type') == 'SyncBN':
            cfg['type'] = 'BN'
            replaced.append(key)
    return replaced
