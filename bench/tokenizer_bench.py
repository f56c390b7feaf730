"""Tokenizer round-trip fidelity on a zoo: accuracy after encode -> decode, codebook use, sequence length.

    .venv/bin/python bench/tokenizer_bench.py --registry bench/scratch/demo/registry.db [--only default,gumbel]

Runs (each trains a tokenizer on every checkpoint of the registry, seed 0, torch on 1 thread):
  default   the first base: EMA, chunk 64, 2 tokens, fan-in normaliser (OLD_BASE)
  gumbel    the same with the Gumbel-softmax quantizer
  k*_l*     chunk size x tokens per chunk sweep (fidelity vs sequence length)
  global    global z-score instead of the fan-in normaliser; layer: layer-wise chunking
  (residual-VQ variants with a per-model breakdown: bench/tokenizer_sweep.py)
  shipped   today's TokenizerConfig(), stored in the registry with train_tokenizer and reloaded
and a BatchNorm check: 3 BN CNNs trained on digits, evaluated with their own running statistics,
with the fresh defaults (mean 0, var 1) the decoder gives, and recalibrated on training samples.
Writes bench/results/tokenizer.json (after every run) and bench/results/tokenizer.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from igpg_zoo.adapters import get_adapter  # noqa: E402
from igpg_zoo.data import load_dataset  # noqa: E402
from igpg_zoo.igpg.quantize import CodebookUsage  # noqa: E402
from igpg_zoo.igpg.tokenizer import Tokenizer  # noqa: E402
from igpg_zoo.igpg.tokenizer_train import fit_tokenizer, train_tokenizer  # noqa: E402
from igpg_zoo.igpg.vectorize import complete_state_dict, recalibrate_batchnorm  # noqa: E402
from igpg_zoo.igpg.vqvae import TokenizerConfig  # noqa: E402
from igpg_zoo.zoobuild.trainer import accuracy, fit, init_module  # noqa: E402

OUT = Path(__file__).parent / "results"
DEFAULT = TokenizerConfig()
OLD_BASE = {"norm": "fanin", "chunk_size": 64, "tokens_per_chunk": 2, "quantizer": "ema", "code_dim": 32,
            "mode": "model", "hidden": [512, 512]}  # what the first runs (default .. global_k128_l4) overrode
RUNS = {
    "default": OLD_BASE,
    "gumbel": {"quantizer": "gumbel"},
    "k32_l1": {"chunk_size": 32, "tokens_per_chunk": 1},
    "k64_l4": {"chunk_size": 64, "tokens_per_chunk": 4},
    "k128_l4": {"chunk_size": 128, "tokens_per_chunk": 4},
    "global": {"norm": "global"},
    "layer": {"mode": "layer"},
    "anchor": {"anchor": True},
    "global_k64_l4": {"norm": "global", "chunk_size": 64, "tokens_per_chunk": 4},
    "global_k128_l4": {"norm": "global", "chunk_size": 128, "tokens_per_chunk": 4},
    "shipped": {},  # today's TokenizerConfig(), trained and stored through train_tokenizer
}


class Evaluator:
    """Test accuracy of a state dict on a record's dataset (datasets and originals cached)."""

    def __init__(self):
        self.data: dict[str, object] = {}

    def acc(self, weights: dict, arch: str, dataset: str) -> float:
        if dataset not in self.data:
            self.data[dataset] = load_dataset(dataset)
        ds = self.data[dataset]
        module = get_adapter(arch).build(arch)
        module.load_state_dict(weights, strict=True)
        return accuracy(module, ds.x_test, ds.y_test)


