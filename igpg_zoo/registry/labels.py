"""The label a weights file carries, read back by ``igpg-zoo add``: generated weights stay generated.

igpg-zoo writes what it knows about exported weights into the file (safetensors string metadata,
key ``igpg_zoo``) or the native folder (``Adapter.read_native_meta``): ``export_record`` the
record's metadata, ``igpg-zoo generate --out`` the generator's provenance. When that label says
the weights were generated (``kind: generated``, or a provenance naming a generator), ``add``
records them as kind ``generated`` with the provenance in ``extra`` and the label's task, dataset,
metrics and source as defaults.

Precedence, lowest first: the file's label, then sidecar / ``--meta`` / manifest, then flags; except
that the kind of generated weights cannot be changed, and the file's provenance is the one kept:
round-tripping through a file never turns generated weights into "trained" or "imported" ones.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from igpg_zoo.errors import InvalidMetadata
from igpg_zoo.registry.manifest import merge
from igpg_zoo.registry.metadata import fields_from_mapping

GENERATED = "generated"
_TEXT_KEYS = ("task", "dataset", "source", "license")


def is_generated(meta: Mapping[str, Any]) -> bool:
    """Whether a file's label says its weights were generated (kind, or a generator's provenance)."""
    provenance = meta.get("provenance")
    return meta.get("kind") == GENERATED or (isinstance(provenance, Mapping) and "generator" in provenance)


def generator_id(provenance: Mapping[str, Any]) -> int | None:
    """The prior artifact id a generator provenance names, if any."""
    generator = provenance.get("generator")
    return generator.get("prior_artifact_id") if isinstance(generator, Mapping) else None


def file_label(path: Path) -> dict[str, Any]:
    """The igpg-zoo metadata ``path`` carries: a safetensors file's ``igpg_zoo`` JSON (plus its
    ``arch``) or a native folder's meta; {} when it carries none."""
    path = Path(path)
    if path.is_dir():
        return _folder_label(path)
    if path.suffix.lower() != ".safetensors":
        return {}
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="numpy") as f:
            strings = f.metadata() or {}
    except (SafetensorError, OSError, ValueError):
        return {}  # unreadable: adding it reports the full message
    try:
        meta = json.loads(strings.get("igpg_zoo") or "{}")
    except ValueError:
        meta = {}
    meta = dict(meta) if isinstance(meta, Mapping) else {}
    for key in ("arch", "kind"):  # the plain strings win over the JSON copy
        if strings.get(key):
            meta[key] = strings[key]
    return meta


def _folder_label(path: Path) -> dict[str, Any]:
    from igpg_zoo.adapters import loaded_adapters

    for adapter in loaded_adapters():
        meta = adapter.read_native_meta(path)
        if meta:
            return dict(meta)
    return {}


def label_fields(meta: Mapping[str, Any], origin: str) -> dict[str, Any]:
    """CheckpointMeta fields from a file's label: its arch; for generated weights also kind, task,
    dataset, metrics, tags, source, license and ``extra`` (provenance, generator artifact id)."""
    fields: dict[str, Any] = {"arch": meta["arch"]} if isinstance(meta.get("arch"), str) and meta["arch"] else {}
    if not is_generated(meta):
        return fields
    provenance = meta.get("provenance") if isinstance(meta.get("provenance"), Mapping) else {}
    conditioning = provenance.get("conditioning") if isinstance(provenance.get("conditioning"), Mapping) else {}
    gen_id = meta.get("generator_artifact_id", generator_id(provenance))
    mapping: dict[str, Any] = {key: meta.get(key) or None for key in _TEXT_KEYS}
    mapping["task"] = mapping["task"] or conditioning.get("task") or None
    mapping["dataset"] = mapping["dataset"] or conditioning.get("dataset") or None
    mapping["source"] = mapping["source"] or (f"igpg prior #{gen_id}" if gen_id is not None else None)
    tags = meta.get("tags")
    mapping.update(kind=GENERATED, metrics=meta.get("metrics") or None,
                   tags=[*(tags if isinstance(tags, list) else []), GENERATED],
                   extra={"provenance": dict(provenance), "generator_artifact_id": gen_id})
    return {**fields, **fields_from_mapping(mapping, f"{origin} (its igpg-zoo metadata)")}


def labelled_fields(path: Path, found: Mapping[str, Any], *layers: Mapping[str, Any]) -> dict[str, Any]:
    """``merge(the file's label fields, found, *layers)``, keeping generated weights generated.

    ``found`` (what the caller read: a native folder's arch, the default name) beats the label.
    Raises InvalidMetadata when a later layer gives generated weights another kind.
    """
    label = label_fields(file_label(path), str(path))
    fields = merge(label, found, *layers)
    if label.get("kind") != GENERATED:
        return fields
    if fields.get("kind") != GENERATED:
        raise InvalidMetadata(
            f"{path} holds generated weights (its igpg-zoo metadata says so), so its kind stays "
            f"'{GENERATED}', not '{fields.get('kind')}'; drop 'kind' from the metadata"
        )
    fields["extra"] = {**fields.get("extra", {}), **label["extra"]}  # the file's provenance is kept
    return fields
