"""Synthetic zoo records for bench/registry.py: varied metadata, tiny distinct weights.

Every record is a valid small network of the built-in smallnet family (so the Zoo's strict weight
validation accepts it) with random parameter values (so every blob differs). Tasks, datasets and
architectures are drawn per configuration; each configuration has several runs (seeds), so a
zoo of n records holds about n / runs distinct record texts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# (dataset, input shape, classes, task phrases) -- real names plus generated families below
_DATASETS = [
    ("digits", (1, 8, 8), 10, ["handwritten digit recognition", "image classification of handwritten digits"]),
    ("fashion-mnist", (1, 28, 28), 10, ["clothing image classification", "fashion item recognition"]),
    ("mnist1d", (1, 40), 10, ["1-D signal classification", "sequence classification of digit traces"]),
    ("iris", (4,), 3, ["flower species classification", "tabular classification of iris flowers"]),
    ("wine", (13,), 3, ["wine cultivar classification", "chemical analysis classification"]),
    ("breast-cancer", (30,), 2, ["tumour diagnosis", "binary medical classification"]),
    ("sensor-faults", (1, 64), 4, ["machine fault detection from vibration signals"]),
    ("ecg-beats", (1, 96), 5, ["heartbeat arrhythmia classification"]),
    ("credit", (20,), 2, ["credit default prediction", "loan risk scoring"]),
    ("letters", (1, 16, 16), 26, ["handwritten letter recognition"]),
]
_GENERATED = ["blobs", "moons", "spirals", "xor-grid", "gaussian-mix", "checkerboard"]
_ADJECTIVES = ["noisy", "balanced", "imbalanced", "small", "large", "shifted", "rotated", "clean"]
_TAGS = ["baseline", "bench", "pruned", "long-run", "augmented", "seed-sweep", "distilled", "fp32"]
_ACTS = ["relu", "gelu", "tanh", "silu"]
_WIDTHS = [4, 6, 8, 12, 16]

QUERIES = [
    "image classification of handwritten digits",
    "a small cnn that recognises digits",
    "classify clothing pictures",
    "fashion mnist convolutional network",
    "tabular classification of iris flowers",
    "an mlp for wine classification",
    "medical diagnosis of tumours from measurements",
    "1-D signal classification with a conv net",
    "detect machine faults from vibration",
    "heartbeat arrhythmia detection",
    "predict loan default",
    "handwritten letters",
    "noisy two moons toy problem",
    "spiral dataset with a gelu mlp",
    "gaussian mixture classification 5 classes",
    "checkerboard pattern classifier with tanh",
]


@dataclass(frozen=True)
class SyntheticRecord:
    arch: str
    task: str
    dataset: str
    metrics: dict[str, float]
    tags: tuple[str, ...]
    name: str


def _arch(rng: random.Random, shape: tuple[int, ...], classes: int) -> str:
    act = rng.choice(_ACTS)
    hidden = "-".join(f"h{rng.choice(_WIDTHS)}" for _ in range(rng.randint(1, 2)))
    if len(shape) == 1 or rng.random() < 0.3:  # an MLP on the flattened input
        return f"mlp-i{int(np.prod(shape))}-{hidden}-o{classes}-{act}"
    convs = "-".join(f"c{rng.choice(_WIDTHS[:3])}k3" for _ in range(rng.randint(1, 2)))
    shape_s = "x".join(str(s) for s in shape)
    return f"cnn-i{shape_s}-{convs}-{hidden}-o{classes}-{act}" + ("-bn" if rng.random() < 0.3 else "")


def _dataset(rng: random.Random) -> tuple[str, tuple[int, ...], int, str]:
    if rng.random() < 0.5:
        name, shape, classes, tasks = rng.choice(_DATASETS)
        return name, shape, classes, rng.choice(tasks)
    family = rng.choice(_GENERATED)
    classes, dims = rng.randint(2, 7), rng.randint(2, 16)
    name = f"{family}-c{classes}-d{dims}-s{rng.randrange(100)}"
    return name, (dims,), classes, f"{rng.choice(_ADJECTIVES)} {family} classification with {classes} classes"


def records(n: int, seed: int = 0, runs: int = 10) -> list[SyntheticRecord]:
    """``n`` records: ``runs`` consecutive runs (own metrics, tags, name, weights) per configuration
    (task, dataset, arch), as in a zoo of seeds and sweeps. A prefix of a longer list is the shorter one."""
    configs, per_run = random.Random(seed), random.Random(seed + 1)
    out: list[SyntheticRecord] = []
    for i in range(n):
        if i % runs == 0:
            dataset, shape, classes, task = _dataset(configs)
            arch = _arch(configs, shape, classes)
        tags = tuple(sorted(per_run.sample(_TAGS, per_run.randint(0, 2))))
        metrics = {"acc": round(per_run.uniform(0.3, 0.99), 4), "loss": round(per_run.uniform(0.02, 2.0), 4)}
        out.append(SyntheticRecord(arch, task, dataset, metrics, tags, f"{dataset}-{arch.split('-')[0]}-{i}"))
    return out


@lru_cache(maxsize=None)
def _layout(arch: str) -> tuple:
    from igpg_zoo.adapters.smallnet import build_module
    from igpg_zoo.adapters.smallnet_grammar import parse

    return tuple((k, tuple(v.shape), v.dtype) for k, v in build_module(parse(arch)).state_dict().items())


def random_weights(arch: str, rng: np.random.Generator) -> dict:
    """Random tensors with the exact layout of ``arch`` (torch imported here only)."""
    import torch

    weights = {}
    for key, shape, dtype in _layout(arch):
        if dtype.is_floating_point:
            weights[key] = torch.from_numpy(rng.standard_normal(shape, dtype=np.float32))
        else:
            weights[key] = torch.zeros(shape, dtype=dtype)
    return weights
