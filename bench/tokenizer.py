"""IGPG tokenizer: accuracy of every zoo model after encode -> decode, against the original's.

``python -m bench tokenizer`` builds the ``demo`` zoo (354 checkpoints, 16 architectures, 131-5,130
parameters) under bench/scratch/tokenizer/, trains today's ``TokenizerConfig()`` on all of it for
seeds 0, 1 and 2 (one torch thread each), and scores every model's round trip on its test split
(negative loss = the round trip scored higher), with codebook use and sequence length. It also checks
BatchNorm statistics (not generated): 3 BN CNNs on digits with their own buffers, the decoder's fresh
defaults, and recalibrated on training samples. ``--quick``: the ``tiny`` zoo, seed 0, 200 + 300 steps.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

TITLE = "IGPG tokenizer"
COMMAND = "python -m bench tokenizer"
SCRATCH = Path(__file__).resolve().parent / "scratch"
MEAN_TARGET, WORST_TARGET = 0.5, 2.0


class Evaluator:
    """Test accuracy of a state dict on a record's dataset (datasets and originals cached)."""

    def __init__(self):
        self.data: dict[str, object] = {}

    def acc(self, weights: dict, arch: str, dataset: str) -> float:
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.data import load_dataset
        from igpg_zoo.zoobuild.trainer import accuracy

        if dataset not in self.data:
            self.data[dataset] = load_dataset(dataset)
        ds = self.data[dataset]
        module = get_adapter(arch).build(arch)
        module.load_state_dict(weights, strict=True)
        return accuracy(module, ds.x_test, ds.y_test)


def evaluate_run(tok, models: list[dict], ev: Evaluator) -> dict:
    import torch

    from igpg_zoo.igpg.quantize import codebook_usage

    all_tokens = []
    losses, rel, lengths, by_arch = [], [], {}, {}
    t0 = time.perf_counter()
    for m in models:
        tokens = tok.encode(m["weights"], m["arch"])
        all_tokens.append(tokens.reshape(-1))
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
            "models_over_2pp": int((losses_a > 2).sum()), "n_models": len(models),
            "worst_arch": models[int(losses_a.argmax())]["arch"],
            "median_loss_pp": float(np.median(losses_a)), "share_within_0.5pp": float((losses_a <= 0.5).mean()),
            "mean_rel_weight_error": float(np.mean(rel)), "tokens_per_model": lengths,
            "max_tokens_per_model": max(lengths.values()),
            "roundtrip_seconds_per_model": seconds / len(models), **{f"usage_{k}": v for k, v in codebook_usage(torch.cat(all_tokens), tok.vocab_size).items()},
            "by_arch": {a: {"n": len(v), "mean_loss_pp": float(np.mean(v)), "worst_loss_pp": float(np.max(v))}
                        for a, v in sorted(by_arch.items())}}


def bn_check(seeds=(0, 1, 2), arch="cnn-i1x8x8-c8k3-c16k3-o10-bn") -> dict:
    """Accuracy of BN models with their own buffers vs fresh defaults vs recalibrated on train data."""
    import torch

    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.export.batchnorm import reestimate
    from igpg_zoo.igpg.vectorize import complete_state_dict
    from igpg_zoo.zoobuild.trainer import accuracy, fit, init_module

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
            reestimate(fresh, [torch.as_tensor(ds.x_train[idx])])
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


def zoo_for(quick: bool):
    """The benchmark zoo, built once under bench/scratch and reused."""
    from igpg_zoo.zoo import open_zoo
    from igpg_zoo.zoobuild.build import build_zoo

    folder = SCRATCH / ("tokenizer-quick" if quick else "tokenizer")
    folder.mkdir(parents=True, exist_ok=True)
    zoo = open_zoo(str(folder / "registry.db"))
    build_zoo(zoo, "tiny" if quick else "demo", seed=0)  # resumable: a finished zoo is left as it is
    return zoo


def measure(quick: bool) -> dict:
    from dataclasses import replace

    import torch

    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.igpg.tokenizer_train import train_tokenizer
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(1)
    cfg = replace(TokenizerConfig(), steps=200, refine_steps=300) if quick else TokenizerConfig()
    ev = Evaluator()
    with zoo_for(quick) as zoo:
        models = load_models(zoo, ev)
        data = {"zoo": {"n_models": len(models), "archs": len({m["arch"] for m in models}),
                        "params": [min(sum(v.numel() for v in m["weights"].values()) for m in models),
                                   max(sum(v.numel() for v in m["weights"].values()) for m in models)]},
                "config": cfg.to_dict(), "runs": {}}
        for seed in (0,) if quick else (0, 1, 2):
            t0 = time.perf_counter()
            artifact = train_tokenizer(zoo, cfg, seed=seed, progress=False)
            train_s = time.perf_counter() - t0
            run = evaluate_run(Tokenizer.load(zoo, artifact.id), models, ev)
            data["runs"][f"seed {seed}"] = {"train_seconds": round(train_s, 1), **run}
    data["batchnorm"] = bn_check(seeds=(0,) if quick else (0, 1, 2))
    return data


