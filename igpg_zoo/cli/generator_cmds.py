"""``igpg-zoo train`` (tokenizer and/or prior) and ``igpg-zoo generate``.

Nothing heavy is imported at module level; torch comes in when a command runs. ``train`` runs
distributed when started by torchrun (``torchrun --nproc_per_node 2 -m igpg_zoo train ...``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Optional

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, OverwriteOpt, RegistryOpt
from igpg_zoo.errors import ConfigError

STAGES = ("tokenizer", "prior", "both")


def _zoo(registry, blobs):
    from igpg_zoo.zoo import open_zoo

    return open_zoo(registry, blobs)


def _filters(arch, dataset, task, kind) -> dict:
    return {k: tuple(v) for k, v in (("arch", arch), ("dataset", dataset), ("task", task), ("kind", kind)) if v}


def _bar(total: int, desc: str):
    """A progress callback ``(step, loss)`` printing to stderr (tqdm when installed) and a ``close()``.

    The bar appears with the first step, so an error before training prints alone on its line.
    """
    try:
        from tqdm import tqdm
    except ImportError:
        return None, None
    bars = []

    def update(step: int, loss: float) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=desc, unit="step", leave=False, initial=step - 1))
        bars[0].update(step - bars[0].n)
        bars[0].set_postfix(loss=f"{loss:.3f}")

    return update, lambda: bars and bars[0].close()


def _count_bar(desc: str, unit: str):
    """A progress callback ``(done, total)`` printing to stderr (tqdm when installed) and a ``close()``."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None, lambda: None
    bars = []

    def update(done: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(total=total, desc=desc, unit=unit, leave=False))
        bars[0].update(done - bars[0].n)
        if done >= total:
            bars[0].close()  # gone before the training bar starts

    return update, lambda: bars and bars[0].close()


def _check_device(device: str) -> str:
    """--device: cpu, cuda or cuda:N, and a GPU must be there for the latter."""
    import re

    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ConfigError(f"--device must be cpu, cuda or cuda:N, got '{device}'")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError(f"--device {device}: torch sees no CUDA GPU on this machine; train with --device cpu")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} GPU(s), "
                              f"numbered from 0")
    return device


def _train_tokenizer(zoo, filters, holdout, steps, seed, tokens_per_chunk, codebook_size, device):
    from igpg_zoo.igpg.prior_dataset import select_records
    from igpg_zoo.igpg.tokenizer_train import train_tokenizer
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    ids = [r.id for r in select_records(zoo, holdout, **filters)]
    cfg = TokenizerConfig(tokens_per_chunk=tokens_per_chunk,
                          **({"codebook_size": codebook_size} if codebook_size else {}))
    return train_tokenizer(zoo, cfg, ids, seed=seed, steps=steps, progress=True, device=device)


def _check_recombine_tol(recombine: float, tol: float | None, checks: int | None) -> None:
    """Refuse a bad --recombine-tol / --recombine-checks before the registry is touched."""
    if tol is None:
        if checks is not None:
            raise ConfigError("--recombine-checks caps the swaps --recombine-tol checks; add --recombine-tol "
                              "(e.g. 0.02) or drop --recombine-checks")
        return
    if not (math.isfinite(tol) and 0 <= tol <= 1):
        raise ConfigError(f"--recombine-tol must lie in [0, 1] (an accuracy drop, e.g. 0.02), got {tol}")
    if not recombine:
        raise ConfigError("--recombine-tol checks recombined swaps; give --recombine > 0 or drop --recombine-tol")
    if checks is not None and checks < 1:
        raise ConfigError(f"--recombine-checks must be >= 1, got {checks}")


def _train_prior(zoo, filters, holdout, tcfg, pcfg: dict, ckpt, resume, tokenizer_id, device):
    from igpg_zoo.igpg import distributed
    from igpg_zoo.igpg.prior_train import train_prior

    distributed.setup(device)
    try:
        total = tcfg.steps if tcfg.epochs is None else None  # epochs: steps known once the zoo is read
        update, close = _bar(total, "prior") if distributed.is_main() else (None, None)
        checked, close_check = _count_bar("checking swaps", "record") if distributed.is_main() else (None, None)
        scored, close_floor = _count_bar("scoring members", "record") if distributed.is_main() else (None, None)
        try:
            return train_prior(zoo, pcfg, tcfg, holdout=holdout, filters=filters, ckpt=ckpt, resume=resume,
                               progress=update, tokenizer_id=tokenizer_id,
                               device=distributed.local_device(device), check_progress=checked,
                               floor_progress=scored)
        finally:
            for done in (close_floor, close_check, close):
                if done is not None:
                    done()
    finally:
        distributed.cleanup()


