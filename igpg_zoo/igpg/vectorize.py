"""Weight vectorization: state dict <-> flat vector <-> padded chunks, and the normalisation between.

Order: the adapter's ``param_layout(arch)`` (parameters only, weight then bias per layer, as
``named_parameters()`` walks them). Two aggregations (IGPG §2.1):

- ``"model"``: one vector per model, zero-padded at the end to a multiple of the chunk size;
- ``"layer"``: every layer (the parameters sharing a module prefix) padded on its own, so a chunk
  never mixes two layers.

Normalisation lives in the tokenizer, never per model (a generated model has no statistics of its
own): ``Normalizer`` is fitted once on the training zoo and stored in the tokenizer artifact.
Kind ``"global"`` (the tokenizer's default, measured better) is one (mean, std) over every value;
kind ``"fanin"`` rescales every tensor by ``sqrt(fan_in)`` (a function of the architecture alone) and
then z-scores it with one (mean, std) per tensor role (weight, bias, norm scale) pooled over the zoo.

Buffers (BatchNorm running statistics, counters) are not generated. ``complete_state_dict`` fills
them with the adapter's fresh defaults (running mean 0, var 1); ``recalibrate_batchnorm`` re-estimates
them from a data sample, which is what a generated BN model needs before evaluation (docs/igpg-tokenizer.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
from torch import nn

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import CheckpointMismatch, GeneratorError
from igpg_zoo.records import ParamSpec

MODES = ("model", "layer", "tensor")  # what one padded span covers: a chunk never crosses a span
NORMS = ("fanin", "global", "none")
ROLES = ("weight", "bias", "scale")


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

    def layer_spans(self) -> list[tuple[int, int]]:
        """(start, end) of each layer: consecutive tensors that share a module prefix."""
        spans: list[tuple[int, int]] = []
        prefix = None
        for spec, start, end in zip(self.specs, self.offsets(), self.offsets()[1:]):
            p = spec.name.rpartition(".")[0]
            if spans and p == prefix:
                spans[-1] = (spans[-1][0], end)
            else:
                spans.append((start, end))
            prefix = p
        return spans

    def spans(self, mode: str) -> list[tuple[int, int]]:
        """The independently padded pieces: the whole vector, one per layer, or one per tensor."""
        if mode not in MODES:
            raise GeneratorError(f"unknown vectorization mode '{mode}'; use one of {', '.join(MODES)}")
        if mode == "model":
            return [(0, self.numel)]
        if mode == "tensor":
            offs = self.offsets()
            return [(a, b) for a, b in zip(offs, offs[1:]) if b > a]
        return self.layer_spans()


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


def n_chunks(layout: Layout, chunk_size: int, mode: str) -> int:
    return sum(math.ceil((b - a) / chunk_size) for a, b in layout.spans(mode))


def chunk(vec: torch.Tensor, layout: Layout, chunk_size: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-pad each span to a multiple of ``chunk_size`` and split: chunks (n, K) and mask (n, K)."""
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


def unchunk(chunks: torch.Tensor, layout: Layout, mode: str) -> torch.Tensor:
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


def _roles_and_fanin(layout: Layout) -> list[tuple[str, int]]:
    """(role, fan_in) per tensor: a bias takes the fan-in of its layer's weight."""
    out: list[tuple[str, int]] = []
    last_fanin: dict[str, int] = {}
    for s in layout.specs:
        prefix, _, leaf = s.name.rpartition(".")
        if len(s.shape) >= 2:
            fan = s.numel // s.shape[0]
            last_fanin[prefix] = fan
            out.append(("weight", fan))
        elif leaf == "bias":
            out.append(("bias", last_fanin.get(prefix, 1)))
        else:
            out.append(("scale", 1))
    return out


def _expand(layout: Layout, per_tensor: list[float]) -> torch.Tensor:
    return torch.cat([torch.full((s.numel,), v, dtype=torch.float64) for s, v in zip(layout.specs, per_tensor)]
                     ) if layout.specs else torch.zeros(0, dtype=torch.float64)


