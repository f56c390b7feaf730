"""The benchmark entry point: every area follows the contract, and BENCHMARKS.md is the report of
bench/results/ (opening with the one summary table, short enough to read)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AREAS = sorted(p.stem for p in (ROOT / "bench").glob("*.py") if not p.stem.startswith("_"))


@pytest.fixture
def bench_main(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    return importlib.import_module("bench.__main__")


def _result(title: str, rows: int) -> dict:
    return {"title": title, "details": f"{title} details",
            "summary": [{"measure": f"m{i}", "target": "≤ 1", "value": str(i), "met": i <= 1, "command": "x"}
                        for i in range(rows)],
            "data": {}, "meta": {"date": "2026-01-01", "seconds": 3.0, "machine": "a CPU"}}


@pytest.mark.parametrize("name", AREAS)
def test_every_area_exposes_title_and_run(bench_main, name):
    assert name in bench_main.areas()
    module = importlib.import_module(f"bench.{name}")
    assert isinstance(module.TITLE, str) and module.TITLE.strip()
    assert callable(module.run)


@pytest.mark.parametrize("files,rows", [({"b": 2, "a": 1}, 3), ({"only": 0}, 0)])
def test_report_opens_with_the_table_from_a_results_folder(bench_main, tmp_path, files, rows):
    for name, n in files.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(_result(name.upper(), n)))
    (tmp_path / "not-an-area.json").write_text(json.dumps({"rows": []}))
    lines = bench_main.report(tmp_path).splitlines()
    first_table = next(line for line in lines if line.startswith("|"))
    assert first_table == bench_main.HEADER
    assert sum(line.startswith("| ") and "`x`" in line for line in lines) == rows
    for name in files:
        assert f"## {name.upper()}" in lines and f"{name.upper()} details" in lines


def test_a_row_names_the_machine_that_measured_it(bench_main, tmp_path):
    result = _result("GPU", 1)
    result["summary"][0]["machine"] = "NVIDIA H100"
    (tmp_path / "gpu.json").write_text(json.dumps(result))
    assert "| 0 (NVIDIA H100) |" in bench_main.report(tmp_path)


def test_benchmarks_md_is_the_report_of_the_results(bench_main):
    text = (ROOT / "BENCHMARKS.md").read_text()
    assert text == bench_main.report(bench_main.RESULTS), "BENCHMARKS.md is stale: run `python -m bench report`"
    assert bench_main.DETAILS.read_text() == bench_main.details(bench_main.RESULTS), "run `python -m bench report`"
    lines = text.splitlines()
    assert len(lines) <= 300
    assert next(line for line in lines if line.startswith("|")) == bench_main.HEADER
    starts = [i for i, line in enumerate(lines) if line.startswith("## ")] + [len(lines)]
    assert all(b - a <= 45 for a, b in zip(starts, starts[1:])), "an area's section is over ~40 lines"


def test_results_hold_only_what_the_report_cites(bench_main):
    kept = sorted(p.name for p in bench_main.RESULTS.iterdir())
    assert kept == sorted(f"{name}.json" for name, _ in bench_main.load_results(bench_main.RESULTS))
    assert {p[: -len(".json")] for p in kept} <= set(bench_main.areas())
