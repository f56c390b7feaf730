"""Benchmark `igpg-zoo zoo build`: wall time, CPU time, machine load, and the zoo it produces.

Runs the real console command in a fresh, empty folder (default embedder: the bundled MiniLM, as
in the README), then reads the registry and reports checkpoints, tasks, architectures and the
test accuracy per task (min / median / max over all of the task's checkpoints).

    .venv/bin/python bench/zoo_bench.py [--preset demo] [--seed 0]
    -> bench/results/zoo.json + zoo.md (other presets: zoo-<preset>.json/.md)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).parent / "igpg-zoo")


def _stats(values: list[float]) -> dict:
    return {"n": len(values), "min": min(values), "median": statistics.median(values), "max": max(values)}


def run_build(preset: str, seed: int, folder: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("IGPG_ZOO_REGISTRY", None)
    env.pop("IGPG_ZOO_EMBEDDER", None)
    load_before = os.getloadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = subprocess.run([CLI, "zoo", "build", "--preset", preset, "--seed", str(seed), "--json"], cwd=folder,
                         env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t0
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count(), "report": report}


def summarise(registry: Path) -> dict:
    os.environ["IGPG_ZOO_EMBEDDER"] = "hash"  # reading only: no need to load the text model
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(registry)) as zoo:
        records = zoo.list()
    by_task, by_arch, by_member = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in records:
        acc = r.metric("acc")
        by_task[r.dataset].append(acc)
        by_arch[r.arch].append(acc)
        member = next((t.split(":", 1)[1] for t in r.tags if t.startswith("member:")), "?")
        by_member[member].append(acc)
    return {
        "checkpoints": len(records), "tasks": len(by_task), "archs": len(by_arch),
        "arch_families": len({a.split("-o")[0] for a in by_arch}),
        "params": _stats([float(r.n_params) for r in records]),
        "per_task": {k: _stats(v) for k, v in sorted(by_task.items())},
        "per_arch": {k: _stats(v) for k, v in sorted(by_arch.items())},
        "per_member": {k: _stats(v) for k, v in sorted(by_member.items())},
    }


def markdown(res: dict) -> str:
    b, z = res["build"], res["zoo"]
    lines = [
        f"# zoo build --preset {res['preset']} (seed {res['seed']})", "",
        f"- command: `{res['command']}`",
        f"- {z['checkpoints']} checkpoints, {z['tasks']} tasks, {z['archs']} architecture strings "
        f"({z['arch_families']} families), params per model {z['params']['min']:.0f}-{z['params']['max']:.0f} "
        f"(median {z['params']['median']:.0f})",
        f"- wall {b['wall_s']} s, CPU (user+sys) {b['cpu_s']} s on {b['cores']} cores; load average before "
        f"{b['load_before']}, after {b['load_after']} (a shared machine: wall time is inflated by the load)",
        f"- machine: {res['machine']}", "",
        "| task (test split) | checkpoints | acc min | acc median | acc max |", "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| `{t}` | {s['n']} | {s['min']:.3f} | {s['median']:.3f} | {s['max']:.3f} |"
              for t, s in z["per_task"].items()]
    lines += ["", "| member kind | checkpoints | acc min | acc median | acc max |", "|---|---:|---:|---:|---:|"]
    lines += [f"| {m} | {s['n']} | {s['min']:.3f} | {s['median']:.3f} | {s['max']:.3f} |"
              for m, s in z["per_member"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        build = run_build(args.preset, args.seed, Path(tmp))
        zoo = summarise(Path(tmp) / "registry.db")
    res = {"preset": args.preset, "seed": args.seed, "command": f"igpg-zoo zoo build --preset {args.preset} "
           f"--seed {args.seed} (in an empty folder)", "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
           f"Python {platform.python_version()}", "build": build, "zoo": zoo}
    stem = "zoo" if args.preset == "demo" else f"zoo-{args.preset}"
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / f"{stem}.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
