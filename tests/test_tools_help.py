"""Every script under tools/ answers ``--help``: exit code 0 and argparse's usage text, without building anything.

The scripts are found by globbing, so a new tool is covered without touching this file. They run one after the
other as ``__main__`` in one fresh interpreter (the libraries' imports, seconds each, are paid once), each with its
own ``sys.argv``, output and exit code.
"""
import json
import os

import pytest

from helpers import ROOT, tool

#: Runs each script given on its command line as ``SCRIPT --help``; prints {script: returncode, stdout, stderr}.
DRIVER = """
import contextlib, io, json, runpy, sys, traceback
results = {}
for script in sys.argv[1:]:
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = [script, '--help']
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_path(script, run_name='__main__')
        except SystemExit as exit:
            code = exit.code if isinstance(exit.code, int) else 1
        except BaseException:
            traceback.print_exc()
            code = 1
    results[script] = dict(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())
sys.stdout.write(json.dumps(results))
"""

TOOLS = ROOT / 'tools'


def scripts():
    """The runnable scripts: every ``tools/**/*.py`` with a ``__main__`` block, except private ``_*`` modules."""
    return sorted(p.relative_to(ROOT).as_posix() for p in TOOLS.rglob('*.py')
                  if not p.name.startswith('_') and "if __name__ == '__main__'" in p.read_text())


SCRIPTS = scripts()


@pytest.fixture(scope='module')
def helps(request):
    """``SCRIPT --help`` of every selected script, as ``__main__`` of one fresh interpreter."""
    selected = [item.callspec.params['script'] for item in request.session.items
                if getattr(item, 'module', None) is request.module and hasattr(item, 'callspec')
                and getattr(item, 'originalname', None) == 'test_help']
    result = tool('-c', DRIVER, *selected)
    return json.loads(result.stdout)


def test_the_scripts_are_found():
    assert len(SCRIPTS) >= 10, SCRIPTS
    assert {'tools/train.py', 'tools/test.py', 'tools/convert_official.py',
            'tools/analysis/benchmark.py'} <= set(SCRIPTS)
    assert not any(os.path.basename(s).startswith('_') for s in SCRIPTS)


@pytest.mark.parametrize('script', SCRIPTS)
def test_help(helps, script):
    result = helps[script]
    assert result['returncode'] == 0, f"{script} --help exited with {result['returncode']}:\n{result['stderr'][-3000:]}"
    assert result['stdout'].startswith('usage:'), result['stdout'][:500]
    assert 'Traceback' not in result['stderr'], result['stderr'][-3000:]
