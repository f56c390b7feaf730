"""IGPG generator benchmark (issue 5): seen tasks, swap control, held-out tasks with fine-tuning,
held-out architecture variants, novelty, sampling speed, training and generation time.

Zoo: the digits family of the ``full`` preset (all 20 tasks, its members: 3 fine-tuned from a
shared base + 2 independent per task, last 3 epochs each), restricted to 2 of its architectures, with the preset's digits hold-out tasks held out of tokenizer and prior training.
The remaining `full` architecture (an extra hidden layer, tanh) and a width variant are held-out
architecture variants.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/generator_bench.py [--quick] [--prior-steps N]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/generator_bench.py --zoo full   # the whole `full` preset

Writes bench/results/generator[-full].json and .md; scratch registry under bench/scratch/generator[-quick|-full].
With ``--zoo full`` every family of the preset is in (918 checkpoints, 35 architectures), the hold-out
is the preset's (4 tasks over 3 families), seen pairs are spread over the families and the
architecture variants are widths the preset never trains.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from generator_eval import (  # noqa: E402
    eval_arch_variants, eval_heldout, eval_seen, eval_swap, eval_temperature, tokenizer_fidelity)
from generator_speed import eval_speed  # noqa: E402

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
    from generator_eval import _arch

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
        full = {**TokenizerConfig().to_dict(), **TokenizerConfig.complete(cfg)}  # what an older config meant
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


def prior(zoo, args, tokenizer_id: int, log) -> dict:
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior

    key = {"steps": args.prior_steps, "layers": args.layers, "width": args.width, "seed": args.seed,
           "tokenizer": tokenizer_id}
    if args.dropout:
        key["dropout"] = args.dropout
    same = {k: v for k, v in key.items() if k != "tokenizer"}
    existing = [a for a in zoo.list_artifacts("prior") if a.config.get("tokenizer_id") == tokenizer_id
                and {k: v for k, v in (a.provenance.get("bench") or {}).items() if k != "tokenizer"} == same]
    if existing and not args.retrain:
        prov = existing[-1].provenance
        return {"id": existing[-1].id, "reused": True, "seconds": round(prov["seconds"], 1),
                "final_loss": prov["losses"][-1], "n_params": prov["n_params"], "threads": 1,
                "steps": args.prior_steps, "block_size": existing[-1].config["prior"]["block_size"]}
    torch.set_num_threads(1)
    last = [time.perf_counter()]

    def progress(step, loss):
        if step % 100 == 0:
            log(f"prior step {step} loss {loss:.3f} ({time.perf_counter() - last[0]:.0f} s / 100 steps)")
            last[0] = time.perf_counter()

    tcfg = PriorTrainConfig(steps=args.prior_steps, batch_size=16, seed=args.seed, lr=1e-3, warmup=100)
    ckpt = Path(args.scratch) / f"prior-{'-'.join(f'{k}{v}' for k, v in key.items())}.pt"
    art = train_prior(zoo, {"n_layer": args.layers, "n_embd": args.width, "n_head": 4, "dropout": args.dropout},
                      tcfg, holdout=list(args.holdout), progress=progress, ckpt=ckpt, resume=True,
                      tokenizer_id=tokenizer_id)
    prov = {**art.provenance, "bench": key}
    art = zoo.add_artifact("prior", art.name, zoo.load_artifact(art), art.config, prov, parent_id=art.parent_id)
    return {"id": art.id, "reused": False, "seconds": round(prov["seconds"], 1), "final_loss": prov["losses"][-1],
            "n_params": prov["n_params"], "threads": 1, "steps": args.prior_steps,
            "block_size": art.config["prior"]["block_size"]}


def trained_elsewhere(zoo, ids: str) -> tuple[dict, dict]:
    """--artifacts TOK,PRIOR: a tokenizer and prior trained elsewhere (bench/gpu_train.py), as the bench reports them."""
    tok_id, prior_id = (int(x) for x in ids.split(","))
    tok, pri = zoo.get_artifact(tok_id, kind="tokenizer"), zoo.get_artifact(prior_id, kind="prior")
    if pri.config.get("tokenizer_id") != tok_id:
        sys.exit(f"prior #{prior_id} was trained on tokenizer #{pri.config.get('tokenizer_id')}, not #{tok_id}")
    prov = pri.provenance
    machine = prov.get("machine") or (f"{prov['world_size']} DDP processes on {prov.get('device', 'cpu')}"
                                      if prov.get("world_size", 1) > 1 else None)  # what the provenance records
    return ({"id": tok_id, "reused": True, "seconds": tok.provenance["report"]["train_seconds"],
             "machine": tok.provenance.get("machine")},
            {"id": prior_id, "reused": True, "seconds": round(prov["seconds"], 1), "final_loss": prov["losses"][-1],
             "n_params": prov["n_params"], "steps": pri.config["train"]["steps"],
             "block_size": pri.config["prior"]["block_size"], "machine": machine,
             "quality_asked": "top" if pri.config["prior"].get("quality_levels") else None})  # generate's default


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--zoo", choices=("digits", "full"), default="digits",
                    help="digits: the digits family of `full`, 2 architectures; full: the whole `full` preset")
    ap.add_argument("--prior-steps", type=int, default=None)
    ap.add_argument("--tokenizer-steps", type=int, default=None)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--tag", default="", help="results file suffix, for variants of the prior")
    ap.add_argument("--stem", default="", help="scratch registry and results name (default: from --zoo)")
    ap.add_argument("--phases", default="seen,swap,heldout,variants,speed,temperature")
    ap.add_argument("--temperature", type=float, default=1.0, help="sampling temperature of every phase but the sweep")
    ap.add_argument("--top-p", type=float, default=0.95, help="nucleus mass (1: off)")
    ap.add_argument("--min-p", type=float, default=0.0, help="min-p floor relative to the top token (0: off)")
    ap.add_argument("--min-distance", type=float, default=0.0, help="novel picks: the distance floor (share of the norm)")
    ap.add_argument("--tokenizer", default="{}", help="TokenizerConfig overrides as JSON, e.g. '{\"align\": true}'")
    ap.add_argument("--artifacts", default="", help="TOK,PRIOR: evaluate these (trained elsewhere: bench/gpu_train.py)")
    args = ap.parse_args()
    import generator_eval
    from igpg_zoo.igpg.sampling import SamplingSettings

    generator_eval.SETTINGS = SamplingSettings(temperature=args.temperature,
                                               top_p=args.top_p if args.top_p < 1 else None,
                                               min_p=args.min_p or None)
    generator_eval.MIN_DISTANCE = args.min_distance
    args.prior_steps = args.prior_steps or (300 if args.quick else 800)
    tok_steps = args.tokenizer_steps or (400 if args.quick else 1000)
    setup = zoo_setup(args.zoo, args.quick)
    setup["stem"] = args.stem or setup["stem"]
    args.holdout = setup["holdout"]
    args.scratch = str(ROOT / "scratch" / setup["stem"])
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    out_json = ROOT / "results" / (setup["stem"] + (f"-{args.tag}" if args.tag else "") + ".json")
    out_json.parent.mkdir(exist_ok=True)
    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    results["machine"] = "shared 2-core CPU VM, loaded by other jobs (timings are indicative)"
    command = " ".join(["bench/generator_bench.py"] + sys.argv[1:])
    if "--phases" in sys.argv and results.get("command"):  # a partial rerun: keep the full run's command
        command = f"{results['command']}; then {command}"
    results["command"] = command
    results["sampling"] = {**generator_eval.SETTINGS.to_dict(), "novel_min_distance": args.min_distance}

    def log(msg):
        print(time.strftime("%H:%M:%S"), msg, flush=True)

    def save():
        out_json.write_text(json.dumps(results, indent=2, default=float))
        from generator_report import write_markdown

        write_markdown(results, out_json.with_suffix(".md"))

    from igpg_zoo.zoo import open_zoo

    torch.set_num_threads(1)
    zoo = open_zoo(str(Path(args.scratch) / "registry.db"))
    results["zoo"] = build(zoo, args.quick, setup, log)
    log(f"zoo: {results['zoo']['records']} records")
    if args.artifacts:
        results["tokenizer"], results["prior"] = trained_elsewhere(zoo, args.artifacts)
    else:
        results["tokenizer"] = tokenizer(zoo, tok_steps, json.loads(args.tokenizer), args.holdout, log)
    results["tokenizer"].update(tokenizer_fidelity(zoo, results["tokenizer"]["id"], args.holdout))
    save()
    if not args.artifacts:
        results["prior"] = prior(zoo, args, results["tokenizer"]["id"], log)
    save()
    from igpg_zoo.igpg.generate import Generator

    gen = Generator.load(zoo, results["prior"]["id"])
    archs = archs_for(zoo, setup, results["zoo"]["archs"])
    phases = args.phases.split(",")
    H = args.holdout
    steps = {"seen": lambda: eval_seen(gen, zoo, archs, H, args.quick, log),
             "swap": lambda: eval_swap(gen, zoo, archs, H, args.quick, log),
             "heldout": lambda: eval_heldout(gen, zoo, archs, H, args.quick, log),
             "variants": lambda: eval_arch_variants(gen, zoo, setup["variants"], H, log),
             "speed": lambda: eval_speed(gen, sorted({r.arch for r in zoo.list()}), generator_eval.SETTINGS, log),
             "temperature": lambda: eval_temperature(gen, zoo, archs, H, args.quick, log)}
    for phase in phases:
        t0 = time.perf_counter()
        results[phase] = steps[phase]()
        results[phase]["seconds"] = round(time.perf_counter() - t0, 1)
        save()
        log(f"phase {phase} done")
    zoo.close()


if __name__ == "__main__":
    main()
