"""PostgreSQL under load (bench/scale.py, tests/test_registry_pg_load.py): writers and readers at once.

``writers`` processes each add ``adds`` checkpoints one call at a time (``Zoo.add_weights``); the
first ``shared`` of every writer's checkpoints are the same for all writers (same weights, same
metadata), so each must land once however the writers interleave. ``readers`` processes run
``Zoo.query`` (every other one filtered) until the writers are done. Every process opens its own
Zoo on the one server, blob folder and index folder. An exception raised to a caller, or a warning
shown to one, is an error. Afterwards a fresh Zoo counts the rows, runs ``verify`` and checks that
the index file the writers left holds every record.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import traceback
import warnings
from pathlib import Path

import numpy as np

ARCH = "mlp-i8-h4-o3"
READER_TEXTS = ["tabular classification", "writer 3 record", "a small mlp on toy data", "shared record"]


def _meta(writer: int, j: int, shared: int):
    from igpg_zoo.records import CheckpointMeta, Metric

    who = "shared" if j < shared else f"writer {writer}"
    return CheckpointMeta(arch=ARCH, task=f"{who} record {j}", dataset=f"load-{j % 5}", tags=(f"t{j % 3}",),
                          name=f"{who}-{j}", metrics=(Metric("acc", (j % 100) / 100, ""),))


def _weights(seed: int):
    import torch

    from igpg_zoo.adapters import get_adapter

    torch.manual_seed(seed)
    return get_adapter(ARCH).build(ARCH).state_dict()


def _open(url: str, folder: str):
    from igpg_zoo.search.embed import HashEmbedder
    from igpg_zoo.zoo import open_zoo

    os.environ["IGPG_ZOO_INDEX_DIR"] = str(Path(folder) / "index")
    return open_zoo(registry=url, blobs=str(Path(folder) / "blobs"), embedder=HashEmbedder())


def _writer(url, folder, writer, adds, shared, go, results):
    samples, errors = [], []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        try:
            zoo = _open(url, folder)
            items = [(_weights(j if j < shared else 1000 * (writer + 1) + j), _meta(writer, j, shared))
                     for j in range(adds)]
            go.wait()
            for weights, meta in items:
                t = time.perf_counter()
                try:
                    zoo.add_weights(weights, meta)
                except Exception as err:  # an error that reached the caller
                    errors.append(f"{type(err).__name__}: {err}")
                samples.append(time.perf_counter() - t)
            zoo.close()
        except Exception:
            errors.append(traceback.format_exc(limit=3))
    errors += [f"warning: {w.message}" for w in shown]
    results.put(("writer", samples, errors))


def _reader(url, folder, reader, go, stop, results):
    samples, errors = [], []
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        try:
            zoo = _open(url, folder)
            go.wait()
            n = 0
            while not stop.is_set():
                text = READER_TEXTS[(reader + n) % len(READER_TEXTS)]
                kw = {"dataset": ("load-1", "load-2")} if n % 2 else {}
                t = time.perf_counter()
                try:
                    zoo.query(text, k=10, **kw)
                except Exception as err:
                    errors.append(f"{type(err).__name__}: {err}")
                samples.append(time.perf_counter() - t)
                n += 1
            zoo.close()
        except Exception:
            errors.append(traceback.format_exc(limit=3))
    errors += [f"warning: {w.message}" for w in shown]
    results.put(("reader", samples, errors))


def _percentiles(samples: list[float]) -> dict:
    ms = np.asarray(samples or [np.nan]) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p99_ms": round(float(np.percentile(ms, 99)), 1),
            "calls": len(samples)}


def _final_state(url: str, folder: str) -> dict:
    from sqlalchemy import func, select

    from igpg_zoo.registry.db import CheckpointRow

    zoo = _open(url, folder)
    try:
        with zoo.store.db.session_scope() as session:
            rows, identities = session.execute(select(func.count(), func.count(CheckpointRow.identity.distinct()))).one()
        ids = zoo.store.embedded_ids()
        complete = bool(zoo.search.index(zoo.store.dim()).matches(ids))  # the file the writers left, as read
        problems = zoo.verify()
    finally:
        zoo.close()
    return {"rows": int(rows), "identities_once": int(rows) == int(identities), "index_complete": complete,
            "verify": problems}


def _collect(results, procs, got, errors, done, deadline) -> None:
    """Take reports until ``done()``; a process that died without reporting is an error, not a hang."""
    import queue

    while not done():
        try:
            kind, samples, errs = results.get(timeout=5)
        except queue.Empty:
            if time.perf_counter() > deadline or not any(p.is_alive() for p in procs):
                errors.append("a process ended (or the run timed out) without reporting")
                return
            continue
        got[kind].append(samples)
        errors += errs


def run_load(url: str, folder: Path, writers: int = 8, adds: int = 100, readers: int = 16, shared: int = 10,
             timeout_s: float = 1800) -> dict:
    """Run the writers and readers at once against ``url``; the counts, errors and latencies."""
    folder = Path(folder)
    (folder / "index").mkdir(parents=True, exist_ok=True)
    ctx = mp.get_context("spawn")
    go, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(url, str(folder), w, adds, shared, go, results)) for w in range(writers)]
    procs += [ctx.Process(target=_reader, args=(url, str(folder), r, go, stop, results)) for r in range(readers)]
    for p in procs:
        p.start()
    time.sleep(1.0)
    go.set()  # the processes wait on this after opening their Zoo: all start together
    t0 = time.perf_counter()
    got: dict[str, list] = {"writer": [], "reader": []}
    errors: list[str] = []
    _collect(results, procs, got, errors, lambda: len(got["writer"]) == writers, t0 + timeout_s)
    seconds = time.perf_counter() - t0  # the writers are done; the readers report after stop
    stop.set()
    _collect(results, procs, got, errors, lambda: len(got["reader"]) == readers, t0 + timeout_s)
    for p in procs:
        p.join(timeout=60)
        if p.is_alive():
            p.kill()
    exit_codes = [p.exitcode for p in procs]
    state = _final_state(url, str(folder))
    return {"writers": writers, "adds": adds, "shared_adds": shared, "readers": readers,
            "expected_rows": writers * (adds - shared) + shared, "seconds": round(seconds, 1),
            "errors": errors[:20], "exit_codes_nonzero": [c for c in exit_codes if c != 0], **state,
            "writer": _percentiles([s for w in got["writer"] for s in w]),
            "reader": _percentiles([s for r in got["reader"] for s in r])}
