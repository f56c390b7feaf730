"""A folder of small checkpoint files with distinct task texts, and the manifest that imports it.

Shared by the CLI and MLflow benchmarks so that both registries receive the very same files and
metadata: four small MLP architectures, a task sentence per file (so every record's text is new to
the embedder), a user dataset name, one accuracy and two tags ("site-K" and "batch-A"/"batch-B").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ARCHS = ("mlp-i16-h8-o4", "mlp-i16-h16-o4", "mlp-i32-h8-o3", "mlp-i8-h8-o2")
SITES = 10
MACHINES = ("pump", "fan", "valve", "compressor", "turbine", "conveyor", "press", "drill")


@dataclass(frozen=True)
class BulkModel:
    file: str  # name inside the folder
    arch: str
    task: str
    dataset: str
    acc: float
    tags: tuple[str, ...]

    @property
    def name(self) -> str:
        return Path(self.file).stem


def _shapes(arch: str) -> dict[str, tuple[int, ...]]:
    inputs, hidden, outputs = (int(part[1:]) for part in arch.split("-")[1:])
    return {"fc1.weight": (hidden, inputs), "fc1.bias": (hidden,), "head.weight": (outputs, hidden),
            "head.bias": (outputs,)}


def models(n: int, seed: int = 0) -> list[BulkModel]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        machine = MACHINES[i % len(MACHINES)]
        out.append(BulkModel(
            file=f"model-{i:05d}.safetensors", arch=ARCHS[i % len(ARCHS)],
            task=f"detect faults of {machine} unit {i:05d} from vibration readings",
            dataset=f"plant-{i % 50:02d}-sensors", acc=round(float(rng.uniform(0.5, 1.0)), 4),
            tags=(f"site-{i % SITES}", "batch-A" if i % 2 == 0 else "batch-B")))
    return out


def write_folder(folder: Path, n: int, seed: int = 0) -> list[BulkModel]:
    """Write ``n`` checkpoint files, ``zoo.yaml`` (igpg-zoo manifest) and ``models.json`` (the same list)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chosen = models(n, seed)
    for m in chosen:
        tensors = {k: rng.standard_normal(s).astype(np.float32) for k, s in _shapes(m.arch).items()}
        save_file(tensors, str(folder / m.file))
    entries = [{"path": m.file, "arch": m.arch, "task": m.task, "dataset": m.dataset,
                "metrics": {"acc": m.acc}, "tags": list(m.tags)} for m in chosen]
    # JSON is YAML: the manifest loads with any YAML reader and writes fast
    (folder / "zoo.yaml").write_text(json.dumps({"models": entries}))
    (folder / "models.json").write_text(json.dumps([m.__dict__ for m in chosen]))
    return chosen
