"""The reads of ``list``, ``show`` and ``query`` on a SQLite registry file, through the standard
library's ``sqlite3``: a command that only reads starts without importing SQLAlchemy.

``SqliteReads.open`` answers None where the full database must open the file instead (a schema
that needs a migration, a file that is not a registry, anything unexpected), so every error
message stays the one ``registry.db.Database`` gives. The SQL mirrors ``filter_sql`` (the same
statements SQLAlchemy compiles there; a test compares both on the same registry), and every other
``CheckpointStore`` method is handed to the full store, opened on first use.
"""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.errors import ConfigError, NotFound, RegistryUnavailable
from igpg_zoo.records import ID_CHUNK as _CHUNK
from igpg_zoo.records import MAX_ID, Checkpoint, Metric, in_id_order
from igpg_zoo.records import valid_id as _valid_id
from igpg_zoo.registry.filters import COLUMN_SORTS, Filters
from igpg_zoo.registry.schema_version import head_revision

if TYPE_CHECKING:
    import numpy as np

    from igpg_zoo.registry.store import CheckpointStore

_COLUMNS = ("id", "name", "arch", "task", "dataset", "n_params", "license", "source", "created_at", "sha256",
            "size_bytes", "parent_id", "kind", "extra")
_SELECT = "SELECT " + ", ".join(f"checkpoints.{c}" for c in _COLUMNS) + " FROM checkpoints"
_OPS = (">=", "<=", ">", "<", "=", "!=")


