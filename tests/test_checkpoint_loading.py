"""Every mmengine route loads the authors' files and ours the same way, by path or by URL, weights-only.

The URLs are served by a local HTTP server on 127.0.0.1 (nothing else is reachable here); the hub cache is a
temporary ``TORCH_HOME``.
"""
import copy
import hashlib
import http.server
import threading
from pathlib import Path

import pytest
import torch
from mmengine.model import initialize
from mmengine.runner import load_checkpoint

from helpers import randomize_
from l2vit import CheckpointError, L2ViT
from l2vit.checkpoint import download_checkpoint, hub_checkpoint_dir
from reference_l2vit import ReferenceL2ViT
from test_checkpoint import ARCH, _Payload, authors_checkpoint, build_classifier


class _Server(http.server.ThreadingHTTPServer):
    """Serves the files of ``root``; ``/short/NAME`` announces the whole length of NAME but sends half of it."""

    def __init__(self, root: Path):
        self.root, self.requests = root, []
        super().__init__(('127.0.0.1', 0), _Handler)

    @property
    def url(self) -> str:
        return f'http://127.0.0.1:{self.server_address[1]}'


class _Handler(http.server.BaseHTTPRequestHandler):

    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        short = self.path.startswith('/short/')
        path = self.server.root / self.path.split('/')[-1]
        if not path.is_file():
            self.send_error(404, 'Not Found')
            return
        data = path.read_bytes()
        self.send_response(200)
        self.send_header('Content-Length', str(len(data)))
        self.end_headers()
        self.wfile.write(data[:len(data) // 2] if short else data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local server over ``tmp_path/served``, and an empty hub cache under ``tmp_path/torch_home``."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))
    (tmp_path / 'served').mkdir()
    srv = _Server(tmp_path / 'served')
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def served_authors_file(tmp_path, server):
    path, model, ema = authors_checkpoint(tmp_path)
    served = server.root / 'L2ViT-Test-checkpoint-best-ema.pth'
    served.write_bytes(path.read_bytes())
    return f'{server.url}/{served.name}', served, model


def assert_backbone_equals_authors(backbone: L2ViT, model: ReferenceL2ViT) -> None:
    state = backbone.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith('head.'):
            torch.testing.assert_close(state['norm3.' + key[5:] if key.startswith('norm.') else key], value,
                                       rtol=0, atol=0)


@pytest.mark.parametrize('route', ['dict', 'list', 'dict-prefix', 'list-prefix', 'load_checkpoint'])
def test_every_route_loads_the_authors_file_by_url(tmp_path, server, route):
    url, _, model = served_authors_file(tmp_path, server)
    pretrained = dict(type='Pretrained', checkpoint=url, **({'prefix': 'backbone.'} if 'prefix' in route else {}))
    if route == 'load_checkpoint':
        backbone = L2ViT(arch=ARCH)
        load_checkpoint(backbone, url)
    else:
        backbone = L2ViT(arch=ARCH, init_cfg=[pretrained] if route.startswith('list') else pretrained)
        backbone.init_weights()
    assert_backbone_equals_authors(backbone, model)
    cached = Path(hub_checkpoint_dir()) / 'L2ViT-Test-checkpoint-best-ema.pth'
    assert cached.is_file() and str(cached).startswith(str(tmp_path / 'torch_home'))  # TORCH_HOME respected


def test_downloaded_once_then_read_from_the_cache(tmp_path, server):
    url, _, model = served_authors_file(tmp_path, server)
    for _ in range(2):
        backbone = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=url, prefix='backbone.'))
        backbone.init_weights()
        assert_backbone_equals_authors(backbone, model)
    assert server.requests == ['/L2ViT-Test-checkpoint-best-ema.pth']


def test_load_from_a_url_gives_the_authors_logits(tmp_path, server):
    """``load_from`` / ``tools/test.py`` path: the released file, converted in memory into the whole classifier."""
    url, _, model = served_authors_file(tmp_path, server)
    classifier = build_classifier()
    load_checkpoint(classifier, url, strict=True)  # raises on any missing/unexpected key, head included
    classifier.double().eval()
    x = torch.randn(2, 3, 40, 56, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(classifier(x, mode='tensor'), model.double()(x), rtol=1e-10, atol=1e-10)


def test_sha256_of_the_url_is_checked(tmp_path, server):
    url, served, _ = served_authors_file(tmp_path, server)
    digest = hashlib.sha256(served.read_bytes()).hexdigest()
    path = download_checkpoint(f'{url}#sha256={digest}')
    assert Path(path).read_bytes() == served.read_bytes()
    wrong = ('0' if digest[0] != '0' else '1') + digest[1:]
    backbone = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=f'{url}#sha256={wrong}'))
    with pytest.raises(CheckpointError, match=f'has SHA-256 {digest}, but the URL asks for {wrong}'):
        backbone.init_weights()
    with pytest.raises(CheckpointError, match='only URL fragment understood is #sha256='):
        download_checkpoint(f'{url}#md5=abc')