def train(
    stage: Annotated[str, typer.Option(help="tokenizer | prior | both")] = "both",
    holdout_task: Annotated[Optional[list[str]], typer.Option(
        "--holdout-task", help="task (or glob) never trained on, for evaluation (repeatable)")] = None,
    arch: Annotated[Optional[list[str]], typer.Option("--arch", help="only these architectures")] = None,
    dataset: Annotated[Optional[list[str]], typer.Option("--dataset", help="only these datasets")] = None,
    task: Annotated[Optional[list[str]], typer.Option("--task", help="only these tasks")] = None,
    kind: Annotated[Optional[list[str]], typer.Option("--kind", help="only records of this kind")] = None,
    steps: Annotated[Optional[int], typer.Option(help="prior training steps (default: from --epochs)")] = None,
    epochs: Annotated[float, typer.Option(help="prior: passes over the zoo's sequences when --steps is not given "
                                          "(50: 1,500 steps on the digits benchmark zoo, 2,600 on `full`)")] = 50.0,
    tokenizer_steps: Annotated[Optional[int], typer.Option(help="tokenizer training steps (default: its config)")] = None,
    tokens_per_chunk: Annotated[int, typer.Option(
        help="tokenizer: tokens (residual stages) per chunk of 128 weights; 6 halved the round-trip error on one "
             "seed of two and makes sequences 1.5x longer (docs/igpg-tokenizer.md)")] = 4,
    codebook_size: Annotated[Optional[int], typer.Option(
        help="tokenizer: codes per residual stage, the prior's vocabulary (default 1024; 2048 kept every demo-zoo "
             "model within 2 pp on 3 of 3 seeds and needs a longer-trained prior; docs/igpg-tokenizer.md)")] = None,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    layers: Annotated[int, typer.Option(help="prior: transformer layers")] = 3,
    width: Annotated[int, typer.Option(help="prior: model width")] = 128,
    block: Annotated[Optional[int], typer.Option(help="prior: context in tokens (default: longest model)")] = None,
    batch: Annotated[int, typer.Option(help="prior: sequences per step (per process)")] = 16,
    dropout: Annotated[float, typer.Option(help="prior: dropout (0.1 for 50 epochs: fewer replays and better "
                                           "single samples than 0 for 25; BENCHMARKS.md)")] = 0.1,
    recombine: Annotated[float, typer.Option(
        help="prior: finest residual codes per training sequence swapped, on average, for the code another member "
             "of the same task and architecture has there (0: off). On the full zoo at 50 epochs, 2 cut exact "
             "copies from 21.5 to 4.6-6.2 % (two training seeds) at no measured cost in quality (BENCHMARKS.md)")] = 2.0,
    recombine_tol: Annotated[Optional[float], typer.Option(
        help="prior: only recombine with swaps checked first: a swap is used when the member, decoded with it, "
             "keeps its accuracy on 256 of its training samples within this drop (e.g. 0.02); the rest are never "
             "shown to the prior. Needs the records' datasets. On the full zoo at 80 epochs 0.02 kept iris's draws "
             "within 5 pp (20 of 20) at more exact copies (7.7-14.6 %); at 50 epochs it changed nothing measured "
             "(BENCHMARKS.md)")] = None,
    recombine_checks: Annotated[Optional[int], typer.Option(
        help="prior: with --recombine-tol, swaps checked per record at most (a seeded subset; unchecked swaps are "
             "not used)  [default: 64]", show_default=False)] = None,
    member_floor: Annotated[Optional[float], typer.Option(
        help="prior: learn only from members whose decoded accuracy on 256 of their training samples is at most "
             "this far below the median of their group (same task, dataset and architecture; for two members, "
             "their mean), e.g. 0.05; the ones left out are listed in the artifact's provenance. Needs the records' "
             "datasets. On the full zoo at 80 epochs with --recombine-tol 0.02, 0.05 put every raw single draw of "
             "the benchmark within 5 pp on 2 training seeds of 3 (BENCHMARKS.md)")] = None,
    quality: Annotated[bool, typer.Option(
        "--quality", help="prior: condition on each member's standing in its group (top half or lower half by decoded "
                          "accuracy on 256 of its training samples) and generate from the top half by default "
                          "(`generate --quality any`: all); members whose dataset does not load are labelled unknown. On "
                          "the full zoo at 80 epochs with --recombine-tol 0.02, 127-130 of 130 top draws were within "
                          "5 pp of the median member, against 122-125 asked for any (BENCHMARKS.md)")] = False,
    checkpoint: Annotated[Path, typer.Option(help="prior: resumable checkpoint file")] = Path("igpg-runs/prior.pt"),
    resume: Annotated[bool, typer.Option(help="prior: continue from --checkpoint")] = False,
    tokenizer: Annotated[Optional[int], typer.Option(
        "--tokenizer", help="prior: tokenizer artifact id (default: the one just trained, else the latest)")] = None,
    device: Annotated[str, typer.Option(help="where both stages train: cpu, cuda, or cuda:N (under torchrun, "
                                        "cuda means each process's own GPU)")] = "cpu",
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """Train the generator: the tokenizer, the prior, or both, with a task-disjoint hold-out."""
    if stage not in STAGES:
        raise ConfigError(f"--stage must be one of {', '.join(STAGES)}, got '{stage}'")
    if not 0.0 <= dropout < 1.0:
        raise ConfigError(f"--dropout must lie in [0, 1), got {dropout}")
    if epochs <= 0:
        raise ConfigError(f"--epochs must be > 0, got {epochs}")
    if not (math.isfinite(recombine) and recombine >= 0):
        raise ConfigError(f"--recombine must be a finite number >= 0 (swaps per sequence), got {recombine}")
    _check_recombine_tol(recombine, recombine_tol, recombine_checks)
    if member_floor is not None and not (math.isfinite(member_floor) and 0 <= member_floor <= 1):
        raise ConfigError(f"--member-floor must lie in [0, 1] (an accuracy gap, e.g. 0.05), got {member_floor}")
    if not 1 <= tokens_per_chunk <= 16:
        raise ConfigError(f"--tokens-per-chunk must lie in 1..16, got {tokens_per_chunk}")
    if codebook_size is not None and not 2 <= codebook_size <= 65536:
        raise ConfigError(f"--codebook-size must lie in 2..65536, got {codebook_size}")
    device = _check_device(device)
    filters, holdout = _filters(arch, dataset, task, kind), list(holdout_task or [])
    out = {}
    with _zoo(registry, blobs) as zoo:
        if stage in ("tokenizer", "both"):
            art = _train_tokenizer(zoo, filters, holdout, tokenizer_steps, seed, tokens_per_chunk, codebook_size, device)
            out["tokenizer"] = {"id": art.id, "name": art.name}
            tokenizer = art.id
        if stage in ("prior", "both"):
            from igpg_zoo.igpg.prior_train import PriorTrainConfig

            tcfg = PriorTrainConfig(steps=steps or PriorTrainConfig.steps, epochs=None if steps else epochs,
                                    seed=seed, batch_size=batch, recombine=recombine, recombine_tol=recombine_tol,
                                    member_floor=member_floor, quality=quality,
                                    **({"recombine_checks": recombine_checks} if recombine_checks else {}))
            pcfg = {"n_layer": layers, "n_embd": width, "n_head": max(1, width // 32), "dropout": dropout,
                    **({"block_size": block} if block else {})}
            art = _train_prior(zoo, filters, holdout, tcfg, pcfg, checkpoint, resume, tokenizer, device)
            if art is not None:
                out["prior"] = {"id": art.id, "name": art.name, "seconds": round(art.provenance["seconds"], 1),
                                "final_loss": art.provenance["losses"][-1] if art.provenance["losses"] else None}
                notes = _set_up_notes(art.provenance)
                if notes:
                    out["prior"]["note"] = "; ".join(notes)
    if not out:
        return  # a non-zero rank under torchrun
    if json_out:
        typer.echo(json.dumps(out))
        return
    for name, info in out.items():
        typer.echo(f"{name}: artifact #{info['id']} {info['name']}" + (_prior_note(info) if name == "prior" else ""))
        if "note" in info:
            typer.echo(f"note: {info['note']}")


def _set_up_notes(prov: dict) -> list[str]:
    """What the prior's set-up left out or checked, one clause each."""
    notes = [_floor_note(prov["member_floor"])] if "member_floor" in prov else []
    if "quality" in prov:
        q = prov["quality"]
        notes.append(f"member standings: {q['top']} top half, {q['lower']} lower half, {q['unknown']} unknown "
                     f"of {q['records']}")
    if "recombine_skipped" in prov:
        notes.append(f"no recombination: {prov['recombine_skipped']}")
    elif "recombine_check" in prov:
        notes.append(_check_note(prov["recombine_check"]))
    return notes


def _floor_note(f: dict) -> str:
    missing = (f" ({f['records_without_data']} unscored: their dataset did not load or fit)"
               if f["records_without_data"] else "")
    return (f"member floor: {len(f['dropped'])} of {f['records']} members left out, more than {f['tol']:g} below "
            f"their group's median on training samples{missing}")


def _check_note(c: dict) -> str:
    missing = (f"; {c['records_without_data']} record(s) recombine nothing: their dataset did not load or fit"
               if c["records_without_data"] else "")
    return (f"recombination checked: {c['kept']} of {c['checked']} swaps kept within {c['tol']:g} of the member's "
            f"accuracy ({c['candidates']} offered, {c['seconds']} s){missing}")


def _prior_note(info: dict) -> str:
    if info["final_loss"] is None:  # resumed from a complete checkpoint: registered, nothing trained
        return " (no steps left to train: the checkpoint was complete)"
    return f" ({info['seconds']} s, loss {info['final_loss']:.3f})"


def _target_data(dataset: str | None, data: Path | None, label: str = "label", arch: str | None = None):
    """(name, Dataset, dataset embedding) of --dataset NAME or --data PATH (``label``: a .csv's label column)."""
    from igpg_zoo.data import load_dataset
    from igpg_zoo.data.embedding import dataset_embedding_for, embed_dataset
    from igpg_zoo.data.userdata import load_user_data

    if (dataset is None) == (data is None):
        raise ConfigError("give exactly one of --dataset NAME (built-in or generated task) or --data PATH")
    if dataset is not None:
        return dataset, load_dataset(dataset), dataset_embedding_for(dataset)
    ds = load_user_data(data, label=label, arch=arch)
    return ds.name, ds, embed_dataset(ds)


def _summary(g, rank: int) -> dict:
    nb = g.neighbour or {}
    return {"rank": rank, "val_acc": g.val_accuracy, "log_likelihood": g.log_likelihood, "seed": g.provenance["seed"],
            "sample_round": g.provenance["sample_round"], "sample_index": g.provenance["sample_index"],
            "nearest_id": nb.get("id"),
            "nearest_distance": nb.get("distance"), "relative_distance": nb.get("relative_distance"),
            "prediction_agreement": nb.get("prediction_agreement"), "exact_copy_of": nb.get("exact_copy_of")}


def _print_result(s: dict) -> None:
    acc = f"val acc {s['val_acc']:.3f}" if s["val_acc"] is not None else "no data to score"
    copy = f"EXACT COPY of #{s['exact_copy_of']}" if s["exact_copy_of"] is not None else "new token sequence"
    near = (f"nearest zoo member #{s['nearest_id']} at distance {s['nearest_distance']:.3g} "
            f"({100 * s['relative_distance']:.1f}% of its norm)") if s["nearest_id"] is not None \
        else "no zoo member of this architecture to compare with"
    agree = (f", agrees on {100 * s['prediction_agreement']:.1f}% of the probe"
             if s.get("prediction_agreement") is not None else "")
    lik = f", prior log-likelihood {s['log_likelihood']:.1f}" if s.get("log_likelihood") is not None else ""
    where = f"{s['sample_round']}.{s['sample_index']}" if s["sample_round"] else str(s["sample_index"])
    typer.echo(f"#{s['rank']} sample {where}: {acc}{lik}; {copy}; {near}{agree}")


def generate(
    arch: Annotated[str, typer.Option(help="architecture string to generate")],
    dataset: Annotated[Optional[str], typer.Option(help="built-in dataset or generated task name")] = None,
    data: Annotated[Optional[Path], typer.Option(help="your labelled data: .npz, .csv or image folder")] = None,
    label: Annotated[str, typer.Option("--label", help="label column of a --data .csv")] = "label",
    task: Annotated[Optional[str], typer.Option(help="task text (default: the dataset's description)")] = None,
    n: Annotated[int, typer.Option("-n", help="samples, best first: the best on your data sample, or without data "
                                              "the one the prior is surest of (full zoo's seen pairs: best-of-5 88.3 %, "
                                              "likeliest of 5 87.4 %, one raw sample 80.8 %; trained 87.6 %)")] = 5,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    temperature: Annotated[float, typer.Option(
        help="sampling temperature (0: greedy); with top-p 0.9 and a prior of the default training (dropout "
             "0.1, 50 epochs, recombine 2) 1.0 gave 5 % exact copies and best-of-5 at trained accuracy (BENCHMARKS.md)")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option(help="sample among the k likeliest tokens")] = None,
    top_p: Annotated[Optional[float], typer.Option(
        help="nucleus sampling mass (1: off); 1 strays further from zoo members and fails more often")] = 0.9,
    min_p: Annotated[Optional[float], typer.Option(
        help="drop tokens below this share of the likeliest one's probability (0.3 on the full zoo with top-p 1: "
             "more single samples near trained, 20 % exact copies)")] = None,
    head: Annotated[str, typer.Option(help="generated | reset (fresh classifier) | fit (classifier solved on your data)")] = "generated",
    prior: Annotated[Optional[int], typer.Option("--prior", help="prior artifact id (default: latest)")] = None,
    novel: Annotated[bool, typer.Option("--novel/--allow-copies", help="drop samples that are exact token copies of "
                                        "a zoo member and draw more (up to 8 rounds, hotter each); retrieval is `query`")] = True,
    min_distance: Annotated[float, typer.Option(help="--novel also drops samples nearer to a zoo member than this "
                                                "share of its norm (0.25: a quarter)")] = 0.0,
    quality: Annotated[Optional[str], typer.Option(
        help="top | any: with a prior trained with --quality, the members to draw like: the top half of their "
             "group (default) or all of them")] = None,
    out: Annotated[Optional[Path], typer.Option(help="write the best model here")] = None,
    fmt: Annotated[str, typer.Option("--format", help="safetensors | onnx | native | timm")] = "safetensors",
    overwrite: OverwriteOpt = False,
    register: Annotated[bool, typer.Option(help="add the best model to the registry (kind generated)")] = False,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """Generate weights for ARCH conditioned on a dataset (and task text); report novelty."""
    from igpg_zoo.igpg.generate import Generator, check_sample_count, register_generated
    from igpg_zoo.igpg.sampling import SamplingSettings

    check_sample_count(n)  # before any data is read or the registry opened
    if quality is not None and quality not in ("top", "any"):
        raise ConfigError(f"--quality must be top or any, got '{quality}'")
    if out is not None:
        from igpg_zoo.export.weights import check_out

        check_out(fmt, out, overwrite)  # before any sampling: --out can be written
    name, ds, emb = _target_data(dataset, data, label, arch)
    task = task or ds.info.description  # what zoo build records as a record's task text
    settings = SamplingSettings(temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
    with _zoo(registry, blobs) as zoo:
        gen = Generator.load(zoo, prior)
        results = gen.generate(arch, task=task, data=ds, data_embedding=emb, n=n, settings=settings, seed=seed,
                               head=head, dataset_name=name, novel=novel,
                               min_distance=min_distance, quality=quality)
        best = results[0]
        report = {"results": [_summary(g, i) for i, g in enumerate(results)], "provenance": best.provenance}
        if out is not None:
            from igpg_zoo.export import export_weights

            export_weights(arch, best.weights, fmt, out, meta={"provenance": best.provenance}, overwrite=overwrite)
            report["out"] = str(out)
        if register:
            added = register_generated(zoo, best, task, name, ds, emb)
            report["registered_id"], report["registered_new"] = added.checkpoint.id, added.created
    if json_out:
        typer.echo(json.dumps(report, default=str))
        return
    if report["provenance"]["conditioning"].get("arch_in_training") is False:
        typer.echo(f"note: the prior never trained on {arch}; expect near-chance accuracy before fine-tuning "
                   "(--head fit solves the classifier on your data)")
    for s in report["results"]:
        _print_result(s)
    if "out" in report:
        typer.echo(f"wrote {report['out']} ({fmt})")
    if "registered_id" in report:
        again = "" if report["registered_new"] else "; these weights were registered before"
        typer.echo(f"registered as #{report['registered_id']} (kind generated{again})")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(train)
    app.command()(generate)
