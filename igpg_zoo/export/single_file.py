"""The ``safetensors`` export format: one file, weights plus the architecture in its metadata.

safetensors metadata is a flat ``str -> str`` map (``string_metadata``, also an ONNX export's
``metadata_props``): ``arch``, ``format`` and, when known, ``kind`` are plain strings, a generated
model's ``provenance`` is a JSON string, and all of the record's metadata is one JSON string under
``igpg_zoo``. Any safetensors reader loads the weights; igpg-zoo (and anyone) reads the
architecture back with ``read_single_file``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.errors import CheckpointError

if TYPE_CHECKING:
    import torch

FORMAT = "igpg-zoo/checkpoint"


def string_metadata(arch: str, meta: dict[str, Any]) -> dict[str, str]:
    """The flat text metadata of an export: format, arch, kind, provenance and the full ``igpg_zoo`` JSON."""
    out = {"format": FORMAT, "arch": arch, "igpg_zoo": json.dumps(meta, default=str, sort_keys=True)}
    if isinstance(meta.get("kind"), str):
        out["kind"] = meta["kind"]
    if meta.get("provenance") is not None:
        out["provenance"] = json.dumps(meta["provenance"], default=str, sort_keys=True)
    return out


def write_single_file(arch: str, weights: dict[str, torch.Tensor], out: Path, meta: dict[str, Any]) -> Path:
    """Write ``out`` (a .safetensors file) with sorted keys and the arch in its metadata."""
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in sorted(weights.items())}
    save_file(tensors, str(out), metadata=string_metadata(arch, meta))
    return Path(out)


def read_single_file(path: Path) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """(arch, weights, meta) of a file written by ``write_single_file``."""
    from safetensors import SafetensorError, safe_open
    from safetensors.torch import load_file

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        weights = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}; export it again") from None
    if "arch" not in metadata:
        raise CheckpointError(f"{path} has no 'arch' in its safetensors metadata; pass the architecture explicitly")
    try:
        meta = json.loads(metadata.get("igpg_zoo", "{}"))
    except ValueError:
        meta = {}
    return metadata["arch"], weights, meta
