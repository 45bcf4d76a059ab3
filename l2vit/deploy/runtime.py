"""Running an exported file in onnxruntime (CPU execution provider) and checking it against torch.

Parity (:func:`verify`): every output, at every size checked, has ``max |ort - torch| / max |torch| <= tolerance``
(1e-4 by default), the error relative to the output's scale. Element-wise relative errors mean nothing where outputs
cross zero, and the maps here do everywhere.
"""
from dataclasses import dataclass
from typing import Any, List, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import ToolError

DEFAULT_TOLERANCE = 1e-4
INSTALL_HINT = ('pip install -e ".[deploy]" (or pip install onnxruntime, the version in '
                'requirements/constraints.txt)')


@dataclass
class Parity:
    """One output at one input shape: its shape, the largest absolute error, that error relative to the largest
    torch value, and whether it is within the tolerance."""
    input_shape: Tuple[int, ...]
    output: str
    output_shape: Tuple[int, ...]
    max_abs: float
    relative: float
    ok: bool


def require_onnxruntime() -> Any:
    """The onnxruntime module, or a :class:`~l2vit.errors.ToolError` with the install hint."""
    try:
        import onnxruntime
    except ImportError:
        raise ToolError(f'--verify runs the exported file in onnxruntime, which is not installed here: '
                        f'{INSTALL_HINT}.') from None
    return onnxruntime


def session(path: str, threads: int = 0) -> Any:
    """An onnxruntime session of ``path`` on the CPU execution provider (``threads``: intra-op threads, 0 = its
    default)."""
    ort = require_onnxruntime()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(path, sess_options=options, providers=['CPUExecutionProvider'])


def run_session(sess: Any, image: Tensor) -> List[np.ndarray]:
    """All outputs of ``sess`` on ``image`` (its one input)."""
    name = sess.get_inputs()[0].name
    return sess.run(None, {name: image.detach().cpu().numpy()})


def check_sizes(shape: Tuple[int, int], batch: int, dynamic: bool) -> List[Tuple[int, int, int]]:
    """The (B, H, W) inputs :func:`verify` checks: the export's; with ``dynamic`` also batch + 1 at a larger size
    and a smaller one, neither a multiple of 4, 7 or 32 where the export size allows."""
    height, width = shape
    sizes = [(batch, height, width)]
    if dynamic:
        sizes += [(batch + 1, _awkward(height + height // 3 + 5), _awkward(width + width // 4 + 11)),
                  (batch, _awkward(max(33, height * 2 // 3)), _awkward(max(33, width * 3 // 4)))]
    return sizes


def _awkward(n: int) -> int:
    """The first size from ``n`` up that is a multiple of none of 4, 7 and 32 (so every padding is exercised)."""
    while n % 4 == 0 or n % 7 == 0 or n % 32 == 0:
        n += 1
    return n


def verify(path: str, reference: nn.Module, names: Sequence[str], sizes: Sequence[Tuple[int, int, int]],
           tolerance: float = DEFAULT_TOLERANCE) -> List[Parity]:
    """Run ``path`` in onnxruntime and ``reference`` (the torch module that was exported, unchanged) in eager mode on
    the same random image of each (B, H, W) of ``sizes``; one :class:`Parity` per output and size."""
    sess = session(path)
    rows = []
    for i, (batch, height, width) in enumerate(sizes):
        image = torch.randn(batch, 3, height, width, generator=torch.Generator().manual_seed(1000 + i))
        with torch.no_grad():
            expected = reference(image)
        expected = [expected] if isinstance(expected, Tensor) else list(expected)
        got = run_session(sess, image)
        if len(got) != len(expected):
            raise ToolError(f'{path} has {len(got)} outputs, the torch model {len(expected)}')
        for name, ours, theirs in zip(names, got, expected):
            theirs = theirs.float().numpy()
            max_abs = relative = float('inf')
            if ours.shape == theirs.shape:
                max_abs = float(np.abs(ours.astype(np.float64) - theirs).max())
                scale = float(np.abs(theirs).max())
                relative = max_abs / scale if scale > 0 else max_abs
            rows.append(Parity((batch, 3, height, width), name, tuple(ours.shape), max_abs, relative,
                               relative <= tolerance))
    return rows


def format_parity(rows: Sequence[Parity]) -> str:
    """The rows as a Markdown table."""
    lines = ['| input | output | output shape | max abs error | relative error | ok |', '|---|---|---|---:|---:|---|']
    for r in rows:
        lines.append(f'| {"x".join(map(str, r.input_shape))} | {r.output} | {"x".join(map(str, r.output_shape))} | '
                     f'{r.max_abs:.3g} | {r.relative:.3g} | {"yes" if r.ok else "NO"} |')
    return '\n'.join(lines)


def _export_eval(module: nn.Module, path: str, names: Sequence[str], example: Tensor, opset: int) -> None:
    """Export ``module`` in eval mode with dynamic batch and size, leaving its mode as it was."""
    from .export import export_module
    was_training = module.training
    module.eval()
    export_module(module, example, path, list(names), opset, dynamic=True)
    module.train(was_training)


class OnnxRuntimeModel:
    """A torch backbone exported with dynamic batch and size and run by an onnxruntime session on the CPU, called
    like the module (a tensor in, a tuple of tensors out), for timing it beside torch. ``eval()`` / ``train()`` do
    nothing (the file is an inference graph); it has no parameters."""

    def __init__(self, module: nn.Module, path: str, names: Sequence[str], example: Tensor, opset: int,
                 threads: int = 0) -> None:
        _export_eval(module, path, names, example, opset)
        self.path, self.opset, self.threads = path, opset, threads
        self.session = session(path, threads)

    def __call__(self, image: Tensor) -> Tuple[Tensor, ...]:
        return tuple(torch.from_numpy(out) for out in run_session(self.session, image))

    def eval(self) -> 'OnnxRuntimeModel':
        return self

    def train(self, mode: bool = True) -> 'OnnxRuntimeModel':
        return self

    def parameters(self) -> List[Any]:
        return []


class OpenVinoModel(OnnxRuntimeModel):
    """The same exported file (:class:`OnnxRuntimeModel` writes it) compiled by OpenVINO for its CPU device with
    ``threads`` inference threads, called like the module. OpenVINO is optional (``pip install openvino``); a
    missing package is a :class:`~l2vit.errors.ToolError` with that hint."""

    def __init__(self, module: nn.Module, path: str, names: Sequence[str], example: Tensor, opset: int,
                 threads: int = 0) -> None:
        try:
            import openvino
        except ImportError:
            raise ToolError('--openvino needs the openvino package, which is not installed here: pip install '
                            'openvino') from None
        _export_eval(module, path, names, example, opset)
        self.path, self.opset, self.threads, self.version = path, opset, threads, openvino.__version__
        config = {'INFERENCE_NUM_THREADS': threads} if threads else {}
        self.compiled = openvino.Core().compile_model(path, 'CPU', config)

    def __call__(self, image: Tensor) -> Tuple[Tensor, ...]:
        result = self.compiled(image.detach().cpu().numpy())
        return tuple(torch.from_numpy(result[out]) for out in self.compiled.outputs)
