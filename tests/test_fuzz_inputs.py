"""Fuzz (fast version): hostile files, YAML, expressions, architecture strings, data files and CLI
arguments each give no traceback, one error line with a non-zero exit, and leave the registry as it was.

The strategies and the oracle live in bench/_fuzz_cases.py and bench/_fuzz_oracle.py; ``python -m
bench fuzz`` runs the same properties at volume. Examples are derandomized, so a run is repeatable.
"""

from __future__ import annotations

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
