"""Filters and sort keys as SQL over the checkpoint tables (filters.py holds the parsed, SQL-free form).

Name filters take exact names or shell-style patterns (``cnn-*``; case-sensitive on SQLite and
PostgreSQL alike), tags and metric conditions become uncorrelated ``IN (...)`` subqueries, and a
metric sort key orders by each record's best value of that metric, records without it last.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

from sqlalchemy import func, or_, select

from igpg_zoo.registry.db import CheckpointRow, MetricRow, TagRow
from igpg_zoo.registry.filters import COLUMN_SORTS, Filters

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq,
        "!=": operator.ne}


def _like(pattern: str) -> str:
    """A shell-style pattern (``*``, ``?``) as a LIKE pattern with ``\\`` as the escape character."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _matches(column, values: Sequence[str]):
    """Any of ``values``: exact names, or shell-style patterns such as ``cnn-*`` (case-sensitive)."""
    exact = [v for v in values if "*" not in v and "?" not in v]
    clauses = [column.in_(exact)] if exact else []
    clauses += [column.like(_like(v), escape="\\") for v in values if v not in exact]
    return or_(*clauses)


def where_filters(stmt, filters: Filters, among: Sequence[int] | None = None):
    """``stmt`` (over CheckpointRow) narrowed to the records that pass ``filters``.

    ``among``: only these ids; the tag and metric subqueries are narrowed to them too, so checking a
    few hundred candidates reads a few hundred rows, not every row the filter passes.
    """
    # uncorrelated IN (...) subqueries: each runs once on its index, not once per checkpoint row
    among = None if among is None else [int(i) for i in among]
    if among is not None:
        stmt = stmt.where(CheckpointRow.id.in_(among))
    for column, values in ((CheckpointRow.arch, filters.arch), (CheckpointRow.dataset, filters.dataset),
                           (CheckpointRow.task, filters.task), (CheckpointRow.kind, filters.kind)):
        if values:
            stmt = stmt.where(_matches(column, values))
    if filters.tags:
        tagged = [_matches(TagRow.tag, filters.tags)] + ([TagRow.checkpoint_id.in_(among)] if among is not None else [])
        stmt = stmt.where(CheckpointRow.id.in_(select(TagRow.checkpoint_id).where(*tagged)))
    for cond in filters.where:
        clause = [MetricRow.name == cond.name, _OPS[cond.op](MetricRow.value, cond.value)]
        if cond.dataset is not None:
            clause.append(MetricRow.dataset == cond.dataset)
        if among is not None:
            clause.append(MetricRow.checkpoint_id.in_(among))
        stmt = stmt.where(CheckpointRow.id.in_(select(MetricRow.checkpoint_id).where(*clause)))
    return stmt


def order_by_sort(stmt, sort: str | None, descending: bool):
    """Order by id, a column, or a metric (its best value per record, records without it last)."""
    tiebreak = CheckpointRow.id.desc() if descending else CheckpointRow.id.asc()
    if sort is None:
        return stmt.order_by(tiebreak)
    if sort in COLUMN_SORTS:
        key = getattr(CheckpointRow, sort)
    else:
        name, _, dataset = sort.partition("@")
        clause = [MetricRow.name == name] + ([MetricRow.dataset == dataset] if dataset else [])
        best = (func.max if descending else func.min)(MetricRow.value).label("value")
        values = (select(MetricRow.checkpoint_id.label("checkpoint_id"), best).where(*clause)
                  .group_by(MetricRow.checkpoint_id).subquery())
        stmt = stmt.outerjoin(values, values.c.checkpoint_id == CheckpointRow.id)
        key = values.c.value
    return stmt.order_by((key.desc() if descending else key.asc()).nulls_last(), tiebreak)
