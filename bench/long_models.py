"""Long models through windows: costs of the generator on timm-scale networks (10^5 parameters and more).

    python -m bench long_models [--quick]

1. A scratch registry (``bench/scratch/long_models/``) holding MEMBERS of timm ``test_resnet`` (373,658
   parameters at 3x32x32, 10 classes) and of the ``timm`` preset's BatchNorm CNN, each trained briefly (one
   epoch on 256 samples of a colour digits task): the costs below depend on a model's length, not on how
   well it is trained.
2. Tokens and windows per model at the default context, for every architecture of the ``timm`` preset.
3. The tokenizer stage (``igpg-zoo train --stage tokenizer``, the default config at TOK_STEPS main-phase
   steps, the refine phase scaled alike) and the prior stage at the default context and at 512 tokens
   (PRIOR_STEPS steps each), each in a child process: time per step, peak resident memory (the kernel's
   accounting of the child), and the estimate ``igpg/memory.py`` makes before allocating.
4. The old default context (the longest model): refused in one line before allocating.
5. One ``test_resnet`` sampled with the prior of 3 (default context) in a child: the KV cache, no cache
   (each window recomputed every step), and the alternative of sampling the model's windows as one batch,
   each from its prefix alone, which drops Algorithm 1's context; each result's mean log-likelihood per
   token under Algorithm 1 (every window given the tail of the previous one) beside its time.

Torch runs on one thread (OMP_NUM_THREADS=1); the machine is shared, so timings are indicative.
``--quick``: two members, a few steps, no uncached sampling: plumbing only.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from bench._process import QUIET_ENV, run_process

TITLE = "Long models: windows and costs"
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESNET = "timm/test_resnet?num_classes=10&img_size=32"
CNN = "cnn-i3x32x32-c16k3-c32k3-c64k3-h512-h128-o10-bn"
TASK = "digits[colour=1][size=32]"
MEMBERS = {RESNET: 4, CNN: 2}
TOK_STEPS, PRIOR_STEPS = 40, 20  # of the default 3,000 tokenizer steps and 50 epochs of prior: costs per step
CONTEXTS = (256, 512)  # the default context and the next power of two


def _members(registry: Path, members: dict) -> list[dict]:
    """Build (or reuse) the scratch registry: ``members[arch]`` briefly trained members per architecture."""
    import torch

    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.records import CheckpointMeta
    from igpg_zoo.zoo import open_zoo
    from igpg_zoo.zoobuild.trainer import fit, init_module

    torch.set_num_threads(1)
    ds = load_dataset(TASK)
    with open_zoo(str(registry)) as zoo:
        have = {a: sum(r.arch == a for r in zoo.list()) for a in members}
        for arch, n in members.items():
            for seed in range(have[arch], n):
                m = fit(init_module(get_adapter(arch).build(arch), seed), ds.x_train[:256], ds.y_train[:256],
                        epochs=1, seed=seed)
                zoo.add_weights({k: v.detach().clone() for k, v in m.state_dict().items()},
                                CheckpointMeta(arch=arch, task=TASK, dataset=TASK, kind="trained"))
        return [{"arch": r.arch, "n_params": r.n_params} for r in zoo.list()]


def _lengths(archs: list[str]) -> list[dict]:
    """Tokens per model (the default tokenizer config) and windows at the default context."""
    from igpg_zoo.igpg.prior import PriorConfig
    from igpg_zoo.igpg.sampling import n_windows
    from igpg_zoo.igpg.vectorize import Layout, n_chunks
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    layouts = {arch: Layout.of(arch) for arch in archs}
    tcfg, cfg = TokenizerConfig().resolved(max(lay.numel for lay in layouts.values())), PriorConfig()
    per_chunk = tcfg.tokens_per_chunk * (1 + tcfg.chunk_size // tcfg.sub_dim if tcfg.codec == "gainshape" else 1)
    rows = []
    for arch, layout in layouts.items():
        tokens = n_chunks(layout, tcfg.chunk_size, tcfg.mode) * per_chunk
        rows.append({"arch": arch, "n_params": layout.numel, "tokens": tokens, "windows": n_windows(cfg, tokens)})
    return rows


#: Linux keeps a process's peak RSS across exec, so a child started from this (large) process would report at
#: least this process's size: each measured command runs under a small launcher that reports its own child's peak.
LAUNCH = ("import json, resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
          "print(json.dumps({'peak_kib': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, 'rc': p.returncode}))")


def _measured(argv: list[str]):
    """Run ``argv`` under LAUNCH: (wall seconds, peak RSS MiB of ``argv`` alone, exit code, stdout, stderr)."""
    run = run_process([sys.executable, "-c", LAUNCH, *argv], env=QUIET_ENV, cwd=ROOT)
    *lines, last = run.stdout.strip().splitlines()
    peak = json.loads(last)
    return run.wall_s, peak["peak_kib"] / 1024, peak["rc"], "\n".join(lines), run.stderr


def _cli(registry: Path, recipe: dict, stage: str, name: str) -> dict:
    """``igpg-zoo train --stage STAGE`` with ``recipe`` in a child: wall time, peak RSS, exit code, output."""
    folder = registry.parent
    path = folder / f"{name}.yaml"
    path.write_text(json.dumps(recipe))
    argv = [sys.executable, "-m", "igpg_zoo", "train", "--stage", stage, "--registry", str(registry), "--config",
            str(path), "--checkpoint", str(folder / f"{name}.pt"), "--json"]
    wall, peak, rc, stdout, stderr = _measured(argv)
    out = {"seconds": round(wall, 1), "peak_rss_mib": round(peak, 1), "exit": rc,
           "command": f"igpg-zoo train --stage {stage} --config {name}.yaml (recipe {json.dumps(recipe)})"}
    if rc == 0:
        out["result"] = json.loads(stdout.strip().splitlines()[-1])
    else:
        out["stderr"], out["stderr_lines"] = stderr.strip().splitlines()[-3:], len(stderr.strip().splitlines())
    return out


def _tokenizer_stage(registry: Path, steps: int) -> dict:
    from igpg_zoo.igpg import memory
    from igpg_zoo.igpg.vectorize import Layout, n_chunks
    from igpg_zoo.igpg.vqvae import TokenizerConfig
    from igpg_zoo.zoo import open_zoo

    base = TokenizerConfig()
    tok = {"steps": steps, "refine_steps": round(base.refine_steps * steps / base.steps)}
    run = _cli(registry, {"tokenizer": tok}, "tokenizer", f"tokenizer-{steps}")
    with open_zoo(str(registry)) as zoo:
        records = zoo.list()
        report = zoo.get_artifact(run["result"]["tokenizer"]["id"]).provenance["report"]
    chunks = sum(n_chunks(Layout.of(r.arch), base.chunk_size) for r in records)
    est = memory.tokenizer_training(sum(r.n_params for r in records), chunks, base)
    return {**run, **tok, "train_seconds": report["train_seconds"], "n_chunks": report["n_chunks"],
            "seconds_per_step": report["train_seconds"] / (tok["steps"] + tok["refine_steps"]),
            "estimate_mib": round(est.total / 2 ** 20, 1)}


def _prior_stage(registry: Path, context: int, steps: int) -> dict:
    from igpg_zoo.igpg import memory
    from igpg_zoo.igpg.prior import PriorConfig

    recipe = {"prior": {"block_size": context}, "train": {"steps": steps}}
    run = _cli(registry, recipe, "prior", f"prior-{context}")
    art = run["result"]["prior"]
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(registry)) as zoo:
        a = zoo.get_artifact(art["id"], kind="prior")
    cfg = PriorConfig(**a.config["prior"])
    batch = a.config["train"]["batch_size"]
    return {**run, "context": cfg.block_size, "max_windows": cfg.max_windows, "steps": steps, "batch": batch,
            "artifact_id": art["id"], "loop_seconds": a.provenance["seconds"],
            "seconds_per_step": a.provenance["seconds"] / steps,
            "tokens_per_second": steps * batch * cfg.block_size / a.provenance["seconds"],
            "estimate_mib": round(memory.prior_training(cfg, batch).total / 2 ** 20, 1)}


def _refusal(registry: Path) -> dict:
    """The old default: the context as long as the longest model."""
    t0 = time.perf_counter()
    run = _cli(registry, {"prior": {"block_size": 1_000_000}, "train": {"steps": 1}}, "prior", "prior-longest")
    return {**run, "seconds": round(time.perf_counter() - t0, 1)}


def _sampling(registry: Path, prior_id: int, quick: bool) -> dict:
    """The sampling child (``sample_child``): its JSON and peak RSS."""
    code = f"from bench.long_models import sample_child; sample_child({str(registry)!r}, {prior_id}, {quick})"
    _, peak, rc, stdout, stderr = _measured([sys.executable, "-c", code])
    if rc != 0:
        raise RuntimeError(f"sampling child failed: {stderr.strip().splitlines()[-3:]}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_rss_mib": round(peak, 1)}


def _batched_windows(prior, cond: dict, length: int, settings, seed: int):
    """The alternative to Algorithm 1: every window of one model in one batch, each from its prefix and its
    index alone (no tail of the previous window), stitched where each window's new tokens start."""
    import torch

    from igpg_zoo.igpg.prior import COND_VECTORS
    from igpg_zoo.igpg.sampling import CachedDecoder, n_windows, pick

    cfg, gen = prior.cfg, torch.Generator().manual_seed(seed)
    W = n_windows(cfg, length)
    batched = {k: cond[k].view(1, -1).expand(W, -1) for k in COND_VECTORS if cond.get(k) is not None}
    batched["window"] = torch.arange(W)
    with torch.inference_mode():
        dec, out = CachedDecoder(prior, batched, torch.empty(W, 0, dtype=torch.long)), []
        for k in range(cfg.block_size):
            out.append(pick(dec.logits, settings, gen))
            if k + 1 < cfg.block_size:
                dec.feed(out[-1])
    win = torch.stack(out, dim=1)  # (W, block)
    return torch.cat([win[0]] + [win[j, cfg.window_context:] for j in range(1, W)])[:length]


