"""The ``timm`` zoo preset and the tokenizer on it: build time, what it holds, the round trip, ONNX export.

    python -m bench timm_zoo [--quick]

1. Build ``igpg-zoo zoo build --preset timm`` into ``bench/scratch/timm_zoo/registry.db`` (resumable; a
   finished build is reused and its first measured build time, kept in ``build-report.json``, reported).
2. Train the tokenizer stage only, through the CLI in a child process (``igpg-zoo train --stage tokenizer``,
   the preset's hold-out tasks held out), timing it and reading the child's peak resident memory. The default
   config's ``codec="auto"`` picks the gain-shape codec for models this large (igpg_zoo/igpg/gainshape.py:
   k-means codebooks, no gradient steps; docs/igpg-tokenizer.md section 7).
3. Round trip every run's final checkpoint: encode -> decode the parameters; test accuracy with the record's own buffers
   (the tokenizer's fidelity, as ``bench/tokenizer_bench.py`` measures it) and with the BatchNorm statistics
   re-estimated on 512 training samples (what a generated model gets). Tokens per model per architecture.
4. End to end per architecture: a decoded model exported to ONNX with its statistics estimated on the
   training split (``export_weights(..., calibration=...)``), checked against onnxruntime.

``--quick`` uses the same registry as it is (built if missing) and 8 records: plumbing only.
Torch runs on one thread (OMP_NUM_THREADS=1); the machine is shared, so timings are indicative.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TITLE = "timm zoo (real architectures)"
HERE = Path(__file__).resolve().parent
PRESET = "timm"
PROBE = 512  # training samples for BatchNorm re-estimation (as igpg generate)
#: tokenizer steps: None, the default config (its gain-shape codec takes no gradient steps)
TOKENIZER_STEPS, QUICK_STEPS = None, None
#: decoded models of an early tokenizer give large logits: parity is checked at 1e-3 absolute (the figure is reported)
EXPORT_ATOL = 1e-3
TARGET_MEAN, TARGET_WORST = 0.5, 2.0  # pp, issue 25


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    env.pop("IGPG_ZOO_PLUGINS", None)  # the timm plugin must load
    return env


def build(registry: Path) -> dict:
    """Build (or resume) the preset; the build time is the first full build's, kept next to the registry."""
    from igpg_zoo.zoo import open_zoo
    from igpg_zoo.zoobuild.build import build_zoo

    report_file = registry.parent / "build-report.json"
    with open_zoo(str(registry)) as zoo:
        report = build_zoo(zoo, PRESET, threads=1)
    facts = {"runs": report.runs, "trained_now": report.trained, "skipped": report.skipped,
             "checkpoints": len(report.ids), "seconds_now": round(report.seconds, 1)}
    if report.trained == report.runs:  # a full build in this call: its time is the figure
        report_file.write_text(json.dumps({"seconds": round(report.seconds, 1), "how": "python -m bench timm_zoo"}))
    if report_file.is_file():
        kept = json.loads(report_file.read_text())
        facts["build_seconds"] = kept["seconds"]
        if "vit_rebuild" in kept:  # the preset's ViT base once trained at lr 1e-2; its 10 runs were redone
            facts["vit_rebuild_seconds"] = kept["vit_rebuild"]["seconds"]
    return facts


