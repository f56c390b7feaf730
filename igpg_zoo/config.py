"""Where the registry lives: ``--registry`` > ``IGPG_ZOO_REGISTRY`` > YAML config > ``./registry.db``.

A value without ``://`` is a SQLite file path; anything else is a SQLAlchemy URL passed through.
Blobs live beside a SQLite file (``blobs/``); a server database needs the blob root set
explicitly (``--blobs``, ``IGPG_ZOO_BLOBS`` or ``blobs:`` in the YAML config). The FAISS index is a
cache beside the SQLite file, or in ``index_dir`` / a per-URL cache folder for a server database.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, fields
from pathlib import Path

from igpg_zoo.errors import ConfigError

DEFAULT_REGISTRY = "registry.db"
CONFIG_ENV = "IGPG_ZOO_CONFIG"
DEFAULT_CONFIG_FILE = "igpg-zoo.yaml"


@dataclass(frozen=True)
class ZooConfig:
    registry: str = DEFAULT_REGISTRY  # SQLite path or SQLAlchemy URL
    blobs: str | None = None  # blob root; default: blobs/ beside a SQLite file
    index_dir: str | None = None  # FAISS cache folder; default: beside a SQLite file
    embedder: str | None = None  # sentence-transformers model path; default: the bundled MiniLM
    approx_threshold: int = 50_000  # above this many distinct vectors the index is HNSW, else exact

    @property
    def is_sqlite_file(self) -> bool:
        return "://" not in self.registry

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the registry."""
        if self.is_sqlite_file:
            return f"sqlite:///{Path(self.registry).expanduser().resolve()}"
        return self.registry

    @property
    def blob_root(self) -> Path:
        if self.blobs:
            return Path(self.blobs).expanduser().resolve()
        if self.is_sqlite_file:
            return Path(self.registry).expanduser().resolve().parent / "blobs"
        raise ConfigError(
            "a server registry needs an explicit blob folder: pass --blobs PATH, set "
            "IGPG_ZOO_BLOBS or add 'blobs: PATH' to igpg-zoo.yaml"
        )

    @property
    def blob_owner(self) -> str:
        """Who the blob folder belongs to: the SQLite file's name when it sits beside its folder (so
        the pair can move together), else the file's absolute path or the URL without a password."""
        if self.is_sqlite_file:
            db = Path(self.registry).expanduser().resolve()
            return db.name if db.parent == self.blob_root.parent else str(db)
        return re.sub(r"(://[^:/@]+):[^@]*@", r"\1@", self.registry)

    @property
    def index_path(self) -> Path:
        if self.index_dir:
            folder = Path(self.index_dir).expanduser().resolve()
        elif self.is_sqlite_file:
            db = Path(self.registry).expanduser().resolve()
            return db.with_suffix(".faiss")
        else:
            key = hashlib.sha256(self.registry.encode()).hexdigest()[:16]
            folder = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "igpg-zoo" / key
        return folder / "registry.faiss"


def _read_yaml(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read config {path}: {exc}; fix or remove the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of keys to values")
    known = {f.name for f in fields(ZooConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)} in {path}; known: {', '.join(sorted(known))}")
    return data


def resolve_config(registry: str | None = None, blobs: str | None = None) -> ZooConfig:
    """Resolve the configuration from flags, environment, and the YAML config file."""
    path = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
    values = _read_yaml(path) if path.is_file() else {}
    if os.environ.get(CONFIG_ENV) and not path.is_file():
        raise ConfigError(f"{CONFIG_ENV} points at {path}, which does not exist")
    env = {"registry": "IGPG_ZOO_REGISTRY", "blobs": "IGPG_ZOO_BLOBS", "index_dir": "IGPG_ZOO_INDEX_DIR",
           "embedder": "IGPG_ZOO_EMBEDDER"}
    for key, var in env.items():
        if os.environ.get(var):
            values[key] = os.environ[var]
    if registry:
        values["registry"] = registry
    if blobs:
        values["blobs"] = blobs
    for key in ("registry", "blobs", "index_dir", "embedder"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            raise ConfigError(f"config key '{key}' must be a string, got {values[key]!r}")
    if "approx_threshold" in values and not isinstance(values["approx_threshold"], int):
        raise ConfigError("config key 'approx_threshold' must be an integer")
    return ZooConfig(**values)
