"""Plain frozen records that cross layers. ORM rows never leave the store; these do."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from igpg_zoo.errors import NotFound

#: How a checkpoint came to be. "trained" = trained from scratch, "finetuned" = trained from a
#: parent checkpoint, "generated" = sampled by an IGPG generator, "imported" = added by a user.
KINDS = ("trained", "finetuned", "generated", "imported")
MAX_ID = 2**63 - 1  # the largest id a database integer key holds
ID_CHUNK = 5000  # ids per IN (...) list; SQLite allows 32766 variables


def valid_id(record_id: int) -> bool:
    """Whether ``record_id`` can name a row at all (a larger one overflows the database's integer)."""
    return 1 <= int(record_id) <= MAX_ID


def in_id_order(ids: list[int], found: dict) -> list:
    """The records of ``found`` (id -> record) in the order of ``ids``; any id not found is NotFound."""
    missing = [i for i in ids if i not in found]
    if missing:
        shown = ", ".join(f"#{i}" for i in missing[:5])
        raise NotFound(f"no checkpoint {shown} in the registry; see 'igpg-zoo list'")
    return [found[i] for i in ids]


@dataclass(frozen=True)
class Metric:
    name: str
    value: float
    dataset: str  # the dataset (split) the value was measured on


@dataclass(frozen=True)
class Checkpoint:
    id: int
    name: str
    arch: str
    task: str
    dataset: str
    n_params: int
    metrics: tuple[Metric, ...]
    tags: tuple[str, ...]
    license: str
    source: str
    created_at: str  # ISO 8601, UTC
    sha256: str
    size_bytes: int
    parent_id: int | None = None
    kind: str = "imported"
    extra: dict[str, Any] = field(default_factory=dict)  # provenance, export facts, ...

    def metric(self, name: str) -> float | None:
        """The value of metric ``name``, or None."""
        for m in self.metrics:
            if m.name == name:
                return m.value
        return None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # a metric measured on several datasets keeps every value: later ones as "name@dataset"
        metrics: dict[str, dict[str, Any]] = {}
        for m in self.metrics:
            key = m.name if m.name not in metrics else f"{m.name}@{m.dataset}"
            metrics[key] = {"value": m.value, "dataset": m.dataset}
        d["metrics"] = metrics
        d["tags"] = list(self.tags)
        return d


@dataclass(frozen=True)
class Hit:
    """One search result: a record and its similarity score (higher is better)."""

    checkpoint: Checkpoint
    score: float


@dataclass(frozen=True)
class UnitGroup:
    """Hidden units an architecture can permute without changing its function (a layer's outputs).

    Permuting the group reorders axis 0 of ``outputs`` (and of ``buffers``, e.g. BatchNorm running
    statistics) and axis 1 of ``inputs`` (the next layer's weight) the same way.
    """

    size: int
    outputs: tuple[str, ...]
    inputs: tuple[str, ...]
    buffers: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParamSpec:
    """One generated tensor of an architecture's parameter layout, in order."""

    name: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n


@dataclass(frozen=True)
class Artifact:
    """A generator artifact (tokenizer or prior) stored and versioned by the registry."""

    id: int
    kind: str  # "tokenizer" | "prior"
    name: str
    sha256: str
    size_bytes: int
    created_at: str
    config: dict[str, Any]
    provenance: dict[str, Any]  # zoo snapshot (record ids + hashes), seed, parent artifact, ...
    parent_id: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """What igpg-zoo knows about a dataset (built-in, generated or the user's)."""

    name: str
    modality: str  # "image" | "sequence" | "tabular"
    input_shape: tuple[int, ...]
    n_classes: int
    description: str
    source: str = ""


@dataclass(frozen=True)
class CheckpointMeta:
    """Metadata of a checkpoint to be added (everything but the weights)."""

    arch: str
    task: str = ""
    dataset: str = ""
    metrics: tuple[Metric, ...] = ()
    tags: tuple[str, ...] = ()
    license: str = ""
    source: str = ""
    name: str | None = None  # default: derived from arch / dataset
    parent_id: int | None = None
    kind: str = "imported"
    extra: dict[str, Any] = field(default_factory=dict)
    dataset_embedding: tuple[float, ...] | None = None  # see igpg_zoo.data.embedding


@dataclass(frozen=True)
class AddResult:
    checkpoint: Checkpoint
    created: bool  # False when the same weights + identity already existed (idempotent add)


@dataclass(frozen=True)
class RecordedAnswer:
    """An answer of ``query`` as stored: inputs (with the data's fingerprint), candidates, decision."""

    id: int
    created_at: str
    data_fingerprint: str  # "" when the answer had no data
    inputs: dict[str, Any]
    candidates: list[Any]
    decision: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