def zoo_facts(registry: Path) -> tuple[dict, list]:
    """Per architecture family: parameters, records, median test accuracy; and the records."""
    import numpy as np

    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(registry)) as zoo:
        records = [r for r in zoo.list(tags=(f"preset:{PRESET}",))]
    fams: dict[str, dict] = {}
    for r in records:
        fam = r.arch.split("?")[0] if r.arch.startswith("timm/") else r.arch.split("-o")[0]
        f = fams.setdefault(fam, {"params": set(), "records": 0, "acc": [], "members": {}})
        f["params"].add(sum(p.numel for p in get_adapter(r.arch).param_layout(r.arch)))
        f["records"] += 1
        f["acc"].append(r.metric("acc"))
        member = next(t.split(":")[1] for t in r.tags if t.startswith("member:"))
        f["members"][member] = f["members"].get(member, 0) + 1
    out = {fam: {"params": [min(f["params"]), max(f["params"])], "records": f["records"],
                 "median_acc": float(np.median(f["acc"])), "min_acc": float(min(f["acc"])), "members": f["members"]}
           for fam, f in sorted(fams.items())}
    return {"families": out, "records": len(records), "tasks": len({r.dataset for r in records}),
            "members": sum(1 for r in records if "member:base" not in r.tags)}, records


def _tokenizer_recipe(folder: Path, steps: int) -> Path:
    """A recipe YAML (JSON is YAML) setting the tokenizer's training steps as the default recipe's phases scaled."""
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    base = TokenizerConfig()
    path = folder / f"tokenizer-{steps}-steps.yaml"
    path.write_text(json.dumps({"tokenizer": {"steps": steps,
                                              "refine_steps": round(base.refine_steps * steps / max(base.steps, 1))}}))
    return path


def train_tokenizer(registry: Path, steps: int | None, holdout: list[str]) -> dict:
    """``igpg-zoo train --stage tokenizer`` in a child process: artifact id, seconds, peak RSS of the child."""
    cmd = [sys.executable, "-m", "igpg_zoo", "train", "--stage", "tokenizer", "--registry", str(registry), "--json"]
    for h in holdout:
        cmd += ["--holdout-task", h]
    if steps:  # a recipe file: ``steps`` main-phase steps, the refine phase scaled by the same factor
        cmd += ["--config", str(_tokenizer_recipe(registry.parent, steps))]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env())
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"tokenizer training failed: {proc.stderr.strip().splitlines()[-1:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # Linux: KiB, the largest child so far
    art = json.loads(proc.stdout.strip().splitlines()[-1])["tokenizer"]
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(registry)) as zoo:
        tcfg = zoo.get_artifact(id=art["id"], kind="tokenizer").config["tokenizer"]
    codec = {"codec": tcfg.get("codec", "vqvae"), "chunk": tcfg["chunk_size"], "stages": tcfg["tokens_per_chunk"],
             "sub_dim": tcfg.get("sub_dim")}
    shown = [os.path.relpath(c, HERE.parent) if c == str(registry) else c for c in cmd[3:]]  # repo-relative
    return {"artifact_id": art["id"], **codec, "seconds": round(seconds, 1), "peak_rss_mib": round(peak_kib / 1024, 1),
            "command": " ".join(["igpg-zoo"] + shown)}


def round_trip(registry: Path, artifact_id: int, records: list, holdout: set[str]) -> dict:
    import numpy as np
    import torch

    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.export.batchnorm import estimate, training_sample
    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.zoo import open_zoo
    from igpg_zoo.zoobuild.trainer import accuracy

    rows = []
    with open_zoo(str(registry)) as zoo:
        tok = Tokenizer.load(zoo, artifact_id)
        for r in records:
            ds = load_dataset(r.dataset)
            weights = zoo.load_weights(r.id)
            t0 = time.perf_counter()
            tokens = tok.encode(weights, r.arch)
            restored = {**weights, **tok.decode_params(tokens, r.arch)}
            seconds = time.perf_counter() - t0
            module = get_adapter(r.arch).build(r.arch)
            module.load_state_dict(restored, strict=True)
            own = accuracy(module, ds.x_test, ds.y_test)
            recal = own
            if estimate(module, training_sample(r.dataset, PROBE))["layers"]:
                recal = accuracy(module, ds.x_test, ds.y_test)
            acc = r.metric("acc")
            rows.append({"id": r.id, "arch": r.arch, "dataset": r.dataset, "holdout": r.dataset in holdout,
                         "tokens": int(tokens.numel()), "acc": acc, "loss_pp": 100 * (acc - own),
                         "loss_pp_bn_estimated": 100 * (acc - recal), "seconds": seconds})
    torch.set_num_threads(1)
    losses = np.array([x["loss_pp"] for x in rows])
    recals = np.array([x["loss_pp_bn_estimated"] for x in rows])
    return {"rows": rows, "mean_loss_pp": float(losses.mean()), "worst_loss_pp": float(losses.max()),
            "mean_loss_pp_bn_estimated": float(recals.mean()), "worst_loss_pp_bn_estimated": float(recals.max())}


