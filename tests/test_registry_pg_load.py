"""PostgreSQL under load, small: writer and reader processes at once against one server.

Every add lands once (the checkpoints all writers share included), no error or warning reaches a
caller, ``verify`` is clean and the index file the writers leave holds every record. The same
code at full size is ``python -m bench scale`` (bench/_scale_load.py).
"""

from __future__ import annotations

import pytest

from bench._scale_load import run_load

pytestmark = [pytest.mark.postgres, pytest.mark.slow]  # processes that import torch: tens of seconds


@pytest.mark.parametrize("writers, adds, shared, readers", [(3, 5, 2, 2)])
def test_concurrent_adds_and_queries_on_postgresql(registry_url, tmp_path, writers, adds, shared, readers):
    if not registry_url.startswith("postgresql"):
        pytest.skip("the load test is for PostgreSQL (SQLite's concurrency is tested in test_registry_concurrency)")
    result = run_load(registry_url, tmp_path / "load", writers=writers, adds=adds, readers=readers, shared=shared,
                      timeout_s=600)
    assert result["errors"] == [] and result["exit_codes_nonzero"] == []
    assert result["rows"] == writers * (adds - shared) + shared and result["identities_once"]
    assert result["verify"] == [] and result["index_complete"]
    assert result["writer"]["calls"] == writers * adds and result["reader"]["calls"] >= readers
