"""The package installed as OpenMMLab's are (setup.py): the configs, tools and model index in ``l2vit/.mim/``, the
``l2vit-train`` / ``l2vit-test`` entry points, a config found by its model's name, mmpretrain's ``list_models`` /
``get_model``. In the checkout (the editable install) ``l2vit/.mim`` links to the checkout's files; a wheel, built
from a copy of the source and installed into a fresh environment apart from the checkout, carries copies, and
everything runs from another folder with the checkout nowhere on the path.
"""
import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, source_copy, warning_lines
from l2vit import model_zoo

MIM_FILES = ('configs', 'tools', 'model-index.yml')


def index_entries() -> dict:
    """{model name: config path relative to the checkout} of model-index.yml, read with plain YAML."""
    entries = {}
    for metafile in yaml.safe_load((ROOT / 'model-index.yml').read_text())['Import']:
        for model in yaml.safe_load((ROOT / metafile).read_text())['Models']:
            entries[model['Name']] = model['Config']
    return entries


def classifier_entries() -> dict:
    return {m['Name']: m for m in yaml.safe_load((ROOT / 'configs/imagenet/metafile.yml').read_text())['Models']}


# ------------------------------------------------------------------------------------------------- the checkout
def test_editable_install_links_the_checkouts_files():
    """``make setup`` (``pip install -e .``) links ``l2vit/.mim/*`` to the checkout, so edits show at once."""
    mim = Path(model_zoo.MIM_DIR)
    assert mim.is_dir(), model_zoo.missing_zoo_message()
    for name in MIM_FILES:
        assert (mim / name).is_symlink() and (mim / name).resolve() == ROOT / name, name


def test_a_model_name_finds_its_config():
    """``find_config`` (what every tool's CONFIG goes through) takes a model's name or a config file's name."""
    entries = index_entries()
    assert {name: model_zoo.find_config(name) for name in entries} == {
        name: str(Path(model_zoo.MIM_DIR) / config) for name, config in entries.items()}
    assert Path(model_zoo.find_config('mask-rcnn_l2vit-demo_synthetic')).resolve() == \
        ROOT / 'configs/demo/mask-rcnn_l2vit-demo_synthetic.py'
    assert model_zoo.find_config('mask-rcnn_l2vit-demo_synthetic.py') == \
        model_zoo.find_config('mask-rcnn_l2vit-demo_synthetic')
    assert model_zoo.find_config('l2vit-no-such-model') is None
    assert model_zoo.find_config('l2vit_no_decay') is None  # bases (configs/_base_) are not configs to run


def test_an_unknown_name_says_where_it_was_looked_up():
    from l2vit.apis import read_config
    from l2vit.errors import ToolError
    with pytest.raises(ToolError, match=r'config file not found: l2vit-x_in1k \(neither a file nor a model'):
        read_config('l2vit-x_in1k')


