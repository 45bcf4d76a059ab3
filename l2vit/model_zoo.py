"""The model zoo: ``model-index.yml`` and one ``metafile.yml`` per config folder, in OpenMMLab's format (mim reads the
index; mmpretrain's ``list_models``/``get_model`` read the classifiers; ``l2vit-train`` / ``l2vit-test`` and every
tool take a model's name for its config).

They are read from the package, where OpenMMLab's packages (mmdet, mmyolo) keep theirs: ``l2vit/.mim/`` holds
``configs/``, ``tools/`` and ``model-index.yml``. A wheel or ``pip install .`` copies them there, ``pip install -e .``
(``make setup``) links them to the checkout's (setup.py); metafile ``Config`` paths are relative to ``l2vit/.mim/``.
"""
import os
import os.path as osp
from functools import lru_cache
from typing import Dict, Optional

#: The model zoo's folder inside the package.
MIM_DIR = osp.join(osp.dirname(osp.abspath(__file__)), '.mim')
MODEL_INDEX = osp.join(MIM_DIR, 'model-index.yml')
CONFIG_DIR = osp.join(MIM_DIR, 'configs')
#: The ImageNet classifiers: the only models mmpretrain can build (the index also lists detectors and segmentors).
CLASSIFIER_METAFILE = osp.join(CONFIG_DIR, 'imagenet', 'metafile.yml')
#: Where the authors publish their checkpoints; every ``Weights`` and ``Pretrained`` URL of the zoo starts so.
RELEASE_URL = 'https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'


def missing_zoo_message() -> str:
    """What to do when ``l2vit/.mim`` is absent: l2vit imported from a source tree that was never installed."""
    return (f'the model zoo is not in the package ({MIM_DIR} is missing): this l2vit was imported from a source tree '
            f'that was not installed. Install it (pip install -e . or make setup links the checkout\'s configs there; '
            f'pip install . copies them), or give the config file\'s path.')


@lru_cache(maxsize=None)
def model_configs() -> Dict[str, str]:
    """{model name: the path of its config} of every entry of ``model-index.yml`` (empty without ``l2vit/.mim``)."""
    if not osp.isfile(MODEL_INDEX):
        return {}
    import yaml

    def read(path: str) -> dict:
        with open(path, encoding='utf-8') as f:
            return yaml.safe_load(f) or {}

    configs = {}
    for metafile in read(MODEL_INDEX).get('Import', []):
        for model in read(osp.join(MIM_DIR, metafile)).get('Models', []):
            configs[model['Name']] = osp.join(MIM_DIR, model['Config'])
    return configs


def find_config(name: str) -> Optional[str]:
    """The package's config for ``name``: a model of the index (``l2vit-t_in1k``) or a config file's name, with or
    without ``.py`` (``mask-rcnn_l2vit-t_fpn_1x_coco``), as ``mim train`` finds them; None when it is neither."""
    if name in model_configs():
        return model_configs()[name]
    if osp.dirname(name) or not osp.isdir(CONFIG_DIR):
        return None
    filename = name if name.endswith('.py') else f'{name}.py'
    for folder, dirs, files in os.walk(CONFIG_DIR, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith(('_', '.')))
        if filename in files:
            return osp.join(folder, filename)
    return None


def register_mmpretrain_models() -> bool:
    """Register the classifiers of ``configs/imagenet/metafile.yml`` in mmpretrain's ``ModelHub`` (for
    ``mmpretrain.list_models('l2vit*')`` and ``get_model(name, pretrained=True)``). Returns True when it registered
    them, False when every model was registered already or the package has no model zoo (``missing_zoo_message``)."""
    if not osp.isfile(CLASSIFIER_METAFILE):
        return False
    from mmpretrain.apis.model import ModelHub
    from modelindex.load_model_index import load
    names = [model.name.lower() for model in load(CLASSIFIER_METAFILE).models]
    if all(ModelHub.has(name) for name in names):
        return False
    # A name taken by another index (some, not all, of ours registered) makes ModelHub raise with both files named.
    ModelHub.register_model_index(CLASSIFIER_METAFILE, config_prefix=MIM_DIR)
    return True
