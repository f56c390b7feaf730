"""The adapter contract: what igpg-zoo needs to know about a family of architectures.

An architecture string is self-contained: ``build(arch)`` alone gives the module (class count,
input shape and the rest are part of the string). Two methods are required; the rest default.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from igpg_zoo.errors import ExportNotSupported
from igpg_zoo.records import ParamSpec, UnitGroup

if TYPE_CHECKING:
    import torch
    from torch import nn


class Adapter(ABC):
    """Base class of every architecture adapter (built-in or plugin)."""

    name: ClassVar[str]  # equals the entry-point name
    test_arch: ClassVar[str]  # a tiny architecture for contract tests
    #: export formats beyond "safetensors" (always available): "onnx", "native"
    export_formats: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def supports(self, arch: str) -> bool:
        """Whether this adapter can build ``arch``."""

    @abstractmethod
    def build(self, arch: str) -> nn.Module:
        """A fresh module for ``arch``: random init, CPU, eval mode."""

    # -- defaults -------------------------------------------------------------------------

    def canonical_arch(self, arch: str) -> str:
        """The one spelling of ``arch`` the registry stores (same network, same string); default: as given."""
        return arch

    def read_weights(self, path: Path) -> dict[str, torch.Tensor]:
        """Read a checkpoint file into a canonical state dict (safe loaders only)."""
        from igpg_zoo.registry.checkpoint_io import read_state_dict

        return read_state_dict(Path(path))

    def param_layout(self, arch: str) -> list[ParamSpec]:
        """The ordered tensors a generator emits: floating-point parameters, weight then bias.

        Buffers (BatchNorm running statistics, counters) are not generated; see
        ``docs/design.md`` for how generated models get them.
        """
        module = self.build(arch)
        return [ParamSpec(name, tuple(p.shape)) for name, p in module.named_parameters()]

    def describe(self, arch: str) -> str:
        """Text describing the architecture, for search and as the generation condition."""
        n = sum(p.numel() for p in self.build(arch).parameters())
        return f"architecture: {arch}; parameters: {n}"

    def structure(self, arch: str) -> dict[str, float]:
        """Numeric structural features (depth, widths, ...) used to condition generation."""
        layout = self.param_layout(arch)
        return {"n_tensors": float(len(layout)), "n_params": float(sum(p.numel for p in layout))}

    def head_names(self, arch: str) -> list[str]:
        """Parameter names of the final classification layer (reset or regenerated for a new task).

        Default: weight and bias of the last ``nn.Linear`` in ``named_modules()`` order.
        """
        from torch import nn

        last = None
        for name, module in self.build(arch).named_modules():
            if isinstance(module, nn.Linear):
                last = (name, module)
        if last is None:
            return []
        name, linear = last
        prefix = f"{name}." if name else ""
        return [prefix + "weight"] + ([prefix + "bias"] if linear.bias is not None else [])

    def unit_groups(self, arch: str) -> list[UnitGroup]:
        """The function-preserving permutations of ``arch`` (hidden units of each layer).

        Generators align zoo members to one reference with them, so independently trained models
        share one ordering of hidden units (igpg/align.py). Default: none known.
        """
        return []

    def example_input(self, arch: str) -> torch.Tensor:
        """A dummy input batch for tracing/export."""
        raise ExportNotSupported(
            f"adapter '{self.name}' gives no example input for '{arch}', so it cannot export to ONNX; "
            f"formats it supports: {', '.join(('safetensors',) + self.export_formats)}"
        )

    def write_checkpoint(self, arch: str, weights: dict[str, Any], out: Path, meta: dict[str, Any]) -> Path:
        """Write a checkpoint in the ecosystem's native form into folder ``out``; returns the folder."""
        from safetensors.torch import save_file

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in weights.items()}, str(out / "model.safetensors"),
                  metadata={"arch": arch})
        return out

    def read_native(self, path: Path) -> tuple[str, dict[str, torch.Tensor]] | None:
        """(arch, weights) when ``path`` is a native folder of this ecosystem, else None."""
        return None

    def read_native_meta(self, path: Path) -> dict[str, Any]:
        """The metadata a native folder of this ecosystem carries (dataset, task, ...); {} when none."""
        return {}
