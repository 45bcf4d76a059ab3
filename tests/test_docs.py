"""Every fenced code block of README.md and docs/*.md is run here, or checked as far as it can be without data.

- Python config snippets (only assignments) are written to a file, merged onto the ``_base_`` they name (a snippet
  without ``_base_`` continues the config block above it on its page) and built: the model as the Runner builds it and,
  when the snippet has an ``optim_wrapper``, the optimizer wrapper by mmengine's ``build_optim_wrapper``.
- Other Python blocks run as scripts.
- Shell blocks run command by command: our tools with the arguments written, in this process (``helpers.run_main``),
  with ``work_dirs/`` moved to a temporary folder.
- A block preceded by ``<!-- not run: REASON -->`` (data, GPUs, internet or minutes it needs) is not run: each of its
  commands is checked instead (the tool's own argument parser accepts the arguments, the configs named build, make
  targets and scripts exist). An unmarked block that cannot run (placeholders such as ``CONFIG``, or an unknown
  command) fails with what to do.
"""
import argparse
import ast
import configparser
import re
import shlex
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import List, Optional
from unittest import mock

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

from helpers import ROOT, load_config, run_main
from l2vit.apis import build_model
from l2vit.model_zoo import find_config

PAGES = [ROOT / 'README.md', *sorted((ROOT / 'docs').glob('*.md'))]
OPEN_FENCE = re.compile(r'^( *)```(\S*)\s*$')
CLOSE_FENCE = re.compile(r'^ *```\s*$')
NOT_RUN = re.compile(r'^<!--\s*not run:\s*(\S.*?)\s*-->$')
#: Placeholders in commands of blocks that are not run, and what the argument parsers get for them.
PLACEHOLDERS = {'CONFIG': 'configs/maskrcnn_l2vit.py', 'CKPT': 'work_dirs/docs.pth', 'CHECKPOINT': 'work_dirs/docs.pth',
                'IMAGE': 'demo.jpg', 'ITERS': '2', 'DIR': 'work_dirs/docs', 'PARTITION': 'p', 'JOB_NAME': 'j'}
ENV_ASSIGNMENT = re.compile(r'^[A-Z_][A-Z0-9_]*=\S*$')


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    text: str
    not_run: Optional[str]  # the marker's reason

    @property
    def id(self) -> str:
        return f'{self.page.relative_to(ROOT)}:{self.line}'


def read_blocks(page: Path) -> List[Block]:
    lines, blocks, i = page.read_text(encoding='utf-8').splitlines(), [], 0
    while i < len(lines):
        opening = OPEN_FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        end = next((j for j in range(i + 1, len(lines)) if CLOSE_FENCE.match(lines[j])), None)
        assert end is not None, f'{page.relative_to(ROOT)}:{i + 1}: a code block that is never closed'
        indent = len(opening.group(1))
        marker = NOT_RUN.match(lines[i - 1].strip()) if i else None
        blocks.append(Block(page, i + 1, opening.group(2), '\n'.join(x[indent:] for x in lines[i + 1:end]),
                            marker.group(1) if marker else None))
        i = end + 1
    return blocks


BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def commands(text: str) -> List[List[str]]:
    """A shell block's commands as argument lists: comments dropped, continuation lines joined, ``&&`` split."""
    joined = re.sub(r'\\\n\s*', ' ', text)
    found = []
    for line in joined.splitlines():
        for part in re.split(r'\s*&&\s*', line):
            words = shlex.split(part, comments=True)
            while words and ENV_ASSIGNMENT.match(words[0]):
                words = words[1:]
            if words:
                found.append(words)
    return found


def is_config_snippet(text: str) -> bool:
    return all(isinstance(node, ast.Assign) for node in ast.parse(text).body)


# --------------------------------------------------------------------------------------------------- configs
@lru_cache(maxsize=None)
def _built(path: str):
    cfg = load_config(Path(path))
    return cfg, build_model(cfg, pretrained=False)


def build_config(cfg: Config):
    """The model as the Runner builds it (no weights fetched) and, if the config has one, its optimizer wrapper."""
    model = build_model(cfg, pretrained=False)
    wrapper = None
    if cfg.get('optim_wrapper') is not None:
        with DefaultScope.overwrite_default_scope(cfg.default_scope):
            wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    return model, wrapper


def resolve_base(text: str) -> str:
    """A relative ``_base_`` ('./x.py', as in a folder of configs/) made absolute: the one file of that name there."""
    def absolute(match):
        name = Path(match.group(2)).name
        found = sorted((ROOT / 'configs').rglob(name))
        assert len(found) == 1, f'_base_ {match.group(2)!r}: {len(found)} files of that name in configs/'
        return f'{match.group(1)}{found[0]}{match.group(3)}'
    return re.sub(r"""(_base_\s*=\s*['"])(\.{1,2}/[^'"]+)(['"])""", absolute, text)


