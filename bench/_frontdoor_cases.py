"""Shared cases of the front-door benchmarks (``frontdoor``: decision regret, selection, latency;
``finetune``: steps from the answer vs random init). Not an area itself (leading underscore).

Cases are tasks no generator of the demo zoo trained on: the tasks the ``full`` preset holds out and
the demo zoo lacks, plus "user" datasets absent from every preset (other digit class subsets under
another transform, Fashion-MNIST subsets at 8x8, another mnist1d subset). Each case is a labelled
sample (``N_TRAIN`` training samples) fine-tuned with every architecture of the zoo that takes it.

Starts and decisions are the product's: per (case, architecture) ``Zoo.answer`` with ``--arch`` (the
default estimate of ``AnswerSettings``) names its best retrieved and best generated start and the
choice between them; random init is the reference. Every estimate of ``igpg_zoo.answer.estimate`` is
computed for each start and for each member of the selection pool (the candidates ``query --data``
scores), beside the truth: test accuracy after a fixed fine-tuning budget.
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
TRUTH_SEEDS = (0, 1, 2)  # fine-tuning seeds averaged into a selection candidate's accuracy
VERSION = 6  # bump when the cell computation changes


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


def _start_estimates(arch: str, weights, sample) -> dict[str, float]:
    """Every estimate of the answer package for one start, on the answer's own sample."""
    from igpg_zoo.answer import AnswerSettings
    from igpg_zoo.answer.estimate import estimates, model_features

    F_fit, F_held, n_out = model_features(arch, weights, sample)
    return estimates(F_fit, F_held, sample, n_out, AnswerSettings().ridge)


def _cell(zoo, split, arch: str, sizes: dict, estimate: str) -> dict:
    """One (case, architecture): the answer (``Zoo.answer`` with --arch, as ``query --data`` makes it), its
    best retrieved and best generated starts and random init, each fine-tuned with one schedule."""
    from igpg_zoo.answer import AnswerSettings
    from igpg_zoo.finetune import FinetuneConfig
    from igpg_zoo.finetune.train import schedule

    cfg = FinetuneConfig(epochs=sizes["epochs"], seed=SEED, evals_per_epoch=64)
    per_epoch, total, _ = schedule(len(split.y_train), cfg)
    marks = (sizes["budget"], per_epoch)
    t0 = time.perf_counter()
    ans = zoo.answer(data=split.dataset, arch=(arch,), settings=AnswerSettings(estimate=estimate, seed=SEED),
                     record=False)
    seconds = time.perf_counter() - t0
    found = {"retrieved": ans.decision.best_retrieved, "generated": ans.decision.best_generated,
             "random": ans.baselines[0]}
    found = {k: c for k, c in found.items() if c is not None}
    estimates = {k: _start_estimates(c.arch, c.weights, ans.sample) for k, c in found.items()}
    runs = {k: run_start(c.arch, ans.weights_of(c) if k != "random" else None, split, cfg, marks)
            for k, c in found.items()}
    choices = {e: max((k for k in ("retrieved", "generated") if k in estimates), key=lambda k: estimates[k][e])
               for e in estimate_names()}  # ties to retrieved, as the answer breaks them
    return {"arch": arch, "per_epoch": per_epoch, "total": total, "budget": sizes["budget"],
            "estimates": estimates, "choice": ans.decision.choice, "estimate": estimate, "choices": choices,
            "reason": ans.decision.reason, "runs": runs,
            "retrieved": {"id": found["retrieved"].record.id, "stored_arch": found["retrieved"].record.arch}
            if "retrieved" in found else None,
            "generated": found["generated"].draw if "generated" in found else None,
            "seconds": {"answer": seconds}}


def _pool(zoo, sample, size: int) -> list:
    """The candidates ``query --data`` scores (one per task x architecture group, most similar data first),
    topped up with other members of those architectures when there are fewer than ``size`` groups."""
    from igpg_zoo.answer.candidates import retrieve

    chosen = retrieve(zoo, None, {}, (), sample, False, size)
    if len(chosen) < size:
        seen, archs = {c.record.id for c in chosen}, {c.record.arch for c in chosen}
        chosen += [c for c in retrieve(zoo, None, {}, (), sample, True, 10_000)
                   if c.record.arch in archs and c.record.id not in seen][:size - len(chosen)]
    return chosen


def _selection(zoo, split, sizes: dict) -> dict:
    """``pool`` candidates: every estimate, the static baselines, and the test accuracy after the budget
    (mean over ``TRUTH_SEEDS``: one run's accuracy moves by about as much as neighbouring candidates differ)."""
    from igpg_zoo.answer.heads import transplant
    from igpg_zoo.answer.sample import split_sample
    from igpg_zoo.finetune import FinetuneConfig

    sample = split_sample(split.dataset, seed=SEED)  # the answer's sample of the data's training split
    rows = []
    for c in _pool(zoo, sample, sizes["pool"]):
        w = zoo.load_weights(c.record.id)
        true = []
        for seed in TRUTH_SEEDS:  # data order and fresh head per seed; the mean is the truth
            cfg = FinetuneConfig(epochs=sizes["epochs"], max_steps=sizes["budget"], seed=seed, evals_per_epoch=64)
            true.append(run_start(c.record.arch, w, split, cfg, (sizes["budget"],))["test_at"][str(sizes["budget"])])
        t0 = time.perf_counter()
        est = _start_estimates(c.arch, transplant(w, c.record.arch, c.arch, SEED), sample)
        rows.append({"id": c.record.id, "arch": c.arch, "dataset": c.record.dataset,
                     "stored_acc": c.record.metric("acc") or 0.0, "n_params": c.record.n_params,
                     "data_similarity": c.data_similarity, **est, "score_s": time.perf_counter() - t0,
                     "true": float(np.mean(true)), "true_per_seed": true})
    return {"candidates": rows}


