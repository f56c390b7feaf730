"""Whole-process latency of ``igpg-zoo query --data`` on the front-door demo zoo (cold processes: every
import and the registry's opening counted), without generation (``--mode retrieve``) and with it
(``--mode auto``, which draws when the generator covers an architecture). Each process gets a seed no
earlier run used, so no score comes from the registry's cache: the cost of a first answer for the data. Not an area (leading underscore)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from bench._frontdoor_cases import HERE, sample
from bench._process import check, cli, median_run, run_process

REPEATS = 3


def _data_file(task: str, sizes: dict) -> Path:
    """The case's training split as the .npz a user would pass (``x``, ``y``)."""
    ds = sample(task, sizes)
    path = HERE / "scratch" / "frontdoor-latency.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=np.asarray(ds.x_train, dtype=np.float32), y=np.asarray(ds.y_train, dtype=np.int64))
    return path


def whole_process(data: dict, quick: bool) -> dict:
    """Median wall / CPU / peak memory of ``REPEATS`` cold ``query --data`` processes per mode."""
    task = next(t for t, c in data["cases"].items() if c["cells"])
    path = _data_file(task, data["sizes"])
    out = {"data": f"`{task}` ({data['sizes']['n_train']} samples, .npz)",
           "registry_note": "the demo zoo and its generator", "repeats": REPEATS}
    first = int(time.time()) % 1_000_000  # a seed no earlier run used: no score is in the registry's cache
    for label, mode in (("retrieve", "retrieve"), ("generate", "auto")):
        runs = [check(run_process(cli("query", "--data", str(path), "--mode", mode, "--seed", str(first + i),
                                      "--no-record", "--registry", data["registry"], "--json")),
                      f"query --data --mode {mode}") for i in range(REPEATS)]
        answer = json.loads(runs[-1].stdout)
        out[label] = {**median_run(runs), "runs": [{"wall_s": round(r.wall_s, 3), "cpu_s": round(r.cpu_s, 3)}
                                                   for r in runs],
                      "drawn": sum(c["source"] == "generated" for c in answer["candidates"]),
                      "decision": answer["decision"]["choice"]}
    return out