def export_check(registry: Path, artifact_id: int, records: list) -> dict:
    """Per architecture family: a decoded model exported to ONNX with estimated statistics, and its parity."""
    from igpg_zoo.errors import ZooError
    from igpg_zoo.export import export_weights
    from igpg_zoo.export.batchnorm import training_sample
    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.zoo import open_zoo

    out, seen = {}, set()
    with open_zoo(str(registry)) as zoo, tempfile.TemporaryDirectory() as tmp:
        tok = Tokenizer.load(zoo, artifact_id)
        for r in records:
            fam = r.arch.split("?")[0] if r.arch.startswith("timm/") else r.arch.split("-o")[0]
            if fam in seen:
                continue
            seen.add(fam)
            decoded = tok.decode(tok.encode(zoo.load_weights(r.id), r.arch), r.arch)  # fresh BN buffers
            try:
                rep = export_weights(r.arch, decoded, "onnx", Path(tmp) / f"{len(seen)}.onnx",
                                     {"provenance": {"round_trip_of": r.id}}, EXPORT_ATOL,
                                     calibration=training_sample(r.dataset, PROBE))
            except ZooError as exc:  # recorded, not fatal: the other figures stand
                out[fam] = {"arch": r.arch, "error": str(exc)}
                continue
            out[fam] = {"arch": r.arch, "max_abs_diff": rep.max_abs_diff, "atol": rep.atol, "opset": rep.opset,
                        "batchnorm": rep.batchnorm, "seconds": round(rep.seconds, 2)}
    return out


def _by_arch(rows: list[dict]) -> dict:
    import numpy as np

    fams: dict[str, list] = {}
    for x in rows:
        fam = x["arch"].split("?")[0] if x["arch"].startswith("timm/") else x["arch"].split("-o")[0]
        fams.setdefault(fam, []).append(x)
    return {f: {"n": len(v), "tokens": sorted({x["tokens"] for x in v}),
                "mean_loss_pp": float(np.mean([x["loss_pp"] for x in v])),
                "worst_loss_pp": float(np.max([x["loss_pp"] for x in v])),
                "mean_loss_pp_bn_estimated": float(np.mean([x["loss_pp_bn_estimated"] for x in v])),
                "worst_loss_pp_bn_estimated": float(np.max([x["loss_pp_bn_estimated"] for x in v])),
                "encode_decode_seconds": float(np.mean([x["seconds"] for x in v]))} for f, v in sorted(fams.items())}


def render(data: dict) -> dict:
    """Summary and details again from a result's ``data`` (after a change to the wording)."""
    args = (data["build"], data["zoo"], data["tokenizer"], data["round_trip"], data["by_arch"], data["export"])
    return {"summary": _summary(*args), "details": _details(*args), "data": data}


