"""Metric conditions and filter normalisation."""

from __future__ import annotations

import pytest

from igpg_zoo.errors import ConfigError
from igpg_zoo.registry.filters import MetricCondition, make_filters, parse_condition


@pytest.mark.parametrize("text,expected", [
    ("acc>=0.9", MetricCondition("acc", ">=", 0.9)),
    ("acc <= 0.5", MetricCondition("acc", "<=", 0.5)),
    ("loss<1e-3", MetricCondition("loss", "<", 0.001)),
    ("top-1>70", MetricCondition("top-1", ">", 70.0)),
    ("acc=1", MetricCondition("acc", "=", 1.0)),
    ("acc==1", MetricCondition("acc", "=", 1.0)),
    ("acc!=0", MetricCondition("acc", "!=", 0.0)),
    ("acc@digits:test>=0.9", MetricCondition("acc", ">=", 0.9, "digits:test")),
    ("f1.macro>=-2", MetricCondition("f1.macro", ">=", -2.0)),
])
def test_parse_condition(text, expected):
    assert parse_condition(text) == expected


@pytest.mark.parametrize("text,match", [
    ("acc", "METRIC OP NUMBER"),
    ("acc>>0.9", "not a number"),
    (">=0.9", "METRIC OP NUMBER"),
    ("acc>=high", "not a number"),
    ("acc>=nan", "NaN"),
    ("acc=>0.9", "not a number"),
])
def test_bad_condition_is_one_line_config_error(text, match):
    with pytest.raises(ConfigError, match=match) as err:
        parse_condition(text)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("op,value,expected", [(">=", 0.9, True), (">", 0.9, False), ("<", 1, True),
                                               ("=", 0.9, True), ("!=", 0.9, False), ("<=", 0.8, False)])
def test_condition_holds(op, value, expected):
    assert MetricCondition("acc", op, value).holds(0.9) is expected


def test_make_filters_accepts_strings_or_sequences():
    f = make_filters(arch="a", dataset=["d1", "d2", "d1"], where="acc>=0.5")
    assert f.arch == ("a",) and f.dataset == ("d1", "d2") and f.where == (MetricCondition("acc", ">=", 0.5),)
    assert make_filters().empty and not f.empty
