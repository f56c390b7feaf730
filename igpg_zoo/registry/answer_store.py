"""AnswerStore: recorded answers of ``query`` and select's estimate cache; returns records, never rows."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from sqlalchemy import select

from igpg_zoo.errors import NotFound
from igpg_zoo.records import RecordedAnswer
from igpg_zoo.registry.db import AnswerRow, Database, EmbeddingRow, ScoreRow
from igpg_zoo.records import valid_id
from igpg_zoo.registry.store import to_vector, utc_now


def _record(row: AnswerRow) -> RecordedAnswer:
    return RecordedAnswer(row.id, row.created_at, row.data_fingerprint, dict(row.inputs or {}),
                          list(row.candidates or []), dict(row.decision or {}))


class AnswerStore:
    """Answers (one row each, ids never reused) and cached estimates keyed by (checkpoint, data, estimate)."""

    def __init__(self, database: Database):
        self.db = database

    def insert(self, data_fingerprint: str, inputs: dict[str, Any], candidates: list[Any],
               decision: dict[str, Any]) -> RecordedAnswer:
        row = AnswerRow(created_at=utc_now(), data_fingerprint=data_fingerprint, inputs=inputs,
                        candidates=candidates, decision=decision)
        with self.db.session_scope(write=True) as session:
            session.add(row)
            session.flush()
            return _record(row)

    def get(self, answer_id: int) -> RecordedAnswer:
        with self.db.session_scope() as session:
            row = session.get(AnswerRow, int(answer_id)) if valid_id(answer_id) else None
            if row is None:
                raise NotFound(f"no answer #{answer_id} in the registry; 'igpg-zoo answers' lists them")
            return _record(row)

    def list(self, limit: int | None = None) -> list[RecordedAnswer]:
        stmt = select(AnswerRow).order_by(AnswerRow.id.desc())
        if limit is not None:
            stmt = stmt.limit(limit)
        with self.db.session_scope() as session:
            return [_record(row) for row in session.scalars(stmt)]

    # -- the estimate cache ------------------------------------------------------------------

    def scores(self, data_fingerprint: str, estimate: str, ids: Iterable[int]) -> dict[int, tuple[str, float, dict]]:
        """Cached (sha256, value, details) per checkpoint id among ``ids``."""
        wanted = [int(i) for i in ids]
        if not wanted:
            return {}
        stmt = select(ScoreRow).where(ScoreRow.data_fingerprint == data_fingerprint, ScoreRow.estimate == estimate,
                                      ScoreRow.checkpoint_id.in_(wanted))
        with self.db.session_scope() as session:
            return {r.checkpoint_id: (r.sha256, r.value, dict(r.details or {})) for r in session.scalars(stmt)}

    def put_scores(self, data_fingerprint: str, estimate: str,
                   values: dict[int, tuple[str, float, dict]]) -> None:
        """Store (sha256, value, details) per checkpoint id, replacing older values of the same key."""
        if not values:
            return
        with self.db.session_scope(write=True) as session:
            for cid, (sha, value, details) in values.items():
                session.merge(ScoreRow(checkpoint_id=int(cid), data_fingerprint=data_fingerprint, estimate=estimate,
                                       sha256=sha, value=float(value), details=details))

    def dataset_vectors(self, ids: Iterable[int]) -> dict[int, np.ndarray]:
        """The stored dataset embedding of each record among ``ids`` that has one."""
        wanted = [int(i) for i in ids]
        out: dict[int, np.ndarray] = {}
        with self.db.session_scope() as session:
            for start in range(0, len(wanted), 5000):
                stmt = select(EmbeddingRow.checkpoint_id, EmbeddingRow.dataset_vector).where(
                    EmbeddingRow.checkpoint_id.in_(wanted[start:start + 5000]),
                    EmbeddingRow.dataset_vector.is_not(None))
                out.update({cid: to_vector(vec) for cid, vec in session.execute(stmt)})
        return out
