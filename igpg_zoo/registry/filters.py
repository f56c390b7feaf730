"""Structured filters of ``list`` and ``query``: field values and metric conditions.

Values of one field are ORed, fields are ANDed, and every metric condition must hold. A value with
``*`` or ``?`` is a shell-style pattern (``cnn-*``), matched case-sensitively. A condition
reads ``NAME OP VALUE`` with ``OP`` one of ``>= <= > < = !=`` (``==`` is accepted for ``=``);
``NAME@DATASET`` restricts it to the value measured on that dataset.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass

from igpg_zoo.errors import ConfigError

OPERATORS = (">=", "<=", "!=", "==", ">", "<", "=")
_CONDITION = re.compile(r"^\s*([A-Za-z_][\w.\-]*)(?:@([^<>=!]+?))?\s*(>=|<=|!=|==|>|<|=)\s*(\S+)\s*$")
COLUMN_SORTS = ("id", "name", "created_at", "n_params", "size_bytes", "arch", "dataset", "task")


@dataclass(frozen=True)
class MetricCondition:
    name: str
    op: str  # one of >= <= > < = !=
    value: float
    dataset: str | None = None

    def holds(self, value: float) -> bool:
        return {
            ">=": value >= self.value, "<=": value <= self.value, ">": value > self.value,
            "<": value < self.value, "=": value == self.value, "!=": value != self.value,
        }[self.op]


@dataclass(frozen=True)
class Filters:
    """What ``list`` and ``query`` keep; empty tuples mean no restriction."""

    arch: tuple[str, ...] = ()
    dataset: tuple[str, ...] = ()
    task: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    where: tuple[MetricCondition, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.arch or self.dataset or self.task or self.kind or self.tags or self.where)


def parse_condition(text: str) -> MetricCondition:
    """Parse ``acc>=0.9`` or ``acc@digits>=0.9`` into a ``MetricCondition``."""
    match = _CONDITION.match(text)
    if not match:
        raise ConfigError(
            f"cannot read condition '{text}'; write METRIC OP NUMBER, e.g. 'acc>=0.9' "
            f"(operators: {' '.join(o for o in OPERATORS if o != '==')})"
        )
    name, dataset, op, raw = match.groups()
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"condition '{text}' compares with '{raw}', which is not a number") from None
    if math.isnan(value):
        raise ConfigError(f"condition '{text}' compares with NaN; give a number")
    return MetricCondition(name, "=" if op == "==" else op, value, dataset.strip() if dataset else None)


def _values(value: str | Iterable[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(dict.fromkeys(str(v) for v in value))


def make_filters(arch=(), dataset=(), task=(), kind=(), tags=(), where=()) -> Filters:
    """Normalise user-facing filter arguments (a string or several per field)."""
    conditions = tuple(
        c if isinstance(c, MetricCondition) else parse_condition(c) for c in _values_any(where)
    )
    return Filters(_values(arch), _values(dataset), _values(task), _values(kind), _values(tags), conditions)


def _values_any(value) -> tuple:
    if value is None:
        return ()
    if isinstance(value, (str, MetricCondition)):
        return (value,)
    return tuple(value)
