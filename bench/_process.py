"""Whole-process measurements for the CLI benchmarks: wall time, CPU time and peak memory of one
child process, read from the kernel's accounting of that child (``os.wait4``), not from inside it."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

QUIET_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "PYTHONWARNINGS": "ignore"}


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float  # user + system
    peak_mb: float  # maximum resident set size
    returncode: int
    stdout: str
    stderr: str


def run_process(argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """Run ``argv`` to completion and account for it alone (its own rusage, children of it included
    only once they are waited for by it)."""
    full_env = {**os.environ, **QUIET_ENV, **(env or {})}
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=cwd)
    out, err = _drain(proc)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode, out, err)


def _drain(proc: subprocess.Popen) -> tuple[str, str]:
    """Read both pipes to the end without reaping the process (so wait4 still sees it)."""
    import threading

    chunks: dict[str, bytes] = {}

    def read(name, stream):
        chunks[name] = stream.read()

    threads = [threading.Thread(target=read, args=(n, s)) for n, s in (("out", proc.stdout), ("err", proc.stderr))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return chunks["out"].decode(errors="replace"), chunks["err"].decode(errors="replace")


def median_run(runs: list[Run]) -> dict[str, float]:
    return {"wall_s": round(statistics.median(r.wall_s for r in runs), 3),
            "cpu_s": round(statistics.median(r.cpu_s for r in runs), 3),
            "peak_mb": round(statistics.median(r.peak_mb for r in runs), 1)}


def cli(*args: str) -> list[str]:
    """The igpg-zoo console entry point run by this interpreter."""
    return [sys.executable, "-c", "from igpg_zoo.cli.app import main; main()", *args]


def check(run: Run, what: str) -> Run:
    if run.returncode != 0:
        tail = (run.stderr or run.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"{what} failed ({run.returncode}): {' | '.join(tail)}")
    return run
