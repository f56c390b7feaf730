"""Export: ONNX (verified by onnxruntime), the adapters' native folders (timm, smallnet), safetensors.

``export_weights`` writes any weights, ``export_record`` a registry record (and notes the parity
figure in its metadata); ``igpg_zoo.export.onnx.to_onnx`` exports a plain module. This package
imports no torch until one of them runs.
"""

from igpg_zoo.export.record import export_record
from igpg_zoo.export.weights import FORMATS, ExportReport, export_weights, supported_formats

__all__ = ["FORMATS", "ExportReport", "export_record", "export_weights", "supported_formats"]
