"""The built-in small-network family: MLPs and small CNNs named by an arch string.

Grammar: ``igpg_zoo.adapters.smallnet_grammar`` and docs/adapters.md. State-dict keys are fixed
and readable, so a plain PyTorch module written anywhere loads strictly:

- ``conv{i}.weight``, ``conv{i}.bias`` (i = 1..n_conv), and with ``-bn`` also ``bn{i}.weight``,
  ``bn{i}.bias``, ``bn{i}.running_mean``, ``bn{i}.running_var``, ``bn{i}.num_batches_tracked``
- ``fc{j}.weight``, ``fc{j}.bias`` (j = 1..n_hidden)
- ``head.weight``, ``head.bias`` (the classification layer)

torch is imported inside methods only: listing adapters must stay light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.adapters import smallnet_grammar as grammar
from igpg_zoo.adapters.base import Adapter
from igpg_zoo.errors import CheckpointError
from igpg_zoo.records import UnitGroup

if TYPE_CHECKING:
    import torch
    from torch import nn

NATIVE_FILE = "igpg-zoo.json"
NATIVE_FORMAT = "igpg-zoo/smallnet"
WEIGHTS_FILE = "model.safetensors"


def build_module(spec: grammar.SmallNetSpec) -> nn.Module:
    """The nn.Module of a parsed spec (random init, CPU, eval mode)."""
    from igpg_zoo.adapters.smallnet_module import SmallNet

    return SmallNet(spec).eval()


class SmallNetAdapter(Adapter):
    """MLPs (``mlp-...``) and small CNNs (``cnn-...``) of the documented grammar."""

    name = "smallnet"
    test_arch = "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"
    export_formats = ("onnx", "native")

    def supports(self, arch: str) -> bool:
        """True for any string of the family's form; a malformed one raises from ``build``."""
        return grammar.looks_like_smallnet(arch)

    def canonical_arch(self, arch: str) -> str:
        """Default activation left out: ``mlp-i13-h32-o3-relu`` -> ``mlp-i13-h32-o3``."""
        return grammar.parse(arch).to_arch()

    def parse(self, arch: str) -> grammar.SmallNetSpec:
        return grammar.parse(arch)

    def build(self, arch: str) -> nn.Module:
        return build_module(grammar.parse(arch))

    def head_names(self, arch: str) -> list[str]:
        grammar.parse(arch)
        return ["head.weight", "head.bias"]

    def unit_groups(self, arch: str) -> list[UnitGroup]:
        """Every conv's channels and every hidden Linear's units: activations, max-pooling, BatchNorm and
        global average pooling all act per channel, so the next layer's input axis follows."""
        spec = grammar.parse(arch)
        layers = [(f"conv{i}", c, f"bn{i}" if spec.batchnorm else None) for i, (c, _) in enumerate(spec.convs, 1)]
        layers += [(f"fc{j}", w, None) for j, w in enumerate(spec.hidden, 1)]
        groups = []
        for (name, size, bn), nxt in zip(layers, [n for n, _, _ in layers[1:]] + ["head"]):
            outputs = (f"{name}.weight", f"{name}.bias") + ((f"{bn}.weight", f"{bn}.bias") if bn else ())
            buffers = (f"{bn}.running_mean", f"{bn}.running_var") if bn else ()
            groups.append(UnitGroup(size, outputs, (f"{nxt}.weight",), buffers))
        return groups

    def describe(self, arch: str) -> str:
        return grammar.describe(grammar.parse(arch))

    def structure(self, arch: str) -> dict[str, float]:
        return grammar.structure(grammar.parse(arch))

    def n_params(self, arch: str) -> int:
        return grammar.parse(arch).n_params()

    def example_input(self, arch: str) -> torch.Tensor:
        import torch

        spec = grammar.parse(arch)
        gen = torch.Generator().manual_seed(0)
        return torch.randn((2, *spec.input_shape), generator=gen)  # (B, *input_shape)

    def write_checkpoint(self, arch: str, weights: dict[str, Any], out: Path, meta: dict[str, Any]) -> Path:
        """A self-describing folder: model.safetensors + igpg-zoo.json (arch, dataset descriptor, meta)."""
        from safetensors.torch import save_file

        from igpg_zoo.adapters.native_meta import native_meta
        from igpg_zoo.adapters.validation import validate_weights
        from igpg_zoo.export.single_file import string_metadata

        spec = grammar.parse(arch)
        validate_weights(self, arch, weights)  # before anything is written
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().contiguous().cpu() for k, v in sorted(weights.items())}
        save_file(tensors, str(out / WEIGHTS_FILE), metadata=string_metadata(arch, meta))  # the label travels
        doc = {
            "format": NATIVE_FORMAT, "format_version": 1, "adapter": self.name,
            "input_shape": list(spec.input_shape), "n_classes": spec.n_classes,
            "n_params": spec.n_params(), "weights": WEIGHTS_FILE,
            **native_meta(arch, meta),  # arch, dataset, dataset_info (descriptor), meta
        }
        (out / NATIVE_FILE).write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        return out

    def _doc(self, path: Path) -> dict | None:
        """The folder's igpg-zoo.json when it is one of ours, else None."""
        doc_path = Path(path) / NATIVE_FILE
        if not Path(path).is_dir() or not doc_path.is_file():
            return None
        try:
            doc = json.loads(doc_path.read_text())
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read {doc_path}: {exc}; re-export the folder") from None
        return doc if isinstance(doc, dict) and doc.get("format") == NATIVE_FORMAT else None

    def read_native_meta(self, path: Path) -> dict[str, Any]:
        """The meta the folder was written with (dataset, task, metrics, ...), plus its dataset_info."""
        doc = self._doc(path) or {}
        meta = dict(doc.get("meta") or {})
        if doc.get("dataset_info"):
            meta["dataset_info"] = doc["dataset_info"]
        return meta

    def read_native(self, path: Path) -> tuple[str, dict[str, torch.Tensor]] | None:
        """(arch, weights) when ``path`` is a folder written by ``write_checkpoint``, else None."""
        path = Path(path)
        doc = self._doc(path)
        if doc is None:
            return None
        doc_path = path / NATIVE_FILE
        arch = doc.get("arch")
        weights_path = path / str(doc.get("weights", WEIGHTS_FILE))
        if not isinstance(arch, str) or not weights_path.is_file():
            raise CheckpointError(f"{doc_path} names no arch or its weights file is missing; re-export the folder")
        grammar.parse(arch)  # a malformed arch is an UnknownArchitecture naming the token
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return arch, load_file(str(weights_path))
        except (OSError, SafetensorError) as exc:
            raise CheckpointError(f"cannot read {weights_path}: {exc}; re-export the folder") from None
