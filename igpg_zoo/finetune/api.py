"""``finetune(zoo, FinetuneRequest) -> FinetuneResult``: the library front door of fine-tuning.

Order: check the request, load and split the data, find every start (the named one and those to
compare), fit each to the data's classes, train each with the same schedule, score the kept weights
on the test split, and only then register the named start's result. An error before the end writes
nothing. With ``compare`` every run takes the same number of steps (no early stopping) so the
curves line up; the weights kept are still each run's best on the held-out part.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from igpg_zoo.finetune.config import FinetuneConfig, FinetuneRequest
from igpg_zoo.records import Checkpoint

#: progress(run label, step, total steps, held-out accuracy or None)
RunProgress = Callable[[str, int, int, "float | None"], None]


@dataclass
class Run:
    label: str  # "record" | "query" | "generated" | "random" | "retrieved"
    start: Any  # starts.Start
    arch: str  # with the data's class count
    head: str  # kept | fitted | replaced | fresh
    trained: Any  # train.Trained
    test_acc: float

    def to_dict(self) -> dict[str, Any]:
        t = self.trained
        return {"label": self.label, "start": {"kind": self.start.kind, "arch": self.start.arch,
                                               "parent_id": self.start.parent_id, **self.start.facts},
                "arch": self.arch, "head": self.head, "test_acc": self.test_acc, "best_val_acc": t.best_val,
                "best_step": t.best_step, "steps_run": t.steps_run, "stopped_early": t.stopped_early,
                "curve": t.curve.to_dict()}


@dataclass
class FinetuneResult:
    runs: list[Run]  # the named start first, then the compared ones in the order asked
    comparison: dict | None  # compare.summarize's table when other starts ran
    data: dict[str, Any]  # name, fingerprint, sizes of the three parts, classes
    config: FinetuneConfig
    record: Checkpoint | None = None  # the registered result
    created: bool = False  # False when the same weights and facts were registered before

    @property
    def primary(self) -> Run:
        return self.runs[0]

    @property
    def weights(self):
        return self.primary.trained.weights

    def to_dict(self) -> dict[str, Any]:
        return {"data": self.data, "config": self.config.to_dict(), "runs": [r.to_dict() for r in self.runs],
                "comparison": self.comparison, "registered_id": self.record.id if self.record else None,
                "registered_new": self.created}


def finetune(zoo, request: FinetuneRequest, progress: RunProgress | None = None) -> FinetuneResult:
    """Fine-tune from the request's start (and the starts to compare) on the request's data."""
    from igpg_zoo.finetune.data import load, split as split_data

    request.check()
    cfg = request.config
    split = split_data(load(request.data, request.label), cfg.val_fraction, cfg.seed)
    starts = _starts(zoo, request, split)
    _check_memory(split, starts)
    runs = [_run(label, start, split, cfg, len(starts) == 1, progress) for label, start in starts]
    comparison = None
    if len(runs) > 1:
        from igpg_zoo.finetune.compare import default_budgets, summarize
        from igpg_zoo.finetune.train import schedule

        per_epoch, total, _ = schedule(len(split.y_train), cfg)
        budgets = list(cfg.budgets) or default_budgets(total, per_epoch)
        comparison = summarize({r.label: r.trained.curve for r in runs}, cfg.target_fraction, budgets)
    result = FinetuneResult(runs, comparison, _data_facts(split), cfg)
    if request.register:
        _register(zoo, request, split, result)
    return result


def _starts(zoo, request: FinetuneRequest, split) -> list[tuple[str, Any]]:
    """(label, Start) of the named start, then of each start to compare; all found before any training."""
    import igpg_zoo.finetune.starts as starts

    cfg, kind = request.config, request.start_kind
    if kind == "record":
        primary = starts.from_record(zoo, request.record_id, split)
    elif kind == "query":
        primary = starts.from_query(zoo, request.query, split)
    elif kind == "answer":
        primary = starts.from_answer(zoo, split, request.arch, cfg.seed)
    else:
        arch = request.arch or starts.retrieve(zoo, split, seed=cfg.seed).arch
        primary = starts.generate(zoo, arch, split, cfg.draws, cfg.seed)
    out = [(kind, primary)]
    for name in request.compare:
        if name == primary.kind:
            continue  # the named start is this one already
        if name == "random":
            out.append((name, starts.random_init(primary.arch)))
        elif name == "retrieved":
            out.append((name, starts.retrieve(zoo, split, body=primary.arch, seed=cfg.seed)))
        else:
            out.append((name, starts.generate(zoo, primary.arch, split, cfg.draws, cfg.seed)))
    return out


def _check_memory(split, starts) -> None:
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.finetune.data import check_memory

    n_params = max(sum(p.numel() for p in get_adapter(s.arch).build(s.arch).parameters()) for _, s in starts)
    check_memory(split.dataset, n_params, len(starts))


def _run(label: str, start, split, cfg: FinetuneConfig, early_stop: bool, progress: RunProgress | None) -> Run:
    from igpg_zoo.finetune.head import accuracy, adapt, seeded_module
    from igpg_zoo.finetune.train import train

    adapted = adapt(start.arch, start.weights, split.x_train, split.y_train, split.n_classes, cfg.head, cfg.seed)
    report = (lambda step, total, val: progress(label, step, total, val)) if progress else None
    trained = train(adapted.arch, adapted.weights, split, cfg, early_stop=early_stop, progress=report)
    module = seeded_module(adapted.arch, cfg.seed)
    module.load_state_dict(trained.weights)
    return Run(label, start, adapted.arch, adapted.head, trained, accuracy(module, split.x_test, split.y_test))


def _data_facts(split) -> dict[str, Any]:
    info = split.dataset.info
    return {"name": info.name, "source": info.source, "fingerprint": split.fingerprint,
            "input_shape": list(info.input_shape), "n_classes": info.n_classes, "n_train": len(split.y_train),
            "n_val": len(split.y_val), "n_test": len(split.y_test)}


def _register(zoo, request: FinetuneRequest, split, result: FinetuneResult) -> None:
    from igpg_zoo.finetune.register import register_finetuned

    run = result.primary
    lineage = {"start": run.to_dict()["start"], "data": result.data, "hyper_parameters": result.config.to_dict(),
               "curve": run.trained.curve.to_dict(), "head": run.head, "best_step": run.trained.best_step,
               "steps_run": run.trained.steps_run, "stopped_early": run.trained.stopped_early}
    if result.comparison is not None:
        lineage["comparison"] = result.comparison
    added = register_finetuned(zoo, run.arch, run.trained.weights, split.dataset, lineage, run.test_acc,
                               run.trained.best_val, run.start.parent_id, request.name)
    result.record, result.created = added.checkpoint, added.created