def _score(prior, cond: dict, tokens) -> float:
    """Mean log-likelihood per token of ``tokens`` (T,) under Algorithm 1: window j given its context."""
    import torch

    from igpg_zoo.igpg.sampling import _with_window, n_windows, window_bounds

    cfg, total = prior.cfg, 0.0
    batched = {k: v.view(1, -1) for k, v in cond.items() if isinstance(v, torch.Tensor)}
    with torch.inference_mode():
        for j in range(n_windows(cfg, len(tokens))):
            start, end = window_bounds(cfg, j, len(tokens))
            idx = tokens[start:end].view(1, -1)
            logp = prior(idx, _with_window(batched, j, 1))[0].log_softmax(-1)[0]  # (T, V)
            given = 0 if j == 0 else cfg.window_context
            total += float(logp[given:].gather(1, idx[0, given:].view(-1, 1)).sum())
    return total / len(tokens)


def _consistency(quick: bool) -> dict:
    """What a window's context carries: a prior fitted on two random sequences under one condition samples
    N_CONSISTENCY models in sequence (Algorithm 1) and as batched windows; the share of samples that are one
    member throughout (the rest stitch windows of both)."""
    import torch

    from igpg_zoo.igpg.prior import Prior, PriorConfig
    from igpg_zoo.igpg.prior_dataset import TokenSet
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, fit_prior
    from igpg_zoo.igpg.sampling import SamplingSettings, n_windows, sample_tokens

    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    members = [torch.randint(16, (100,), generator=g) for _ in range(2)]
    shape = PriorConfig(vocab_size=16, block_size=32, window_context=8, n_layer=2, n_head=2, n_embd=64, text_dim=4,
                        dropout=0.0, cond_dropout=0.0)
    cfg = PriorConfig(**{**shape.to_dict(), "max_windows": n_windows(shape, 100)})
    prior = Prior(cfg)
    fit_prior(prior, TokenSet(members, [{}, {}], [0, 1]), PriorTrainConfig(steps=60 if quick else 400, batch_size=8,
                                                                            lr=3e-3, warmup=10))
    s, n = SamplingSettings(top_p=None), 8 if quick else 40

    def one(t) -> bool:
        return any(torch.equal(t, m) for m in members)

    seq = sample_tokens(prior, {}, 100, n=n, settings=s, seed=0)
    batched = [_batched_windows(prior, {}, 100, s, seed) for seed in range(n)]
    return {"windows": n_windows(cfg, 100), "samples": n, "one_member_in_sequence": sum(map(one, seq)) / n,
            "one_member_batched": sum(map(one, batched)) / n}


