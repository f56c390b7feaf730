"""HTTP query latency of ``igpg-zoo serve``: p50 / p99 at 10k and 100k records, 1 and 16 concurrent clients.

    python -m bench server            # 10k and 100k records (builds them once under bench/scratch/server/)
    python -m bench server --quick    # 2k records

Method: a synthetic registry (``bench/_registry_synthetic.py``: valid smallnet weights, varied tasks,
datasets and architectures) is built with ``Zoo.add_many`` and the hash embedder (no model: the
text embedder's own cost is measured by the registry benchmarks). ``igpg-zoo serve`` runs as its own
process on a loopback port (one worker, SQLite, ``OMP_NUM_THREADS=1``); client threads in this
process send ``GET /api/query?q=...&k=10`` over keep-alive connections, each a bounded number of
times, with query texts drawn from the hand-written queries and from records' own task and dataset.
Latency is per request, wall clock, measured by the client; the same queries are also timed
in-process through ``Zoo.query`` for the HTTP and JSON overhead.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

import numpy as np

from bench import _registry_synthetic as syn

TITLE = "Server (igpg-zoo serve)"
HERE = Path(__file__).resolve().parent
SCRATCH = HERE / "scratch" / "server"
CLIENTS = (1, 16)
TARGET_P50_MS, TARGET_P99_MS = 50.0, 100.0  # one client: "tens of milliseconds", as a hosted registry answers
ENV = {"IGPG_ZOO_EMBEDDER": "hash", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "IGPG_ZOO_PLUGINS": "none",
       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def build(size: int) -> Path:
    """A registry of ``size`` synthetic records (reused when a previous run left one of that size)."""
    from igpg_zoo.records import CheckpointMeta, Metric
    from igpg_zoo.search.embed import HashEmbedder
    from igpg_zoo.zoo import open_zoo

    folder = SCRATCH / f"n{size}"
    path = folder / "registry.db"
    if path.exists():
        with open_zoo(str(path), embedder=HashEmbedder()) as zoo:
            if zoo.store.count() == size:
                return path
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    records, rng = syn.records(size), np.random.default_rng(0)
    with open_zoo(str(path), embedder=HashEmbedder()) as zoo:
        for lo in range(0, size, 5000):
            items = [(syn.random_weights(r.arch, rng), CheckpointMeta(
                arch=r.arch, task=r.task, dataset=r.dataset, tags=r.tags, name=r.name,
                metrics=tuple(Metric(k, v, r.dataset) for k, v in r.metrics.items())))
                for r in records[lo:lo + 5000]]
            zoo.add_many(items, batch=256)
            print(f"  built {min(size, lo + 5000)} / {size}", flush=True)
        zoo.reindex()
    return path


def texts(size: int, n: int = 64) -> list[str]:
    records = syn.records(size)
    picks = np.random.default_rng(1).choice(len(records), size=n - len(syn.QUERIES), replace=False)
    return syn.QUERIES + [f"{records[i].task} on {records[i].dataset}" for i in picks]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(path: Path) -> tuple[subprocess.Popen, int, float]:
    """The server on a free loopback port, and the seconds until it answered."""
    port = _free_port()
    began = time.perf_counter()
    server = subprocess.Popen([sys.executable, "-m", "igpg_zoo", "serve", "--port", str(port), "--registry", str(path)],
                              env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    while time.perf_counter() - began < 300:
        if server.poll() is not None:
            raise RuntimeError(f"serve exited: {server.stderr.read().decode()[-1000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/summary")
            if conn.getresponse().status == 200:
                return server, port, time.perf_counter() - began
        except OSError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("serve did not answer within 300 s")


def client(port: int, queries: list[str], out: list[float], errors: list[str]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for q in queries:
        url = "/api/query?" + urllib.parse.urlencode({"q": q, "k": 10})
        t = time.perf_counter()
        conn.request("GET", url)
        response = conn.getresponse()
        body = response.read()
        out.append(time.perf_counter() - t)
        if response.status != 200 or not json.loads(body)["hits"]:
            errors.append(f"{response.status}: {body[:200]!r}")
    conn.close()


def load(port: int, queries: list[str], clients: int, per_client: int) -> dict:
    """``clients`` threads, each sending ``per_client`` queries (a rotation of ``queries``)."""
    samples: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    threads = [threading.Thread(target=client, args=(
        port, [queries[(c * 7 + i) % len(queries)] for i in range(per_client)], samples[c], errors))
        for c in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    ms = np.concatenate([np.asarray(s) for s in samples]) * 1e3
    return {"clients": clients, "requests": int(ms.size), "errors": len(errors), "first_error": errors[:1],
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "max_ms": round(float(ms.max()), 2), "per_s": round(ms.size / wall, 1)}


def in_process(path: Path, queries: list[str], rounds: int = 3) -> dict:
    from igpg_zoo.search.embed import HashEmbedder
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(path), embedder=HashEmbedder()) as zoo:
        zoo.query(queries[0], k=10)
        ms = []
        for _ in range(rounds):
            for q in queries:
                t = time.perf_counter()
                zoo.query(q, k=10)
                ms.append((time.perf_counter() - t) * 1e3)
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def measure(size: int, quick: bool) -> dict:
    t = time.perf_counter()
    path = build(size)
    entry: dict = {"records": size, "build_or_reuse_seconds": round(time.perf_counter() - t, 1)}
    queries = texts(size)
    server, port, entry["startup_seconds"] = start(path)
    try:
        load(port, queries, 1, 10)  # warm: first query checks the index
        entry["http"] = [load(port, queries, c, (100 if quick else 300) if c == 1 else (20 if quick else 50))
                         for c in CLIENTS]
    finally:
        server.terminate()
        server.wait(timeout=60)
    entry["in_process"] = in_process(path, queries)
    entry["load_avg"] = [round(x, 2) for x in os.getloadavg()]
    return entry


def _rows(entries: list[dict], quick: bool) -> list[dict]:
    command = "python -m bench server" + (" --quick" if quick else "")
    rows = []
    for e in entries:
        for h in e["http"]:
            single = h["clients"] == 1
            met = (h["p50_ms"] <= TARGET_P50_MS and h["p99_ms"] <= TARGET_P99_MS and not h["errors"]) if single else None
            rows.append({"measure": f"HTTP query p50 / p99, {e['records']:,} records, {h['clients']} client(s)",
                         "target": f"≤ {TARGET_P50_MS:g} / {TARGET_P99_MS:g} ms" if single else "–",
                         "value": f"{h['p50_ms']:.1f} / {h['p99_ms']:.1f} ms ({h['per_s']:.0f} req/s)",
                         "met": met, "command": command})
    return rows


def _details(entries: list[dict]) -> str:
    method = __doc__.split("Method: ", 1)[1].strip().replace("\n", " ")
    lines = [method[0].upper() + method[1:], "",
             "The machine was shared with other work while measuring (load average in the table); client and "
             "server share its 2 cores.", "",
             "| records | clients | requests | p50 ms | p99 ms | max ms | req/s | in-process p50 / p99 ms | "
             "server start s | load |", "|---|---|---|---|---|---|---|---|---|---|"]
    for e in entries:
        for h in e["http"]:
            lines.append(f"| {e['records']:,} | {h['clients']} | {h['requests']} | {h['p50_ms']} | {h['p99_ms']} | "
                         f"{h['max_ms']} | {h['per_s']} | {e['in_process']['p50_ms']} / {e['in_process']['p99_ms']} | "
                         f"{e['startup_seconds']:.1f} | {e['load_avg'][0]} |")
    return "\n".join(lines)


def run(quick: bool) -> dict:
    sizes = (2_000,) if quick else (10_000, 100_000)
    entries = [measure(size, quick) for size in sizes]
    return {"summary": _rows(entries, quick), "details": _details(entries), "data": {"sizes": entries}}
