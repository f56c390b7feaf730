"""Where a fine-tuning run starts: a record, a text query's answer, the best retrieved record for the
data, a generated draw, or random init.

This is the one module that talks to retrieval (``Zoo.query``, the record list) and to the generator,
so either can change behind it. ``retrieve`` is the selection used until the registry answers for a
dataset itself: candidates whose architecture takes the data's inputs, one per (dataset,
architecture) group (the best stored accuracy), ordered by dataset-embedding similarity, and the
first ``pool`` scored by a fitted head's mean margin on the held-out part (``heldout_scores``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from igpg_zoo.errors import DatasetError, NotFound, NothingToReturn, ZooError
from igpg_zoo.finetune.data import Split
from igpg_zoo.finetune.head import adapt, retarget

QUERY_K = 20  # hits of a text query looked through for one whose architecture takes the data
POOL = 8  # retrieved candidates scored on the held-out part


@dataclass
class Start:
    kind: str  # "record" | "query" | "retrieved" | "generated" | "random"
    arch: str  # as stored / asked; head.adapt sets the user's class count
    weights: dict[str, torch.Tensor] | None  # None: random init
    parent_id: int | None = None
    facts: dict = field(default_factory=dict)  # how it was found (query, score, generator provenance, ...)


def fits(arch: str, split: Split) -> bool:
    """Whether ``arch`` (with the data's class count) takes the data's inputs."""
    from igpg_zoo.adapters import get_adapter

    try:
        target = retarget(arch, split.n_classes)
        module = get_adapter(target).build(target).eval()
        with torch.no_grad():
            return int(module(split.x_train[:2]).shape[-1]) >= split.n_classes
    except (RuntimeError, ValueError, ZooError):
        return False


def from_record(zoo, record_id: int, split: Split) -> Start:
    rec = zoo.get(record_id)
    if not fits(rec.arch, split):
        raise DatasetError(f"record #{record_id} ({rec.arch}) does not take the data's inputs (shape "
                           f"{tuple(split.x_train.shape[1:])}); pick a record whose architecture matches them")
    return Start("record", rec.arch, zoo.load_weights(record_id), rec.id,
                 {"record": rec.id, "dataset": rec.dataset, "stored_acc": rec.metric("acc")})


def from_query(zoo, text: str, split: Split) -> Start:
    """The best hit of ``text`` whose architecture takes the data."""
    hits = zoo.query(text, k=QUERY_K)
    for hit in hits:
        if fits(hit.checkpoint.arch, split):
            rec = hit.checkpoint
            return Start("query", rec.arch, zoo.load_weights(rec.id), rec.id,
                         {"query": text, "record": rec.id, "score": hit.score, "dataset": rec.dataset,
                          "stored_acc": rec.metric("acc")})
    raise NothingToReturn(f"none of the {len(hits)} best answers to '{text}' takes inputs of shape "
                          f"{tuple(split.x_train.shape[1:])}; try other words or name a record ID")


def from_answer(zoo, split: Split, arch: str | None = None, seed: int = 0) -> Start:
    """The front door's choice for the data, made as ``query --data`` makes it (on the training split; the
    test split that reports the fine-tuned accuracy is never shown to it), so both name the same start."""
    from igpg_zoo.answer import AnswerSettings

    answer = zoo.answer(data=split.dataset, arch=(arch,) if arch else (), record=False,
                        settings=AnswerSettings(seed=seed))
    decision, chosen = answer.decision, answer.decision.chosen
    record = chosen.record.id if chosen.record is not None else None
    facts = {"choice": decision.choice, "reason": decision.reason, "estimate": chosen.estimate,
             "record": record, "nearest": (chosen.draw or {}).get("nearest")}
    return Start("answer", chosen.arch, answer.weights, record if decision.choice == "retrieved" else None, facts)


def retrieve(zoo, split: Split, body: str | None = None, pool: int = POOL, seed: int = 0) -> Start:
    """The best stored start for the data (see the module doc); ``body``: only records of this
    architecture up to its class count."""
    ranked = candidates(zoo, split, body)[:pool]
    if not ranked:
        where = f" of '{body}'" if body else ""
        raise NothingToReturn(f"the registry holds no record{where} that takes inputs of shape "
                              f"{tuple(split.x_train.shape[1:])}; add one or start from --generated")
    scored = [(heldout_scores(rec.arch, zoo.load_weights(rec.id), split, seed), rec) for rec in ranked]
    score, rec = max(scored, key=lambda sr: (sr[0]["margin"], sr[0]["acc"]))
    return Start("retrieved", rec.arch, zoo.load_weights(rec.id), rec.id,
                 {"record": rec.id, "dataset": rec.dataset, "stored_acc": rec.metric("acc"),
                  "heldout_estimate": score["acc"], "heldout_margin": score["margin"], "scored": len(scored)})


def candidates(zoo, split: Split, body: str | None = None) -> list:
    """Records whose architecture takes the data (``body``: only that one, any class count), best stored
    accuracy per (dataset, arch), most similar data first."""
    from igpg_zoo.data.embedding import embed_dataset

    records = zoo.list()
    archs = {r.arch for r in records}
    if body is not None:
        k = split.n_classes
        archs = {a for a in archs if retarget(a, k) == retarget(body, k)}
    fitting = {a for a in archs if fits(a, split)}
    best: dict[tuple[str, str], object] = {}
    for r in records:
        if r.arch in fitting:
            key = (r.dataset, r.arch)
            if key not in best or (r.metric("acc") or 0) > (best[key].metric("acc") or 0):
                best[key] = r
    target = embed_dataset(split.dataset, text_embedder=zoo.embedder)

    def similarity(rec) -> float:
        vec = zoo.dataset_embedding(rec.id)
        return float(np.dot(vec, target)) if vec is not None else -1.0

    return sorted(best.values(), key=lambda r: (-similarity(r), -(r.metric("acc") or 0), r.id))


def score_on_heldout(arch: str, weights, split: Split, seed: int = 0) -> float:
    """A fitted head's accuracy on the held-out part: the cheap estimate of how good a start is."""
    return heldout_scores(arch, weights, split, seed)["acc"]


