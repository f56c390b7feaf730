"""Checkpoint metadata: validation, the identity of an add, and reading it from YAML mappings.

Identity: the same weights with the same metadata are the same record (adding them again returns
it with ``created=False``); the same weights with other metadata are a second record sharing a blob.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from igpg_zoo.errors import InvalidMetadata
from igpg_zoo.records import KINDS, MAX_ID, CheckpointMeta, Metric

FIELDS = ("arch", "task", "dataset", "metrics", "tags", "license", "source", "name", "parent_id", "kind", "extra")
_TEXT_FIELDS = ("arch", "task", "dataset", "license", "source", "name", "kind")
_METRIC_NAME = re.compile(r"^[A-Za-z_][\w.\-]*$")


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidMetadata(f"{what} must be a finite number, got {value!r}")
    return float(value)


# the widest text each database column holds (db.py); SQLite would store more, PostgreSQL refuses it
WIDTHS = {"arch": 1024, "task": 512, "dataset": 512, "license": 256, "name": 512, "tag": 128, "metric": 128}


def _fits(value: str, what: str) -> None:
    """Text a database column can hold: no NUL character (PostgreSQL refuses it), not too long."""
    width = WIDTHS.get(what)
    if "\x00" in value:
        raise InvalidMetadata(f"{what} {value[:40]!r} contains a NUL character; remove it")
    if width is not None and len(value) > width:
        raise InvalidMetadata(f"{what} is {len(value):,} characters long, more than the {width} a registry "
                              f"stores; shorten it ({value[:40]!r}...)")


def _check_widths(meta: CheckpointMeta, metrics: list[Metric], tags: tuple[str, ...]) -> None:
    for key in ("arch", "task", "dataset", "license"):
        _fits(getattr(meta, key), key)
    _fits(default_name(meta), "name")
    _fits(meta.source, "source")
    for tag in tags:
        _fits(tag, "tag")
    for m in metrics:
        _fits(m.name, "metric")
        _fits(m.dataset, "dataset")


def validate(meta: CheckpointMeta) -> CheckpointMeta:
    """Check types and values; metrics without a dataset get the record's dataset."""
    for key in ("arch", "task", "dataset", "license", "source", "kind"):
        if not isinstance(getattr(meta, key), str):
            raise InvalidMetadata(f"'{key}' must be text, got {getattr(meta, key)!r}")
    if not meta.arch.strip():
        raise InvalidMetadata("the architecture is missing; pass --arch (see 'igpg-zoo adapters')")
    if meta.name is not None and (not isinstance(meta.name, str) or not meta.name.strip()):
        raise InvalidMetadata(f"'name' must be non-empty text, got {meta.name!r}")
    if meta.kind not in KINDS:
        raise InvalidMetadata(f"kind '{meta.kind}' is unknown; use one of {', '.join(KINDS)}")
    if meta.parent_id is not None and (isinstance(meta.parent_id, bool) or not isinstance(meta.parent_id, int)
                                       or not 1 <= meta.parent_id <= MAX_ID):
        raise InvalidMetadata(f"'parent_id' must be a record id (an integer from 1), got {meta.parent_id!r}")
    metrics, seen = [], set()
    for m in meta.metrics:
        if not isinstance(m, Metric) or not isinstance(m.name, str) or not _METRIC_NAME.match(m.name):
            raise InvalidMetadata(f"metric {m!r} needs a name of letters, digits, '_', '.', '-'")
        dataset = m.dataset or meta.dataset
        if not isinstance(dataset, str):
            raise InvalidMetadata(f"the dataset of metric '{m.name}' must be text, got {dataset!r}")
        if (m.name, dataset) in seen:
            raise InvalidMetadata(f"metric '{m.name}' on '{dataset}' is given twice; keep one value")
        seen.add((m.name, dataset))
        metrics.append(Metric(m.name, _finite(m.value, f"metric '{m.name}'"), dataset))
    tags = tuple(meta.tags)
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidMetadata(f"tags must be non-empty text, got {tag!r}")
    _check_widths(meta, metrics, tags)
    if not isinstance(meta.extra, Mapping):
        raise InvalidMetadata(f"'extra' must be a mapping, got {type(meta.extra).__name__}")
    require_json(dict(meta.extra), "'extra'")
    dataset_embedding = meta.dataset_embedding
    if dataset_embedding is not None:
        dataset_embedding = tuple(_finite(v, "dataset_embedding") for v in dataset_embedding)
    return replace(meta, metrics=tuple(sorted(metrics, key=lambda m: (m.name, m.dataset))),
                   tags=tuple(sorted({t.strip() for t in tags})), extra=dict(meta.extra),
                   dataset_embedding=dataset_embedding)


