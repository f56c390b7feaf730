"""Candidates of an answer: stored members found by text, filters and data similarity, diversified.

Diversified means one row per (task, architecture) group by default, the group's best-measured
member standing for it (``all_members`` keeps every member). With a user sample only members whose
architecture takes the data (input shape; output count or a resizable head) are candidates, and
``--arch`` patterns match either the stored architecture or the one it becomes for the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from igpg_zoo.answer.sample import UserSample
from igpg_zoo.records import Checkpoint

TEXT_POOL = 200  # text hits read before filtering by data and diversifying
_DATA_PART = slice(0, 388)  # meta, global and class blocks of a dataset embedding (the text block left out)


@dataclass
class Candidate:
    source: str  # "retrieved" | "generated" | "random" (a reference row)
    arch: str  # the architecture handed out (a retrieved member's may carry a resized head)
    record: Checkpoint | None = None  # retrieved: the member; generated: None
    text_score: float | None = None
    data_similarity: float | None = None
    group_size: int = 1
    draw: dict[str, Any] | None = None  # generated: seed, index, log_likelihood, nearest, replica_of
    estimate: float | None = None
    held_accuracy: float | None = None
    cached: bool = False  # the estimate was read from select's cache (same checkpoint, data and estimate)
    weights: dict | None = field(default=None, repr=False)
    scored: Any = field(default=None, repr=False)

    @property
    def label(self) -> str:
        if self.record is not None:
            return f"#{self.record.id}"
        if self.source == "random":
            return "random"
        return f"draw {self.draw['index']}" if self.draw else "draw"

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {"source": self.source, "label": self.label, "arch": self.arch,
                "id": r.id if r is not None else None, "stored_arch": r.arch if r is not None else None,
                "task": r.task if r is not None else None, "dataset": r.dataset if r is not None else None,
                "stored_acc": r.metric("acc") if r is not None else None,
                "n_params": r.n_params if r is not None else None, "group_size": self.group_size,
                "text_score": _round(self.text_score), "data_similarity": _round(self.data_similarity),
                "estimate": _round(self.estimate), "held_accuracy": _round(self.held_accuracy),
                "cached": self.cached, "draw": self.draw}


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 6)


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


def data_vector(sample: UserSample) -> np.ndarray:
    """The user's data embedding without its text block (no text embedder is loaded)."""
    from igpg_zoo.data.embedding import combine, data_blocks

    vec = combine(data_blocks(sample.fit_dataset()), np.zeros(1))
    return _unit(np.asarray(vec, dtype=np.float64)[_DATA_PART])


def _pool(zoo, text: str | None, filters: dict) -> list[tuple[Checkpoint, float | None]]:
    if text and text.strip():
        hits = zoo.query(text, k=TEXT_POOL, **filters)
        return [(h.checkpoint, h.score) for h in hits]
    return [(r, None) for r in zoo.list(**filters)]


def _arch_ok(stored: str, target: str | None, patterns: tuple[str, ...]) -> bool:
    return not patterns or any(fnmatchcase(stored, p) or (target is not None and fnmatchcase(target, p))
                               for p in patterns)


def retrieve(zoo, text: str | None, filters: dict, arch_patterns: tuple[str, ...], sample: UserSample | None,
             all_members: bool = False, limit: int = 12) -> list[Candidate]:
    """Up to ``limit`` candidates, most promising first (text score plus data similarity), diversified."""
    from igpg_zoo.answer.heads import target_arch

    found: list[Candidate] = []
    for record, score in _pool(zoo, text, filters):
        target = target_arch(record.arch, sample.input_shape, sample.n_classes) if sample is not None else record.arch
        if (sample is not None and target is None) or not _arch_ok(record.arch, target, arch_patterns):
            continue
        found.append(Candidate("retrieved", target, record, text_score=score))
    if sample is not None and found:
        user = data_vector(sample)
        stored = zoo.answers.dataset_vectors([c.record.id for c in found])
        for c in found:
            vec = stored.get(c.record.id)
            c.data_similarity = float(_unit(vec[_DATA_PART].astype(np.float64)) @ user) if vec is not None else 0.0
    found.sort(key=lambda c: (-((c.text_score or 0.0) + (c.data_similarity or 0.0)), c.record.id))
    return (found if all_members else diversify(found))[:limit]


def diversify(found: list[Candidate]) -> list[Candidate]:
    """One candidate per (task, architecture): the best-measured member, at the group's first position."""
    groups: dict[tuple[str, str], list[Candidate]] = {}
    for c in found:
        groups.setdefault((c.record.task, c.record.arch), []).append(c)
    out = []
    for members in groups.values():
        acc = [m.record.metric("acc") for m in members]
        best = max(range(len(members)), key=lambda i: (acc[i] if acc[i] is not None else float("-inf"), -i))
        chosen = members[best]
        chosen.text_score, chosen.data_similarity = members[0].text_score, members[0].data_similarity
        chosen.group_size = len(members)
        out.append(chosen)
    return out
