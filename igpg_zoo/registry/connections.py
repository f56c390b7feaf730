"""The database connections of one registry and the stores on them, each opened on first need.

A SQLite registry file that does not exist yet reads as an empty in-memory database until the first
write creates it. With ``light_reads``, an existing SQLite file at the current schema is read through
``sqlite3`` (``SqliteReads``) and the SQLAlchemy database (with its stores) opens only when
something needs it: a write, or a read those do not cover. Errors of a registry that cannot be
opened are raised when the connections are made, as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.config import ZooConfig
from igpg_zoo.errors import RegistryUnavailable

if TYPE_CHECKING:
    from igpg_zoo.registry.db import Database
    from igpg_zoo.registry.sqlite_reads import SqliteReads
    from igpg_zoo.registry.store import CheckpointStore


class Connections:
    """The registry's database (once opened), its stores, and its light reads."""

    def __init__(self, config: ZooConfig, light_reads: bool = False):
        self.config = config
        self.database: Database | None = None  # the registry's own database, once opened
        self._current: Database | None = None  # what the stores use: it, or an empty in-memory one
        self._stores: dict[str, Any] = {}
        self.light: SqliteReads | None = None
        self._missing = False  # a SQLite file not created yet
        if not config.is_sqlite_file:
            self._open()
            return
        path = Path(config.registry).expanduser().resolve()
        if not path.parent.is_dir():
            raise RegistryUnavailable(f"the folder of registry file {path} does not exist; create it or pass --registry")
        if path.is_dir():
            raise RegistryUnavailable(f"registry {path} is a folder, not a registry file; pass --registry "
                                      f"with a file path, e.g. {path / 'registry.db'}")
        self._missing = not path.exists()
        if light_reads and not self._missing:
            from igpg_zoo.registry.sqlite_reads import SqliteReads

            self.light = SqliteReads.open(path, lambda: self.store("store"))
        if self.light is None and not self._missing:
            self._open()

    def _open(self) -> Database:
        from igpg_zoo.registry.db import Database

        if self.database is None:
            self.database = Database(self.config.url)
        return self.database

    def _db(self) -> Database:
        if self._current is None:
            if self.database is None and not self._missing:
                self._open()
            if self.database is None:
                from igpg_zoo.registry.db import Database

                self._current = Database("sqlite://")  # a missing SQLite file reads as empty
            else:
                self._current = self.database
        return self._current

    def store(self, kind: str):
        """The ``store`` (checkpoints), ``artifacts`` or ``answers`` store, made on first use."""
        if kind not in self._stores:
            if kind == "store":
                from igpg_zoo.registry.store import CheckpointStore as made
            elif kind == "artifacts":
                from igpg_zoo.registry.artifact_store import ArtifactStore as made
            else:
                from igpg_zoo.registry.answer_store import AnswerStore as made
            self._stores[kind] = made(self._db())
        return self._stores[kind]

    def reads(self) -> CheckpointStore | SqliteReads:
        """Where records and vectors are read: the light reads where open, else the checkpoint store."""
        return self.light if self.light is not None else self.store("store")

    def writable(self) -> None:
        """Before a write: open the registry's database, creating a new SQLite file."""
        if self.database is None:
            if self._current is not None:
                self._current.dispose()
            self._missing = False
            self._current = self._open()
            for store in self._stores.values():
                store.db = self.database

    def close(self) -> None:
        if self.light is not None:
            self.light.close()
        if self._current is not None:
            self._current.dispose()
        if self.database is not None and self.database is not self._current:
            self.database.dispose()