def run(quick: bool) -> dict:
    import torch

    from igpg_zoo.data.tasks import canonical_name
    from igpg_zoo.zoobuild.presets import get_preset

    torch.set_num_threads(1)
    registry = HERE / "scratch" / "timm_zoo" / "registry.db"
    registry.parent.mkdir(parents=True, exist_ok=True)
    if quick and registry.is_file():  # plumbing only: the registry as it is (a build may be running)
        built = {"runs": 0, "checkpoints": 0, "quick": "registry used as it is"}
    else:
        built = build(registry)
    zoo, records = zoo_facts(registry)
    present = {r.dataset for r in records}
    holdout = [h for h in (canonical_name(t) for t in get_preset(PRESET).holdout) if h in present]
    tok = train_tokenizer(registry, QUICK_STEPS if quick else TOKENIZER_STEPS, holdout)
    (registry.parent / f"tokenizer-report{'-quick' if quick else ''}.json").write_text(json.dumps(tok))
    finals = [r for r in records if "final" in r.tags]  # every run's last checkpoint
    rt = round_trip(registry, tok["artifact_id"], finals[:8] if quick else finals, set(holdout))
    exports = export_check(registry, tok["artifact_id"], records)
    by_arch = _by_arch(rt["rows"])
    return {"summary": _summary(built, zoo, tok, rt, by_arch, exports),
            "details": _details(built, zoo, tok, rt, by_arch, exports),
            "data": {"build": built, "zoo": zoo, "tokenizer": tok, "round_trip": rt, "by_arch": by_arch,
                     "export": exports, "machine": "shared 2-core CPU, torch 1 thread; timings indicative"}}


def _summary(built, zoo, tok, rt, by_arch, exports) -> list[dict]:
    cmd = "python -m bench timm_zoo"
    fams = zoo["families"]
    tokens = ", ".join(f"{f.split('/')[-1]} {v['tokens'][-1]:,} ({v['tokens'][-1] / fams[f]['params'][1]:.2f} per "
                       "parameter)" for f, v in by_arch.items())
    row = lambda m, t, v, met: {"measure": m, "target": t, "value": v, "met": met, "command": cmd}  # noqa: E731
    big = [f for f, v in fams.items() if v["params"][1] >= 100_000]
    ok = [e for e in exports.values() if "max_abs_diff" in e]
    sizes = ", ".join(f"{f.split('/')[-1]} {v['params'][1]:,}" for f, v in fams.items())
    return [
        row("timm preset: architectures >= 100k parameters, tasks, members",
            ">= 3 archs, >= 8 tasks, >= 48 members",
            f"{len(big)} archs ({sizes}), {zoo['tasks']} tasks, {zoo['members']} members",
            len(big) >= 3 and zoo["tasks"] >= 8 and zoo["members"] >= 48),
        row("timm preset build time (shared 2-core CPU, 1 thread)", "stated",
            f"{built.get('build_seconds', float('nan')) / 60:.1f} min for {built['runs']} runs, {built['checkpoints']} checkpoints",
            None),
        row("tokenizer round trip on the timm preset (decoded parameters, the record's own BatchNorm buffers)",
            f"mean <= {TARGET_MEAN} pp, worst <= {TARGET_WORST} pp",
            f"mean {rt['mean_loss_pp']:.2f} pp, worst {rt['worst_loss_pp']:.2f} pp",
            rt["mean_loss_pp"] <= TARGET_MEAN and rt["worst_loss_pp"] <= TARGET_WORST),
        row("tokenizer round trip, BatchNorm statistics re-estimated on 512 training samples (what a decoded model gets)",
            f"mean <= {TARGET_MEAN} pp, worst <= {TARGET_WORST} pp",
            f"mean {rt['mean_loss_pp_bn_estimated']:.2f} pp, worst {rt['worst_loss_pp_bn_estimated']:.2f} pp",
            rt["mean_loss_pp_bn_estimated"] <= TARGET_MEAN and rt["worst_loss_pp_bn_estimated"] <= TARGET_WORST),
        row("tokens per model", "stated", tokens, None),
        row("tokenizer stage: training time, peak memory (2 cores)", "stated",
            f"{tok['seconds'] / 60:.1f} min, {tok['peak_rss_mib']:,.0f} MiB peak RSS", None),
        row("decoded timm / BN models export to ONNX (statistics estimated first)", "every architecture",
            f"{len(ok)} of {len(fams)}; max|diff| <= {max([e['max_abs_diff'] for e in ok] or [float('nan')]):.1e} "
            f"(atol {EXPORT_ATOL:g})", len(ok) == len(fams)),
    ]


