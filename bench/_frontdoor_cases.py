"""Shared cases of the front-door benchmarks (``frontdoor``: decision regret, selection, latency;
``finetune``: steps from the answer vs random init). Not an area itself (leading underscore).

Cases are tasks no generator of the demo zoo trained on: the tasks the ``full`` preset holds out and
the demo zoo lacks, plus "user" datasets absent from every preset (other digit class subsets under
another transform, Fashion-MNIST subsets at 8x8, another mnist1d subset). Each case is a labelled
sample (``N_TRAIN`` training samples) fine-tuned with every architecture of the zoo that takes it.

Starts come from ``igpg_zoo.finetune.starts`` (retrieval and generation in one module); the
decision ``choose`` and the selection estimate stand in for the registry's own answer until it exists:
each start's estimate is a fitted head's mean margin on the held-out part of the sample (its accuracy,
alone or with the margin breaking ties, is reported beside it).
Results are cached in bench/scratch per (zoo snapshot, prior, sizes), so both areas share one run.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REGISTRY_ENV = "IGPG_ZOO_BENCH_DEMO_REGISTRY"  # a demo zoo with a trained generator (built when missing)
DEFAULT_REGISTRY = HERE / "scratch" / "frontdoor" / "registry.db"
DEMO_TRAIN = ["--recipe", "fast"]  # the generator recipe used when none is stored (the demo's)
HELD_OUT = ("digits[classes=2,5,8][rot=90]", "digits[classes=4,6,9]", "mnist1d[classes=3,5,8]")
USER = ("digits[classes=1,2,3,4][rot=270]", "digits[classes=0,6,9][flip]",
        "fashion_mnist[classes=0,1,2,3][n=1500][size=8]", "fashion_mnist[classes=5,7,9][n=1500][size=8]",
        "mnist1d[classes=1,4,7]")
QUICK_CASES = ("digits[classes=4,6,9]", "digits[classes=1,2,3,4][rot=270]",
               "fashion_mnist[classes=0,1,2,3][n=1500][size=8]", "mnist1d[classes=1,4,7]")
SIZES = {False: {"n_train": 500, "n_test": 1000, "epochs": 10, "budget": 30, "pool": 12, "archs": 3},
         True: {"n_train": 300, "n_test": 400, "epochs": 4, "budget": 15, "pool": 10, "archs": 2}}
SEED = 0
VERSION = 4  # bump when the cell computation changes


def registry() -> Path:
    """The demo zoo with a trained generator; built (zoo build --preset demo, train) when missing."""
    path = Path(os.environ.get(REGISTRY_ENV, DEFAULT_REGISTRY)).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "igpg_zoo"]
    if not path.exists():
        subprocess.run([*cli, "zoo", "build", "--preset", "demo", "--registry", str(path)], check=True)
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(path)) as zoo:
        has_prior = bool(zoo.list_artifacts("prior"))
    if not has_prior:
        subprocess.run([*cli, "train", "--registry", str(path), *DEMO_TRAIN, "--checkpoint",
                        str(path.parent / "prior.pt")], check=True)
    return path


def presets_free(task: str) -> list[str]:
    """The presets whose tasks include ``task`` (empty: a task no preset trains)."""
    from igpg_zoo.data import canonical_name
    from igpg_zoo.zoobuild.presets import PRESETS

    canon = canonical_name(task)
    return [p.name for p in PRESETS.values() if canon in {canonical_name(t) for t in p.tasks}]


def sample(task: str, sizes: dict):
    """The case's labelled sample: a stratified subsample of the task's training and test splits."""
    from igpg_zoo.data import load_dataset
    from igpg_zoo.data.dataset import Dataset, stratified_subsample

    ds = load_dataset(task)
    tr = stratified_subsample(ds.y_train, sizes["n_train"], SEED)
    te = stratified_subsample(ds.y_test, sizes["n_test"], SEED)
    return Dataset(ds.info, ds.x_train[tr], ds.y_train[tr], ds.x_test[te], ds.y_test[te], ds.class_names)


def choose(estimates: dict[str, dict], key: str = "margin") -> str:
    """The automatic decision: the start whose fitted head has the largest mean margin on the held-out
    part (``key="acc"``: accuracy, ties to retrieved, generated, random; ``"acc_margin"``: accuracy, ties by margin)."""
    order = ("retrieved", "generated", "random")
    keys = {"margin": lambda k: (estimates[k]["margin"], -order.index(k)),
            "acc": lambda k: (estimates[k]["acc"], -order.index(k)),
            "acc_margin": lambda k: (estimates[k]["acc"], estimates[k]["margin"], -order.index(k))}
    return max(order, key=keys[key])


def run_start(arch: str, weights, split, cfg, marks: tuple[int, ...]) -> dict:
    """Fine-tune one start with the fixed schedule (no early stopping); test accuracy at ``marks``."""
    from igpg_zoo.finetune.head import accuracy, adapt
    from igpg_zoo.finetune.train import train

    adapted = adapt(arch, weights, split.x_train, split.y_train, split.n_classes, cfg.head, cfg.seed)
    test: dict[str, float] = {}

    def on_eval(step, module):
        if step in marks:
            test[str(step)] = accuracy(module, split.x_test, split.y_test)

    t = train(adapted.arch, adapted.weights, split, cfg, early_stop=False, on_eval=on_eval)
    return {"head": adapted.head, "test_at": test, "curve": t.curve.to_dict()}


def _cell(zoo, split, arch: str, sizes: dict) -> dict:
    """One (case, architecture): the three starts, their estimates, the decision and their runs."""
    from igpg_zoo.finetune import FinetuneConfig
    from igpg_zoo.finetune import starts
    from igpg_zoo.finetune.train import schedule

    cfg = FinetuneConfig(epochs=sizes["epochs"], seed=SEED, evals_per_epoch=64)
    per_epoch, total, _ = schedule(len(split.y_train), cfg)
    marks = (sizes["budget"], per_epoch)
    t0 = time.perf_counter()
    ret = starts.retrieve(zoo, split, body=arch, seed=SEED)
    t1 = time.perf_counter()
    gen = starts.generate(zoo, arch, split, cfg.draws, SEED)
    t2 = time.perf_counter()
    found = {"retrieved": ret, "generated": gen, "random": starts.random_init(arch)}
    estimates = {k: starts.heldout_scores(s.arch, s.weights, split, SEED) for k, s in found.items()}
    runs = {k: run_start(s.arch, s.weights, split, cfg, marks) for k, s in found.items()}
    return {"arch": arch, "per_epoch": per_epoch, "total": total, "budget": sizes["budget"],
            "estimates": estimates, "choice": choose(estimates), "choice_acc": choose(estimates, "acc"),
            "choice_acc_margin": choose(estimates, "acc_margin"),
            "runs": runs,
            "retrieved": {k: v for k, v in ret.facts.items()}, "generated": gen.facts,
            "seconds": {"retrieve": t1 - t0, "generate": t2 - t1}}


def _selection(zoo, split, sizes: dict) -> dict:
    """Up to ``pool`` candidates: estimate, static baselines, and test accuracy after the budget."""
    from igpg_zoo.finetune import FinetuneConfig
    from igpg_zoo.finetune import starts

    cfg = FinetuneConfig(epochs=sizes["epochs"], max_steps=sizes["budget"], seed=SEED, evals_per_epoch=64)
    ranked = starts.candidates(zoo, split)
    chosen = ranked[:sizes["pool"]]
    if len(chosen) < sizes["pool"]:  # few groups: add other members of the fitting architectures
        seen = {r.id for r in chosen}
        archs = {r.arch for r in ranked}
        chosen += [r for r in zoo.list() if r.arch in archs and r.id not in seen][:sizes["pool"] - len(chosen)]
    rows = []
    for rec in chosen:
        w = zoo.load_weights(rec.id)
        run = run_start(rec.arch, w, split, cfg, (sizes["budget"],))
        est = starts.heldout_scores(rec.arch, w, split, SEED)
        rows.append({"id": rec.id, "arch": rec.arch, "dataset": rec.dataset, "stored_acc": rec.metric("acc") or 0.0,
                     "n_params": rec.n_params, "estimate": est["margin"], "acc": est["acc"],
                     "acc_margin": est["acc"] + 1e-3 * est["margin"], "true": run["test_at"].get(str(sizes["budget"]))})
    return {"candidates": rows}


def _latency(zoo, split, arch: str) -> dict:
    """Seconds of an answer for the data: retrieval over every fitting architecture, then one generation."""
    from igpg_zoo.finetune import starts

    t0 = time.perf_counter()
    starts.retrieve(zoo, split, seed=SEED)
    t1 = time.perf_counter()
    starts.generate(zoo, arch, split, 5, SEED)
    return {"retrieve_s": t1 - t0, "retrieve_and_generate_s": time.perf_counter() - t0}


def archs_for(zoo, split, limit: int) -> list[str]:
    from igpg_zoo.finetune import starts
    from igpg_zoo.finetune.head import retarget

    bodies = sorted({retarget(r.arch, split.n_classes) for r in zoo.list() if starts.fits(r.arch, split)})
    return bodies[:limit]


def cells(quick: bool) -> dict:
    """Every case's cells, selection pool and latency; cached per zoo snapshot, prior and sizes."""
    from igpg_zoo.finetune.data import split as split_data
    from igpg_zoo.zoo import open_zoo

    sizes = SIZES[quick]
    path = registry()
    cases = QUICK_CASES if quick else HELD_OUT + USER
    with open_zoo(str(path)) as zoo:
        prior = zoo.list_artifacts("prior")[-1].id
        key = hashlib.sha256(json.dumps([VERSION, zoo.snapshot()["hash"], prior, sizes, cases]).encode()).hexdigest()[:16]
        cache = HERE / "scratch" / f"frontdoor-cells-{key}.json"
        if cache.exists():
            return json.loads(cache.read_text())
        out = {"zoo": f"demo preset, generator: igpg-zoo train {' '.join(DEMO_TRAIN)}", "prior_artifact_id": prior,
               "sizes": sizes, "cases": {}}
        for task in cases:
            split = split_data(sample(task, sizes), 0.2, SEED)
            archs = archs_for(zoo, split, sizes["archs"])
            if not archs:
                out["cases"][task] = {"kind": "held-out" if task in HELD_OUT else "user", "skipped": "no architecture "
                                      "of the zoo takes this data", "cells": [], "selection": {"candidates": []}}
                continue
            case = {"kind": "held-out" if task in HELD_OUT else "user", "in_presets": presets_free(task),
                    "n_classes": split.n_classes, "cells": [_cell(zoo, split, a, sizes) for a in archs],
                    "selection": _selection(zoo, split, sizes), "latency": _latency(zoo, split, archs[0])}
            out["cases"][task] = case
            print(f"  {task}: {len(archs)} architectures", file=sys.stderr)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out, default=float))
    return out


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None
