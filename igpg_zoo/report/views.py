"""What each chart of the report shows, read from the registry (no drawing here).

- ``zoo_map``: the records' stored text vectors projected to 2-D with scikit-learn's PCA (a seeded
  sample above ``max_points``), with each point's task, architecture family and kind.
- ``accuracy_by_task``: per task with generated records, the ``acc`` of its generated and of its
  other (trained, fine-tuned, imported) records.
- ``novelty``: per generated record, its distance to the nearest zoo member (share of that member's
  norm) and whether it is an exact copy.
- ``finetune_curves``: the held-out curves fine-tuned records keep in their extra facts (``igpg-zoo
  finetune`` writes ``extra["finetune"]["curve"]``), where recorded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from igpg_zoo.records import Checkpoint
from igpg_zoo.report.catalog import labels
from igpg_zoo.zoo import Zoo

NOT_GENERATED = ("trained", "finetuned", "imported")
CURVE_KEYS = ("curve", "finetune", "finetuning", "fine_tune", "history")
X_KEYS = ("epoch", "step", "steps", "x")
Y_KEYS = ("val_acc", "acc", "accuracy", "test_acc", "loss", "val_loss", "y")


@dataclass
class ZooMap:
    xy: np.ndarray  # (n, 2)
    tasks: list[str]
    families: list[str]
    generated: np.ndarray  # (n,) bool
    total: int  # records with a vector (n or more when sampled)
    explained: tuple[float, float]  # variance share of the two components


@dataclass
class Curve:
    record_id: int
    name: str
    x: list[float]
    y: list[float]
    label: str  # what y is


def family(arch: str) -> str:
    """The architecture's family: the text before its first '-' (mlp, cnn, timm/resnet18 ...)."""
    return arch.split("-", 1)[0] or arch


def zoo_map(zoo: Zoo, max_points: int, seed: int = 0) -> ZooMap | None:
    from sklearn.decomposition import PCA

    ids, vectors = zoo.store.vectors()
    if len(ids) < 3:
        return None
    total = len(ids)
    if total > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(total, size=max_points, replace=False))
        ids, vectors = ids[keep], vectors[keep]
    known = labels(zoo)
    rows = [known.get(int(i), ("", "", "")) for i in ids]  # a record removed meanwhile: unlabelled
    pca = PCA(n_components=2, random_state=seed)
    xy = pca.fit_transform(np.asarray(vectors, dtype=np.float64))
    ratio = pca.explained_variance_ratio_
    return ZooMap(xy=xy, tasks=[task or "(no task)" for task, _, _ in rows],
                  families=[family(arch) for _, arch, _ in rows],
                  generated=np.array([kind == "generated" for _, _, kind in rows]), total=total,
                  explained=(float(ratio[0]), float(ratio[1])))


def _acc(record: Checkpoint) -> float | None:
    value = record.metric("acc")
    return value if value is not None and math.isfinite(value) else None


def accuracy_by_task(zoo: Zoo) -> list[tuple[str, list[float], list[float]]]:
    """(task, other records' acc, generated records' acc) per task that has generated records."""
    generated = zoo.list(kind=("generated",))
    by_task: dict[str, list[float]] = {}
    for r in generated:
        if _acc(r) is not None:
            by_task.setdefault(r.task, []).append(_acc(r))
    rows = []
    for task, gen in sorted(by_task.items()):
        pattern = task if not any(c in task for c in "*?[") else "*"
        others = [_acc(r) for r in zoo.list(task=(pattern,), kind=NOT_GENERATED) if r.task == task]
        rows.append((task, [a for a in others if a is not None], gen))
    return rows


def novelty(zoo: Zoo) -> list[dict[str, Any]]:
    """Per generated record: id, task, relative and absolute distance to its nearest member, copy or not."""
    rows = []
    for r in zoo.list(kind=("generated",)):
        near = r.extra.get("nearest") or {}
        rel = near.get("relative_distance")
        if not isinstance(rel, (int, float)) or not math.isfinite(rel):
            continue
        rows.append({"id": r.id, "task": r.task, "arch": r.arch, "relative_distance": float(rel),
                     "distance": near.get("distance"), "nearest_id": near.get("id"),
                     "exact_copy": near.get("exact_copy_of") is not None, "acc": _acc(r)})
    return rows


def finetune_curves(zoo: Zoo, limit: int = 24) -> list[Curve]:
    """Curves recorded by fine-tuned records (newest first, at most ``limit``); none is fine."""
    curves = []
    for r in zoo.list(kind=("finetuned",)):
        curve = _curve(r)
        if curve is not None:
            curves.append(curve)
        if len(curves) >= limit:
            break
    return curves


def _curve(record: Checkpoint) -> Curve | None:
    """A curve from the record's extra facts, under one of ``CURVE_KEYS`` (directly or one level down, as
    ``igpg-zoo finetune`` keeps it in ``extra["finetune"]["curve"]``): columns ``{steps, val_acc, ...}``,
    a list of numbers, or a list of ``{epoch|step, acc|loss ...}`` maps."""
    for key in CURVE_KEYS:
        value = record.extra.get(key)
        if isinstance(value, dict) and _columns(value) is None:
            value = next((value[k] for k in CURVE_KEYS if k in value), None)
        points = _points(value)
        if points is not None:
            return Curve(record.id, record.name, *points)
    return None


def _numbers(value: Any) -> bool:
    return isinstance(value, list) and len(value) >= 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)


def _columns(value: dict) -> tuple[list[float], list[float], str] | None:
    ykey = next((k for k in Y_KEYS if _numbers(value.get(k))), None)
    if ykey is None:
        return None
    ys = [float(v) for v in value[ykey]]
    xkey = next((k for k in X_KEYS if _numbers(value.get(k)) and len(value[k]) == len(ys)), None)
    xs = [float(v) for v in value[xkey]] if xkey else list(range(1, len(ys) + 1))
    return xs, ys, ykey


def _points(value: Any) -> tuple[list[float], list[float], str] | None:
    if isinstance(value, dict):
        return _columns(value)
    if _numbers(value):
        return list(range(1, len(value) + 1)), [float(v) for v in value], "value"
    if not isinstance(value, list) or len(value) < 2 or not all(isinstance(v, dict) for v in value):
        return None
    ykey = next((k for k in Y_KEYS if all(isinstance(v.get(k), (int, float)) for v in value)), None)
    if ykey is None:
        return None
    xkey = next((k for k in X_KEYS if all(isinstance(v.get(k), (int, float)) for v in value)), None)
    xs = [float(v[xkey]) for v in value] if xkey else list(range(1, len(value) + 1))
    return xs, [float(v[ykey]) for v in value], ykey

