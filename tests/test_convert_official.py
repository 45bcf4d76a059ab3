"""tools/convert_official.py never destroys what it reads: DST == SRC is refused, an existing DST is kept unless
--force, and DST is written through a temporary file, so a failure mid-write leaves no truncated checkpoint."""
import argparse
import errno
import importlib.util
import os

import pytest
import torch

from helpers import ROOT, randomize_, run_main
from l2vit import load_checkpoint_file
from reference_l2vit import ReferenceL2ViT

TOOL = ROOT / 'tools' / 'convert_official.py'
#: The smallest arch the converter accepts (two blocks per stage: one window, one linear attention block).
TINY_ARCH = dict(embed_dims=[8, 16, 32, 64], depths=[2, 2, 2, 2], num_heads=[1, 2, 2, 4])


def converter():
    spec = importlib.util.spec_from_file_location('l2vit_convert_official', TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def src(tmp_path):
    """A tiny file laid out like the authors' release (``model``, ``model_ema``, ``args``)."""
    model = randomize_(ReferenceL2ViT(num_classes=3, **TINY_ARCH), 0)
    ema = randomize_(ReferenceL2ViT(num_classes=3, **TINY_ARCH), 1)
    path = tmp_path / 'L2ViT-Tiny-checkpoint-best-ema.pth'
    torch.save(dict(model=model.state_dict(), model_ema=ema.state_dict(), epoch=299,
                    args=argparse.Namespace(model='L2ViT_Tiny', model_ema=True)), path)
    return path


def spellings(src, kind):
    """Another way of naming ``src``."""
    if kind == 'same path':
        return str(src)
    if kind == 'dotted path':
        (src.parent / 'sub').mkdir()
        return os.path.join(str(src.parent), 'sub', '..', '.', src.name)
    if kind == 'relative path':
        return os.path.relpath(src)
    link = src.parent / 'link.pth'
    if kind == 'symlink':
        link.symlink_to(src)
    else:
        os.link(src, link)
    return str(link)


@pytest.mark.parametrize('force', [False, True])
@pytest.mark.parametrize('kind', ['same path', 'dotted path', 'relative path', 'symlink', 'hard link'])
def test_dst_that_is_src_is_refused(src, kind, force, capsys):
    before = src.read_bytes()
    dst = spellings(src, kind)
    code = converter().main([str(src), dst, '--use-ema', *(['--force'] if force else [])])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and 'is the source checkpoint' in err and 'Give another DST' in err
    assert src.read_bytes() == before
    assert load_checkpoint_file(src)['model_ema']  # the authors' EMA weights are still there
    assert not [name for name in os.listdir(src.parent) if name.endswith('.tmp')]


def test_dst_that_is_src_is_refused_by_the_command(src):
    """The command line, as a user runs it: exit code 2, the problem and the fix, no traceback."""
    before = src.read_bytes()
    result = run_main(str(TOOL), str(src), str(src), check=False)
    assert result.returncode == 2, result.stderr
    assert 'is the source checkpoint' in result.stderr and 'Traceback' not in result.stderr
    assert src.read_bytes() == before


def test_existing_dst_needs_force(src, tmp_path, capsys):
    module = converter()
    dst = tmp_path / 'out' / 'l2vit-t_in1k.pth'
    dst.parent.mkdir()
    dst.write_bytes(b'an earlier file the user keeps')
    assert module.main([str(src), str(dst)]) == 2
    err = capsys.readouterr().err
    assert 'already exists' in err and '--force' in err
    assert dst.read_bytes() == b'an earlier file the user keeps'

    assert module.main([str(src), str(dst), '--force']) == 0
    converted = torch.load(dst, weights_only=True)
    assert set(converted) == {'meta', 'state_dict'} and 'backbone.norm3.weight' in converted['state_dict']
    umask = os.umask(0)
    os.umask(umask)
    assert dst.stat().st_mode & 0o777 == 0o666 & ~umask  # not the 0600 of the temporary file
    assert sorted(os.listdir(dst.parent)) == ['l2vit-t_in1k.pth']


def test_dst_that_is_a_folder_is_refused(src, tmp_path, capsys):
    assert converter().main([str(src), str(tmp_path), '--force']) == 2
    assert 'is a folder' in capsys.readouterr().err


def _failing_save(folder, exception):
    """A torch.save that writes a few bytes, notes what ``folder`` holds meanwhile, then raises ``exception``."""
    seen = []

    def save(obj, f, *args, **kwargs):
        f.write(b'PK\x03\x04 partial')
        f.flush()
        seen.extend(os.listdir(folder))
        raise exception

    return save, seen


@pytest.mark.parametrize('existing', [False, True])
def test_failure_while_writing_leaves_no_file(src, tmp_path, monkeypatch, capsys, existing):
    module = converter()
    out = tmp_path / 'out'
    out.mkdir()
    dst = out / 'l2vit-t_in1k.pth'
    if existing:
        dst.write_bytes(b'the previous conversion')
    save, seen = _failing_save(out, OSError(errno.ENOSPC, 'No space left on device'))
    monkeypatch.setattr(torch, 'save', save)  # what l2vit.apis.convert calls
    code = module.main([str(src), str(dst), *(['--force'] if existing else [])])
    assert code == 2
    err = capsys.readouterr().err
    assert 'cannot write' in err and 'No space left on device' in err and 'nothing was written' in err
    # It was writing a temporary file next to DST, not DST itself ...
    temps = [name for name in seen if name.endswith('.tmp')]
    assert len(temps) == 1 and temps[0].startswith('.l2vit-t_in1k.pth.')
    # ... which is gone; DST is absent, or the previous file untouched.
    assert sorted(os.listdir(out)) == (['l2vit-t_in1k.pth'] if existing else [])
    if existing:
        assert dst.read_bytes() == b'the previous conversion'


def test_interrupt_while_writing_leaves_no_file(src, tmp_path, monkeypatch):
    """Ctrl-C (or any other exception) mid-write propagates, and removes the temporary file."""
    module = converter()
    dst = tmp_path / 'out' / 'l2vit-t_in1k.pth'
    save, seen = _failing_save(dst.parent, KeyboardInterrupt())
    monkeypatch.setattr(torch, 'save', save)  # what l2vit.apis.convert calls
    with pytest.raises(KeyboardInterrupt):
        module.main([str(src), str(dst)])
    assert len(seen) == 1 and seen[0].endswith('.tmp')
    assert os.listdir(dst.parent) == []