def evaluate_run(tok: Tokenizer, models: list[dict], ev: Evaluator) -> dict:
    usage = CodebookUsage(tok.vocab_size)
    losses, rel, lengths, by_arch = [], [], {}, {}
    t0 = time.perf_counter()
    for m in models:
        tokens = tok.encode(m["weights"], m["arch"])
        usage.update(tokens)
        lengths[m["arch"]] = len(tokens)
        restored = {**m["weights"], **tok.decode_params(tokens, m["arch"])}
        names = [s.name for s in tok.layout(m["arch"]).specs]
        d = torch.cat([(restored[n] - m["weights"][n]).reshape(-1) for n in names])
        ref = torch.cat([m["weights"][n].reshape(-1) for n in names])
        rel.append(float(d.norm() / ref.norm()))
        losses.append(100 * (m["acc"] - ev.acc(restored, m["arch"], m["dataset"])))
        by_arch.setdefault(m["arch"], []).append(losses[-1])
    seconds = time.perf_counter() - t0
    losses_a = np.array(losses)
    return {"mean_loss_pp": float(losses_a.mean()), "worst_loss_pp": float(losses_a.max()),
            "median_loss_pp": float(np.median(losses_a)), "share_within_0.5pp": float((losses_a <= 0.5).mean()),
            "mean_rel_weight_error": float(np.mean(rel)), "tokens_per_model": lengths,
            "max_tokens_per_model": max(lengths.values()),
            "roundtrip_seconds_per_model": seconds / len(models), **{f"usage_{k}": v for k, v in usage.summary().items()},
            "by_arch": {a: {"n": len(v), "mean_loss_pp": float(np.mean(v)), "worst_loss_pp": float(np.max(v))}
                        for a, v in sorted(by_arch.items())}}