def test_a_hostile_file_at_a_url_never_runs(tmp_path, server):
    marker = tmp_path / 'pwned'
    torch.save({'model': {'x': torch.zeros(1)}, 'args': _Payload(str(marker))}, server.root / 'hostile.pth')
    backbone = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=f'{server.url}/hostile.pth'))
    with pytest.raises(CheckpointError, match=r'hostile\.pth.*Refusing to load'):
        backbone.init_weights()
    assert not marker.exists()


def test_a_broken_download_leaves_nothing_in_the_cache(tmp_path, server):
    _, served, _ = served_authors_file(tmp_path, server)
    url = f'{server.url}/short/{served.name}'
    with pytest.raises(CheckpointError, match=rf'Download of {url} broke off after \d+ of {served.stat().st_size}'):
        download_checkpoint(url)
    cache = Path(hub_checkpoint_dir())
    assert not cache.exists() or not any(cache.iterdir()), list(cache.iterdir())
    missing = f'{server.url}/nope.pth'
    backbone = L2ViT(arch=ARCH, init_cfg=dict(type='Pretrained', checkpoint=missing, prefix='backbone.'))
    with pytest.raises(CheckpointError, match=rf'Cannot download {missing}: HTTP Error 404.*hub cache'):
        backbone.init_weights()
    assert not cache.exists() or not any(cache.iterdir())


def test_the_model_reads_the_authors_layout_itself():
    """``load_state_dict`` with the authors' raw classifier weights, strictly: norm -> norm3, head set aside."""
    model = randomize_(ReferenceL2ViT(num_classes=10, **ARCH), 5)
    backbone = L2ViT(arch=ARCH, out_indices=(3, ))  # the classifier's output norm only: nothing may be missing
    backbone.load_state_dict(model.state_dict(), strict=True)
    assert_backbone_equals_authors(backbone, model)
    wrapped = {'module.' + k: v for k, v in model.state_dict().items()}  # saved from DistributedDataParallel
    other = L2ViT(arch=ARCH, out_indices=(3, ))
    other.load_state_dict(wrapped, strict=True)
    assert_backbone_equals_authors(other, model)
    # With all four output norms, norm0-norm2 are not in ImageNet weights: strict loading says so, as torch does.
    with pytest.raises(RuntimeError, match='Missing key.*norm0.weight'):
        L2ViT(arch=ARCH).load_state_dict(model.state_dict(), strict=True)


@pytest.mark.parametrize('init_form', ['dict', 'list'])
def test_a_misfit_is_refused_by_name_whatever_the_route(tmp_path, init_form):
    src, _, _ = authors_checkpoint(tmp_path)
    pretrained = dict(type='Pretrained', checkpoint=str(src))
    other = L2ViT(arch=dict(ARCH, depths=[2, 2, 4, 2]), init_cfg=pretrained if init_form == 'dict' else [pretrained])
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(CheckpointError, match=r'does not fit this L2ViT[\s\S]*missing in checkpoint: stages\.2\.2'):
        other.init_weights()
    with pytest.raises(CheckpointError, match=r'does not fit this L2ViT[\s\S]*missing in checkpoint: stages\.2\.2'):
        load_checkpoint(other, str(src))
    with pytest.raises(CheckpointError, match='does not fit this L2ViT'):
        initialize(other, dict(type='Pretrained', checkpoint=str(src), prefix='backbone.'))
    for key, value in other.state_dict().items():  # nothing loaded half-way
        assert torch.equal(value, before[key]), key


def test_other_initialisers_and_pretrained_weights_combine(tmp_path):
    """A list init_cfg: the other initialisers run first, then the pretrained weights are loaded over them."""
    src, model, _ = authors_checkpoint(tmp_path)
    backbone = L2ViT(arch=ARCH, init_cfg=[dict(type='Constant', layer='LayerNorm', val=3.0, bias=0.),
                                          dict(type='Pretrained', checkpoint=str(src))])
    backbone.init_weights()
    assert_backbone_equals_authors(backbone, model)
    assert torch.all(backbone.norm0.weight == 3.0)  # not in the checkpoint: the Constant initialiser's value
