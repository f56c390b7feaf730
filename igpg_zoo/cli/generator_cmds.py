"""``igpg-zoo train`` (tokenizer and/or prior, from a recipe) and ``igpg-zoo generate``.

Nothing heavy is imported at module level; torch comes in when a command runs. ``train`` runs
distributed when started by torchrun (``torchrun --nproc_per_node 2 -m igpg_zoo train ...``).
Settings that are not options live in YAML files: a recipe (igpg/recipe.py) for ``train``, the
sampling and copy settings (``GENERATE_KEYS``) for ``generate``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from igpg_zoo.cli.generator_report import count_bar, print_result, prior_note, step_bar, summary, train_lines
from igpg_zoo.cli.options import BlobsOpt, JsonOpt, OverwriteOpt, RegistryOpt
from igpg_zoo.errors import ConfigError

STAGES = ("tokenizer", "prior", "both")
ONLY_KEYS = ("arch", "dataset", "task", "kind")
SAMPLING_KEYS = ("temperature", "top_k", "top_p", "min_p")
#: --config keys of ``generate``: sampling, copies, standing asked, prior, a .csv's label column, memory limit.
GENERATE_KEYS = (*SAMPLING_KEYS, "drop_copies", "quality", "prior", "label", "memory_gb")


def _zoo(registry, blobs):
    from igpg_zoo.zoo import open_zoo

    return open_zoo(registry, blobs)


def _filters(only: list[str]) -> dict:
    """--only KEY=VALUE (repeatable) -> store filters {key: (values...)}."""
    out: dict[str, list[str]] = {}
    for item in only:
        key, sep, value = item.partition("=")
        if not sep or key not in ONLY_KEYS or not value:
            raise ConfigError(f"--only takes KEY=VALUE with KEY one of {', '.join(ONLY_KEYS)}, got '{item}'")
        out.setdefault(key, []).append(value)
    return {k: tuple(v) for k, v in out.items()}


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


def _recipe(name: str | None, config: Path | None, epochs: float | None, seed: int | None):
    from igpg_zoo.igpg.recipe import get_recipe, load_recipe

    recipe = load_recipe(config, base=name) if config is not None else get_recipe(name or "default")
    return recipe.with_overrides(epochs=epochs, seed=seed)


def _train_tokenizer(zoo, recipe, filters, holdout, device):
    from igpg_zoo.igpg.prior_dataset import select_records
    from igpg_zoo.igpg.tokenizer_train import train_tokenizer

    ids = [r.id for r in select_records(zoo, holdout, **filters)]
    return train_tokenizer(zoo, recipe.tokenizer, ids, seed=recipe.train.seed, progress=True, device=device,
                           recipe=recipe.to_dict())


def _train_prior(zoo, recipe, filters, holdout, checkpoint, resume, tokenizer_id, device):
    from igpg_zoo.igpg import distributed
    from igpg_zoo.igpg.prior_train import train_prior

    distributed.setup(device)
    main = distributed.is_main()
    update, close = step_bar("prior") if main else (None, None)
    scored, close_scored = count_bar("scoring members", "record") if main else (None, None)
    try:
        return train_prior(zoo, recipe, holdout=holdout, filters=filters, tokenizer_id=tokenizer_id, ckpt=checkpoint,
                           resume=resume, progress=update, device=distributed.local_device(device),
                           curation_progress=scored)
    finally:
        for done in (close_scored, close):
            if done is not None:
                done()
        distributed.cleanup()


def train(
    stage: Annotated[str, typer.Option(help="what to train: tokenizer | prior | both")] = "both",
    holdout_task: Annotated[Optional[list[str]], typer.Option(
        "--holdout-task", help="task (or glob) never trained on, for evaluation (repeatable)")] = None,
    only: Annotated[Optional[list[str]], typer.Option(
        "--only", help="train on these records only: arch=, dataset=, task= or kind=VALUE (repeatable)")] = None,
    recipe: Annotated[Optional[str], typer.Option(help="named recipe: default | fast | best")] = None,
    config: Annotated[Optional[Path], typer.Option(help="recipe YAML file (sections tokenizer, prior, train)")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="prior: passes over the zoo's sequences (overrides the recipe)")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed (overrides the recipe)")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N (under torchrun, cuda is each process's GPU)")] = "cpu",
    checkpoint: Annotated[Path, typer.Option(help="prior: resumable checkpoint file")] = Path("igpg-runs/prior.pt"),
    resume: Annotated[bool, typer.Option(help="prior: continue from --checkpoint")] = False,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """Train the generator from a recipe: the tokenizer, the prior, or both, with a task-disjoint hold-out."""
    if stage not in STAGES:
        raise ConfigError(f"--stage must be one of {', '.join(STAGES)}, got '{stage}'")
    resolved = _recipe(recipe, config, epochs, seed)  # every value checked before the registry opens
    device, filters, holdout = _check_device(device), _filters(only or []), list(holdout_task or [])
    out, tokenizer_id = {}, None
    with _zoo(registry, blobs) as zoo:
        from igpg_zoo.igpg.prior_train import check_memory

        check_memory(zoo, resolved, holdout, filters, stage, device)  # before any stage: nothing half-written
        if stage in ("tokenizer", "both"):
            art = _train_tokenizer(zoo, resolved, filters, holdout, device)
            out["tokenizer"], tokenizer_id = {"id": art.id, "name": art.name}, art.id
        if stage in ("prior", "both"):
            art = _train_prior(zoo, resolved, filters, holdout, checkpoint, resume, tokenizer_id, device)
            if art is not None:
                losses = art.provenance["losses"]
                out["prior"] = {"id": art.id, "name": art.name, "seconds": round(art.provenance["seconds"], 1),
                                "final_loss": losses[-1] if losses else None, "notes": train_lines(art.provenance)}
    if not out:
        return  # a non-zero rank under torchrun
    out["recipe"] = resolved.name
    if json_out:
        typer.echo(json.dumps(out))
        return
    for name in ("tokenizer", "prior"):
        if name in out:
            info = out[name]
            typer.echo(f"{name}: artifact #{info['id']} {info['name']}" + (prior_note(info) if name == "prior" else ""))
    for note in out.get("prior", {}).get("notes", []):
        typer.echo(f"note: {note}")


def _generate_options(config: Path | None) -> dict:
    """The --config YAML of ``generate``: a mapping of GENERATE_KEYS."""
    if config is None:
        return {}
    import yaml

    try:
        data = yaml.safe_load(Path(config).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {config}: {str(exc).splitlines()[0]}; fix the file") from None
    unknown = sorted(set(data) - set(GENERATE_KEYS)) if isinstance(data, dict) else ["(not a mapping)"]
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(map(str, unknown))} in {config}; known: {', '.join(GENERATE_KEYS)}")
    return data


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


def _request(arch: str, task, n: int, seed: int, head: str, opts: dict, data=None):
    """The GenerateRequest of the options (checked by its dataclasses); ``data``: (name, Dataset, embedding)."""
    from igpg_zoo.igpg.generate import GenerateRequest
    from igpg_zoo.igpg.sampling import SamplingSettings

    name, ds, emb = data or (None, None, None)
    extra = {k: opts[k] for k in ("drop_copies", "quality", "memory_gb") if k in opts}
    try:
        sampling = SamplingSettings(**{k: opts[k] for k in SAMPLING_KEYS if k in opts})
        return GenerateRequest(arch, task=task or (ds.info.description if ds is not None else None), data=ds,
                               data_embedding=emb, dataset_name=name, n=n, seed=seed, head=head, sampling=sampling,
                               **extra)
    except TypeError as exc:
        raise ConfigError(f"bad value in the generate config: {exc}") from None


def generate(
    arch: Annotated[str, typer.Option(help="architecture string to generate")],
    dataset: Annotated[Optional[str], typer.Option(help="built-in dataset or generated task name")] = None,
    data: Annotated[Optional[Path], typer.Option(help="your labelled data: .npz, .csv or image folder")] = None,
    task: Annotated[Optional[str], typer.Option(help="task text (default: the dataset's description)")] = None,
    n: Annotated[int, typer.Option("-n", help="samples, returned best first (on your data, else by the prior)")] = 5,
    seed: Annotated[int, typer.Option(help="sampling seed")] = 0,
    head: Annotated[str, typer.Option(help="generated | reset (fresh classifier) | fit (classifier solved on your data)")] = "generated",
    config: Annotated[Optional[Path], typer.Option(help="YAML of further settings: sampling, drop_copies, quality, prior, label, memory_gb")] = None,
    out: Annotated[Optional[Path], typer.Option(help="write the best model here")] = None,
    fmt: Annotated[str, typer.Option("--format", help="safetensors | onnx | native | timm")] = "safetensors",
    overwrite: OverwriteOpt = False,
    register: Annotated[bool, typer.Option(help="add the best model to the registry (kind generated)")] = False,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """Generate weights for ARCH conditioned on a dataset (and task text); report novelty."""
    from igpg_zoo.igpg.generate import Generator, register_generated

    opts = _generate_options(config)
    _request(arch, task, n, seed, "generated", opts)  # settings checked before any data is read
    if out is not None:
        from igpg_zoo.export.weights import check_out

        check_out(fmt, out, overwrite)  # before any sampling: --out can be written
    req = _request(arch, task, n, seed, head, opts, _target_data(dataset, data, opts.get("label", "label"), arch))
    with _zoo(registry, blobs) as zoo:
        results = Generator.load(zoo, opts.get("prior")).generate(req)
        best = results[0]
        report = {"results": [summary(g, i) for i, g in enumerate(results)], "provenance": best.provenance}
        if out is not None:
            from igpg_zoo.export import export_weights

            export_weights(arch, best.weights, fmt, out, meta={"provenance": best.provenance}, overwrite=overwrite)
            report["out"] = str(out)
        if register:
            added = register_generated(zoo, best, req)
            report["registered_id"], report["registered_new"] = added.checkpoint.id, added.created
    if json_out:
        typer.echo(json.dumps(report, default=str))
        return
    if report["provenance"]["conditioning"].get("arch_in_training") is False:
        typer.echo(f"note: the prior never trained on {arch}; expect near-chance accuracy before fine-tuning "
                   "(--head fit solves the classifier on your data)")
    for s in report["results"]:
        print_result(s)
    if "out" in report:
        typer.echo(f"wrote {report['out']} ({fmt})")
    if "registered_id" in report:
        again = "" if report["registered_new"] else "; these weights were registered before"
        typer.echo(f"registered as #{report['registered_id']} (kind generated{again})")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(train)
    app.command()(generate)
