"""Deployment: ONNX export of our configs' models (:mod:`.export`), checked in onnxruntime (:mod:`.runtime`)."""
from .export import DEFAULT_OPSET, PARTS, Exported, ExportRequest, export_onnx
from .runtime import DEFAULT_TOLERANCE, Parity, check_sizes, verify

__all__ = ['DEFAULT_OPSET', 'PARTS', 'ExportRequest', 'Exported', 'export_onnx', 'DEFAULT_TOLERANCE', 'Parity',
           'check_sizes', 'verify']