def _per_seed(runs: dict, key: str, fmt: str) -> str:
    return " / ".join(format(r[key], fmt) for r in runs.values())


def summary(data: dict) -> list[dict]:
    runs, bn = data["runs"], data["batchnorm"]["mean"]
    seeds = f"(seed{'s' if len(runs) > 1 else ''} {', '.join(k.split()[-1] for k in runs)})"
    means, worsts = [r["mean_loss_pp"] for r in runs.values()], [r["worst_loss_pp"] for r in runs.values()]
    n = data["zoo"]["n_models"]
    return [
        {"measure": f"round trip: mean accuracy loss over {n} models", "target": f"≤ {MEAN_TARGET} pp",
         "value": f"{_per_seed(runs, 'mean_loss_pp', '.2f')} pp {seeds}", "met": max(means) <= MEAN_TARGET,
         "command": COMMAND},
        {"measure": "round trip: worst model's accuracy loss (models over 2 pp)", "target": f"≤ {WORST_TARGET:g} pp",
         "value": f"{_per_seed(runs, 'worst_loss_pp', '.1f')} pp ({_per_seed(runs, 'models_over_2pp', 'd')})",
         "met": max(worsts) <= WORST_TARGET, "command": COMMAND},
        {"measure": "tokens for the largest model; codebook perplexity", "target": "–",
         "value": f"{max(r['max_tokens_per_model'] for r in runs.values())}; {_per_seed(runs, 'usage_perplexity', '.0f')}",
         "met": None, "command": COMMAND},
        {"measure": "BatchNorm model: test accuracy with fresh statistics / recalibrated on 64 samples", "target": "–",
         "value": f"{bn['fresh_defaults']:.3f} / {bn['recalibrated_64']:.3f} (own {bn['own_buffers']:.3f})",
         "met": None, "command": COMMAND},
    ]


def details(data: dict) -> str:
    z = data["zoo"]
    c = data["config"]
    lines = [f"Zoo: {z['n_models']} checkpoints of {z['archs']} architectures ({z['params'][0]:,}–{z['params'][1]:,} "
             f"parameters). Tokenizer: `TokenizerConfig()` — for models this small codec `auto` is the chunk VQ-VAE, "
             f"residual VQ, {c['tokens_per_chunk']} tokens of "
             f"{c['codebook_size']:,} codes per chunk of {c['chunk_size']} weights, layer-wise chunks, one global "
             f"normaliser, decoder width {c['hidden'][0]:,}, {c['steps']:,} main + {c['refine_steps']:,} refine steps.", "",
             "| seed | acc loss mean / median / worst (pp) | models > 2 pp | rel. weight error | max tokens | perplexity "
             "| dead codes | train s |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in data["runs"].items():
        lines.append(f"| {name.split()[-1]} | {r['mean_loss_pp']:.2f} / {r['median_loss_pp']:.2f} / {r['worst_loss_pp']:.1f} "
                     f"| {r['models_over_2pp']} | {r['mean_rel_weight_error']:.3f} | {r['max_tokens_per_model']} "
                     f"| {r['usage_perplexity']:.0f} | {r['usage_dead']} | {r['train_seconds']:,.0f} |")
    bn = data["batchnorm"]
    worst = sorted({r["worst_arch"] for r in data["runs"].values() if r.get("worst_arch")})
    lines += ["", (f"Worst model's architecture: {', '.join(f'`{a}`' for a in worst)}. " if worst else "")
              + "The misses over 2 pp are low-margin models whose accuracy moves by whole test images. "
              "A recipe with `tokenizer: {codebook_size: 2048}` meets the worst-case "
              "target on 3 of 3 seeds but leaves the default prior underfit, so 1,024 codes stay the default "
              "(docs/history.md).", "",
              f"BatchNorm statistics are not generated ({bn['arch']} on {bn['dataset']}, {len(bn['models'])} model(s), "
              "mean test accuracy): " + ", ".join(f"{k.replace('_', ' ')} {v:.3f}" for k, v in bn["mean"].items())
              + ". Decoded BN models are recalibrated on a sample of the user's data."]
    return "\n".join(lines)


def run(quick: bool) -> dict:
    data = measure(quick)
    return {"summary": summary(data), "details": details(data), "data": data}
