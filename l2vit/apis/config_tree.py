"""Walking the nested dicts and lists of an mmengine config: the one walker, and the edits made with it."""
from typing import Collection, Iterator, List, Tuple


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


def leaf_datasets(dataset) -> List[dict]:
    """The datasets inside dataset wrappers (RepeatDataset, ConcatDataset, ClassBalancedDataset, ...)."""
    if not isinstance(dataset, dict):
        return []
    if 'datasets' in dataset:
        return [leaf for d in dataset['datasets'] for leaf in leaf_datasets(d)]
    if 'dataset' in dataset:
        return leaf_datasets(dataset['dataset'])
    return [dataset]


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
