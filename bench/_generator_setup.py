"""The generator benchmark's set-up (bench/generator.py): its zoo, the tokenizer, and a prior
trained with a named recipe (igpg_zoo.igpg.recipe) by ``train_prior``, on the bench's tokenizer.

Quick zoo: the digits family of the ``full`` preset, 8 of its tasks and its hold-out, 2
architectures, fewer members. Full zoo: the whole ``full`` preset (918 checkpoints, 35
architectures), its task-disjoint hold-out (4 tasks over 3 families), seen pairs spread over the
families, and architecture variants that are widths the preset never trains.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

QUICK_EPOCHS = 20

ARCHS = ("cnn-i1x8x8-c8k3-c16k3-o{k}", "mlp-i64-h32-o{k}", "cnn-i1x8x8-c16k3-c32k3-o{k}-gelu")
VARIANTS = ("cnn-i1x8x8-c8k3-c16k3-h32-o{k}-tanh", "mlp-i64-h48-o{k}")  # never in training
HOLDOUT = ("digits[classes=4,6,9]", "digits[classes=2,5,8][rot=90]")
FULL_VARIANTS = (("mlp-i64-h48-o{k}", "digits"), ("mlp-i40-h32-o{k}", "mnist1d"),  # widths never in `full`
                 ("mlp-i196-h48-o{k}", "fashion_mnist"))


def zoo_setup(which: str, quick: bool) -> dict:
    """What differs between the digits-family bench and the whole `full` zoo: hold-out, variants, folders."""
    if which == "full":
        from igpg_zoo.zoobuild.presets import FULL

        return {"preset": "full", "holdout": tuple(FULL.holdout), "variants": FULL_VARIANTS, "stem": "generator-full"}
    return {"preset": None, "holdout": HOLDOUT, "variants": tuple((v, "digits") for v in VARIANTS),
            "stem": "generator-quick" if quick else "generator"}


def archs_for(zoo, setup: dict, templates):
    """task -> the architectures evaluated on it: the bench templates (digits), or up to two of the
    architectures the zoo holds for the task (full)."""
    from bench._generator_eval import _arch

    if setup["preset"] is None:
        return lambda task: [_arch(t, task) for t in templates]
    by_task: dict[str, set] = {}
    for r in zoo.list():
        if r.kind != "generated":
            by_task.setdefault(r.dataset, set()).add(r.arch)
    return lambda task: sorted(by_task.get(task, ()))[:2]


def make_preset(quick: bool):
    from igpg_zoo.zoobuild import presets

    full_digits = next(f for f in presets.FULL.families if f.base_task == "digits")
    archs = ARCHS[:2]  # the third (largest) would add ~10 min of zoo build on the shared machine
    tasks = full_digits.tasks if not quick else full_digits.tasks[:8] + HOLDOUT
    family = presets.Family(full_digits.base_task, archs, tuple(dict.fromkeys(tasks)),
                            finetuned=full_digits.finetuned[: 2 if quick else 3],
                            independent=full_digits.independent[: 1 if quick else 2])
    name = "gbench-quick" if quick else "gbench-full-digits"
    presets.PRESETS[name] = presets.Preset(name, (family,), holdout=HOLDOUT,
                                           about="digits family of the full preset (generator benchmark)")
    return name, family


def build(zoo, quick: bool, setup: dict, log) -> dict:
    from igpg_zoo.zoobuild.build import build_zoo

    if setup["preset"] is None:
        name, family = make_preset(quick)
        archs, tasks = list(family.archs), list(family.tasks)
    else:
        name = setup["preset"]
    t0 = time.perf_counter()
    report = build_zoo(zoo, name, seed=0, on_run=lambda run, status: log(f"zoo {status} {run.task} {run.arch}"))
    if setup["preset"] is not None:
        archs, tasks = sorted({r.arch for r in zoo.list()}), sorted({r.dataset for r in zoo.list()})
    return {"preset": name, "records": len(zoo.list()), "archs": archs, "tasks": tasks,
            "holdout": list(setup["holdout"]), "build_seconds": round(time.perf_counter() - t0, 1),
            "trained_runs": report.trained}


def tokenizer(zoo, steps: int, overrides: dict, holdout, log) -> dict:
    from igpg_zoo.igpg.prior_dataset import select_records
    from igpg_zoo.igpg.tokenizer_train import train_tokenizer
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    def shape(cfg: dict) -> dict:  # the config without the step counts a --tokenizer-steps override scales
        full = {**TokenizerConfig().to_dict(), **cfg}
        return {k: full[k] for k in TokenizerConfig().to_dict() if k not in ("steps", "refine_steps")}

    cfg = replace(TokenizerConfig(), **overrides)
    existing = [a for a in zoo.list_artifacts("tokenizer") if a.provenance.get("bench_steps") == steps
                and shape(a.config["tokenizer"]) == shape(cfg.to_dict())]
    if existing:
        return {"id": existing[-1].id, "reused": True, "overrides": overrides}
    ids = [r.id for r in select_records(zoo, list(holdout))]
    t0 = time.perf_counter()
    art = train_tokenizer(zoo, cfg, ids, seed=0, steps=steps, progress=False)
    log(f"tokenizer #{art.id} in {time.perf_counter() - t0:.0f} s")
    # remember the bench setting so a rerun reuses it (a second artifact with the extra note)
    tensors = zoo.load_artifact(art)
    art = zoo.add_artifact("tokenizer", art.name, tensors, art.config, {**art.provenance, "bench_steps": steps})
    return {"id": art.id, "seconds": round(time.perf_counter() - t0, 1), "reused": False, "overrides": overrides}


def train_recipe(registry: Path, tokenizer_id: int, holdout, recipe: str, quick: bool, log) -> dict:
    """Train a prior with the named ``recipe`` through ``train_prior`` (what `igpg-zoo train --recipe NAME`
    runs; quick: fewer epochs) on tokenizer ``tokenizer_id``; reuses the prior of an earlier run with the
    same recipe and tokenizer."""
    from igpg_zoo.igpg.prior_train import train_prior
    from igpg_zoo.igpg.recipe import get_recipe
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(registry)) as zoo:
        for art in zoo.list_artifacts("prior"):
            bench = art.provenance.get("bench") or {}
            if bench.get("recipe") == recipe and bench.get("quick") == quick and art.config.get("tokenizer_id") == tokenizer_id:
                return {"id": art.id, "reused": True, "recipe": recipe, **_prior_facts(art)}
        resolved = get_recipe(recipe).with_overrides(epochs=QUICK_EPOCHS if quick else None)
        log(f"train: recipe {recipe}, epochs {resolved.train.epochs}, tokenizer #{tokenizer_id}")
        art = train_prior(zoo, resolved, holdout=list(holdout), tokenizer_id=tokenizer_id,
                          ckpt=registry.parent / f"prior-{recipe}.pt")
        # mark it, so that a rerun of the benchmark reuses it
        art = zoo.add_artifact("prior", art.name, zoo.load_artifact(art), art.config,
                               {**art.provenance, "bench": {"recipe": recipe, "quick": quick}}, parent_id=art.parent_id)
        return {"id": art.id, "reused": False, "recipe": recipe, "epochs": resolved.train.epochs, **_prior_facts(art)}


def _prior_facts(art) -> dict:
    prov = art.provenance
    return {"seconds": round(prov["seconds"], 1), "final_loss": prov["losses"][-1] if prov.get("losses") else None,
            "n_params": prov.get("n_params"), "steps": art.config.get("train", {}).get("steps"),
            "block_size": art.config.get("prior", {}).get("block_size"), "threads": 1}