def bn_check(seeds=(0, 1, 2), arch="cnn-i1x8x8-c8k3-c16k3-o10-bn") -> dict:
    """Accuracy of BN models with their own buffers vs fresh defaults vs recalibrated on train data."""
    ds = load_dataset("digits")
    rows = []
    for seed in seeds:
        module = init_module(get_adapter(arch).build(arch), seed)
        fit(module, ds.x_train, ds.y_train, epochs=12, seed=seed)
        params = {n: p.detach().clone() for n, p in module.named_parameters()}
        own = accuracy(module, ds.x_test, ds.y_test)
        fresh = get_adapter(arch).build(arch)
        fresh.load_state_dict(complete_state_dict(params, arch), strict=True)
        defaults = accuracy(fresh, ds.x_test, ds.y_test)
        row = {"seed": seed, "own_buffers": own, "fresh_defaults": defaults}
        for n in (64, 256):
            idx = np.random.default_rng(seed).choice(len(ds.y_train), n, replace=False)
            recalibrate_batchnorm(fresh, [torch.as_tensor(ds.x_train[idx])])
            row[f"recalibrated_{n}"] = accuracy(fresh, ds.x_test, ds.y_test)
        rows.append(row)
    keys = [k for k in rows[0] if k != "seed"]
    return {"arch": arch, "dataset": "digits", "models": rows,
            "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys}}


def load_models(zoo, ev: Evaluator) -> list[dict]:
    models = []
    for r in zoo.list():
        w = {k: v.float() if v.is_floating_point() else v for k, v in zoo.load_weights(r.id).items()}
        models.append({"id": r.id, "arch": r.arch, "dataset": r.dataset, "weights": w,
                       "acc": ev.acc(w, r.arch, r.dataset)})
    return models


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--registry", default="bench/scratch/demo/registry.db")
    ap.add_argument("--only", default=",".join(RUNS) + ",bn")
    ap.add_argument("--steps", type=int, default=None, help="override TokenizerConfig.steps")
    ap.add_argument("--out", default="tokenizer.json", help="results file under bench/results/")
    ap.add_argument("--merge", nargs="*", default=None, help="merge these result files into --out and stop")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / args.out
    if args.merge is not None:
        return merge(path, [OUT / m for m in args.merge])
    torch.set_num_threads(1)
    results = json.loads(path.read_text()) if path.is_file() else {}
    results["command"] = "python bench/tokenizer_bench.py " + " ".join(sys.argv[1:])
    results["machine"] = "shared 2-core CPU (other jobs running; timings are indicative), torch 1 thread"
    ev = Evaluator()
    from igpg_zoo.zoo import open_zoo  # the registry's packages load only when a run needs them

    with open_zoo(args.registry) as zoo:
        models = load_models(zoo, ev)
        results["zoo"] = {"registry": args.registry, "n_models": len(models), "snapshot": zoo.snapshot()["hash"],
                          "archs": sorted({m["arch"] for m in models}),
                          "params": {m["arch"]: sum(v.numel() for v in m["weights"].values()) for m in models}}
        runs = results.setdefault("runs", {})
        for name in args.only.split(","):
            if name not in RUNS:
                continue
            cfg = replace(DEFAULT, **({**OLD_BASE, **RUNS[name]} if name != "shipped" else {}))
            items = [(m["weights"], m["arch"]) for m in models]
            t0 = time.perf_counter()
            if name == "shipped":
                artifact = train_tokenizer(zoo, cfg, seed=0, steps=args.steps, progress=False)
                tok, report = Tokenizer.load(zoo, artifact.id), artifact.provenance["report"]
            else:
                tok, report = fit_tokenizer(items, cfg, seed=0, steps=args.steps, progress=False)
            train_s = time.perf_counter() - t0
            runs[name] = {"config": RUNS[name], "train_seconds": round(train_s, 1), "train_report": report,
                          **evaluate_run(tok, models, ev)}
            runs[name]["params_per_token"] = cfg.chunk_size / cfg.tokens_per_chunk
            if name == "shipped":
                runs[name]["artifact_id"] = artifact.id
                runs[name]["config"] = {k: v for k, v in cfg.to_dict().items()
                                        if k in OLD_BASE and OLD_BASE[k] != v}
            print(name, {k: runs[name][k] for k in ("mean_loss_pp", "worst_loss_pp", "max_tokens_per_model",
                                                   "usage_perplexity", "train_seconds")}, flush=True)
            path.write_text(json.dumps(results, indent=2))
    if "bn" in args.only.split(","):
        results["batchnorm"] = bn_check()
        print("bn", results["batchnorm"]["mean"], flush=True)
    path.write_text(json.dumps(results, indent=2))
    write_markdown(results)


def merge(path: Path, parts: list[Path]) -> None:
    """Combine the results of runs done in parallel processes (later files win per run)."""
    results = json.loads(path.read_text()) if path.is_file() else {}
    for part in parts:
        r = json.loads(part.read_text())
        runs = {**results.get("runs", {}), **r.get("runs", {})}
        results.update({k: v for k, v in r.items() if k != "runs"})
        results["runs"] = runs
    results["command"] = ("python bench/tokenizer_bench.py --only RUNS --out PART.json (runs split over parallel "
                          "processes), then --merge PART.json ...")
    path.write_text(json.dumps(results, indent=2))
    write_markdown(results)


def write_markdown(results: dict) -> None:
    lines = ["# Tokenizer round trip", "", f"`{results['command']}` — {results['machine']}.", "",
             f"Zoo: {results['zoo']['n_models']} checkpoints of {len(results['zoo']['archs'])} architectures "
             f"({min(results['zoo']['params'].values())}–{max(results['zoo']['params'].values())} parameters).", "",
             "Each config overrides the base the runs were made with: EMA quantizer, chunk 64, 2 tokens/chunk, "
             "fan-in normaliser, code dim 32, codebook 1024, hidden (512, 512), 1,000 + 15,000 refine steps, "
             "seed 0. The row `default` is that base; `shipped` is today's `TokenizerConfig()`.", "",
             "| run | config | acc loss mean / median / worst (pp) | within 0.5 pp | rel. weight err | tokens/model (max) "
             "| params/token | perplexity | dead codes | train s |", "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.get("runs", {}).items():
        lines.append(f"| {name} | `{json.dumps(r['config'])}` | {r['mean_loss_pp']:.2f} / {r['median_loss_pp']:.2f} / "
                     f"{r['worst_loss_pp']:.2f} | {r['share_within_0.5pp']:.0%} | {r['mean_rel_weight_error']:.3f} | "
                     f"{r['max_tokens_per_model']} | {r['params_per_token']:.0f} | {r['usage_perplexity']:.0f} | "
                     f"{r['usage_dead']} | {r['train_seconds']:.0f} |")
    if "batchnorm" in results:
        bn = results["batchnorm"]
        lines += ["", f"BatchNorm buffers ({bn['arch']} on {bn['dataset']}, {len(bn['models'])} models, mean test acc): "
                  + ", ".join(f"{k} {v:.4f}" for k, v in bn["mean"].items())]
    (OUT / "tokenizer.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