def latency(quick: bool) -> list[dict]:
    """Wall and CPU seconds of an answer for each case's data in this process (imports and models warm):
    retrieval only, then with generation (``--mode auto``). Measured afresh on every run, never cached."""
    from igpg_zoo.answer import AnswerSettings
    from igpg_zoo.finetune.data import split as split_data
    from igpg_zoo.zoo import open_zoo

    out = []
    with open_zoo(str(registry())) as zoo:
        for task in (QUICK_CASES if quick else HELD_OUT + USER):
            ds = split_data(sample(task, SIZES[quick]), 0.2, SEED).dataset
            row = {"case": task}
            for label, mode in (("retrieve", "retrieve"), ("retrieve_and_generate", "auto")):
                w, c = time.perf_counter(), time.process_time()
                zoo.answer(data=ds, settings=AnswerSettings(mode=mode, seed=SEED), record=False)
                row.update({f"{label}_s": time.perf_counter() - w, f"{label}_cpu_s": time.process_time() - c})
            out.append(row)
    return out


def archs_for(zoo, split, limit: int) -> list[str]:
    from igpg_zoo.finetune import starts
    from igpg_zoo.finetune.head import retarget

    bodies = sorted({retarget(r.arch, split.n_classes) for r in zoo.list() if starts.fits(r.arch, split)})
    return bodies[:limit]


def _cached(name: str, key_parts: list, compute) -> dict:
    key = hashlib.sha256(json.dumps(key_parts).encode()).hexdigest()[:16]
    cache = HERE / "scratch" / f"frontdoor-{name}-{key}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    out = compute()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(out, default=float))
    return out


def selection(quick: bool, zoo) -> dict[str, dict]:
    """Each case's selection pool (no generator needed), cached per zoo snapshot and sizes."""
    from igpg_zoo.finetune.data import split as split_data

    sizes = SIZES[quick]
    base = [VERSION, zoo.snapshot()["hash"], sizes]
    out = {}
    for task in (QUICK_CASES if quick else HELD_OUT + USER):
        split = split_data(sample(task, sizes), 0.2, SEED)
        out[task] = _cached("selection", [*base, task], lambda: _selection(zoo, split, sizes))
    return out


def cells(quick: bool) -> dict:
    """Every case's cells (the answer with the product's default estimate) and selection pool. Cached per
    zoo snapshot, prior and sizes: the selection pool (every estimate beside the truth) apart from the
    cells, which depend on the default estimate."""
    from igpg_zoo.answer import AnswerSettings
    from igpg_zoo.finetune.data import split as split_data
    from igpg_zoo.zoo import open_zoo

    sizes, estimate = SIZES[quick], AnswerSettings().estimate
    path = registry()
    cases = QUICK_CASES if quick else HELD_OUT + USER
    with open_zoo(str(path)) as zoo:
        prior = zoo.list_artifacts("prior")[-1].id
        pools = selection(quick, zoo)
        base = [VERSION, zoo.snapshot()["hash"], sizes]
        out = {"zoo": f"demo preset, generator: igpg-zoo train {' '.join(DEMO_TRAIN)}", "prior_artifact_id": prior,
               "sizes": sizes, "estimate": estimate, "registry": _shown_path(path), "cases": {}}
        for task in cases:
            split = split_data(sample(task, sizes), 0.2, SEED)
            archs = archs_for(zoo, split, sizes["archs"])
            kind = "held-out" if task in HELD_OUT else "user"
            if not archs:
                out["cases"][task] = {"kind": kind, "skipped": "no architecture of the zoo takes this data",
                                      "cells": [], "selection": {"candidates": []}}
                continue
            cell = _cached("cells", [*base, prior, task, estimate],
                           lambda: {"cells": [_cell(zoo, split, a, sizes, estimate) for a in archs]})
            out["cases"][task] = {"kind": kind, "in_presets": presets_free(task), "n_classes": split.n_classes,
                                  "cells": cell["cells"], "selection": pools[task]}
            print(f"  {task}: {len(archs)} architectures", file=sys.stderr)
    return out


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def estimate_names() -> tuple[str, ...]:
    from igpg_zoo.answer.settings import ESTIMATES

    return ESTIMATES


def _shown_path(path: Path) -> str:
    """The registry's path as the results show it: relative to the repository when inside it."""
    try:
        return str(Path(path).resolve().relative_to(HERE.parent))
    except ValueError:
        return str(path)