def default_name(meta: CheckpointMeta) -> str:
    return meta.name or (f"{meta.arch} on {meta.dataset}" if meta.dataset else meta.arch)


def identity(weights_sha256: str, meta: CheckpointMeta) -> str:
    """sha256 over the weights' sha and the canonical (validated) metadata."""
    key = {
        "sha256": weights_sha256, "name": default_name(meta), "arch": meta.arch, "task": meta.task,
        "dataset": meta.dataset, "metrics": [[m.name, m.value, m.dataset] for m in meta.metrics],
        "tags": list(meta.tags), "license": meta.license, "source": meta.source, "parent_id": meta.parent_id,
        "kind": meta.kind, "extra": meta.extra,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


# -- mappings (YAML sidecars, manifests) ---------------------------------------------------------


def _metrics(value: Any, origin: str) -> tuple[Metric, ...]:
    """``{acc: 0.9}``, ``{acc: {value: 0.9, dataset: x}}`` or ``[{name, value, dataset}]``."""
    if isinstance(value, Mapping):
        items = []
        for name, v in value.items():
            if isinstance(v, Mapping):
                unknown = set(v) - {"value", "dataset"}
                if unknown or "value" not in v:
                    raise InvalidMetadata(f"{origin}: metric '{name}' needs 'value' (and optionally 'dataset')")
                items.append({"name": name, **v})
            else:
                items.append({"name": name, "value": v})
        value = items
    if not isinstance(value, list):
        raise InvalidMetadata(f"{origin}: 'metrics' must map names to numbers, e.g. metrics: {{acc: 0.9}}")
    out = []
    for item in value:
        if not isinstance(item, Mapping) or set(item) - {"name", "value", "dataset"} or "name" not in item:
            raise InvalidMetadata(f"{origin}: each metric needs 'name' and 'value' (optionally 'dataset')")
        name, dataset = item["name"], item.get("dataset", "")
        if not isinstance(name, str) or not isinstance(dataset, str):
            raise InvalidMetadata(f"{origin}: metric name and dataset must be text, got {name!r} / {dataset!r}")
        out.append(Metric(name, _finite(item.get("value"), f"{origin}: metric '{name}'"), dataset))
    return tuple(out)


def fields_from_mapping(data: Any, origin: str) -> dict[str, Any]:
    """The CheckpointMeta fields a YAML mapping gives, type-checked; ``origin`` names it in errors."""
    if not isinstance(data, Mapping):
        raise InvalidMetadata(f"{origin} must be a mapping of metadata keys ({', '.join(FIELDS)})")
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise InvalidMetadata(f"{origin}: unknown key(s) {', '.join(unknown)}; known: {', '.join(FIELDS)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if key in _TEXT_FIELDS:
            if not isinstance(value, str):
                raise InvalidMetadata(f"{origin}: '{key}' must be text, got {type(value).__name__} {value!r}")
            out[key] = value
        elif key == "metrics":
            out[key] = _metrics(value, origin)
        elif key == "tags":
            tags = [value] if isinstance(value, str) else value
            if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
                raise InvalidMetadata(f"{origin}: 'tags' must be a list of text, got {value!r}")
            out[key] = tuple(tags)
        elif key == "parent_id":
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidMetadata(f"{origin}: 'parent_id' must be an integer record id, got {value!r}")
            out[key] = value
        elif key == "extra":
            if not isinstance(value, Mapping):
                raise InvalidMetadata(f"{origin}: 'extra' must be a mapping, got {value!r}")
            out[key] = dict(value)
    return out


def read_yaml_fields(path, origin: str | None = None) -> dict[str, Any]:
    """Read a YAML metadata file (sidecar or --meta) into CheckpointMeta fields."""
    import yaml

    origin = origin or str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh.read())
    except OSError as err:
        raise InvalidMetadata(f"cannot read metadata file {origin}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise InvalidMetadata(f"{origin} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        raise InvalidMetadata(f"{origin} is not valid YAML{line}; fix the file") from None
    return fields_from_mapping(data or {}, origin)


def require_json(value: Any, what: str) -> None:
    """Refuse ``value`` unless it is plain JSON (text, numbers, lists, maps; no NaN)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as err:
        raise InvalidMetadata(f"{what} must hold only JSON values (text, numbers, lists, maps): {err}") from None
