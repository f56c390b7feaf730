"""A BERT model's token-embedding table, memory-mapped from the model folder's ``model.safetensors``.

The exported text graph starts after the token lookup (``onnx_export``): looking the tokens up here,
in a table the operating system pages in row by row, keeps the table (about half of MiniLM's
weights) out of onnxruntime's session, which then loads in about half the time and memory. The rows
are the very floats the model's own lookup returns, so the vectors do not change.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

WEIGHTS = "model.safetensors"
SUFFIX = "word_embeddings.weight"
_DTYPES = {"F32": "<f4"}


def _locate(model_path: Path) -> tuple[int, tuple[int, int], str] | None:
    """(byte offset, shape, dtype) of the table inside the safetensors file, or None."""
    path = Path(model_path) / WEIGHTS
    try:
        with open(path, "rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100_000_000:
                return None
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error):
        return None
    names = [k for k in header if k.endswith(SUFFIX)] if isinstance(header, dict) else []
    if len(names) != 1:
        return None
    info = header[names[0]]
    shape, dtype, offsets = info.get("shape"), info.get("dtype"), info.get("data_offsets")
    if dtype not in _DTYPES or not isinstance(shape, list) or len(shape) != 2 or not isinstance(offsets, list):
        return None
    if offsets[1] - offsets[0] != shape[0] * shape[1] * 4:
        return None
    return 8 + length + offsets[0], (int(shape[0]), int(shape[1])), _DTYPES[dtype]


def has_word_table(model_path: Path) -> bool:
    return _locate(model_path) is not None


def word_table(model_path: Path) -> np.ndarray | None:
    """The (vocabulary, hidden) float32 table, read-only and paged in on use; None where there is none."""
    found = _locate(model_path)
    if found is None:
        return None
    offset, shape, dtype = found
    return np.memmap(Path(model_path) / WEIGHTS, dtype=dtype, mode="r", offset=offset, shape=shape)
