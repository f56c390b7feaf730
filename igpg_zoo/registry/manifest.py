"""Metadata from files and flags: YAML sidecars, ``--metric`` strings, and import manifests.

A manifest (``igpg-zoo add DIR --manifest zoo.yaml``) lists the models of a folder::

    defaults:                 # optional, every model starts from these
      task: image classification
      license: MIT
    models:                   # or the list alone at the top level
      - path: digits-mlp.safetensors    # relative to DIR; a native folder works too
        arch: mlp-i64-h32-o10
        dataset: digits
        metrics: {acc: 0.93}

Precedence, lowest first: manifest defaults or sidecar, the model's entry (or ``--meta`` file),
command-line flags. Metrics are merged by (name, dataset); tags are united.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from igpg_zoo.errors import InvalidMetadata
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.registry.metadata import fields_from_mapping, read_yaml_fields


@dataclass(frozen=True)
class ManifestEntry:
    path: Path
    fields: dict[str, Any]  # CheckpointMeta fields, defaults applied


def parse_metric(text: str) -> Metric:
    """``acc=0.93`` or ``acc@digits:test=0.93`` (the dataset defaults to the record's)."""
    left, sep, raw = text.rpartition("=")
    name, _, dataset = left.partition("@")
    if not sep or not name.strip():
        raise InvalidMetadata(f"--metric '{text}' must look like NAME=VALUE or NAME@DATASET=VALUE, e.g. acc=0.93")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidMetadata(f"--metric '{text}': '{raw}' is not a number") from None
    return Metric(name.strip(), value, dataset.strip())


def merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers override earlier ones; metrics merge by (name, dataset), tags unite."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if key == "metrics":
                metrics = {(m.name, m.dataset): m for m in out.get("metrics", ())}
                metrics.update({(m.name, m.dataset): m for m in value})
                out[key] = tuple(metrics.values())
            elif key == "tags":
                out[key] = tuple(dict.fromkeys((*out.get("tags", ()), *value)))
            elif key == "extra":
                out[key] = {**out.get("extra", {}), **value}
            else:
                out[key] = value
    return out


def to_meta(fields: Mapping[str, Any], origin: str) -> CheckpointMeta:
    if not fields.get("arch"):
        raise InvalidMetadata(f"{origin}: no architecture given; pass --arch or put 'arch:' in the metadata")
    return CheckpointMeta(**fields)


def sidecar_fields(path: Path) -> dict[str, Any]:
    """Fields of the YAML sidecar ``PATH.yaml`` (or ``PATH.yml``) when there is one."""
    for suffix in (".yaml", ".yml"):
        sidecar = path.with_name(path.name + suffix)
        if sidecar.is_file():
            return read_yaml_fields(sidecar)
    return {}


def read_manifest(manifest: Path, folder: Path) -> list[ManifestEntry]:
    """The entries of a manifest; every entry is type-checked before anything is imported."""
    import yaml

    try:
        # libyaml's loader where installed: the same safe subset, about ten times faster on a long manifest
        data = yaml.load(Path(manifest).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except OSError as err:
        raise InvalidMetadata(f"cannot read manifest {manifest}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise InvalidMetadata(f"manifest {manifest} is not UTF-8 text (byte {err.start}); save it as UTF-8") from None
    except yaml.YAMLError:
        raise InvalidMetadata(f"manifest {manifest} is not valid YAML; fix the file") from None
    defaults: dict[str, Any] = {}
    if isinstance(data, Mapping):
        unknown = sorted(str(k) for k in set(data) - {"defaults", "models"})  # YAML keys may be numbers
        if unknown or "models" not in data:
            raise InvalidMetadata(f"manifest {manifest} needs a 'models:' list (and optionally 'defaults:'); "
                                  f"unknown key(s): {', '.join(unknown) or '-'}")
        defaults = fields_from_mapping(data.get("defaults") or {}, f"{manifest}: defaults")
        data = data["models"]
    if not isinstance(data, list):
        raise InvalidMetadata(f"manifest {manifest} must list models, each with 'path:' and metadata keys")
    entries = []
    for i, item in enumerate(data, start=1):
        origin = f"{manifest}: model {i}"
        if not isinstance(item, Mapping) or not isinstance(item.get("path"), str):
            raise InvalidMetadata(f"{origin} needs 'path: FILE' (relative to {folder})")
        fields = fields_from_mapping({k: v for k, v in item.items() if k != "path"}, origin)
        entries.append(ManifestEntry(Path(folder) / item["path"], merge(defaults, fields)))
    return entries
