"""The model zoo: ``model-index.yml`` at the repository root and one ``metafile.yml`` per config folder, in
OpenMMLab's format (mim reads the index; mmpretrain's ``list_models``/``get_model`` read the classifiers).

The files live beside ``configs/`` in a source checkout or an editable install (``pip install -e .``); a wheel
installs neither, and then :func:`register_mmpretrain_models` registers nothing.
"""
import os.path as osp

#: The repository root: ``model-index.yml`` and ``configs/`` are here, and metafile ``Config`` paths are relative
#: to it (OpenMMLab's convention).
ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
MODEL_INDEX = osp.join(ROOT, 'model-index.yml')
#: The ImageNet classifiers: the only models mmpretrain can build (the index also lists detectors and segmentors).
CLASSIFIER_METAFILE = osp.join(ROOT, 'configs', 'imagenet', 'metafile.yml')
#: Where the authors publish their checkpoints; every ``Weights`` and ``Pretrained`` URL of the zoo starts so.
RELEASE_URL = 'https://github.com/ChuanyangZheng/L2ViT/releases/download/v1.0/'


def register_mmpretrain_models() -> bool:
    """Register the classifiers of ``configs/imagenet/metafile.yml`` in mmpretrain's ``ModelHub`` (for
    ``mmpretrain.list_models('l2vit*')`` and ``get_model(name, pretrained=True)``). Returns True when it registered
    them, False when every model was registered already or there is no metafile (a wheel install)."""
    if not osp.isfile(CLASSIFIER_METAFILE):
        return False
    from mmpretrain.apis.model import ModelHub
    from modelindex.load_model_index import load
    names = [model.name.lower() for model in load(CLASSIFIER_METAFILE).models]
    if all(ModelHub.has(name) for name in names):
        return False
    # A name taken by another index (some, not all, of ours registered) makes ModelHub raise with both files named.
    ModelHub.register_model_index(CLASSIFIER_METAFILE, config_prefix=ROOT)
    return True
