"""Tokenizer sweep with a per-model breakdown: which architectures and tensors lose accuracy, and how
many distinct chunks share one token tuple (a collision the decoder cannot undo).

    .venv/bin/python bench/tokenizer_sweep.py run NAME '{"quantizer": "rvq", ...}' [SEED]  # one config
    .venv/bin/python bench/tokenizer_sweep.py evaluate NAME LABEL '{"encode_search": 2}'  # encode-time options
    .venv/bin/python bench/tokenizer_sweep.py noise NAME    # same-norm Gaussian noise: the worst case's floor
    .venv/bin/python bench/tokenizer_sweep.py table                                  # results -> md

``run`` trains a tokenizer (TokenizerConfig() with the JSON overrides, seed 0 unless given, torch on 1 thread) on
every checkpoint of the demo registry, round-trips every model (parameters replaced, its own buffers
kept), evaluates it on its dataset's test split, and writes per-model rows under
bench/scratch/tokdiag/ and one summary row into bench/results/tokenizer-sweep.json. Two runs can go
in parallel (one core each). ``table`` writes bench/results/tokenizer-sweep.md.
"""

from __future__ import annotations

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

sys.path.insert(0, str(Path(__file__).parent))
from tokenizer_bench import Evaluator, load_models  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "tokenizer-sweep.json"
SCRATCH = Path(__file__).parent / "scratch" / "tokdiag"
REGISTRY = "bench/scratch/demo/registry.db"


def collisions(tok, models: list[dict]) -> dict:
    """Distinct chunks vs distinct token tuples over the zoo, and codebook usage (perplexity, dead codes)."""
    from igpg_zoo.igpg.quantize import CodebookUsage

    owners: dict[tuple, set] = {}
    chunks = set()
    usage = CodebookUsage(tok.vocab_size)
    for m in models:
        x, _ = tok.chunks(m["weights"], m["arch"])
        t = tok.encode(m["weights"], m["arch"]).view(-1, tok.config.tokens_per_chunk)
        usage.update(t)
        for row, key in zip(x, t.tolist()):
            b = row.numpy().tobytes()
            chunks.add(b)
            owners.setdefault(tuple(key), set()).add(b)
    shared = [v for v in owners.values() if len(v) > 1]
    u = usage.summary()
    return {"distinct_chunks": len(chunks), "distinct_token_tuples": len(owners),
            "chunks_sharing_a_tuple": sum(len(v) for v in shared), "perplexity": u["perplexity"], "dead_codes": u["dead"]}


def per_model(tok, models: list[dict], ev: Evaluator) -> list[dict]:
    rows = []
    for m in models:
        r = tok.round_trip(m["weights"], m["arch"])
        names = [s.name for s in tok.layout(m["arch"]).specs]
        err = {n: float((r[n] - m["weights"][n]).norm() / (m["weights"][n].norm() + 1e-12)) for n in names}
        d = torch.cat([(r[n] - m["weights"][n]).reshape(-1) for n in names])
        ref = torch.cat([m["weights"][n].reshape(-1) for n in names])
        rows.append({"id": m["id"], "arch": m["arch"], "dataset": m["dataset"], "acc": m["acc"],
                     "loss_pp": 100 * (m["acc"] - ev.acc(r, m["arch"], m["dataset"])),
                     "rel_err": float(d.norm() / ref.norm()), "tensor_rel_err": err})
    return rows


def save_tokenizer(tok, stem: Path) -> None:
    """The trained tokenizer beside its rows (bench/scratch, not git), so encode-time options can be
    measured later without retraining."""
    from safetensors.torch import save_file

    tensors, config = tok.state()
    save_file(tensors, str(stem) + ".safetensors")
    Path(str(stem) + ".json").write_text(json.dumps(config))


def run(name: str, overrides: dict, seed: int = 0) -> None:
    from igpg_zoo.zoo import open_zoo

    torch.set_num_threads(1)
    ev = Evaluator()
    with open_zoo(REGISTRY) as zoo:
        models = load_models(zoo, ev)
    tok, summary, rows = train_and_measure(models, ev, overrides, seed)
    SCRATCH.mkdir(parents=True, exist_ok=True)
    save_tokenizer(tok, SCRATCH / name)
    record(name, summary, rows)


