"""Fuzz (fast version): hostile files, YAML, expressions, architecture strings, data files and CLI
arguments each give no traceback, one error line with a non-zero exit, and leave the registry as it was.

The strategies and the oracle live in bench/_fuzz_cases.py and bench/_fuzz_oracle.py; ``python -m
bench fuzz`` runs the same properties at volume. Examples are derandomized, so a run is repeatable.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import _fuzz_cases as cases
from bench import _fuzz_oracle as oracle

pytestmark = pytest.mark.usefixtures("torch_one_thread")

TARGETS = {
    "checkpoint": (oracle.checkpoint, cases.CHECKPOINTS, 50),
    "sidecar": (oracle.sidecar, st.tuples(cases.sidecars(), st.booleans()), 30),
    "manifest": (oracle.manifest, cases.manifests(), 30),
    "condition": (oracle.condition, st.tuples(cases.conditions(), st.sampled_from(["list", "query", "metric"])), 40),
    "arch": (oracle.arch, st.tuples(cases.arch_strings(), st.sampled_from(["add", "list"])), 30),
    "data": (oracle.data_file, cases.data_files(), 25),
    "data_for_arch": (oracle.data_for_arch, cases.data_files(), 25),
    "argv": (oracle.cli_args, cases.argv(), 40),
}


@pytest.mark.parametrize("area", sorted(TARGETS))
def test_hostile_input_is_refused_in_one_line_with_nothing_written(tmp_path, area):
    target, strategy, examples = TARGETS[area]
    seen = []

    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def check(case):
        outcome = target(tmp_path, case)
        seen.append(outcome.exit_code)
        assert outcome.problem is None, f"{area} {case!r:.300}: {outcome.problem}"

    check()
    assert any(code != 0 for code in seen)  # the campaign did reach refusals


@pytest.mark.parametrize("area,case", [
    ("condition", ("\r>=0.0", "list")),  # a control character echoed back used to split the error line
    ("arch", ("0\x1e", "add")),
    ("condition", ("acc\x1b[31m>=1", "query")),
    ("checkpoint", (".bin", pickle.dumps(Path("x"), protocol=4))),  # torch used to print a warning line first
])
def test_inputs_the_campaign_found_are_refused_in_one_line(tmp_path, area, case):
    target = TARGETS[area][0]
    outcome = target(tmp_path, case)
    assert outcome.exit_code == 2 and outcome.problem is None, outcome


@pytest.mark.parametrize("area,case", [
    ("sidecar", (b"arch: \xff\xfe\n", True)),  # used to be a UnicodeDecodeError traceback
    ("manifest", b"models: [{path: m.pt}]\n\xff"),
    ("manifest", "1: a\nb: c\nmodels: []\n"),  # a number beside a text key used to fail sorting the unknown keys
    ("data_for_arch", (".csv", b'"a\nb",c\n1,x\n')),  # a quoted header with a line break, echoed back
    ("data_for_arch", (".csv", b'a,label\n"1\n2",x\n3,y\n')),  # a quoted cell with a line break
])
def test_files_the_campaign_found_are_refused_in_one_line(tmp_path, area, case):
    outcome = TARGETS[area][0](tmp_path, case)
    assert outcome.exit_code == 2 and outcome.problem is None, outcome
