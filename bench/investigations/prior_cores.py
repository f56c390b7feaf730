"""The prior's training time on the machine's 2 cores: one thread, two threads, and DDP over two processes.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/prior_cores.py [--steps 300] [--rounds 2]

Trains the default prior of the `full` benchmark (3 x 128, dropout 0.1, 16 sequences per step, the
task-disjoint hold-out, tokenizer #2 of bench/scratch/generator-full) through the real CLI,
`igpg-zoo train --stage prior`, on a copy of that registry (bench/scratch/prior-cores), for
``--steps`` steps in each of three set-ups, alternated ``--rounds`` times on the otherwise idle machine:

- ``1 thread``: one process, OMP_NUM_THREADS=1 (what every other figure of BENCHMARKS.md used);
- ``2 threads``: one process, OMP_NUM_THREADS=2;
- ``DDP 2 x 1``: ``torchrun --nproc_per_node 2`` (gloo), one thread each, 8 sequences per process and
  step, so every step still averages the gradient of 16 sequences.

The time is the training loop's (the artifact's provenance), without start-up; the projection to the
default's 50 epochs (2,600 steps of 16) is steps x seconds per step. Results:
bench/results/prior-cores.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parent
SOURCE = ROOT / "scratch" / "generator-full"
WORK = ROOT / "scratch" / "prior-cores"
RESULTS = ROOT / "results" / "prior-cores.json"
TOKENIZER = 2  # the default tokenizer of the `full` benchmark (BENCHMARKS.md)
FULL_STEPS = 2600  # the default prior's 50 epochs on that zoo
SETUPS = {"1 thread": (1, 1, 16), "2 threads": (1, 2, 16), "DDP 2 x 1": (2, 1, 8)}  # processes, threads, batch


def _copy_registry() -> str:
    if not (WORK / "registry.db").exists():
        WORK.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SOURCE / "registry.db", WORK / "registry.db")
        if (SOURCE / "blobs").exists():
            shutil.copytree(SOURCE / "blobs", WORK / "blobs", dirs_exist_ok=True)
    return f"sqlite:///{(WORK / 'registry.db').resolve()}"


def _run(setup: str, steps: int, registry: str) -> dict:
    from igpg_zoo.zoobuild.presets import FULL

    procs, threads, batch = SETUPS[setup]
    args = ["train", "--stage", "prior", "--tokenizer", str(TOKENIZER), "--steps", str(steps), "--layers", "3",
            "--width", "128", "--dropout", "0.1", "--batch", str(batch), "--registry", registry,
            "--blobs", str((WORK / "blobs").resolve()), "--checkpoint", str(WORK / f"ckpt-{procs}-{threads}.pt"),
            "--json"]
    for task in FULL.holdout:
        args += ["--holdout-task", task]
    launcher = ([sys.executable, "-m", "igpg_zoo"] if procs == 1 else
                [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs),
                 "-m", "igpg_zoo"])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.perf_counter()
    done = subprocess.run(launcher + args, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"{setup} failed:\n{done.stderr[-3000:]}")
    out = json.loads([line for line in done.stdout.splitlines() if line.startswith("{")][-1])["prior"]
    return {"setup": setup, "processes": procs, "threads": threads, "batch_per_process": batch, "steps": steps,
            "loop_seconds": out["seconds"], "wall_seconds": round(wall, 1), "final_loss": out["final_loss"],
            "seconds_per_step": out["seconds"] / steps}


def _markdown(results: dict) -> str:
    lines = ["# Prior training time on the 2-core machine", "",
             f"`python bench/prior_cores.py --steps {results['steps']} --rounds {results['rounds']}`: the default "
             "prior of the `full` benchmark (3 x 128, dropout 0.1, 16 sequences per step, 816 training sequences), "
             "`igpg-zoo train --stage prior` on a copy of its registry, each set-up alternated with the others on "
             "the otherwise idle machine; time = the training loop (no start-up); projection = 2,600 steps "
             "(the default's 50 epochs) x the median seconds per step.", "",
             f"Machine: {results['machine']}.", "",
             "| set-up | seconds per step, per round | median | vs 1 thread | projected 50 epochs (2,600 steps) | wall per run (start-up included) |",
             "|---|---|---|---|---|---|"]
    base = results["summary"]["1 thread"]["median_seconds_per_step"]
    for setup, s in results["summary"].items():
        per = ", ".join(f"{r['seconds_per_step']:.3f}" for r in results["runs"] if r["setup"] == setup)
        walls = ", ".join(f"{r['wall_seconds']:.0f}" for r in results["runs"] if r["setup"] == setup)
        lines.append(f"| {setup} | {per} | {s['median_seconds_per_step']:.3f} | {base / s['median_seconds_per_step']:.2f}x | "
                     f"{s['projected_full_seconds']:.0f} s ({s['projected_full_seconds'] / 60:.1f} min) | {walls} s |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    registry = _copy_registry()
    runs = []
    for r in range(args.rounds):
        for setup in SETUPS:
            runs.append(_run(setup, args.steps, registry))
            print(f"round {r}: {runs[-1]}", flush=True)
    summary = {}
    for setup in SETUPS:
        med = statistics.median(x["seconds_per_step"] for x in runs if x["setup"] == setup)
        summary[setup] = {"median_seconds_per_step": med, "projected_full_seconds": med * FULL_STEPS}
    import platform

    results = {"steps": args.steps, "rounds": args.rounds, "runs": runs, "summary": summary,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    RESULTS.write_text(json.dumps(results, indent=2))
    RESULTS.with_suffix(".md").write_text(_markdown(results))
    print(_markdown(results))


if __name__ == "__main__":
    main()
