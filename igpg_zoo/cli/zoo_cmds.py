"""``igpg-zoo zoo build`` (train and register a preset zoo) and ``igpg-zoo datasets`` (what is available).

Nothing heavy at import time: torch, sklearn and the training code load inside the commands.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, RegistryOpt

zoo_app = typer.Typer(name="zoo", help="Build a model zoo offline: train presets of small models and register them.",
                      no_args_is_help=True)


@zoo_app.command("build")
def build(
    preset: Annotated[str, typer.Option("--preset", help="tiny (seconds) | demo (minutes) | full (benchmarks) | timm (timm models, 3x32x32)")] = "demo",
    seed: Annotated[int, typer.Option("--seed", help="build seed: same seed, same weights")] = 0,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    threads: Annotated[int, typer.Option("--threads", help="torch threads (1 is fastest for tiny models)")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Train a preset zoo and register every kept checkpoint; re-running resumes (finished runs are skipped)."""
    from igpg_zoo.zoo import open_zoo
    from igpg_zoo.zoobuild.build import build_zoo
    from igpg_zoo.zoobuild.plan import plan_runs
    from igpg_zoo.zoobuild.presets import get_preset

    spec = get_preset(preset)
    total = len(plan_runs(spec, seed))
    with open_zoo(registry, blobs) as zoo:
        if as_json:
            report = build_zoo(zoo, preset, seed, threads=threads)
        else:
            with typer.progressbar(length=total, label=f"zoo build {preset}", file=None) as bar:
                report = build_zoo(zoo, preset, seed, on_run=lambda run, status: bar.update(1), threads=threads)
    summary = {"preset": report.preset, "seed": report.seed, "runs": report.runs, "trained": report.trained,
               "skipped": report.skipped, "added": report.added, "existing": report.existing,
               "checkpoints": len(report.ids), "seconds": round(report.seconds, 1), "tasks": len(spec.tasks)}
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"preset {preset}: {summary['checkpoints']} checkpoints over {summary['tasks']} tasks "
               f"({report.added} added, {report.existing} already there; runs trained {report.trained}, "
               f"skipped {report.skipped}) in {summary['seconds']} s")


@zoo_app.command("presets")
def presets(as_json: JsonOpt = False) -> None:
    """List the presets and their tasks."""
    from igpg_zoo.zoobuild.presets import PRESETS

    rows = [{"name": p.name, "about": p.about, "tasks": p.tasks, "holdout": list(p.holdout)} for p in PRESETS.values()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        typer.echo(f"{r['name']}: {len(r['tasks'])} tasks - {r['about']}")


def datasets(
    as_json: JsonOpt = False,
    show: Annotated[Optional[str], typer.Argument(help="a dataset or task name to describe, e.g. 'digits[classes=3,5,8]'")] = None,
    data: Annotated[Optional[str], typer.Option("--data", help="describe your own data: .npz, .csv or image folder")] = None,
    label: Annotated[str, typer.Option("--label", help="label column of a .csv")] = "label",
) -> None:
    """List the built-in datasets (and whether each is available here), or describe one task or your data."""
    from igpg_zoo.data import SOURCES, is_available

    if show or data:
        from igpg_zoo.data import load_dataset
        from igpg_zoo.data.userdata import load_user_data

        ds = load_user_data(data, label=label) if data else load_dataset(show)
        row = {"name": ds.name, "modality": ds.info.modality, "input_shape": list(ds.info.input_shape),
               "n_classes": ds.info.n_classes, "classes": list(ds.class_names), "train": len(ds.y_train),
               "test": len(ds.y_test), "description": ds.info.description, "source": ds.info.source}
        typer.echo(json.dumps(row, indent=2) if as_json else "\n".join(f"{k}: {v}" for k, v in row.items()))
        return
    rows = []
    for name, src in SOURCES.items():
        info = src.info
        rows.append({"name": name, "modality": info.modality, "input_shape": list(info.input_shape),
                     "n_classes": info.n_classes, "available": is_available(name), "source": info.source,
                     "description": info.description})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(f"{'name':<14} {'modality':<9} {'shape':<10} {'classes':>7}  available  description")
    for r in rows:
        shape = "x".join(map(str, r["input_shape"]))
        avail = "yes" if r["available"] else "no (apt-get install dataset-fashion-mnist)"
        typer.echo(f"{r['name']:<14} {r['modality']:<9} {shape:<10} {r['n_classes']:>7}  {avail:<9}  {r['description']}")
    typer.echo("generated tasks: NAME[classes=..][perm=..][rot=..][flip][invert][noise=..][size=..][rgb][colour=..][n=..][ntest=..] "
               "(docs/datasets.md)")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.add_typer(zoo_app, name="zoo")
    app.command("datasets")(datasets)