def _like(pattern: str) -> str:
    """A shell-style pattern (``*``, ``?``) as a LIKE pattern with ``\\`` as the escape character."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _matches(column: str, values: Sequence[str], params: list) -> str:
    """Any of ``values``: exact names, or shell-style patterns (case-sensitive: ``case_sensitive_like``)."""
    exact = [v for v in values if "*" not in v and "?" not in v]
    clauses = [f"{column} IN ({', '.join('?' * len(exact))})"] if exact else []
    params += exact
    for v in values:
        if v not in exact:
            clauses.append(f"{column} LIKE ? ESCAPE '\\'")
            params.append(_like(v))
    return "(" + " OR ".join(clauses) + ")"


def where_sql(filters: Filters, params: list) -> str:
    """The WHERE clause (or "") keeping the checkpoints that pass ``filters``; appends its parameters."""
    clauses = []
    for column, values in (("arch", filters.arch), ("dataset", filters.dataset), ("task", filters.task),
                           ("kind", filters.kind)):
        if values:
            clauses.append(_matches(f"checkpoints.{column}", values, params))
    if filters.tags:
        tagged = _matches("tags.tag", filters.tags, params)
        clauses.append(f"checkpoints.id IN (SELECT tags.checkpoint_id FROM tags WHERE {tagged})")
    for cond in filters.where:
        if cond.op not in _OPS:
            raise ConfigError(f"unknown operator {cond.op}")
        clause = f"metrics.name = ? AND metrics.value {cond.op} ?"
        params += [cond.name, float(cond.value)]
        if cond.dataset is not None:
            clause += " AND metrics.dataset = ?"
            params.append(cond.dataset)
        clauses.append(f"checkpoints.id IN (SELECT metrics.checkpoint_id FROM metrics WHERE {clause})")
    return " WHERE " + " AND ".join(clauses) if clauses else ""


def order_sql(sort: str | None, descending: bool, params: list) -> tuple[str, str]:
    """(a JOIN for a metric sort key or "", the ORDER BY clause): records without the metric last."""
    way = "DESC" if descending else "ASC"
    tiebreak = f"checkpoints.id {way}"
    if sort is None:
        return "", f" ORDER BY {tiebreak}"
    if sort in COLUMN_SORTS:
        return "", f" ORDER BY checkpoints.{sort} {way} NULLS LAST, {tiebreak}"
    name, _, dataset = sort.partition("@")
    condition = "metrics.name = ?" + (" AND metrics.dataset = ?" if dataset else "")
    params += [name] + ([dataset] if dataset else [])
    best = "max" if descending else "min"
    join = (f" LEFT OUTER JOIN (SELECT metrics.checkpoint_id AS checkpoint_id, {best}(metrics.value) AS value "
            f"FROM metrics WHERE {condition} GROUP BY metrics.checkpoint_id) AS sort_key "
            "ON sort_key.checkpoint_id = checkpoints.id")
    return join, f" ORDER BY sort_key.value {way} NULLS LAST, {tiebreak}"


class SqliteReads:
    """Read-only access to a SQLite registry at the current schema; other calls go to the full store."""

    def __init__(self, connection: sqlite3.Connection, full_store: Callable[[], CheckpointStore], path: Path):
        self._db = connection
        self._full_store = full_store
        self._path = path

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """All rows of one statement; a database that refuses it (busy, gone) is a one-line error."""
        try:
            return self._db.execute(sql, params).fetchall()
        except sqlite3.Error as err:
            reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
            hint = ("another process is writing it; try again when it has finished" if "locked" in reason
                    else "check the registry (igpg-zoo verify) and try again")
            raise RegistryUnavailable(f"cannot use registry {self._path} ({reason}); {hint}") from None

    @classmethod
    def open(cls, path: Path, full_store: Callable[[], CheckpointStore]) -> SqliteReads | None:
        """Reads of the registry file ``path``, or None where the full database must open it."""
        try:
            uri = Path(path).resolve().as_uri() + "?mode=rw"  # never creates the file
            connection = sqlite3.connect(uri, uri=True)
        except sqlite3.Error:
            return None
        try:
            connection.execute("PRAGMA busy_timeout=10000")
            connection.execute("PRAGMA case_sensitive_like=ON")  # LIKE patterns match as on PostgreSQL
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
            journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
        except sqlite3.Error:
            connection.close()
            return None
        if len(rows) != 1 or rows[0][0] != head_revision() or journal != "wal":
            connection.close()  # a migration is due (or a file this version did not write): the full path
            return None
        return cls(connection, full_store, Path(path))

    def close(self) -> None:
        self._db.close()

    def __getattr__(self, name: str) -> Any:
        """Everything these reads do not cover (writes, ``db`` for SQL of other modules) goes to the full store."""
        return getattr(self._full_store(), name)

    # -- records -----------------------------------------------------------------------------

    def _records(self, sql: str, params: Sequence[Any]) -> list[Checkpoint]:
        rows = self._rows(sql, params)
        ids = [row[0] for row in rows]
        metrics: dict[int, list[Metric]] = defaultdict(list)
        tags: dict[int, list[str]] = defaultdict(list)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start:start + _CHUNK]
            marks = ", ".join("?" * len(chunk))
            for cid, name, value, dataset in self._rows(
                    "SELECT checkpoint_id, name, value, dataset FROM metrics "
                    f"WHERE checkpoint_id IN ({marks})", chunk):
                metrics[cid].append(Metric(name, value, dataset))
            for cid, tag in self._rows(f"SELECT checkpoint_id, tag FROM tags WHERE checkpoint_id IN ({marks})",
                                             chunk):
                tags[cid].append(tag)
        return [
            Checkpoint(id=r[0], name=r[1], arch=r[2], task=r[3], dataset=r[4], n_params=r[5],
                       metrics=tuple(sorted(metrics.get(r[0], ()), key=lambda m: (m.name, m.dataset))),
                       tags=tuple(sorted(tags.get(r[0], ()))), license=r[6], source=r[7], created_at=r[8],
                       sha256=r[9], size_bytes=r[10], parent_id=r[11], kind=r[12],
                       extra=dict(json.loads(r[13]) or {}) if r[13] is not None else {})
            for r in rows
        ]

    def get(self, checkpoint_id: int) -> Checkpoint:
        found = _valid_id(checkpoint_id) and self._records(f"{_SELECT} WHERE checkpoints.id = ?",
                                                           [int(checkpoint_id)])
        if not found:
            raise NotFound(f"no checkpoint #{checkpoint_id} in the registry; see 'igpg-zoo list'")
        return found[0]

    def get_many(self, ids: Iterable[int]) -> list[Checkpoint]:
        """Records in the order of ``ids``; any unknown id raises ``NotFound``."""
        ids = [int(i) for i in ids]
        valid = [i for i in ids if _valid_id(i)]
        found: dict[int, Checkpoint] = {}
        for start in range(0, len(valid), _CHUNK):
            chunk = valid[start:start + _CHUNK]
            sql = f"{_SELECT} WHERE checkpoints.id IN ({', '.join('?' * len(chunk))})"
            found.update((rec.id, rec) for rec in self._records(sql, chunk))
        return in_id_order(ids, found)

    def list(self, filters: Filters | None = None, sort: str | None = None, descending: bool = True,
             limit: int | None = None) -> list[Checkpoint]:
        """Records passing ``filters``, sorted by a metric or column (default: newest id first)."""
        params: list[Any] = []
        join, order = order_sql(sort, descending, params)  # the join's parameters come first in the SQL
        where = where_sql(filters or Filters(), params)
        sql = _SELECT + join + where + order
        if limit is not None:
            if limit < 0:
                raise ConfigError(f"limit must be 0 or more, got {limit}")
            sql += " LIMIT ?"
            params.append(min(int(limit), MAX_ID))
        return self._records(sql, params)

    def count(self) -> int:
        return int(self._rows("SELECT count(*) FROM checkpoints")[0][0])

    def sort_is_known(self, sort: str) -> bool:
        """Whether ``sort`` is a column or a metric some record has (so a typo can be reported)."""
        if sort in COLUMN_SORTS:
            return True
        name = sort.partition("@")[0]
        found = self._rows("SELECT EXISTS (SELECT 1 FROM metrics WHERE name = ?)", [name])[0][0]
        return bool(found) or self.count() == 0

    # -- vectors -----------------------------------------------------------------------------

    def dim(self) -> int | None:
        rows = self._rows("SELECT dim FROM embeddings LIMIT 1")
        return rows[0][0] if rows else None

    def embedders(self) -> dict[str, int]:
        rows = self._rows("SELECT embedder, count(*) FROM embeddings GROUP BY embedder")
        return {name: int(n) for name, n in rows}

    def embedded_ids(self) -> np.ndarray:
        import numpy as np

        rows = self._rows("SELECT checkpoint_id FROM embeddings ORDER BY checkpoint_id")
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 (n,), text vectors float32 (n, dim)) of every embedded record, by id."""
        import numpy as np

        rows = self._rows("SELECT checkpoint_id, text_vector FROM embeddings ORDER BY checkpoint_id")
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, self.dim() or 0), dtype=np.float32)
        return ids, np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32)