# ------------------------------------------------------------------------------------------------------ a wheel
@pytest.fixture(scope='module')
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel .`` builds from a copy of the source (offline, with this environment's setuptools)."""
    tmp = tmp_path_factory.mktemp('wheel')
    src = source_copy(tmp / 'src')
    result = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps', '--no-build-isolation',
                             '--no-index', '-w', str(tmp / 'dist'), str(src)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    wheels = list((tmp / 'dist').glob('l2vit_openmmlab-*.whl'))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.fixture(scope='module')
def installed(wheel, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed (no deps): it sees this environment's packages (torch, mmcv, the
    OpenMMLab libraries) through a .pth file, but not the editable l2vit (whose own .pth is not read there), and the
    checkout is not on its path. Returns its python, its bin folder, a folder to run in and the environment."""
    tmp = tmp_path_factory.mktemp('installed')
    venv = tmp / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', '--without-pip', str(venv)], check=True)
    python = venv / 'bin' / 'python'
    purelib = subprocess.run([str(python), '-c', 'import sysconfig; print(sysconfig.get_paths()["purelib"])'],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, 'l2vit-test-shared-env.pth').write_text(sysconfig.get_paths()['purelib'] + '\n')
    result = subprocess.run([sys.executable, '-m', 'pip', '--python', str(python), 'install', '-q', '--no-deps',
                             '--no-index', str(wheel)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONWARNINGS')}
    elsewhere = tmp / 'elsewhere'
    elsewhere.mkdir()
    return dict(python=str(python), bin=venv / 'bin', purelib=Path(purelib), cwd=elsewhere,
                env=dict(env, OMP_NUM_THREADS='1'))


def run_in(installed: dict, *args, check_code=0) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=installed['cwd'], env=installed['env'], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == check_code, (result.returncode, result.stdout[-3000:], result.stderr[-3000:])
    return result


@pytest.mark.slow
def test_the_wheel_carries_the_model_zoo_and_the_entry_points(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith('.dist-info/entry_points.txt'))
    wanted = {'l2vit/.mim/model-index.yml', 'l2vit/.mim/tools/train.py', 'l2vit/.mim/tools/test.py',
              'l2vit/.mim/tools/dist_train.sh', 'l2vit/.mim/configs/_base_/l2vit_no_decay.py',
              *(f'l2vit/.mim/{config}' for config in index_entries().values())}
    assert not wanted - names, sorted(wanted - names)
    assert not [n for n in names if '__pycache__' in n or n.endswith('.pyc')]
    assert 'l2vit-train = l2vit.apis.cli:cli_train' in entry_points
    assert 'l2vit-test = l2vit.apis.cli:cli_test' in entry_points


@pytest.mark.slow
def test_installed_wheel_lists_and_builds_the_models_from_another_folder(installed):
    """mmpretrain's ``list_models`` / ``get_model`` and ``l2vit.model_zoo`` read the installed package's files, with
    no warning printed."""
    code = ('import json, l2vit, mmpretrain, mmpretrain_l2vit\n'
            'from l2vit import model_zoo\n'
            'from mmpretrain.apis.model import ModelHub\n'
            "model = mmpretrain.get_model('l2vit-t_in1k')\n"
            "print(json.dumps(dict(l2vit=l2vit.__file__, listed=mmpretrain.list_models('l2vit*'),\n"
            "                      config=ModelHub.get('l2vit-t_in1k').config.filename,\n"
            '                      params=sum(p.numel() for p in model.parameters()),\n'
            '                      zoo=model_zoo.model_configs())))\n')
    result = run_in(installed, installed['python'], '-c', code)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    package = installed['purelib'] / 'l2vit'
    assert Path(found['l2vit']).parent == package, 'l2vit was not imported from the wheel'
    classifiers = classifier_entries()
    assert sorted(found['listed']) == sorted(classifiers)
    config = Path(found['config'])
    assert config == package / '.mim' / classifiers['l2vit-t_in1k']['Config'] and not config.is_symlink()
    assert found['params'] == classifiers['l2vit-t_in1k']['Metadata']['Parameters']
    assert found['zoo'] == {name: str(package / '.mim' / path) for name, path in index_entries().items()}
    assert not warning_lines(result.stdout + result.stderr), result.stderr[-3000:]


@pytest.mark.slow
def test_installed_entry_points_take_a_model_name(installed):
    """``l2vit-train`` / ``l2vit-test`` are tools/train.py / test.py; a model's name finds its config in the
    package. Without the dataset, the run stops before building anything, naming the config and the missing data."""
    for command in ('l2vit-train', 'l2vit-test'):
        usage = run_in(installed, installed['bin'] / command, '--help').stdout
        assert usage.startswith(f'usage: {command} ') and 'name of a model of the zoo' in usage, usage[:500]
    result = run_in(installed, installed['bin'] / 'l2vit-train', 'mask-rcnn_l2vit-t_fpn_1x_coco', '--work-dir',
                    installed['cwd'] / 'work', check_code=2)
    assert 'data/coco' in result.stderr and 'Traceback' not in result.stderr, result.stderr[-3000:]
    result = run_in(installed, installed['bin'] / 'l2vit-train', 'l2vit-x_in1k', check_code=2)
    assert 'config file not found: l2vit-x_in1k (neither a file nor a model' in result.stderr, result.stderr


@pytest.mark.slow
def test_installed_package_trains_through_mim(installed):
    """``mim train l2vit-openmmlab CONFIG`` finds the package's copy of tools/train.py and the config by its file
    name (mim reads ``l2vit/.mim``; an installed wheel, not an editable install, whose files mim looks for in
    site-packages). Without the dataset, our train.py stops with its message, which mim passes on."""
    pytest.importorskip('mim')
    result = run_in(installed, installed['python'], '-m', 'mim', 'train', 'l2vit-openmmlab',
                    'mask-rcnn_l2vit-t_fpn_1x_coco.py', '--work-dir', installed['cwd'] / 'mim_work', check_code=1)
    package = installed['purelib'] / 'l2vit' / '.mim'
    assert str(package / 'tools' / 'train.py') in result.stdout, result.stdout[-3000:]
    assert str(package / 'configs' / 'mask_rcnn' / 'mask-rcnn_l2vit-t_fpn_1x_coco.py') in result.stdout
    assert 'error: the dataset is missing' in result.stderr, result.stderr[-3000:]
