"""``igpg-zoo finetune``: fine-tune from the front door's answer for the data (the default), a record, a
text query's hit or a generated draw; a thin layer
over ``igpg_zoo.finetune.finetune``. Nothing heavy at module level; torch loads when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, RegistryOpt
from igpg_zoo.finetune.config import COMPARE_STARTS, HEADS, FinetuneConfig

_D = FinetuneConfig()


def finetune(
    id: Annotated[Optional[int], typer.Argument(help="record id to start from")] = None,
    data: Annotated[Optional[Path], typer.Option(help="your labelled data: .npz, .csv or image folder")] = None,
    query: Annotated[Optional[str], typer.Option(help="start from the best hit of this text query that takes the data")] = None,
    generated: Annotated[bool, typer.Option("--generated", help="start from the best of several generated draws")] = False,
    arch: Annotated[Optional[str], typer.Option(help="architecture of the answer or generated start (default: proposed from the zoo)")] = None,
    compare: Annotated[Optional[str], typer.Option(
        help=f"also run these starts with the same schedule and print the curves side by side: "
             f"comma-separated from {', '.join(COMPARE_STARTS)}")] = None,
    epochs: Annotated[int, typer.Option(help="passes over the training part")] = _D.epochs,
    max_steps: Annotated[Optional[int], typer.Option(help="stop after this many optimiser steps")] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate")] = _D.lr,
    batch: Annotated[int, typer.Option(help="samples per step")] = _D.batch_size,
    patience: Annotated[int, typer.Option(help="epochs without a better held-out accuracy before stopping (0: never)")] = _D.patience,
    val_fraction: Annotated[float, typer.Option(help="share of your training split held out for early stopping")] = _D.val_fraction,
    head: Annotated[str, typer.Option(help=f"classifier of the start: {' | '.join(HEADS)}")] = _D.head,
    target: Annotated[float, typer.Option(help="--compare: steps until this share of random init's final accuracy")] = _D.target_fraction,
    seed: Annotated[int, typer.Option(help="split, data order, fresh heads and random init")] = _D.seed,
    label: Annotated[str, typer.Option("--label", help="label column of a --data .csv")] = "label",
    name: Annotated[Optional[str], typer.Option(help="name of the registered model")] = None,
    register: Annotated[bool, typer.Option("--register/--no-register", help="add the result to the registry (kind finetuned)")] = True,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, as_json: JsonOpt = False,
) -> None:
    """Fine-tune on --data from the answer 'query --data' gives (or record ID, a --query hit, a --generated draw); register it with its lineage."""
    from igpg_zoo.errors import ConfigError
    from igpg_zoo.finetune import FinetuneRequest, finetune as run_finetune, parse_compare
    from igpg_zoo.zoo import open_zoo

    if data is None:
        raise ConfigError("fine-tuning needs your labelled data: pass --data PATH (.npz, .csv or image folder)")
    cfg = FinetuneConfig(lr=lr, batch_size=batch, epochs=epochs, max_steps=max_steps, patience=patience,
                         val_fraction=val_fraction, seed=seed, head=head, target_fraction=target)
    request = FinetuneRequest(data, record_id=id, query=query, generated=generated, arch=arch,
                              compare=parse_compare(compare), config=cfg, label=label, register=register,
                              name=name).check()
    with open_zoo(registry, blobs) as zoo, _progress(not as_json) as report:
        result = run_finetune(zoo, request, progress=report)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), default=str))
        return
    _print(result)


class _progress:
    """A rich progress bar on stderr, one task per run; a no-op callback when ``show`` is off."""

    def __init__(self, show: bool):
        self.show, self.bar, self.tasks = show, None, {}

    def __enter__(self):
        if not self.show:
            return None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[acc]}"), TimeElapsedColumn(),
                            console=Console(stderr=True), transient=True)
        self.bar.start()
        return self.update

    def update(self, label: str, step: int, total: int, val) -> None:
        if label not in self.tasks:
            self.tasks[label] = self.bar.add_task(f"fine-tune from {label}", total=total, acc="")
        fields = {"acc": f"held-out {val:.3f}"} if val is not None else {}
        self.bar.update(self.tasks[label], completed=step, **fields)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print(result) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    run = result.primary
    t = run.trained
    start = run.start
    origin = f"#{start.parent_id}" if start.parent_id is not None else start.kind
    stop = f"stopped early at step {t.steps_run}" if t.stopped_early else f"{t.steps_run} steps"
    console.print(f"fine-tuned {run.arch} from {origin} (head {run.head}) on {result.data['name']}: "
                  f"test acc {run.test_acc:.3f}, held-out {t.best_val:.3f} at step {t.best_step} ({stop})")
    if result.record is not None:
        again = "" if result.created else "; the same weights were registered before"
        console.print(f"registered as #{result.record.id} (kind finetuned{again})")
    if result.comparison is None:
        return
    cmp = result.comparison
    table = Table(title=f"same schedule from each start: target {cmp['target']:.3f} = "
                        f"{cmp['target_fraction'] * 100:g} percent of {cmp['reference']}'s final held-out accuracy")
    for col in ["start", "arch", "head", "steps to target", "speed-up", *[f"acc@{b}" for b in cmp["budgets"]], "test acc"]:
        table.add_column(col, overflow="fold")
    for r in result.runs:
        row = cmp["starts"][r.label]
        steps = "never" if row["steps_to_target"] is None else str(row["steps_to_target"])
        speed = "–" if row["speedup"] is None else f"{row['speedup']:.1f}x"
        table.add_row(r.label, r.arch, r.head, steps, speed, *[f"{row['at'][str(b)]:.3f}" for b in cmp["budgets"]],
                      f"{r.test_acc:.3f}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("finetune")(finetune)