@torch.no_grad()
def heldout_scores(arch: str, weights, split: Split, seed: int = 0) -> dict[str, float]:
    """A fitted head on the held-out part: its accuracy, and its mean margin (the true class's output
    minus the best other one's; the ridge head regresses one-hot labels). The margin ranked starts
    closer to their accuracy after fine-tuning than the accuracy did (bench/frontdoor.py)."""
    from igpg_zoo.finetune.head import seeded_module

    adapted = adapt(arch, weights, split.x_train, split.y_train, split.n_classes, "fit", seed)
    module = seeded_module(adapted.arch, seed)
    module.load_state_dict(adapted.weights)
    out = module.eval()(split.x_val)[:, :split.n_classes]  # (N, K)
    true = out.gather(1, split.y_val.view(-1, 1)).squeeze(1)
    other = out.scatter(1, split.y_val.view(-1, 1), float("-inf")).max(1).values
    return {"acc": float((out.argmax(1) == split.y_val).float().mean()), "margin": float((true - other).mean())}


def generate(zoo, arch: str, split: Split, draws: int, seed: int) -> Start:
    """The best of ``draws`` generated models for ``arch`` with the data's class count, each with its
    head fitted and scored on the training part (never the held-out part)."""
    from igpg_zoo.data.embedding import embed_dataset
    from igpg_zoo.igpg.generate import GenerateRequest, Generator

    target = retarget(arch, split.n_classes)
    ds = split.train_part()
    try:
        gen = Generator.load(zoo)
    except NotFound:
        raise NothingToReturn("the registry holds no trained generator; run 'igpg-zoo train' first or start "
                              "from a record") from None
    emb = embed_dataset(ds, text_embedder=zoo.embedder)
    results = gen.generate(GenerateRequest(target, task=ds.info.description, data=ds, data_embedding=emb, n=draws,
                                           seed=seed, head="fit", dataset_name=ds.name))
    best = results[0]
    nb = best.neighbour or {}
    return Start("generated", target, best.weights, None,
                 {"prior_artifact_id": best.provenance["generator"]["prior_artifact_id"], "draws": draws,
                  "train_part_acc": best.val_accuracy, "log_likelihood": best.log_likelihood,
                  "nearest_id": nb.get("id"), "relative_distance": nb.get("relative_distance"),
                  "exact_copy_of": nb.get("exact_copy_of"),
                  "arch_in_training": best.provenance["conditioning"].get("arch_in_training")})


def random_init(arch: str) -> Start:
    return Start("random", arch, None)
