"""What ``tools/deployment/export_onnx.py`` does with its options: export (:mod:`l2vit.deploy.export`), say what was
written and what the input expects, and with ``verify`` check the file in onnxruntime (:mod:`l2vit.deploy.runtime`)."""
import os.path as osp

from ..errors import ToolError
from .export import ExportRequest, export_onnx
from .runtime import DEFAULT_TOLERANCE, check_sizes, format_parity, require_onnxruntime, verify

__all__ = ['run_export_tool']


def run_export_tool(request: ExportRequest, check: bool = False, tolerance: float = DEFAULT_TOLERANCE) -> int:
    """Export as ``request`` asks and print what was written; with ``check``, run it in onnxruntime at the export
    size (and, for a dynamic export, at two other sizes and batch sizes) against torch and print the errors. Returns
    0; raises :class:`~l2vit.errors.ToolError` when the parity check fails."""
    ort = require_onnxruntime() if check else None  # before the export: a missing runtime is found at once
    if not request.checkpoint:
        print('note: no --checkpoint: exporting the config\'s initialisation (random weights; pretrained init_cfg '
              'not loaded). Good for checking the export, not for predictions.')
    exported = export_onnx(request)
    size_mb = osp.getsize(exported.path) / 2**20
    dims = 'batch, height and width dynamic' if request.dynamic else 'fixed size'
    print(f'config: {request.config} ({exported.scope}, {exported.model_type}), part: {request.part}')
    print(f'weights: {exported.weights}')
    print(f'wrote {exported.path} ({size_mb:.1f} MiB, opset {request.opset}, {dims}) in {exported.seconds:.1f} s')
    height, width = request.shape[0], request.shape[-1]
    print(f'input: {request.batch}x3x{height}x{width} float32 named \'image\', after the data preprocessor '
          f'({", ".join(f"{k}={v}" for k, v in exported.preprocess.items()) or "no normalisation in the config"})')
    print(f'outputs: {", ".join(exported.output_names)}')
    if not check:
        return 0
    sizes = check_sizes((height, width), request.batch, request.dynamic)
    rows = verify(exported.path, exported.reference, exported.output_names, sizes, tolerance)
    print(f'\nonnxruntime {ort.__version__} (CPUExecutionProvider) against torch eager, relative error = '
          f'max |ort - torch| / max |torch| per output:')
    print(format_parity(rows))
    worst = max(rows, key=lambda r: r.relative)
    if not all(r.ok for r in rows):
        raise ToolError(f'parity check failed: {worst.output} at input {"x".join(map(str, worst.input_shape))} has '
                        f'relative error {worst.relative:.3g} > {tolerance:g}')
    print(f'parity: every output within {tolerance:g} relative (worst {worst.relative:.3g}: {worst.output} at '
          f'{"x".join(map(str, worst.input_shape))})')
    return 0
