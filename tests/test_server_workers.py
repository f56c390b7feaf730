"""``igpg-zoo serve --workers 2`` as real processes, on SQLite and PostgreSQL: a write through one
worker is seen by every search afterwards, whichever worker answers it."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.zoo import open_zoo

pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install 'igpg-zoo[serve]')")
pytestmark = pytest.mark.slow

MLP = "mlp-i4-h8-o3"
TASKS = ["iris flower species", "wine cultivar classification", "breast tumour diagnosis", "credit default risk"]


def _get(url: str, method: str = "GET", token: str | None = None):
    request = urllib.request.Request(url, method=method, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _start(port: int, token: str) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "igpg_zoo", "serve", "--port", str(port), "--workers", "2"],
                              env={**os.environ, "IGPG_ZOO_TOKEN": token}, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read().decode()[-2000:]
        try:
            _get(f"http://127.0.0.1:{port}/api/summary")
            return server
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.3)
    server.kill()
    pytest.fail("igpg-zoo serve --workers 2 did not answer within 120 s")


def test_every_worker_sees_a_remove_made_through_another(registry_url):
    with open_zoo() as zoo:
        for seed, task in enumerate(TASKS):
            torch.manual_seed(seed)
            zoo.add_weights(get_adapter(MLP).build(MLP).state_dict(), CheckpointMeta(
                arch=MLP, task=task, dataset="iris", metrics=(Metric("acc", 0.9, "iris"),)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = _start(port, "two-workers")
    base = f"http://127.0.0.1:{port}"
    try:
        first = [_get(f"{base}/api/query?q=wine+cultivar&k=1")["hits"][0]["id"] for _ in range(12)]
        assert set(first) == {2}  # every worker has its index loaded
        assert _get(f"{base}/api/records/2", "DELETE", "two-workers")["removed"]["id"] == 2
        after = [[h["id"] for h in _get(f"{base}/api/query?q=wine+cultivar&k=4")["hits"]] for _ in range(12)]
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert all(sorted(ids) == [1, 3, 4] for ids in after), after