@dataclass
class Normalizer:
    """z = (x * r - mean_role) / std_role - anchor[arch], r = sqrt(fan_in) ("fanin") or 1 ("global").

    ``anchors`` (optional) hold, per architecture of the training zoo, the mean normalised vector of
    its models: the tokenizer then codes each model's difference from its architecture's mean, and an
    architecture without an anchor (one the zoo never had) is coded around zero.
    """

    kind: str = "fanin"
    stats: dict[str, tuple[float, float]] | None = None  # role (or "all") -> (mean, std)
    anchors: dict[str, torch.Tensor] = field(default_factory=dict)  # arch -> (D,) float64

    def _rescale(self, layout: Layout) -> torch.Tensor:  # (D,) float64
        if self.kind != "fanin":
            return torch.ones(layout.numel, dtype=torch.float64)
        return _expand(layout, [math.sqrt(f) for _, f in _roles_and_fanin(layout)])

    def _role_keys(self, layout: Layout) -> list[str]:
        return [r if self.kind == "fanin" else "all" for r, _ in _roles_and_fanin(layout)]

    def fit(self, items: Iterable[tuple[torch.Tensor, Layout]], anchors: bool = False) -> Normalizer:
        """Pool statistics over the training zoo's flat vectors (and per-architecture means if ``anchors``)."""
        if self.kind not in NORMS:
            raise GeneratorError(f"unknown normalisation '{self.kind}'; use one of {', '.join(NORMS)}")
        items = list(items)
        sums: dict[str, list[float]] = {}
        for vec, layout in items:
            x = vec.to(torch.float64) * self._rescale(layout)
            offs = layout.offsets()
            for key, a, b in zip(self._role_keys(layout), offs, offs[1:]):
                acc = sums.setdefault(key, [0.0, 0.0, 0.0])
                acc[0] += float(x[a:b].sum())
                acc[1] += float((x[a:b] ** 2).sum())
                acc[2] += b - a
        self.stats = {}
        for key, (s, s2, n) in sums.items():
            mean = s / n if self.kind != "none" else 0.0
            var = max(s2 / n - (s / n) ** 2, 0.0)
            std = math.sqrt(var) if self.kind != "none" and var > 1e-16 else 1.0
            self.stats[key] = (mean, std)
        self.anchors = {}
        if anchors:
            groups: dict[str, list[torch.Tensor]] = {}
            for vec, layout in items:
                a, b = self._affine(layout)
                groups.setdefault(layout.arch, []).append(vec.to(torch.float64) * a - b)
            self.anchors = {arch: torch.stack(zs).mean(0) for arch, zs in groups.items()}
        return self

    def _affine(self, layout: Layout) -> tuple[torch.Tensor, torch.Tensor]:
        """(a, b) with z = x * a - b, the anchor included."""
        if self.stats is None:
            raise GeneratorError("the normaliser is not fitted; train the tokenizer first")
        keys = self._role_keys(layout)
        mean = _expand(layout, [self.stats.get(k, (0.0, 1.0))[0] for k in keys])
        std = _expand(layout, [self.stats.get(k, (0.0, 1.0))[1] for k in keys])
        b = mean / std
        anchor = self.anchors.get(layout.arch)
        if anchor is not None and anchor.numel() == layout.numel:
            b = b + anchor
        return self._rescale(layout) / std, b

    def normalize(self, vec: torch.Tensor, layout: Layout) -> torch.Tensor:
        a, b = self._affine(layout)
        return (vec.to(torch.float64) * a - b).to(torch.float32)

    def denormalize(self, z: torch.Tensor, layout: Layout) -> torch.Tensor:
        a, b = self._affine(layout)
        return ((z.to(torch.float64) + b) / a).to(torch.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "stats": {k: list(v) for k, v in (self.stats or {}).items()},
                "anchored_archs": sorted(self.anchors)}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The anchors, to store beside the model (float64, exact)."""
        return {arch: t.contiguous() for arch, t in self.anchors.items()}

    @classmethod
    def from_dict(cls, d: dict, tensors: dict[str, torch.Tensor] | None = None) -> Normalizer:
        tensors = tensors or {}
        missing = [a for a in d.get("anchored_archs", []) if a not in tensors]
        if missing:
            raise GeneratorError(f"tokenizer artifact lacks the anchors of {missing}; retrain the tokenizer")
        return cls(d["kind"], {k: (float(v[0]), float(v[1])) for k, v in d["stats"].items()},
                   {a: tensors[a].to(torch.float64) for a in d.get("anchored_archs", [])})


# -- buffers -----------------------------------------------------------------------------------


def complete_state_dict(params: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
    """Generated parameters plus the buffers of a fresh module (BN running mean 0, var 1, counters 0)."""
    fresh = get_adapter(arch).build(arch).state_dict()
    out = {}
    for name, t in fresh.items():
        out[name] = params[name].to(t.dtype) if name in params else t.detach().clone()
    return out


@torch.no_grad()
def recalibrate_batchnorm(module: nn.Module, batches: Iterable[torch.Tensor]) -> int:
    """Re-estimate the running statistics of every tracking BatchNorm layer as the exact mean over
    ``batches``; returns the number of layers. Only those layers run in training mode (dropout and
    stochastic depth stay off); the module is left in eval mode and its parameters are untouched.
    """
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return 0
    saved = [m.momentum for m in bns]
    module.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # exact cumulative mean over the batches given
        m.train()
    try:
        with torch.no_grad():
            for x in batches:
                module(x)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        module.eval()
    return len(bns)