def _codec_words(tok: dict) -> str:
    if tok.get("codec") != "gainshape":
        return "the chunk VQ-VAE at a reduced step budget"
    K, d, L = tok["chunk"], tok["sub_dim"], tok["stages"]
    return (f"the default config, whose `codec=\"auto\"` picked the gain-shape codec for these models: per chunk of {K} "
            f"floats its gain as {L} digit tokens and {K // d} sub-vectors of {d} floats as {L} residual k-means tokens "
            "each; it takes no gradient steps")


def _details(built, zoo, tok, rt, by_arch, exports) -> str:
    lines = [
        "The `timm` preset (`igpg-zoo zoo build --preset timm`): timm `test_resnet`, `test_efficientnet`, `test_vit` "
        "at 3x32x32 and a BatchNorm smallnet, on 9 colour tasks (digits and Fashion-MNIST coloured with "
        "`[colour=SEED]` or `[rgb]`, resized with `[size=32]`; the procedural `shapes` set), a shared base per "
        "architecture with fine-tuned and independent members, 2 checkpoints per run. The tokenizer is trained "
        f"with the preset's hold-out tasks held out (`{tok['command']}`; {_codec_words(tok)}); every run's "
        "final checkpoint is encoded and decoded; "
        "accuracy loss on the test split with the record's own buffers and with BatchNorm statistics "
        "re-estimated on 512 training samples. The tokens carry parameters only: a decoded model "
        "(`Tokenizer.decode`) has fresh BatchNorm buffers and gets its statistics re-estimated before use, so the "
        "re-estimated column is what a decoded model scores; the own-buffers column pairs decoded weights with "
        "statistics measured on the original weights (a fidelity diagnostic). Shared 2-core CPU, torch on 1 thread.", "",
        "| architecture | parameters | records | median / min acc | tokens | round trip mean / worst (pp) | "
        "with BN re-estimated | ONNX max\\|diff\\| |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for fam, v in zoo["families"].items():
        a = by_arch.get(fam, {})
        e = exports.get(fam, {})
        lines.append(f"| `{fam}` | {v['params'][0]:,}-{v['params'][1]:,} | {v['records']} | "
                     f"{v['median_acc']:.3f} / {v['min_acc']:.3f} | {a.get('tokens', ['-'])[-1]:,} | "
                     f"{a.get('mean_loss_pp', float('nan')):.2f} / {a.get('worst_loss_pp', float('nan')):.2f} | "
                     f"{a.get('mean_loss_pp_bn_estimated', float('nan')):.2f} / "
                     f"{a.get('worst_loss_pp_bn_estimated', float('nan')):.2f} | {e.get('max_abs_diff', float('nan')):.1e} |")
    for fam, e in exports.items():
        if "error" in e:
            lines.append(f"ONNX export of `{fam}` failed: {e['error']}")
    held = [x for x in rt["rows"] if x["holdout"]]
    if held:
        import numpy as np

        lines += ["", f"Held-out tasks ({len(held)} records, never seen by the tokenizer): mean "
                      f"{np.mean([x['loss_pp'] for x in held]):.2f} pp, worst {np.max([x['loss_pp'] for x in held]):.2f} pp."]
    redo = (f" (the first full pass; its 10 ViT base and fine-tuned runs were then retrained at the fixed ViT "
            f"base learning rate in {built['vit_rebuild_seconds'] / 60:.1f} min)" if "vit_rebuild_seconds" in built else "")
    lines += ["", f"Build: {built.get('build_seconds', float('nan')) / 60:.1f} min for {built['runs']} runs{redo}; "
                  f"tokenizer stage {tok['seconds'] / 60:.1f} min, peak RSS {tok['peak_rss_mib']:,.0f} MiB."]
    return "\n".join(lines)
