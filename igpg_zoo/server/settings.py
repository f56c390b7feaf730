"""Defaults of ``igpg-zoo serve``: where it listens and how much one request may ask for."""

from __future__ import annotations

from dataclasses import dataclass

TOKEN_ENV = "IGPG_ZOO_TOKEN"


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # loopback only unless the user names another address
    port: int = 8000
    workers: int = 1
    max_k: int = 100  # hits one query may ask for
    max_list: int = 1000  # records one list call may return
    max_upload_bytes: int = 256 * 2**20  # one uploaded checkpoint
    max_samples: int = 16  # samples one generate call may draw
    lineage_depth: int = 32  # ancestors followed up from a record
    lineage_children: int = 50  # children listed under a record
    map_points: int = 20_000  # records drawn on the zoo map (a seeded sample above this)
