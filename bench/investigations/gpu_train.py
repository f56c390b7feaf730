"""Both generator stages of the `full` benchmark trained on a GPU machine, evaluated here.

The GPU machine used for these runs had torch but neither the registry's database packages nor the
embedding model, so the run is split in three:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/gpu_train.py pack [REGISTRY [PACK]]  # here: zoo -> PACK
    python3 bench/gpu_train.py train OUT_DIR [--device cuda] [--pack PACK] [--epochs 50,80]  # there: both stages
    HF_HUB_OFFLINE=1 .venv/bin/python bench/gpu_train.py register DIR [REGISTRY]  # here: DIR -> artifacts

``pack`` writes the weights of every training-task member of the `full` benchmark zoo
(bench/scratch/generator-full, its task-disjoint hold-out applied) and each member's condition
vectors, exactly what ``train_tokenizer`` and ``train_prior`` read from the registry. ``train``
runs ``fit_tokenizer`` and ``fit_prior`` with the CPU benchmark's settings (tokenizer 3,000 +
30,000 steps, seed 0; prior 3 x 128, dropout 0.1, batches of 16: 2,600 steps, the default's 50
epochs, and 4,000, ~80; with ``--epochs`` the steps follow the packed zoo's size, as
``igpg-zoo train --epochs`` does) on ``--device``. REGISTRY defaults to the benchmark's; a copy of it
with other members (a variant of the preset) packs the same way, as long as it holds prior #12. ``register``
stores both as artifacts (provenance: the zoo snapshot, the machine, the timings) and prints their
ids for ``bench/generator_bench.py --zoo full --artifacts TOK,PRIOR``.

Several trainings at once on the GPU machine: give each process a share of its CPU cores
(``OMP_NUM_THREADS=4``); three at torch's default thread count starved each other's CPU-side token
encoding (minutes instead of seconds). ``--tokenizer-from DIR`` trains priors on a tokenizer an earlier
``train`` saved in DIR; ``rebuild-tokenizer DIR PACK SECONDS`` writes DIR's tokenizer.json when a run was
cut short after saving the tokenizer's tensors.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # a source checkout on the GPU machine

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

PACK = Path(__file__).parent / "scratch" / "gpupack"
REGISTRY = Path(__file__).parent / "scratch" / "generator-full" / "registry.db"
CPU_PRIOR = 12  # the CPU default prior of BENCHMARKS.md: its shape and training settings are reused
TOKENIZER_STEPS, PRIOR_STEPS = 3000, (2600, 4000)  # the default (50 epochs) and ~80 epochs


def pack(registry: Path = REGISTRY, dest: Path = PACK) -> None:
    from igpg_zoo.igpg.conditioning import Conditioner
    from igpg_zoo.igpg.prior_dataset import condition_of, select_records
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(registry)) as zoo:
        ref = zoo.get_artifact(CPU_PRIOR, kind="prior")
        pcfg, holdout = ref.config["prior"], ref.provenance["holdout_tasks"]
        records = select_records(zoo, holdout)
        conditioner = Conditioner(zoo.embedder, pcfg["struct_keys"], pcfg["data_dim"])
        weights, conds = {}, {}
        for r in records:
            weights.update({f"{r.id}/{k}": v.float().clone() for k, v in zoo.load_weights(r.id).items()})
            conds.update({f"{r.id}/{k}": v.float().clone() for k, v in condition_of(r, conditioner, zoo).items()
                          if v is not None})
        meta = {"records": [{"id": r.id, "arch": r.arch} for r in records], "prior": pcfg, "holdout": holdout,
                "train": ref.config["train"], "embedder": ref.config["embedder"]}
    dest.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(dest / "weights.safetensors"))
    save_file(conds, str(dest / "conds.safetensors"))
    (dest / "meta.json").write_text(json.dumps(meta))
    print(f"packed {len(meta['records'])} records into {dest}")


def _split(flat: dict[str, torch.Tensor]) -> dict[int, dict[str, torch.Tensor]]:
    out: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in flat.items():
        rid, name = key.split("/", 1)
        out.setdefault(int(rid), {})[name] = value
    return out


def _halves(tensors: dict[str, torch.Tensor]) -> list[list[str]]:
    """The keys in two groups of about equal bytes."""
    keys = sorted(tensors, key=lambda k: -tensors[k].numel())
    groups: list[list[str]] = [[], []]
    size = [0, 0]
    for k in keys:
        i = int(size[1] < size[0])
        groups[i].append(k)
        size[i] += tensors[k].numel() * tensors[k].element_size()
    return groups


def _machine(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(torch.device(device))}, torch {torch.__version__}"
    return f"CPU, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def _tokenizer_stage(items, out: Path, device: str, scale: float, reuse: Path | None):
    """Train the tokenizer on ``device`` and save it to ``out`` — or load the one saved in ``reuse``."""
    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    if reuse is not None:
        saved = json.loads((reuse / "tokenizer.json").read_text())
        tensors = {k: v for part in sorted(reuse.glob("tokenizer-*.safetensors")) for k, v in load_file(str(part)).items()}
        return Tokenizer.from_state(tensors, saved["config"]), saved["config"], saved["report"]
    tok, tok_report = fit_tokenizer(items, TokenizerConfig(), seed=0, steps=max(1, round(TOKENIZER_STEPS * scale)),
                                    progress=False, device=device)
    print(f"tokenizer: {tok_report['train_seconds']} s, recon {tok_report['recon_mse']:.5f}", flush=True)
    tensors, config = tok.state()
    for part, keys in enumerate(_halves(tensors)):  # files come back from the GPU machine at <= 16 MiB each
        save_file({k: tensors[k] for k in keys}, str(out / f"tokenizer-{part}.safetensors"))
    (out / "tokenizer.json").write_text(json.dumps({"config": config, "report": tok_report}, default=float))
    return tok, config, tok_report


def train(out: Path, device: str, scale: float = 1.0, src: Path = PACK, epochs: tuple[float, ...] = (),
          reuse: Path | None = None) -> None:
    """``scale`` < 1 shortens both stages (a smoke test of the script on the CPU); ``epochs`` replaces
    the fixed step counts by passes over the packed sequences; ``reuse``: a folder holding a trained
    tokenizer (priors only). report.json is rewritten after each prior, so a run cut short keeps them."""
    from igpg_zoo.igpg.prior import Prior, PriorConfig
    from igpg_zoo.igpg.prior_dataset import TokenSet
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, fit_prior, prior_state, resolve_steps

    meta = json.loads((src / "meta.json").read_text())
    weights, conds = _split(load_file(str(src / "weights.safetensors"))), _split(load_file(str(src / "conds.safetensors")))
    records = meta["records"]
    items = [(weights[r["id"]], r["arch"]) for r in records]
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tok, config, tok_report = _tokenizer_stage(items, out, device, scale, reuse)
    tokens = [tok.encode(w, arch).long().flatten() for w, arch in items]
    data = TokenSet(tokens, [conds[r["id"]] for r in records], [r["id"] for r in records])
    cfg = PriorConfig(**{**meta["prior"], "vocab_size": tok.vocab_size})
    report = {"machine": _machine(device), "device": device, "tokenizer": {"config": config, "report": tok_report},
              "tokenizer_from": str(reuse) if reuse else None, "priors": [],
              "ids": [r["id"] for r in records], "archs": sorted({r["arch"] for r in records}),
              "holdout": meta["holdout"], "embedder": meta["embedder"]}
    by_epochs = [resolve_steps(PriorTrainConfig(**{**meta["train"], "epochs": e}), len(data)).steps for e in epochs]
    for steps in by_epochs or PRIOR_STEPS:
        tcfg = PriorTrainConfig(**{**meta["train"], "steps": max(1, round(steps * scale)), "epochs": None})
        torch.manual_seed(tcfg.seed)
        prior = Prior(cfg)
        fit = fit_prior(prior, data, tcfg, device=device)
        print(f"prior, {tcfg.steps} steps: {fit.seconds:.1f} s, final loss {fit.losses[-1]:.3f}", flush=True)
        save_file(prior_state(prior), str(out / f"prior-{steps}.safetensors"))
        report["priors"].append({"file": f"prior-{steps}.safetensors", "config": cfg.to_dict(), "train": tcfg.__dict__,
                                 "seconds": fit.seconds, "losses": fit.losses, "n_params": prior.n_params()})
        report["total_seconds"] = time.perf_counter() - t0
        (out / "report.json").write_text(json.dumps(report, default=float))


def rebuild_tokenizer_json(folder: Path, src: Path, seconds: float) -> None:
    """tokenizer.json for a folder whose run was cut short before writing it: the config fit_tokenizer
    builds, the normalizer refitted here on the same members (deterministic), the report re-measured
    here on the CPU (``seconds``: the training time the run's log printed)."""
    from dataclasses import replace

    from igpg_zoo.igpg.tokenizer import BUFFER_POLICY, Tokenizer
    from igpg_zoo.igpg.tokenizer_train import build_chunks, evaluate
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    meta = json.loads((src / "meta.json").read_text())
    weights = _split(load_file(str(src / "weights.safetensors")))
    items = [(weights[r["id"]], r["arch"]) for r in meta["records"]]
    base = TokenizerConfig()
    cfg = replace(base, steps=TOKENIZER_STEPS, refine_steps=round(base.refine_steps * TOKENIZER_STEPS / max(base.steps, 1)))
    X, M, normalizer = build_chunks(items, cfg)
    tensors = {k: v for part in sorted(folder.glob("tokenizer-*.safetensors")) for k, v in load_file(str(part)).items()}
    config = {"tokenizer": cfg.to_dict(), "normalizer": normalizer.to_dict(), "buffers": BUFFER_POLICY,
              "vocab_size": cfg.codebook_size}
    tok = Tokenizer.from_state(tensors, config)
    config["vocab_size"] = tok.vocab_size
    report = {"n_models": len(items), "n_chunks": int(X.shape[0]), "steps": cfg.steps, "refine_steps": cfg.refine_steps,
              "train_seconds": seconds, **evaluate(tok.model, X, M), "device": "cuda",
              "note": "report re-measured on the CPU from the saved tokenizer"}
    (folder / "tokenizer.json").write_text(json.dumps({"config": config, "report": report}, default=float))
    print(folder, report["recon_mse"])


def register(src: Path, registry: Path = REGISTRY) -> None:
    from igpg_zoo.igpg.prior import PriorConfig
    from igpg_zoo.igpg.prior_train import artifact_name as prior_name
    from igpg_zoo.igpg.tokenizer_train import artifact_name as tokenizer_name
    from igpg_zoo.igpg.vqvae import TokenizerConfig
    from igpg_zoo.zoo import open_zoo

    report = json.loads((src / "report.json").read_text())
    tok_report = report["tokenizer"]["report"]
    tok_tensors = {k: v for part in sorted(src.glob("tokenizer-*.safetensors")) for k, v in load_file(str(part)).items()}
    with open_zoo(str(registry)) as zoo:
        snapshot = zoo.snapshot(report["ids"])
        tok_config = TokenizerConfig.from_dict(report["tokenizer"]["config"]["tokenizer"])
        tok = zoo.add_artifact("tokenizer", tokenizer_name(tok_config), tok_tensors,
                               report["tokenizer"]["config"],
                               {"snapshot": snapshot, "seed": 0, "report": tok_report, "machine": report["machine"],
                                "archs": report["archs"]})
        for p in report["priors"]:
            prior = zoo.add_artifact(
                "prior", prior_name(PriorConfig(**p["config"])), load_file(str(src / p["file"])),
                {"prior": p["config"], "tokenizer_id": tok.id, "train": p["train"], "embedder": report["embedder"]},
                {"snapshot": snapshot, "holdout_tasks": report["holdout"], "filters": {}, "seed": p["train"]["seed"],
                 "losses": p["losses"], "seconds": p["seconds"], "world_size": 1, "resumed_from": 0,
                 "archs": report["archs"], "n_params": p["n_params"], "machine": report["machine"],
                 "device": report["device"]},
                parent_id=tok.id)
            print(f"tokenizer #{tok.id} ({tok_report['train_seconds']} s), prior #{prior.id} ({p['train']['steps']} "
                  f"steps, {p['seconds']:.0f} s) trained on {report['machine']}: --artifacts {tok.id},{prior.id}")


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "pack":
        pack(*(Path(a) for a in sys.argv[2:4]))
    elif cmd == "train":
        args = sys.argv[2:]
        device = args[args.index("--device") + 1] if "--device" in args else "cuda"
        scale = float(args[args.index("--scale") + 1]) if "--scale" in args else 1.0
        src = Path(args[args.index("--pack") + 1]) if "--pack" in args else PACK
        epochs = tuple(float(e) for e in args[args.index("--epochs") + 1].split(",")) if "--epochs" in args else ()
        reuse = Path(args[args.index("--tokenizer-from") + 1]) if "--tokenizer-from" in args else None
        train(Path(args[0]), device, scale, src, epochs, reuse)
    elif cmd == "rebuild-tokenizer":
        rebuild_tokenizer_json(Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4]))
    elif cmd == "register":
        register(Path(sys.argv[2]), *(Path(a) for a in sys.argv[3:4]))
    else:
        sys.exit(__doc__)
