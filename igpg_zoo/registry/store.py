"""CheckpointStore: checkpoint rows, their metrics, tags and vectors; returns records, never rows.

Every method runs in its own ``session_scope()``; ``insert`` is one transaction per model and
``insert_many`` one transaction for a batch. Filters and sort keys become SQL in filter_sql.py.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
from sqlalchemy import bindparam, delete, exists, func, insert, select, update
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from igpg_zoo.errors import ConfigError, InvalidMetadata, NotFound
from igpg_zoo.records import ID_CHUNK as _CHUNK
from igpg_zoo.records import MAX_ID, Checkpoint, CheckpointMeta, Metric, in_id_order, valid_id
from igpg_zoo.registry.db import ArtifactRow, CheckpointRow, Database, EmbeddingRow, MetricRow, TagRow
from igpg_zoo.registry.filter_sql import order_by_sort, where_filters
from igpg_zoo.registry.filters import COLUMN_SORTS, Filters



def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def to_vector(data: bytes | None) -> np.ndarray | None:
    return None if data is None else np.frombuffer(data, dtype="<f4").copy()


def to_bytes(vector: np.ndarray | Sequence[float] | None) -> bytes | None:
    return None if vector is None else np.asarray(vector, dtype="<f4").reshape(-1).tobytes()


@dataclass(frozen=True)
class NewCheckpoint:
    """Everything a checkpoint row needs; the blob is already in place when this is inserted."""

    meta: CheckpointMeta
    name: str
    n_params: int
    sha256: str
    size_bytes: int
    identity: str  # see registry.metadata.identity
    embedder: str
    text: str
    text_sha: str
    text_vector: np.ndarray  # (dim,) float32
    dataset_vector: np.ndarray | None


def _row_values(new: NewCheckpoint, now: str) -> dict[str, Any]:
    meta = new.meta
    return {"name": new.name, "arch": meta.arch, "task": meta.task, "dataset": meta.dataset, "kind": meta.kind,
            "n_params": new.n_params, "license": meta.license, "source": meta.source, "created_at": now,
            "sha256": new.sha256, "size_bytes": new.size_bytes, "identity": new.identity,
            "parent_id": meta.parent_id, "extra": dict(meta.extra)}


def _embedding_values(checkpoint_id: int, new: NewCheckpoint) -> dict[str, Any]:
    return {"checkpoint_id": checkpoint_id, "embedder": new.embedder, "text": new.text, "text_sha": new.text_sha,
            "dim": int(new.text_vector.shape[-1]), "text_vector": to_bytes(new.text_vector),
            "dataset_vector": to_bytes(new.dataset_vector)}


def _new_record(checkpoint_id: int, new: NewCheckpoint, now: str) -> Checkpoint:
    meta = new.meta
    return Checkpoint(
        id=checkpoint_id, name=new.name, arch=meta.arch, task=meta.task, dataset=meta.dataset, n_params=new.n_params,
        metrics=tuple(sorted((Metric(m.name, float(m.value), m.dataset) for m in meta.metrics),
                             key=lambda m: (m.name, m.dataset))),
        tags=tuple(sorted(set(meta.tags))), license=meta.license, source=meta.source, created_at=now,
        sha256=new.sha256, size_bytes=new.size_bytes, parent_id=meta.parent_id, kind=meta.kind,
        extra=dict(meta.extra),
    )


_COLUMNS = (CheckpointRow.id, CheckpointRow.name, CheckpointRow.arch, CheckpointRow.task, CheckpointRow.dataset,
            CheckpointRow.n_params, CheckpointRow.license, CheckpointRow.source, CheckpointRow.created_at,
            CheckpointRow.sha256, CheckpointRow.size_bytes, CheckpointRow.parent_id, CheckpointRow.kind,
            CheckpointRow.extra)


# built once: a statement's compiled form is cached, and the ids go in as one expanding parameter
_RECORDS_OF = select(*_COLUMNS).where(CheckpointRow.id.in_(bindparam("ids", expanding=True)))
_METRICS_OF = select(MetricRow.checkpoint_id, MetricRow.name, MetricRow.value, MetricRow.dataset).where(
    MetricRow.checkpoint_id.in_(bindparam("ids", expanding=True)))
_TAGS_OF = select(TagRow.checkpoint_id, TagRow.tag).where(TagRow.checkpoint_id.in_(bindparam("ids", expanding=True)))


def _read_records(session: Session, stmt, params: dict | None = None) -> list[Checkpoint]:
    """Records for a select of ``_COLUMNS``: plain Core queries on the session's connection, no ORM
    objects (fast for many rows, and for the few rows of a query's hits)."""
    connection = session.connection()
    rows = connection.execute(stmt, params or {}).all()
    ids = [row[0] for row in rows]
    metrics: dict[int, list[Metric]] = defaultdict(list)
    tags: dict[int, list[str]] = defaultdict(list)
    for start in range(0, len(ids), _CHUNK):
        chunk = {"ids": ids[start:start + _CHUNK]}
        for cid, name, value, dataset in connection.execute(_METRICS_OF, chunk).all():
            metrics[cid].append(Metric(name, value, dataset))
        for cid, tag in connection.execute(_TAGS_OF, chunk).all():
            tags[cid].append(tag)
    return [
        Checkpoint(id=r[0], name=r[1], arch=r[2], task=r[3], dataset=r[4], n_params=r[5],
                   metrics=tuple(sorted(metrics.get(r[0], ()), key=lambda m: (m.name, m.dataset))),
                   tags=tuple(sorted(tags.get(r[0], ()))), license=r[6], source=r[7], created_at=r[8], sha256=r[9],
                   size_bytes=r[10], parent_id=r[11], kind=r[12], extra=dict(r[13] or {}))
        for r in rows
    ]


class CheckpointStore:
    """Checkpoint records in the registry database."""

    def __init__(self, database: Database):
        self.db = database

    # -- writing ---------------------------------------------------------------------------

    def insert(self, new: NewCheckpoint) -> tuple[Checkpoint, bool]:
        """Insert one checkpoint (one transaction); ``(existing, False)`` for a known identity."""
        return self.insert_many([new])[0]

    def insert_many(self, items: Sequence[NewCheckpoint], in_lock: Callable[[], None] | None = None
                    ) -> list[tuple[Checkpoint, bool]]:
        """Insert several checkpoints in one transaction; known identities return their record.

        ``in_lock`` runs inside the transaction, under the blob lock, before the rows go in: where the
        caller makes sure their blobs are (still) there."""
        try:
            with self.db.session_scope(write=True) as session:
                self.db.lock_blobs(session)
                if in_lock is not None:
                    in_lock()
                return self._insert(session, items)
        except sa_exc.IntegrityError as err:
            # a concurrent writer added the same identity first, or the parent does not exist
            existing = [self.find_identity(new.identity) for new in items]
            if all(existing):
                return [(rec, False) for rec in existing]
            parents = sorted({n.meta.parent_id for n in items if n.meta.parent_id is not None})
            raise InvalidMetadata(
                f"cannot store the checkpoint ({str(err.orig).splitlines()[0]}); check that parent "
                f"record(s) {parents or '-'} exist ('igpg-zoo list')"
            ) from None

    def _insert(self, session: Session, items: Sequence[NewCheckpoint]) -> list[tuple[Checkpoint, bool]]:
        """Core executemany inserts (ids via RETURNING), so a batch costs a few statements, not a flush per row."""
        known = self._known(session, sorted({n.identity for n in items}))
        fresh = list({n.identity: n for n in items if n.identity not in known}.values())
        if fresh:
            now = utc_now()
            table = CheckpointRow.__table__
            ids = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True),
                                  [_row_values(new, now) for new in fresh]).scalars().all()
            metric_rows = [{"checkpoint_id": cid, "name": m.name, "value": float(m.value), "dataset": m.dataset}
                           for cid, new in zip(ids, fresh, strict=True) for m in new.meta.metrics]
            tag_rows = [{"checkpoint_id": cid, "tag": t}
                        for cid, new in zip(ids, fresh, strict=True) for t in sorted(set(new.meta.tags))]
            for row_type, rows in ((MetricRow, metric_rows), (TagRow, tag_rows)):
                if rows:
                    session.execute(insert(row_type.__table__), rows)
            session.execute(insert(EmbeddingRow.__table__),
                            [_embedding_values(cid, new) for cid, new in zip(ids, fresh, strict=True)])
            for cid, new in zip(ids, fresh, strict=True):
                known[new.identity] = _new_record(cid, new, now)
        created = {n.identity for n in fresh}
        out = []
        for new in items:
            out.append((known[new.identity], new.identity in created))
            created.discard(new.identity)  # a second copy in the same batch is a duplicate
        return out

    @staticmethod
    def _known(session: Session, identities: list[str]) -> dict[str, Checkpoint]:
        """identity -> existing record, for those of ``identities`` already stored."""
        by_id: dict[int, str] = {}
        for start in range(0, len(identities), _CHUNK):
            stmt = select(CheckpointRow.id, CheckpointRow.identity).where(
                CheckpointRow.identity.in_(identities[start:start + _CHUNK]))
            by_id.update((int(i), ident) for i, ident in session.execute(stmt))
        if not by_id:
            return {}
        records = _read_records(session, select(*_COLUMNS).where(CheckpointRow.id.in_(list(by_id))))
        return {by_id[rec.id]: rec for rec in records}

    def find_identity(self, identity: str) -> Checkpoint | None:
        with self.db.session_scope() as session:
            return self._known(session, [identity]).get(identity)

    def remove(self, checkpoint_id: int, on_unused: Callable[[str], None] | None = None) -> Checkpoint:
        """Delete a record (metrics, tags and vectors go with it); children lose their parent link.

        ``on_unused(sha256)`` runs inside the transaction, under the blob lock, when no row uses the
        record's blob any more (an error there rolls the delete back)."""
        with self.db.session_scope(write=True) as session:
            self.db.lock_blobs(session)
            record = self._get(session, checkpoint_id)
            session.execute(delete(CheckpointRow).where(CheckpointRow.id == record.id))
            if on_unused is not None and not _sha_in_use(session, record.sha256):
                on_unused(record.sha256)
            return record

    def release(self, shas: Sequence[str], on_unused: Callable[[str], None]) -> None:
        """``on_unused(sha)`` for each of ``shas`` no row uses, under the blob lock (a failed add's blobs)."""
        self.blob_usage(shas, lambda sha, used: None if used else on_unused(sha))

    def blob_usage(self, shas: Sequence[str], act: Callable[[str, bool], None]) -> None:
        """``act(sha, in_use)`` for each of ``shas``, under the blob lock: nothing starts or stops using
        a blob until the calls are done."""
        with self.db.session_scope(write=True) as session:
            self.db.lock_blobs(session)
            for sha in shas:
                act(sha, _sha_in_use(session, sha))

    def update_extra(self, checkpoint_id: int, facts: dict[str, Any]) -> Checkpoint:
        with self.db.session_scope(write=True) as session:
            record = self._get(session, checkpoint_id)
            session.execute(update(CheckpointRow).where(CheckpointRow.id == record.id)
                            .values(extra={**record.extra, **facts}))
            return self._get(session, checkpoint_id)

    # -- reading ---------------------------------------------------------------------------

    @staticmethod
    def _get(session: Session, checkpoint_id: int) -> Checkpoint:
        found = valid_id(checkpoint_id) and _read_records(
            session, select(*_COLUMNS).where(CheckpointRow.id == int(checkpoint_id)))
        if not found:
            raise NotFound(f"no checkpoint #{checkpoint_id} in the registry; see 'igpg-zoo list'")
        return found[0]

    def get(self, checkpoint_id: int) -> Checkpoint:
        with self.db.session_scope() as session:
            return self._get(session, checkpoint_id)

    def get_many(self, ids: Iterable[int]) -> list[Checkpoint]:
        """Records in the order of ``ids``; any unknown id raises ``NotFound``."""
        ids = [int(i) for i in ids]
        found: dict[int, Checkpoint] = {}
        valid = [i for i in ids if valid_id(i)]
        with self.db.session_scope() as session:
            for start in range(0, len(valid), _CHUNK):
                chunk = valid[start:start + _CHUNK]
                found.update((rec.id, rec) for rec in _read_records(session, _RECORDS_OF, {"ids": chunk}))
        return in_id_order(ids, found)

    def list(self, filters: Filters | None = None, sort: str | None = None, descending: bool = True,
             limit: int | None = None) -> list[Checkpoint]:
        """Records passing ``filters``, sorted by a metric or column (default: newest id first)."""
        filters = filters or Filters()
        stmt = order_by_sort(where_filters(select(*_COLUMNS), filters), sort, descending)
        if limit is not None:
            if limit < 0:
                raise ConfigError(f"limit must be 0 or more, got {limit}")
            stmt = stmt.limit(min(limit, MAX_ID))  # more than any table holds: a larger one overflows
        with self.db.session_scope() as session:
            return _read_records(session, stmt)

    def ids(self, filters: Filters | None = None, among: Sequence[int] | None = None) -> np.ndarray:
        """Ids (int64, ascending) of the records passing ``filters`` (only those ``among`` these, if given)."""
        filters = filters or Filters()
        stmt = where_filters(select(CheckpointRow.id), filters).order_by(CheckpointRow.id)
        if among is not None:
            stmt = stmt.where(CheckpointRow.id.in_([int(i) for i in among]))
        with self.db.session_scope() as session:
            return np.fromiter(session.scalars(stmt), dtype=np.int64)

    def count(self) -> int:
        with self.db.session_scope() as session:
            return int(session.scalar(select(func.count()).select_from(CheckpointRow)))

    def sort_is_known(self, sort: str) -> bool:
        """Whether ``sort`` is a column or a metric some record has (so a typo can be reported)."""
        if sort in COLUMN_SORTS:
            return True
        name = sort.partition("@")[0]
        with self.db.session_scope() as session:
            return session.scalar(select(exists().where(MetricRow.name == name))) or self.count() == 0

    # -- blobs and vectors -----------------------------------------------------------------

    def blob_owners(self) -> dict[str, list[str]]:
        """sha256 -> who uses it ('checkpoint #3', 'artifact #1')."""
        owners: dict[str, list[str]] = {}
        with self.db.session_scope() as session:
            for cid, sha in session.execute(select(CheckpointRow.id, CheckpointRow.sha256)):
                owners.setdefault(sha, []).append(f"checkpoint #{cid}")
            for aid, sha in session.execute(select(ArtifactRow.id, ArtifactRow.sha256)):
                owners.setdefault(sha, []).append(f"artifact #{aid}")
        return owners

    def id_sha_pairs(self, ids: Iterable[int] | None = None) -> list[tuple[int, str]]:
        stmt = select(CheckpointRow.id, CheckpointRow.sha256).order_by(CheckpointRow.id)
        with self.db.session_scope() as session:
            if ids is None:
                return [(int(i), s) for i, s in session.execute(stmt)]
            wanted = sorted({int(i) for i in ids})
            pairs = []
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start:start + _CHUNK]
                pairs += [(int(i), s) for i, s in session.execute(stmt.where(CheckpointRow.id.in_(chunk)))]
        missing = sorted(set(wanted) - {i for i, _ in pairs})
        if missing:
            raise NotFound(f"no checkpoint #{missing[0]} in the registry; see 'igpg-zoo list'")
        return pairs

    def vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64 (n,), text vectors float32 (n, dim)) of every embedded record, by id."""
        with self.db.session_scope() as session:
            rows = session.execute(select(EmbeddingRow.checkpoint_id, EmbeddingRow.text_vector)
                                   .order_by(EmbeddingRow.checkpoint_id)).all()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        if not rows:
            return ids, np.zeros((0, self.dim() or 0), dtype=np.float32)
        return ids, np.stack([np.frombuffer(r[1], dtype="<f4") for r in rows]).astype(np.float32)

    def embedded_ids(self) -> np.ndarray:
        with self.db.session_scope() as session:
            stmt = select(EmbeddingRow.checkpoint_id).order_by(EmbeddingRow.checkpoint_id)
            return np.fromiter(session.scalars(stmt), dtype=np.int64)

    def dim(self) -> int | None:
        """The dimension of the stored text vectors (None when there are none)."""
        with self.db.session_scope() as session:
            return session.scalar(select(EmbeddingRow.dim).limit(1))

    def embedders(self) -> dict[str, int]:
        """Embedder name -> number of records whose text vector it made."""
        with self.db.session_scope() as session:
            stmt = select(EmbeddingRow.embedder, func.count()).group_by(EmbeddingRow.embedder)
            return {name: int(n) for name, n in session.execute(stmt)}

    def cached_vectors(self, text_shas: Iterable[str], embedder: str) -> dict[str, np.ndarray]:
        """Stored vectors for texts embedded before by the same embedder (text sha -> vector)."""
        shas = sorted(set(text_shas))
        found: dict[str, np.ndarray] = {}
        with self.db.session_scope() as session:
            for start in range(0, len(shas), _CHUNK):
                stmt = select(EmbeddingRow.text_sha, EmbeddingRow.text_vector).where(
                    EmbeddingRow.text_sha.in_(shas[start:start + _CHUNK]), EmbeddingRow.embedder == embedder)
                for sha, data in session.execute(stmt):
                    found.setdefault(sha, to_vector(data))
        return found

    def texts(self) -> list[tuple[int, str]]:
        with self.db.session_scope() as session:
            stmt = select(EmbeddingRow.checkpoint_id, EmbeddingRow.text).order_by(EmbeddingRow.checkpoint_id)
            return [(int(i), t) for i, t in session.execute(stmt)]

    def set_text_vectors(self, embedder: str, vectors: dict[int, np.ndarray]) -> None:
        """Replace text vectors (after re-embedding with another embedder)."""
        with self.db.session_scope(write=True) as session:
            for cid, vector in vectors.items():
                row = session.get(EmbeddingRow, cid)
                row.embedder, row.dim, row.text_vector = embedder, int(vector.shape[-1]), to_bytes(vector)

    def embedding(self, checkpoint_id: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(text vector, dataset vector) of a record; NotFound when the record does not exist."""
        with self.db.session_scope() as session:
            row = session.get(EmbeddingRow, int(checkpoint_id))
            if row is None:
                self._get(session, checkpoint_id)
                return None, None
            return to_vector(row.text_vector), to_vector(row.dataset_vector)


def _sha_in_use(session: Session, sha256: str) -> bool:
    """Whether any checkpoint or artifact row refers to this blob (ask under ``Database.lock_blobs``)."""
    return bool(session.scalar(select(
        exists().where(CheckpointRow.sha256 == sha256) | exists().where(ArtifactRow.sha256 == sha256))))