def config_text(block: Block) -> str:
    """The snippet, after the config blocks above it on its page when it names no ``_base_``."""
    if '_base_' in block.text:
        return resolve_base(block.text)
    before = [b for b in BLOCKS if b.page == block.page and b.line < block.line and b.lang == 'python'
              and is_config_snippet(b.text)]
    assert before, f'{block.id}: a config snippet without _base_ and no config block above it to continue'
    return config_text(before[-1]) + '\n' + block.text


def load_snippet(text: str, tmp_path: Path, name: str = 'snippet.py') -> Config:
    path = tmp_path / name
    path.write_text(text, encoding='utf-8')
    return Config.fromfile(str(path))


# -------------------------------------------------------------------------------------------------- commands
class _Parsed(Exception):
    """Raised right after a tool's parser accepted the arguments: nothing of the tool's work runs."""


def parse_only(script: str, args: List[str]) -> argparse.Namespace:
    seen = []
    original = argparse.ArgumentParser.parse_args

    def parse(parser, argv=None, namespace=None):
        seen.append(original(parser, argv, namespace))
        raise _Parsed

    with mock.patch.object(argparse.ArgumentParser, 'parse_args', parse):
        result = run_main(script, *args, check=False)
    assert seen, f'{script} {" ".join(args)}: the arguments were not accepted:\n{result.stderr}'
    return seen[0]


def makefile_targets() -> set:
    return set(re.findall(r'^([A-Za-z][\w-]*):', (ROOT / 'Makefile').read_text(), re.M))


def setup_extras() -> set:
    parser = configparser.ConfigParser()
    parser.read(ROOT / 'setup.cfg')
    return set(parser['options.extras_require'])


def config_args(words: List[str]) -> List[str]:
    return [w for w in words if w.startswith('configs/') and w.endswith('.py')]


def check_command(words: List[str], where: str) -> None:
    """A command of a block that is not run: as far as it can be checked here."""
    words = [PLACEHOLDERS.get(w, w) for w in (w.strip('[]') for w in words)]
    for path in config_args(words):
        _built(str(ROOT / path))  # the config loads and its model builds
    head = words[0]
    if head in ('python', 'python3') and words[1].startswith('tools/'):
        parse_only(words[1], words[2:])
    elif head in ('python', 'python3') and words[1:3] == ['-m', 'pytest']:
        assert all((ROOT / w.split('::')[0]).exists() for w in words if w.startswith('tests/')), where
    elif head.startswith('tools/') and head.endswith('.sh'):
        assert (ROOT / head).is_file() and (ROOT / head).stat().st_mode & 0o111, f'{where}: {head} is not executable'
    elif head == 'make':
        assert set(words[1:]) <= makefile_targets(), f'{where}: no make target {set(words[1:]) - makefile_targets()}'
    elif head in ('l2vit-train', 'l2vit-test'):  # setup.cfg's entry points: tools/train.py and test.py
        assert f'{head} = l2vit.apis.cli:cli_{head[6:]}' in (ROOT / 'setup.cfg').read_text(), f'{where}: no {head}'
        assert words[1].endswith('.py') or find_config(words[1]), f'{where}: no config or model named {words[1]}'
        parse_only(f'tools/{head[6:]}.py', words[1:])
    elif head == 'mim':  # mim runs the library's own tools/train.py / test.py
        assert Path(sys.executable).with_name('mim').exists(), f'{where}: mim is not installed beside this Python'
        assert words[1] in ('train', 'test'), f'{where}: mim {words[1]}'
        assert words[2] in ('mmdet', 'mmseg', 'mmpretrain', 'l2vit-openmmlab'), f'{where}: mim {words[1]} {words[2]}'
        assert words[3].startswith('configs/') or find_config(words[3]), f'{where}: no config named {words[3]}'
    elif head == 'pip' and words[1] == 'install':
        extras = {e for w in words for e in re.findall(r'\.\[([\w,]+)\]', w) for e in e.split(',')}
        assert extras <= setup_extras(), f'{where}: setup.cfg has no extra {extras - setup_extras()}'
    else:
        pytest.fail(f'{where}: no check for the command {" ".join(words)!r}; add one to tests/test_docs.py')


def run_command(words: List[str], where: str, tmp_path: Path) -> None:
    """A command of a block that is run: our tools, with work_dirs/ in a temporary folder."""
    unknown = [w for w in words if w in PLACEHOLDERS]
    assert not unknown, (f'{where}: {unknown} must be filled in to run the block; give real values or put '
                         '"<!-- not run: REASON -->" on the line before it')
    assert words[0] in ('python', 'python3') and words[1].startswith('tools/'), (
        f'{where}: {" ".join(words)!r} cannot be run by this test; run our tools only, or mark the block '
        '"<!-- not run: REASON -->"')
    args = [w.replace('work_dirs/', f'{tmp_path}/') for w in words[2:]]
    result = run_main(words[1], *args, check=False)
    assert result.returncode == 0, f'{where}: {" ".join(words)} exited {result.returncode}:\n{result.stderr[-3000:]}'


