"""What a native folder says about its weights: arch, dataset name and descriptor, provenance."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from typing import Any

from igpg_zoo.errors import ZooError


def dataset_descriptor(meta: dict[str, Any]) -> dict[str, Any] | None:
    """The dataset descriptor (name, modality, input shape, classes, description) for ``meta``.

    ``meta["dataset_info"]`` (a DatasetInfo or dict) wins; otherwise a built-in dataset or generated
    task named by ``meta["dataset"]`` is described from its name (base dataset's DatasetInfo, the
    task's options and class count; no data is loaded); anything else gives None.
    """
    info = meta.get("dataset_info")
    if is_dataclass(info):
        info = asdict(info)
    if isinstance(info, dict):
        return _jsonable(info)
    name = meta.get("dataset")
    if not isinstance(name, str) or not name:
        return None
    try:  # parse the task name only: exporting must not load or generate the data
        from igpg_zoo.data.sources import get_source
        from igpg_zoo.data.tasks import parse_task

        spec = parse_task(name)
        base = get_source(spec.base).info
    except (ZooError, ImportError):  # a user's own dataset name: the name is all we know
        return None
    return _jsonable({"name": spec.name, "modality": base.modality, "n_classes": spec.n_classes,
                      "task_options": dict(spec.options), "base": asdict(base)})


def native_meta(arch: str, meta: dict[str, Any]) -> dict[str, Any]:
    """The igpg-zoo block of a native folder: arch, dataset, dataset descriptor and the caller's meta."""
    return {"arch": arch, "dataset": meta.get("dataset"), "dataset_info": dataset_descriptor(meta),
            "meta": _jsonable({k: v for k, v in meta.items() if k != "dataset_info"})}


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
