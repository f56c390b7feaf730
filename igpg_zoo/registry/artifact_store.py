"""ArtifactStore: generator artifacts (tokenizer, prior) as rows; their tensors live in blobs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from igpg_zoo.errors import InvalidMetadata, NotFound
from igpg_zoo.records import Artifact
from igpg_zoo.registry.db import ArtifactRow, Database
from igpg_zoo.records import valid_id
from igpg_zoo.registry.store import utc_now


def _record(row: ArtifactRow) -> Artifact:
    return Artifact(
        id=row.id, kind=row.kind, name=row.name, sha256=row.sha256, size_bytes=row.size_bytes,
        created_at=row.created_at, config=dict(row.config or {}), provenance=dict(row.provenance or {}),
        parent_id=row.parent_id,
    )


class ArtifactStore:
    """Versioned generator artifacts: every add is a new row; the newest of a kind is current."""

    def __init__(self, database: Database):
        self.db = database

    def insert(self, kind: str, name: str, sha256: str, size_bytes: int, config: dict[str, Any],
               provenance: dict[str, Any], parent_id: int | None = None,
               in_lock: Callable[[], None] | None = None) -> Artifact:
        """Insert an artifact row; ``in_lock`` runs first inside the transaction, under the blob lock."""
        row = ArtifactRow(kind=kind, name=name, sha256=sha256, size_bytes=size_bytes, created_at=utc_now(),
                          config=config, provenance=provenance, parent_id=parent_id)
        try:
            with self.db.session_scope(write=True) as session:
                self.db.lock_blobs(session)
                if in_lock is not None:
                    in_lock()
                session.add(row)
                session.flush()
                return _record(row)
        except sa_exc.IntegrityError:
            raise InvalidMetadata(
                f"parent artifact #{parent_id} does not exist; see 'igpg-zoo artifacts'"
            ) from None

    def get(self, artifact_id: int | None = None, kind: str = "tokenizer") -> Artifact:
        with self.db.session_scope() as session:
            if artifact_id is not None:
                row = session.get(ArtifactRow, int(artifact_id)) if valid_id(artifact_id) else None
                if row is None:
                    raise NotFound(f"no artifact #{artifact_id} in the registry")
                return _record(row)
            stmt = select(ArtifactRow).where(ArtifactRow.kind == kind).order_by(ArtifactRow.id.desc()).limit(1)
            row = session.scalar(stmt)
            if row is None:
                raise NotFound(f"no {kind} is stored in the registry yet; train one first (igpg-zoo train --stage {kind})")
            return _record(row)

    def list(self, kind: str | None = None) -> list[Artifact]:
        stmt = select(ArtifactRow).order_by(ArtifactRow.id)
        if kind is not None:
            stmt = stmt.where(ArtifactRow.kind == kind)
        with self.db.session_scope() as session:
            return [_record(row) for row in session.scalars(stmt)]