# ------------------------------------------------------------------------------------------------------ tests
def test_pages_have_blocks_and_markers_say_why():
    assert len(BLOCKS) > 20 and {b.page.name for b in BLOCKS} >= {'README.md', 'deployment.md'}
    for page in PAGES:
        lines = page.read_text(encoding='utf-8').splitlines() + ['']
        for number, line in enumerate(lines[:-1], 1):
            if 'not run' in line and line.strip().startswith('<!--'):
                where = f'{page.name}:{number}'
                assert NOT_RUN.match(line.strip()), f'{where}: write the marker as <!-- not run: REASON -->'
                assert OPEN_FENCE.match(lines[number]), f'{where}: the marker must be the line right before a block'


@pytest.mark.parametrize('block', [pytest.param(b, id=b.id) for b in BLOCKS])
def test_block(block, tmp_path):
    if block.lang == 'python' and is_config_snippet(block.text):
        cfg = load_snippet(config_text(block), tmp_path)
        build_config(cfg)
    elif block.lang == 'python':
        assert block.not_run is None, f'{block.id}: a Python block that is not run; make it runnable'
        exec(compile(block.text, block.id, 'exec'), {'__name__': '__docs__'})
    elif block.lang == 'bash':
        for words in commands(block.text):
            if block.not_run is None:
                run_command(words, block.id, tmp_path)
            else:
                check_command(words, block.id)
    else:
        assert block.not_run is not None, (f'{block.id}: a ```{block.lang} block is neither Python nor bash: mark it '
                                           '"<!-- not run: REASON -->" (e.g. output, a listing) or make it runnable')


def test_an_unmarked_block_that_cannot_run_fails(tmp_path):
    """The guard itself: placeholders, a foreign command and a text block without a marker are refused."""
    with pytest.raises(AssertionError, match='must be filled in'):
        run_command(['python', 'tools/train.py', 'CONFIG'], 'new.md:1', tmp_path)
    with pytest.raises(AssertionError, match='cannot be run by this test'):
        run_command(['srun', 'hostname'], 'new.md:1', tmp_path)
    page = tmp_path / 'new.md'
    page.write_text('text\n\n```\n$ output\n```\n\n<!-- not run: output -->\n```\n$ output\n```\n')
    plain, marked = read_blocks(page)
    assert (plain.not_run, marked.not_run, marked.line) == (None, 'output', 8)
    with pytest.raises(pytest.fail.Exception, match='no check for the command'):
        check_command(['curl', 'https://example.com'], 'new.md:1')
    with pytest.raises(AssertionError, match='the arguments were not accepted'):
        check_command(['python', 'tools/train.py', 'configs/maskrcnn_l2vit.py', '--no-such-option'], 'new.md:1')


LAYER_DECAY_BASES = {
    'sgd': 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
    'adamw': 'mmdet::swin/mask-rcnn_swin-t-p4-w7_fpn_1x_coco.py',
}


@pytest.mark.parametrize('base', LAYER_DECAY_BASES)
def test_readme_layer_decay_snippet_on_sgd_and_adamw_bases(base, tmp_path):
    """The README's backbone and layer-decay snippets on an SGD base and on an AdamW base with custom_keys: AdamW
    without SGD's momentum, each parameter's learning rate scaled by its depth."""
    readme = [b for b in BLOCKS if b.page.name == 'README.md' and b.lang == 'python' and is_config_snippet(b.text)]
    optimizer_block = next(b for b in readme if 'LayerDecayOptimWrapperConstructor' in b.text)
    text = re.sub(r"_base_ = '[^']+'", f"_base_ = '{LAYER_DECAY_BASES[base]}'", config_text(optimizer_block), count=1)
    cfg = load_snippet(text, tmp_path)
    model, wrapper = build_config(cfg)
    optimizer = wrapper.optimizer
    assert type(optimizer).__name__ == 'AdamW' and 'momentum' not in optimizer.defaults
    lrs = {group['lr'] for group in optimizer.param_groups}
    assert max(lrs) == pytest.approx(1e-4) and len(lrs) > 10  # one rate per depth, the head's at the base rate
    assert type(model.backbone).__name__ == 'L2ViT'


def test_layer_decay_snippet_without_delete_fails_on_the_sgd_base(tmp_path):
    """What _delete_=True prevents: SGD's momentum reaching AdamW."""
    optimizer_block = next(b for b in BLOCKS if 'LayerDecayOptimWrapperConstructor' in b.text)
    text, snippet = config_text(optimizer_block), optimizer_block.text
    assert text.endswith(snippet) and snippet.count('_delete_=True,') == 1
    text = text[:-len(snippet)] + snippet.replace('_delete_=True,', '')
    with pytest.raises(TypeError, match='momentum'):
        build_config(load_snippet(text, tmp_path))
