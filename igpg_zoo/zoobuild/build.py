"""``igpg-zoo zoo build``: train a preset's runs and register every kept checkpoint through the Zoo.

Each run trains one model (a base, a fine-tuned member or an independent member) and registers its
late-epoch checkpoints with honest metrics on the held-out test split (``acc`` on ``TASK:test``).
Runs whose checkpoints are all registered are skipped, so an interrupted build resumes where it
stopped; each checkpoint is added atomically by the Zoo, and retraining a half-registered run
gives the same weights (deterministic), so its earlier records are found again, not duplicated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.data.embedding import dataset_embedding_for
from igpg_zoo.data.tasks import load_dataset
from igpg_zoo.records import Checkpoint, CheckpointMeta, Metric
from igpg_zoo.zoobuild.plan import Run, plan_runs
from igpg_zoo.zoobuild.presets import get_preset
from igpg_zoo.zoobuild.trainer import accuracy, fit, init_module

LICENSE = "Apache-2.0"


@dataclass(frozen=True)
class Trained:
    epoch: int
    weights: dict[str, torch.Tensor]
    test_acc: float
    train_acc: float


@dataclass
class BuildReport:
    preset: str
    seed: int
    runs: int = 0
    trained: int = 0
    skipped: int = 0
    added: int = 0  # new records
    existing: int = 0  # records found again (a resumed run)
    seconds: float = 0.0
    ids: list[int] = field(default_factory=list)


def train_run(run: Run, start: dict[str, torch.Tensor] | None = None) -> list[Trained]:
    """Train ``run`` (from ``start`` for a fine-tuned member) and return its kept checkpoints."""
    ds = load_dataset(run.task)
    adapter = get_adapter(run.arch)
    module = init_module(seeded_build(adapter, run.arch, run.seed), run.seed)
    if start is not None:
        own = module.state_dict()
        head = set(adapter.head_names(run.arch)) if run.task != run.base.task else set()
        body = {k: v for k, v in start.items() if k not in head and k in own and own[k].shape == v.shape}
        module.load_state_dict({**own, **body})
    kept: list[Trained] = []

    def keep(epoch: int, m: torch.nn.Module) -> None:
        if epoch in run.kept_epochs:
            weights = {k: v.detach().clone() for k, v in m.state_dict().items()}
            kept.append(Trained(epoch, weights, accuracy(m, ds.x_test, ds.y_test),
                                accuracy(m, ds.x_train, ds.y_train)))

    fit(module, ds.x_train, ds.y_train, epochs=run.epochs, lr=run.variant.lr, batch_size=run.variant.batch_size,
        seed=run.seed, on_epoch=keep)
    return kept


def seeded_build(adapter, arch: str, seed: int) -> torch.nn.Module:
    """``adapter.build(arch)`` with the global torch RNG seeded, so tensors a module initialises itself
    and ``init_module`` does not reset (a ViT's position embedding) are the same every build."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return adapter.build(arch)


def checkpoint_meta(run: Run, t: Trained, parent_id: int | None, embedding: np.ndarray | None) -> CheckpointMeta:
    ds_info = load_dataset(run.task).info
    tags = [f"preset:{run.preset}", f"member:{run.member}", f"epoch:{t.epoch}", f"run:{run.run_id}",
            f"seed:{run.build_seed}"]
    if t.epoch == run.epochs:
        tags.append("final")
    if run.holdout:
        tags.append("holdout")
    v = run.variant
    return CheckpointMeta(
        arch=run.arch, task=ds_info.description, dataset=run.task,
        metrics=(Metric("acc", t.test_acc, f"{run.task}:test"), Metric("train_acc", t.train_acc, f"{run.task}:train")),
        tags=tuple(tags), license=LICENSE, source=f"igpg-zoo zoo build --preset {run.preset} --seed {run.build_seed}",
        name=f"{run.task}/{run.arch}/{run.member}-v{v.seed}-e{t.epoch}" + (f"-s{run.build_seed}" if run.build_seed else ""),
        parent_id=parent_id, kind=run.kind,
        extra={"zoo_build": {"preset": run.preset, "seed": run.build_seed, "run": run.run_id, "member": run.member,
                             "epoch": t.epoch, "epochs": run.epochs, "lr": v.lr, "batch_size": v.batch_size,
                             "variant_seed": v.seed, "torch_seed": run.seed,
                             "base_run": run.base.run_id if run.base else None}},
        dataset_embedding=None if embedding is None else tuple(float(x) for x in embedding),
    )


def _registered(zoo, preset: str) -> dict[str, dict[int, Checkpoint]]:
    """run id -> {epoch: record} of what this preset already registered."""
    out: dict[str, dict[int, Checkpoint]] = {}
    for rec in zoo.list(tags=(f"preset:{preset}",)):
        info = rec.extra.get("zoo_build", {}) if isinstance(rec.extra, dict) else {}
        if "run" in info and "epoch" in info:
            out.setdefault(info["run"], {})[int(info["epoch"])] = rec
    return out


def build_zoo(zoo, preset: str, seed: int = 0, on_run: Callable[[Run, str], None] | None = None,
              threads: int = 1) -> BuildReport:
    """Train and register ``preset``; ``on_run(run, status)`` after each run ("trained" / "skipped")."""
    spec = get_preset(preset)
    runs = plan_runs(spec, seed)
    _require_sources(runs)
    _require_adapters(runs)
    report = BuildReport(preset, seed, runs=len(runs))
    start_time = time.perf_counter()
    done = _registered(zoo, preset)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # tiny models: more threads only contend on a shared machine
    try:
        for run in runs:
            have = done.get(run.run_id, {})
            if set(run.kept_epochs) <= set(have):
                status = "skipped"
                report.skipped += 1
                report.ids += [have[e].id for e in run.kept_epochs]
            else:
                status = "trained"
                done[run.run_id] = _train_and_register(zoo, run, done, report)
                report.trained += 1
            if on_run is not None:
                on_run(run, status)
    finally:
        torch.set_num_threads(previous_threads)
    report.seconds = time.perf_counter() - start_time
    return report


def _require_sources(runs: list[Run]) -> None:
    """Fail before training anything when a dataset the preset needs is not installed."""
    from igpg_zoo.data.sources import SOURCES, is_available
    from igpg_zoo.data.tasks import parse_task

    for base in sorted({parse_task(r.task).base for r in runs}):
        if not is_available(base):
            SOURCES[base].load()  # raises the DatasetError that says how to install it


def _require_adapters(runs: list[Run]) -> None:
    """Fail before training anything when an architecture the preset needs has no adapter (a plugin
    that is not installed): the UnknownArchitecture says how to install it."""
    for arch in sorted({r.arch for r in runs}):
        get_adapter(arch)


def _train_and_register(zoo, run: Run, done, report: BuildReport) -> dict[int, Checkpoint]:
    start, parent_id = None, None
    if run.base is not None:
        parent = done[run.base.run_id][run.base.epochs]
        parent_id = parent.id
        start = zoo.load_weights(parent_id)
    embedding = dataset_embedding_for(run.task, text_embedder=zoo.embedder)
    kept = train_run(run, start)
    items = [(t.weights, checkpoint_meta(run, t, parent_id, embedding)) for t in kept]
    results = zoo.add_many(items)
    report.added += sum(r.created for r in results)
    report.existing += sum(not r.created for r in results)
    report.ids += [r.checkpoint.id for r in results]
    return {t.epoch: r.checkpoint for t, r in zip(kept, results)}