def record(name: str, summary: dict, rows: list[dict]) -> None:
    """A run's per-model rows under bench/scratch/tokdiag and its summary row in the results file."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    (SCRATCH / f"{name}_rows.json").write_text(json.dumps(rows))
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"registry": REGISTRY, "runs": {}}
    results["runs"][name] = summary
    RESULTS.write_text(json.dumps(results, indent=2))
    print(name, {k: v for k, v in summary.items() if k != "config"}, flush=True)


def train_and_measure(models: list[dict], ev: Evaluator, overrides: dict, seed: int, device: str | None = None):
    """Train TokenizerConfig() + ``overrides`` on the models; (tokenizer, summary, per-model rows)."""
    from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    cfg = replace(TokenizerConfig(), **overrides)
    tok, report = fit_tokenizer([(m["weights"], m["arch"]) for m in models], cfg, seed=seed, progress=False,
                                device=device)
    rows = per_model(tok, models, ev)
    loss = np.array([r["loss_pp"] for r in rows])
    by_arch = {}
    for r in rows:
        by_arch.setdefault(r["arch"], []).append(r["loss_pp"])
    summary = {"config": cfg.to_dict(), "overrides": overrides, "seed": seed, "recon_mse": report["recon_mse"],
               "train_seconds": report["train_seconds"], "mean_loss_pp": float(loss.mean()),
               "median_loss_pp": float(np.median(loss)), "worst_loss_pp": float(loss.max()),
               "models_over_2pp": int((loss > 2).sum()), "n_models": len(rows),
               "mean_rel_err": float(np.mean([r["rel_err"] for r in rows])),
               "max_tokens_per_model": max(tok.sequence_length(a) for a in by_arch),
               "worst_arch": max(by_arch, key=lambda a: np.mean(by_arch[a])), **collisions(tok, models)}
    return tok, summary, rows


def noise_floor(name: str, seeds: int = 3) -> None:
    """Every model with isotropic Gaussian noise of the same norm as its round-trip error (run NAME's
    rows): how much of the worst-case loss any error of that size would cost. Added to NAME's row."""
    from igpg_zoo.igpg.vectorize import Layout, flatten, unflatten
    from igpg_zoo.zoo import open_zoo

    torch.set_num_threads(1)
    rel = {r["id"]: r["rel_err"] for r in json.loads((SCRATCH / f"{name}_rows.json").read_text())}
    ev = Evaluator()
    with open_zoo(REGISTRY) as zoo:
        models = load_models(zoo, ev)
    loss = np.zeros((len(models), seeds))
    for i, m in enumerate(models):
        layout = Layout.of(m["arch"])
        v = flatten(m["weights"], layout)
        for s in range(seeds):
            g = torch.randn(v.shape, generator=torch.Generator().manual_seed(s))
            w = {**m["weights"], **unflatten(v + g / g.norm() * rel[m["id"]] * v.norm(), layout)}
            loss[i, s] = 100 * (m["acc"] - ev.acc(w, m["arch"], m["dataset"]))
    results = json.loads(RESULTS.read_text())
    results["runs"][name]["noise_floor"] = {
        "seeds": seeds, "mean_loss_pp": float(loss.mean()), "worst_loss_pp": [float(x) for x in loss.max(0)],
        "models_over_2pp": [int(x) for x in (loss > 2).sum(0)]}
    RESULTS.write_text(json.dumps(results, indent=2))
    print(name, results["runs"][name]["noise_floor"], flush=True)


@torch.no_grad()
def zoo_recon_mse(tok, models: list[dict]) -> float:
    """Masked squared error of encode -> decode in the normalised chunk space, over every real value of the zoo."""
    total, count = 0.0, 0.0
    for m in models:
        x, mask = tok.chunks(m["weights"], m["arch"])
        t = tok.encode(m["weights"], m["arch"]).view(-1, tok.config.tokens_per_chunk)
        mk = mask.to(x.dtype)
        total += float(((tok.model.decode_indices(t) - x) * mk).pow(2).sum())
        count += float(mk.sum())
    return total / count