def sample_child(registry: str, prior_id: int, quick: bool) -> None:
    """Sample one RESNET three ways (in a child process); print one JSON line."""
    import torch

    from bench._generator_speed import Recomputing
    from igpg_zoo.igpg import memory
    from igpg_zoo.igpg.generate import Generator
    from igpg_zoo.igpg.vectorize import Layout
    from igpg_zoo.igpg.sampling import CachedDecoder, SamplingSettings, n_windows, sample_tokens
    from igpg_zoo.zoo import open_zoo

    torch.set_num_threads(1)
    with open_zoo(registry) as zoo:
        gen = Generator.load(zoo, prior_id)
    cond, length, s = gen.condition(RESNET, TASK), gen.tokenizer.sequence_length(RESNET), SamplingSettings()
    est = memory.prior_sampling(gen.prior.cfg, 1, length, Layout.of(RESNET).numel)
    out = {"arch": RESNET, "tokens": length, "windows": n_windows(gen.prior.cfg, length),
           "estimate_mib": round(est.total / 2 ** 20, 1)}
    modes = {"kv_cache": lambda: sample_tokens(gen.prior, cond, length, settings=s, seed=0, decoder=CachedDecoder)[0],
             "batched_windows": lambda: _batched_windows(gen.prior, cond, length, s, 0)}
    if not quick:
        modes["no_cache"] = lambda: sample_tokens(gen.prior, cond, length, settings=s, seed=0, decoder=Recomputing)[0]
    for name, sample in modes.items():
        t0 = time.perf_counter()
        tokens = sample()
        out[name] = {"seconds": round(time.perf_counter() - t0, 2),
                     "logp_per_token": round(_score(gen.prior, cond, tokens), 4)}
    t0 = time.perf_counter()
    gen.tokenizer.decode(tokens, RESNET)
    out["decode_seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(out))


def run(quick: bool) -> dict:
    folder = HERE / "scratch" / ("long_models_quick" if quick else "long_models")
    folder.mkdir(parents=True, exist_ok=True)
    registry = folder / "registry.db"
    members = _members(registry, {RESNET: 2, CNN: 1} if quick else MEMBERS)
    from igpg_zoo.zoobuild.presets import TIMM_CONV_ARCHS, TIMM_VIT_ARCHS

    lengths = _lengths([a.format(k=10) for a in TIMM_CONV_ARCHS + TIMM_VIT_ARCHS])
    tok = _tokenizer_stage(registry, 4 if quick else TOK_STEPS)
    priors = [_prior_stage(registry, c, 2 if quick else PRIOR_STEPS) for c in CONTEXTS]
    refusal = _refusal(registry)
    sampling = _sampling(registry, priors[0]["artifact_id"], quick)
    sampling["consistency"] = _consistency(quick)
    data = {"members": members, "lengths": lengths, "tokenizer": tok, "priors": priors, "refusal": refusal,
            "sampling": sampling}
    return {"summary": _summary(data), "details": _details(data), "data": data}


def _summary(d: dict) -> list[dict]:
    cmd = "python -m bench long_models"
    res = next(r for r in d["lengths"] if r["arch"] == RESNET)
    tok, (p256, p512), s, ref = d["tokenizer"], d["priors"], d["sampling"], d["refusal"]
    base = ref["peak_rss_mib"]  # the process with everything loaded, refused before allocating
    line = (ref.get("stderr") or [""])[-1].removeprefix("error: ").split(" (set IGPG_ZOO_DEBUG")[0]
    rows = [
        ("tokens and windows per model (default tokenizer, context 256)",
         ", ".join(f"{r['arch'].split('?')[0]} {r['tokens']:,} tokens / {r['windows']} windows" for r in d["lengths"])),
        ("tokenizer stage: time per step; peak RSS (its increment over the loaded process / the estimate)",
         f"{tok['seconds_per_step'] * 1000:.0f} ms/step; {tok['peak_rss_mib']:,.0f} MiB "
         f"({tok['peak_rss_mib'] - base:,.0f} / {tok['estimate_mib']:,.0f} MiB)"),
        *((f"prior stage at context {p['context']}: time per step; peak RSS (increment / estimate)",
           f"{p['seconds_per_step']:.2f} s/step ({p['tokens_per_second']:,.0f} tokens/s); {p['peak_rss_mib']:,.0f} MiB "
           f"({p['peak_rss_mib'] - base:,.0f} / {p['estimate_mib']:,.0f} MiB)") for p in (p256, p512)),
        ("generation of one test_resnet: KV cache / no cache (seconds)",
         f"{s['kv_cache']['seconds']:.1f} s / " + (f"{s['no_cache']['seconds']:.1f} s" if "no_cache" in s else "–")
         + f" ({res['tokens']:,} tokens, {s['windows']} windows)"),
        ("windows of one model as one batch (no context) vs in sequence with the KV cache",
         f"{s['batched_windows']['seconds']:.1f} s vs {s['kv_cache']['seconds']:.1f} s; log-likelihood per token "
         f"{s['batched_windows']['logp_per_token']:.3f} vs {s['kv_cache']['logp_per_token']:.3f}; samples that are one "
         f"member throughout (two-member test): {s['consistency']['one_member_batched']:.0%} vs "
         f"{s['consistency']['one_member_in_sequence']:.0%}"),
    ]
    out = [{"measure": m, "target": "–", "value": v, "met": None, "command": cmd} for m, v in rows]
    out.append({"measure": "the old default context (longest model) refused before allocating",
                "target": "one line with the fix, exit != 0",
                "value": f"exit {ref['exit']} after {ref['seconds']:.1f} s (one line): {line}",
                "met": ref["exit"] != 0 and ref.get("stderr_lines") == 1 and "block_size" in line,
                "command": cmd})
    return out


def _details(d: dict) -> str:
    tok, s, base = d["tokenizer"], d["sampling"], d["refusal"]["peak_rss_mib"]
    lines = [
        f"A scratch registry of {len(d['members'])} members ({', '.join(sorted({m['arch'].split('?')[0] for m in d['members']}))}"
        "),"
        f" each trained one epoch on 256 samples of `{TASK}`. Each stage trains in a child process of "
        "`igpg-zoo train` (peak RSS from the kernel's accounting of the child, the estimate of `igpg/memory.py` "
        f"beside it). Tokenizer: the default config at {tok['steps']} + {tok['refine_steps']} steps "
        f"({tok['n_chunks']:,} chunks). Prior: the default shape, {d['priors'][0]['steps']} steps of "
        f"{d['priors'][0]['batch']} windows. Shared 2-core CPU, torch on 1 thread: timings are indicative.", "",
        "| architecture | parameters | tokens | windows at 256 |", "|---|---:|---:|---:|",
        *(f"| `{r['arch']}` | {r['n_params']:,} | {r['tokens']:,} | {r['windows']} |" for r in d["lengths"]), "",
        f"Peak RSS counts the whole process; the run refused at the old default context peaked at {base:,.0f} MiB "
        "(torch, timm, the text embedder, the registry: everything loaded before a stage allocates), so the "
        "increment over it is what the estimate covers.", "",
        "| stage | context | time per step | tokens/s | peak RSS | increment | estimate | wall (child) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| tokenizer | – | {tok['seconds_per_step'] * 1000:.0f} ms | – | {tok['peak_rss_mib']:,.0f} MiB | "
        f"{tok['peak_rss_mib'] - base:,.0f} MiB | {tok['estimate_mib']:,.0f} MiB | {tok['seconds']:.0f} s |",
        *(f"| prior | {p['context']} | {p['seconds_per_step']:.2f} s | {p['tokens_per_second']:,.0f} | "
          f"{p['peak_rss_mib']:,.0f} MiB | {p['peak_rss_mib'] - base:,.0f} MiB | {p['estimate_mib']:,.0f} MiB | "
          f"{p['seconds']:.0f} s |" for p in d["priors"]),
        "", f"Sampling one `{RESNET}` ({s['tokens']:,} tokens, {s['windows']} windows; peak RSS "
        f"{s['peak_rss_mib']:,.0f} MiB, estimate {s['estimate_mib']:,.0f} MiB above the loaded process, "
        f"decoding {s['decode_seconds']:.1f} s):", "",
        "| how | seconds | log-likelihood per token (Algorithm 1) |", "|---|---:|---:|",
        *(f"| {name.replace('_', ' ')} | {s[name]['seconds']:.1f} | {s[name]['logp_per_token']:.3f} |"
          for name in ("kv_cache", "no_cache", "batched_windows") if name in s),
        "", "The batched alternative samples each window from its prefix and index alone, so a window never sees "
        "the tokens before it; Algorithm 1 (the default) gives each window the tail of the previous one. What that "
        f"context carries: a prior fitted on two random {s['consistency']['windows']}-window sequences under one "
        f"condition gave, of {s['consistency']['samples']} samples at temperature 1, "
        f"{s['consistency']['one_member_in_sequence']:.0%} that are one member throughout in sequence and "
        f"{s['consistency']['one_member_batched']:.0%} as batched windows (the rest stitch windows of both).",
    ]
    return "\n".join(lines)
