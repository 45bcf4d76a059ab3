"""Every script under tools/ answers ``--help``: exit code 0 and argparse's usage text, without building anything.

The scripts are found by globbing, so a new tool is covered without touching this file. Their interpreters start
together (a few at a time, they mostly wait on imports), each parametrised test waiting for its own.
"""
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import ROOT, tool

TOOLS = ROOT / 'tools'


def scripts():
    """The runnable scripts: every ``tools/**/*.py`` with a ``__main__`` block, except private ``_*`` modules."""
    return sorted(p.relative_to(ROOT).as_posix() for p in TOOLS.rglob('*.py')
                  if not p.name.startswith('_') and "if __name__ == '__main__'" in p.read_text())


SCRIPTS = scripts()


@pytest.fixture(scope='module')
def helps(request):
    """``SCRIPT --help`` of every selected script, started at once in a fresh interpreter each (as a user runs
    them)."""
    selected = [item.callspec.params['script'] for item in request.session.items
                if getattr(item, 'module', None) is request.module and hasattr(item, 'callspec')
                and getattr(item, 'originalname', None) == 'test_help']
    with ThreadPoolExecutor(max_workers=min(4, max(2, os.cpu_count() or 2))) as pool:
        yield {script: pool.submit(tool, script, '--help', check=False) for script in selected}


def test_the_scripts_are_found():
    assert len(SCRIPTS) >= 10, SCRIPTS
    assert {'tools/train.py', 'tools/test.py', 'tools/convert_official.py',
            'tools/analysis/benchmark.py'} <= set(SCRIPTS)
    assert not any(os.path.basename(s).startswith('_') for s in SCRIPTS)


@pytest.mark.parametrize('script', SCRIPTS)
def test_help(helps, script):
    result = helps[script].result()
    assert result.returncode == 0, f'{script} --help exited with {result.returncode}:\n{result.stderr[-3000:]}'
    assert result.stdout.startswith('usage:'), result.stdout[:500]
    assert 'Traceback' not in result.stderr, result.stderr[-3000:]
