"""Crash campaign (small version): SIGKILL during add, add --manifest, remove, reindex, verify --repair,
train --resume and generate --register leaves no partial record; re-running completes exactly once (a
killed training continues from its checkpoint, registers its prior once, and gives the prior an
uninterrupted run gives); after the grace period ``verify --repair`` leaves ``verify`` clean
(bench/crash.py runs the same at volume).

The kill moments are fixed fractions of a second; wherever one lands (even after the command ended)
the same invariants must hold, so nothing here depends on timing.
"""

from __future__ import annotations

import os

import pytest

from bench import _crash_steps as steps
from bench import crash

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

KILLS = [("add FILE", 0.15), ("add DIR --manifest", 0.4), ("remove", 0.25), ("reindex", 0.3), ("verify --repair", 0.2),
         ("train", 0.8), ("train", 30.0), ("generate --register", 0.6)]  # the second training runs to its end


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_killed_command_leaves_a_whole_registry_and_completes_once_rerun(tmp_path, monkeypatch, backend):
    base = os.environ.get("IGPG_ZOO_TEST_POSTGRES_URL")
    if backend == "postgresql" and not base:
        pytest.skip("PostgreSQL tests need IGPG_ZOO_TEST_POSTGRES_URL (source .ci/postgres.sh)")
    steps.warm_up(generator=True)
    env, drop = crash.backend_env(backend, tmp_path, base)
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # restored afterwards; crash.prepare sets them for the children
    try:
        crash.prepare(tmp_path, env)
        results = crash.campaign(tmp_path, KILLS)
    finally:
        drop()
    assert [r["op"] for r in results] == [op for op, _ in KILLS]
    assert [r["violations"] for r in results] == [[] for _ in KILLS], results
