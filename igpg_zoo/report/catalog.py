"""Read-only summaries the report and the web page need and the registry facade does not offer.

Each is one SQL query through the store's database session (never a write).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from igpg_zoo.registry.db import CheckpointRow
from igpg_zoo.zoo import Zoo

FACETS = ("task", "arch", "dataset", "kind")
FACET_VALUES = 200  # the most frequent values listed per facet


def facets(zoo: Zoo) -> dict[str, Any]:
    """Record count and, per facet, the most frequent values with their counts."""
    out: dict[str, Any] = {"records": zoo.store.count(), "facets": {}}
    with zoo.store.db.session_scope() as session:
        for name in FACETS:
            column = getattr(CheckpointRow, name)
            rows = session.execute(select(column, func.count()).group_by(column)
                                   .order_by(func.count().desc(), column).limit(FACET_VALUES))
            out["facets"][name] = [{"value": v, "count": int(c)} for v, c in rows]
    return out


def children(zoo: Zoo, record_id: int, limit: int) -> list[int]:
    """Ids of the records whose parent is ``record_id`` (oldest first, at most ``limit``)."""
    with zoo.store.db.session_scope() as session:
        rows = session.scalars(select(CheckpointRow.id).where(CheckpointRow.parent_id == record_id)
                               .order_by(CheckpointRow.id).limit(limit))
        return [int(i) for i in rows]


def version(zoo: Zoo) -> tuple[int, int]:
    """(records, largest id): changes on every add and remove, so cached plots know when to redraw."""
    with zoo.store.db.session_scope() as session:
        count, top = session.execute(select(func.count(), func.max(CheckpointRow.id))).one()
    return int(count or 0), int(top or 0)


def labels(zoo: Zoo) -> dict[int, tuple[str, str, str]]:
    """id -> (task, arch, kind) of every record: what the zoo map colours and marks, in one query."""
    with zoo.store.db.session_scope() as session:
        rows = session.execute(select(CheckpointRow.id, CheckpointRow.task, CheckpointRow.arch, CheckpointRow.kind))
        return {int(i): (task, arch, kind) for i, task, arch, kind in rows}
