"""``igpg-zoo zoo build`` (train and register a preset zoo) and ``igpg-zoo datasets`` (what is available).

Nothing heavy at import time: torch, sklearn and the training code load inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, RegistryOpt
from igpg_zoo.cli.tables import print_table
from igpg_zoo.errors import ZooError

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
            from igpg_zoo.progress import Bar

            with Bar(f"zoo build {preset}", total=total, unit="runs") as bar:
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
    out: Annotated[Optional[str], typer.Option("--out", help="write the described task's splits to this .npz "
                                               "(arrays x, y, x_test, y_test), the format --data reads")] = None,
) -> None:
    """List the built-in datasets (and whether each is available here), or describe one task or your data."""
    from igpg_zoo.data import SOURCES, is_available

    if out and not show:
        raise ZooError("--out needs a task to write, e.g. igpg-zoo datasets 'digits[classes=4,6,9][rot=90]' --out my.npz")
    if show or data:
        from igpg_zoo.data import load_dataset
        from igpg_zoo.data.userdata import load_user_data

        ds = load_user_data(data, label=label) if data else load_dataset(show)
        if out:
            _write_npz(ds, Path(out))
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
    print_table([[r["name"], r["modality"], "x".join(map(str, r["input_shape"])), r["n_classes"],
                  "yes" if r["available"] else "no (apt-get install dataset-fashion-mnist)", r["description"]]
                 for r in rows], ["name", "modality", "shape", "classes", "available", "description"], right=["classes"])
    typer.echo("generated tasks: NAME[classes=..][perm=..][rot=..][flip][invert][noise=..][size=..][rgb][colour=..][n=..]"
               "[ntest=..] "
               "(docs/datasets.md)")


def _write_npz(ds, out: Path) -> None:
    """Write a task's splits where --data can read them; refuse to replace a file, write atomically."""
    import os
    import tempfile

    import numpy as np

    if out.suffix != ".npz":
        raise ZooError(f"--out {out}: name a .npz file")
    if out.exists():
        raise ZooError(f"--out {out} exists; remove it or name another file")
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, x=ds.x_train, y=ds.y_train, x_test=ds.x_test, y_test=ds.y_test)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    typer.echo(f"wrote {out} ({len(ds.y_train)} training + {len(ds.y_test)} test samples)", err=True)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.add_typer(zoo_app, name="zoo")
    app.command("datasets")(datasets)
