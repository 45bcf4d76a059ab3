"""The package's model zoo, laid out as OpenMMLab's packages do (mmdet, mmyolo): ``l2vit/.mim/`` holds ``configs/``,
``tools/`` and ``model-index.yml``, which mim, ``l2vit.model_zoo`` and the ``l2vit-train`` / ``l2vit-test`` entry
points read. A wheel (``pip install .``, ``pip wheel .``) gets copies of them; an editable install
(``pip install -e .``, ``make setup``) gets links to the checkout's, so that edits show at once. Everything else is in
setup.cfg."""
import os
import os.path as osp
import shutil
from fnmatch import fnmatch

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = osp.dirname(osp.abspath(__file__))
#: What goes into ``l2vit/.mim/``, and which files of its folders.
MIM_FILES = {'configs': ('*.py', '*.yml'), 'tools': ('*.py', '*.sh'), 'model-index.yml': None}


def link_mim_files(package_dir: str) -> None:
    """``package_dir/.mim/NAME`` -> the checkout's ``NAME`` (relative links), replacing what was there."""
    mim = osp.join(package_dir, '.mim')
    os.makedirs(mim, exist_ok=True)
    for name in MIM_FILES:
        dest = osp.join(mim, name)
        if osp.islink(dest) or osp.isfile(dest):
            os.remove(dest)
        elif osp.isdir(dest):
            shutil.rmtree(dest)
        os.symlink(osp.relpath(osp.join(ROOT, name), mim), dest)


def _only(patterns):
    """A ``shutil.copytree`` ignore: every file that matches none of ``patterns``, and ``__pycache__``."""

    def ignore(folder, names):
        return [n for n in names if n == '__pycache__' or (osp.isfile(osp.join(folder, n))
                                                           and not any(fnmatch(n, p) for p in patterns))]

    return ignore


def copy_mim_files(package_dir: str) -> None:
    """Copies of the checkout's (or sdist's) model zoo files in ``package_dir/.mim/``."""
    mim = osp.join(package_dir, '.mim')
    shutil.rmtree(mim, ignore_errors=True)
    os.makedirs(mim)
    for name, patterns in MIM_FILES.items():
        src = osp.join(ROOT, name)
        if patterns is None:
            shutil.copy2(src, mim)
            continue

        shutil.copytree(src, osp.join(mim, name), ignore=_only(patterns))


class BuildPyWithMim(build_py):
    """``build_py`` that also puts the model zoo into ``l2vit/.mim``: copied into the wheel's build folder, or, for an
    editable install, linked in the checkout (where the editable ``l2vit`` is imported from)."""

    def run(self):
        super().run()
        if self.editable_mode:
            link_mim_files(osp.join(ROOT, 'l2vit'))
        else:
            copy_mim_files(osp.join(self.build_lib, 'l2vit'))


# pip and setuptools run this file as __main__. Imported, it only defines the functions: a checkout used without
# being installed (PYTHONPATH=.) gets its links with `python -c "import setup; setup.link_mim_files('l2vit')"`.
if __name__ == '__main__':
    setup(cmdclass={'build_py': BuildPyWithMim})