def evaluate(name: str, label: str, overrides: dict) -> None:
    """A saved tokenizer of ``run NAME`` with encode-time options changed (no retraining): row NAME+LABEL."""
    from safetensors.torch import load_file

    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.zoo import open_zoo

    torch.set_num_threads(1)
    ev = Evaluator()
    with open_zoo(REGISTRY) as zoo:
        models = load_models(zoo, ev)
    config = json.loads((SCRATCH / f"{name}.json").read_text())
    config["tokenizer"].update(overrides)
    tok = Tokenizer.from_state(load_file(str(SCRATCH / f"{name}.safetensors")), config)
    t0 = time.perf_counter()
    rows = per_model(tok, models, ev)
    seconds = time.perf_counter() - t0
    results = json.loads(RESULTS.read_text())
    base = results["runs"][name]
    loss = np.array([r["loss_pp"] for r in rows])
    (SCRATCH / f"{name}+{label}_rows.json").write_text(json.dumps(rows))
    base = {k: v for k, v in base.items() if k != "noise_floor"}  # measured for NAME's own rows only
    summary = {**base, "overrides": {**base["overrides"], **overrides}, "mean_loss_pp": float(loss.mean()),
               "median_loss_pp": float(np.median(loss)), "worst_loss_pp": float(loss.max()),
               "models_over_2pp": int((loss > 2).sum()), "mean_rel_err": float(np.mean([r["rel_err"] for r in rows])),
               "round_trip_seconds": seconds, "zoo_recon_mse": zoo_recon_mse(tok, models), **collisions(tok, models)}
    results["runs"][f"{name}+{label}"] = summary
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"{name}+{label}", {k: v for k, v in summary.items() if k != "config"}, flush=True)


def _floor(r: dict) -> str:
    f = r.get("noise_floor")
    if not f:
        return "-"
    return ", ".join(f"{w:.1f} / {n}" for w, n in zip(f["worst_loss_pp"], f["models_over_2pp"]))


def _usage(r: dict) -> str:
    return f"{r['perplexity']:.0f} / {r['dead_codes']}" if "perplexity" in r else "-"


def table() -> None:
    results = json.loads(RESULTS.read_text())
    lines = ["# Tokenizer sweep (demo zoo, per-model breakdown)", "",
             "`python bench/tokenizer_sweep.py run NAME JSON` then `table`; each run: the TokenizerConfig() of its day "
             "with the overrides shown (the full config of every run is in the JSON; 1,000 main steps unless "
             "overridden), seed 0 unless shown, 1 torch thread on a shared 2-core machine (two runs at a time) unless a "
             "GPU is named (bench/gpu_tokenizer_sweep.py: four runs at once on it, train s is then theirs). "
             "Options since removed: `rvq_stacked`, `scale_weighting` (both measured worse), `sensitivity` (Fisher-weighted "
             "refine loss, no better; commit 0b3cc96). Loss = original minus round-trip test "
             "accuracy (pp). A collision is a token tuple shared by several distinct chunks.", "",
             "| run | overrides | loss mean / median / worst (pp) | models > 2 pp | rel. weight err | recon MSE "
             "| distinct chunks / token tuples | perplexity / dead codes | tokens/model (max) | train s "
             "| same-norm noise: worst (pp) / models > 2 pp, per seed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results["runs"].items():
        seed = f" (seed {r['seed']})" if r.get("seed") else ""
        if r.get("machine"):  # trained elsewhere (bench/gpu_tokenizer_sweep.py)
            seed += f", on {r['machine'].split(',')[0]}"
        lines.append(f"| {name} | `{json.dumps(r['overrides'])}`{seed} | {r['mean_loss_pp']:.2f} / {r['median_loss_pp']:.2f} / "
                     f"{r['worst_loss_pp']:.1f} | {r['models_over_2pp']}/{r['n_models']} | {r['mean_rel_err']:.3f} | "
                     f"{r.get('zoo_recon_mse', r['recon_mse']):.4f} | {r['distinct_chunks']} / {r['distinct_token_tuples']} | "
                     f"{_usage(r)} | "
                     f"{r['max_tokens_per_model']} | {r['train_seconds']:.0f} | {_floor(r)} |")
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    if sys.argv[1] == "run":
        run(sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0)
    elif sys.argv[1] == "evaluate":
        evaluate(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    elif sys.argv[1] == "noise":
        noise_floor(sys.argv[2])
    table()
