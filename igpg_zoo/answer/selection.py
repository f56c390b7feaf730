"""``select``: rank stored members as starts for the user's data, the estimate and static baselines side by side.

Every member whose architecture takes the data is scored (no diversification: model selection
ranks them all); each estimate is cached in the registry by (checkpoint, data fingerprint,
estimate), so a second run on the same data only reads. The static baselines are the stored
accuracy (on the member's own task) and the parameter count; ``order`` picks the shortlist's order.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from igpg_zoo.answer.sample import UserSample
from igpg_zoo.answer.settings import ORDERS, SelectSettings
from igpg_zoo.errors import ConfigError, NothingToReturn
from igpg_zoo.records import Checkpoint


@dataclass
class Ranked:
    record: Checkpoint
    arch: str  # the architecture for the data (a resized head where needed)
    estimate: float
    held_accuracy: float | None
    cached: bool

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {"id": r.id, "name": r.name, "arch": self.arch, "stored_arch": r.arch, "task": r.task,
                "dataset": r.dataset, "kind": r.kind, "estimate": round(self.estimate, 6),
                "held_accuracy": None if self.held_accuracy is None else round(self.held_accuracy, 6),
                "stored_acc": r.metric("acc"), "n_params": r.n_params, "cached": self.cached}


@dataclass
class Selection:
    rows: list[Ranked]  # the shortlist, in ``settings.order``
    scored: int  # members scored (cache hits included)
    cache_hits: int
    data: dict[str, Any]
    settings: SelectSettings
    seconds: float = 0.0
    ranks: dict[str, list[int]] = field(default_factory=dict)  # ids in each order, before the cut to k

    def to_dict(self) -> dict[str, Any]:
        return {"rows": [r.to_dict() for r in self.rows], "scored": self.scored, "cache_hits": self.cache_hits,
                "data": self.data, "settings": self.settings.to_dict(), "seconds": round(self.seconds, 3),
                "ranks": self.ranks}


def _acc(r: Ranked) -> float:
    acc = r.record.metric("acc")
    return acc if acc is not None else float("-inf")


def _key(order: str):
    """Best first; ties of the estimate go to the higher stored accuracy, then the lower id."""
    if order == "acc":
        return lambda r: (-_acc(r), r.record.id)
    if order == "params":
        return lambda r: (-r.record.n_params, r.record.id)
    return lambda r: (-r.estimate, -_acc(r), r.record.id)


def _score_all(zoo, members, sample: UserSample, s: SelectSettings, progress=None) -> tuple[list[Ranked], int]:
    from igpg_zoo.answer.estimate import score_model
    from igpg_zoo.answer.heads import transplant

    cache = zoo.answers.scores(sample.fingerprint, s.estimate, [r.id for r, _ in members])
    fresh: dict[int, tuple[str, float, dict]] = {}
    rows, hits = [], 0
    for done, (record, target) in enumerate(members, 1):
        if progress is not None:
            progress(done, len(members))
        hit = cache.get(record.id)
        if hit is not None and hit[0] == record.sha256:
            hits += 1
            rows.append(Ranked(record, target, hit[1], hit[2].get("held_accuracy"), True))
            continue
        weights = transplant(zoo.blobs.load(record.sha256), record.arch, target, s.seed)
        sc = score_model(target, weights, sample, s.estimate, s.ridge)
        fresh[record.id] = (record.sha256, sc.value, {"held_accuracy": sc.held_accuracy, "arch": target})
        rows.append(Ranked(record, target, sc.value, sc.held_accuracy, False))
    if fresh:
        zoo._writable()
        zoo.answers.put_scores(sample.fingerprint, s.estimate, fresh)
    return rows, hits


def select(zoo, data, arch: tuple[str, ...] = (), filters: dict | None = None,
           settings: SelectSettings = SelectSettings(), label: str = "label", progress=None) -> Selection:
    """The members that take ``data`` (path or Dataset), scored and ordered; see the module doc.

    ``progress(done, total)`` is called as members are scored."""
    from igpg_zoo.answer.candidates import _arch_ok
    from igpg_zoo.answer.compose import check_arch
    from igpg_zoo.answer.estimate import check_estimate
    from igpg_zoo.answer.heads import target_arch
    from igpg_zoo.answer.sample import split_sample
    from igpg_zoo.data.userdata import load_user_data

    s = settings
    check_estimate(s.estimate)
    if s.order not in ORDERS:
        raise ConfigError(f"--order must be one of {', '.join(ORDERS)}, got '{s.order}'")
    if s.k < 1:
        raise ConfigError(f"-k must be at least 1, got {s.k}")
    start = time.perf_counter()
    ds = load_user_data(data, label=label, seed=s.seed) if isinstance(data, (str, Path)) else data
    sample = split_sample(ds, s.probe, s.held_fraction, s.seed)
    check_arch(tuple(arch), sample)
    members = []
    for record in zoo.list(**(filters or {})):
        target = target_arch(record.arch, sample.input_shape, sample.n_classes)
        if target is not None and _arch_ok(record.arch, target, tuple(arch)):
            members.append((record, target))
    if not members:
        raise NothingToReturn(f"no stored member takes data of shape {sample.input_shape} with {sample.n_classes} "
                              "classes (within the filters); see 'igpg-zoo query --data' for proposed architectures")
    rows, hits = _score_all(zoo, members, sample, s, progress)
    ranks = {o: [r.record.id for r in sorted(rows, key=_key(o))] for o in ORDERS}
    data_info = {"name": ds.name, "fingerprint": sample.fingerprint, "input_shape": list(sample.input_shape),
                 "n_classes": sample.n_classes}
    return Selection(sorted(rows, key=_key(s.order))[:s.k], len(rows), hits, data_info, s,
                     time.perf_counter() - start, ranks)
