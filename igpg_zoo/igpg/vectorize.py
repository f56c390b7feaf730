"""Weight vectorization: state dict <-> flat vector <-> padded chunks, and the normalisation between.

Order: the adapter's ``param_layout(arch)`` (parameters only, weight then bias per layer, as
``named_parameters()`` walks them). Every layer (the tensors sharing a module prefix) is zero-padded
to a multiple of the chunk size on its own, so a chunk never mixes two layers. ``Normalizer`` is one
(mean, std) over every value of the training zoo, stored in the tokenizer artifact (a generated model
has no statistics of its own). Buffers (BatchNorm statistics) are not generated: ``complete_state_dict``
gives them the adapter's fresh defaults.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import CheckpointMismatch, GeneratorError
from igpg_zoo.records import ParamSpec


# -- layout ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The generated tensors of one architecture, in order, and where each layer sits in the vector."""

    arch: str
    specs: tuple[ParamSpec, ...]

    @classmethod
    def of(cls, arch: str, adapter=None) -> Layout:
        """The layout of ``arch`` from ``adapter`` (default: the installed adapter that supports it)."""
        return cls(arch, tuple((adapter or get_adapter(arch)).param_layout(arch)))

    @property
    def numel(self) -> int:
        return sum(s.numel for s in self.specs)

    def offsets(self) -> list[int]:
        """Start of every tensor in the flat vector, plus the end."""
        out = [0]
        for s in self.specs:
            out.append(out[-1] + s.numel)
        return out

    def spans(self, mode: str = "layer") -> list[tuple[int, int]]:
        """(start, end) of each layer (consecutive tensors that share a module prefix) or each tensor."""
        offs = self.offsets()
        if mode == "tensor":
            return [(a, b) for a, b in zip(offs, offs[1:]) if b > a]
        spans: list[tuple[int, int]] = []
        prefix = None
        for spec, start, end in zip(self.specs, offs, offs[1:]):
            p = spec.name.rpartition(".")[0]
            if spans and p == prefix:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
            prefix = p
        return spans


def flatten(weights: dict[str, torch.Tensor], layout: Layout) -> torch.Tensor:
    """The parameters of ``weights`` as one float32 vector (D,), in layout order; buffers are ignored."""
    parts = []
    for spec in layout.specs:
        t = weights.get(spec.name)
        if t is None:
            raise CheckpointMismatch(f"weights lack '{spec.name}' needed by '{layout.arch}'; "
                                     "check the checkpoint matches the architecture")
        if tuple(t.shape) != spec.shape:
            raise CheckpointMismatch(f"'{spec.name}' has shape {tuple(t.shape)}, '{layout.arch}' needs {spec.shape}")
        parts.append(t.detach().to(torch.float32).reshape(-1))
    return torch.cat(parts) if parts else torch.zeros(0)


def unflatten(vec: torch.Tensor, layout: Layout) -> dict[str, torch.Tensor]:
    """Inverse of ``flatten``: the parameter tensors (views copied out), bit-exact."""
    if vec.numel() != layout.numel:
        raise GeneratorError(f"vector has {vec.numel()} values, '{layout.arch}' needs {layout.numel}")
    offs = layout.offsets()
    return {s.name: vec[a:b].reshape(s.shape).clone() for s, a, b in zip(layout.specs, offs, offs[1:])}


# -- chunks ------------------------------------------------------------------------------------


def n_chunks(layout: Layout, chunk_size: int, mode: str = "layer") -> int:
    return sum(math.ceil((b - a) / chunk_size) for a, b in layout.spans(mode))


def chunk(vec: torch.Tensor, layout: Layout, chunk_size: int, mode: str = "layer") -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad each layer (or tensor) to a multiple of ``chunk_size`` and split: chunks (n, K), mask (n, K)."""
    pieces, masks = [], []
    for a, b in layout.spans(mode):
        n = math.ceil((b - a) / chunk_size)
        padded = torch.zeros(n * chunk_size, dtype=vec.dtype)
        mask = torch.zeros(n * chunk_size, dtype=torch.bool)
        padded[: b - a] = vec[a:b]
        mask[: b - a] = True
        pieces.append(padded.view(n, chunk_size))
        masks.append(mask.view(n, chunk_size))
    return torch.cat(pieces), torch.cat(masks)


def unchunk(chunks: torch.Tensor, layout: Layout, mode: str = "layer") -> torch.Tensor:
    """Inverse of ``chunk``: drop the padding, (n, K) -> (D,)."""
    K = chunks.shape[1]
    out, row = [], 0
    for a, b in layout.spans(mode):
        n = math.ceil((b - a) / K)
        out.append(chunks[row: row + n].reshape(-1)[: b - a])
        row += n
    if row != chunks.shape[0]:
        raise GeneratorError(f"got {chunks.shape[0]} chunks, '{layout.arch}' needs {row}")
    return torch.cat(out)


# -- normalisation -----------------------------------------------------------------------------


@dataclass
class Normalizer:
    """z = (x - mean) / std, one (mean, std) pooled over every value of the training zoo ("global"), or
    the identity ("none": a codec that codes each chunk's scale itself)."""

    mean: float = 0.0
    std: float = 1.0
    kind: str = "global"

    def fit(self, items: Iterable[tuple[torch.Tensor, Layout]]) -> Normalizer:
        """Pool the statistics over the training zoo's flat vectors (float64 sums, tensor by tensor)."""
        if self.kind == "none":
            return self
        s = s2 = n = 0.0
        for vec, layout in items:
            x = vec.to(torch.float64)
            offs = layout.offsets()
            for a, b in zip(offs, offs[1:]):
                s += float(x[a:b].sum())
                s2 += float((x[a:b] ** 2).sum())
                n += b - a
        var = max(s2 / n - (s / n) ** 2, 0.0)
        self.mean, self.std = s / n, (math.sqrt(var) if var > 1e-16 else 1.0)
        return self

    def normalize(self, vec: torch.Tensor) -> torch.Tensor:
        return (vec.to(torch.float64) * (1.0 / self.std) - self.mean / self.std).to(torch.float32)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return ((z.to(torch.float64) + self.mean / self.std) / (1.0 / self.std)).to(torch.float32)

    def to_dict(self) -> dict:
        """The stored form (the ``global`` kind of earlier releases, which stored it the same way)."""
        return {"kind": self.kind, "stats": {"all": [self.mean, self.std]}, "anchored_archs": []}

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        if d.get("kind") not in ("global", "none") or d.get("anchored_archs"):
            raise GeneratorError(f"tokenizer normalisation '{d.get('kind')}' (with per-architecture anchors: "
                                 f"{bool(d.get('anchored_archs'))}) is no longer supported; retrain the tokenizer")
        mean, std = d["stats"]["all"] if d["kind"] == "global" else (0.0, 1.0)
        return cls(float(mean), float(std), d["kind"])


# -- buffers -----------------------------------------------------------------------------------


def complete_state_dict(params: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """Generated parameters plus the buffers of a fresh module (BN running mean 0, var 1, counters 0)."""
    fresh = get_adapter(arch).build(arch).state_dict()
    out = {}
    for name, t in fresh.items():
        out[name] = params[name].to(t.dtype) if name in params else t.detach().clone()
    return out
