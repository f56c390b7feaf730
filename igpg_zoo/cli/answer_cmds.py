"""``query`` (the front door: search, or with --data / --mode generate the answer) and ``select``.

Text-only ``query`` imports nothing heavy (no torch, no sentence-transformers beyond what the
configured embedder needs); --data and generation import torch inside the answer package.
``answers`` shows recorded answers and reproduces one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from igpg_zoo.answer.settings import ESTIMATES, AnswerSettings, SelectSettings
from igpg_zoo.cli.options import BlobsOpt, JsonOpt, OverwriteOpt, RegistryOpt
from igpg_zoo.cli.registry_cmds import (
    ArchFilter,
    DatasetFilter,
    KindFilter,
    TagFilter,
    TaskFilter,
    WhereFilter,
    _check_kinds,
    _echo_json,
    _export_best,
    _metrics_text,
    _record_json,
    _shown,
    _table,
    _zoo,
)

A, S = AnswerSettings(), SelectSettings()
DataOpt = Annotated[Optional[Path], typer.Option("--data", help="your labelled data: .npz (x, y), .csv or image folder")]
LabelOpt = Annotated[str, typer.Option("--label", help="label column of a --data .csv")]
EstimateOpt = Annotated[str, typer.Option("--estimate", help=f"{' | '.join(ESTIMATES)}: how a start is scored on "
                                                              "held-out samples of your data (docs/frontdoor.md)")]


def _filters(dataset, task, kind, tag, where) -> dict:
    return {k: tuple(v) for k, v in (("dataset", dataset), ("task", task), ("kind", kind), ("tags", tag),
                                     ("where", where)) if v}


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _row(table, *cells: str) -> None:
    """A table row of plain text: brackets in names (``digits[classes=2,5,8]``) are not rich markup."""
    from rich.markup import escape

    table.add_row(*(escape(c) for c in cells))


def _answer_table(result, k: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(box=None, pad_edge=False)
    for col in ("start", "from", "arch", "trained on / draw", "estimate", "stored acc", "params", "note"):
        table.add_column(col, overflow="fold", no_wrap=col == "arch")
    scored = result.inputs.get("data") is not None
    rows = (sorted(result.candidates, key=lambda c: -c.estimate)[:k] + result.baselines if scored
            else result.retrieved[:k] + result.generated[:k])
    for c in rows:
        r, draw = c.record, c.draw or {}
        nearest = draw.get("nearest") or {}
        if draw.get("replica_of"):
            note = "a draw replicated it"
        elif c.source == "random":
            note = "reference, never chosen"
        elif c.source == "retrieved":
            note = f"best of {c.group_size}" if c.group_size > 1 else ""
        else:
            note = f"nearest #{nearest['id']} at {100 * nearest.get('relative_distance', 0):.1f} %" if nearest else ""
        where = (_shown(r.dataset or r.task) if r is not None else
                 f"log-lik {draw['log_likelihood']:.1f}" if draw.get("log_likelihood") is not None else "-")
        _row(table, c.label, c.source, _shown(c.arch), where, _fmt(c.estimate),
             _fmt(r.metric("acc") if r is not None else None), f"{r.n_params:,}" if r is not None else "-", note)
    Console().print(table)


def _print_answer(result, k: int) -> None:
    _answer_table(result, k)
    d = result.decision
    typer.echo(f"decision: {d.choice} ({d.mode}): {d.reason}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.proposals:
        shown = ", ".join(f"{p.arch} ({p.members} stored{', generator' if p.generator else ''})"
                          for p in result.proposals[:4])
        typer.echo(f"architectures for your data: {shown}; pass one with --arch")
    if result.out:
        typer.echo(f"wrote {result.out}")
    if result.id is not None:
        typer.echo(f"answer #{result.id} recorded ('igpg-zoo answers {result.id}' shows it)")


def _search(text, k, arch, dataset, task, kind, tag, where, registry, blobs, json_out, out, fmt, overwrite) -> None:
    """Text-only query: semantic search within the filters (the flat list of before)."""
    from igpg_zoo.errors import ConfigError

    if not text:
        raise ConfigError("give TEXT to search, --data PATH to get an answer for your data, or --mode generate")
    with _zoo(registry, blobs) as zoo:
        hits = zoo.query(text, k=k, arch=arch or (), dataset=dataset or (), task=task or (), where=where or (),
                         kind=kind or (), tags=tag or ())
        report = _export_best(zoo, hits, fmt or "safetensors", out, overwrite) if out is not None else None
    if json_out:
        _echo_json([{"score": round(h.score, 6), **_record_json(h.checkpoint)} for h in hits])
        return
    if report is not None:
        typer.echo(f"exported #{hits[0].checkpoint.id}: {report.summary()}", err=True)
    if not hits:
        typer.echo("nothing matches")
        return
    _table([[f"{h.score:.3f}", f"#{h.checkpoint.id}", h.checkpoint.kind, h.checkpoint.name, h.checkpoint.arch,
             h.checkpoint.task, h.checkpoint.dataset, _metrics_text(h.checkpoint)] for h in hits],
           ["score", "id", "kind", "name", "arch", "task", "dataset", "metrics"])


def query(
    text: Annotated[Optional[str], typer.Argument(help="what you are looking for, in words")] = None,
    k: Annotated[int, typer.Option("-k", "--top", help="how many results")] = 10,
    arch: ArchFilter = None, dataset: DatasetFilter = None, task: TaskFilter = None, kind: KindFilter = None,
    tag: TagFilter = None, where: WhereFilter = None,
    data: DataOpt = None, label: LabelOpt = "label",
    mode: Annotated[str, typer.Option(help="auto | retrieve | generate: how the start is chosen")] = A.mode,
    all_members: Annotated[bool, typer.Option("--all", help="every member, not one per task and architecture")] = False,
    estimate: EstimateOpt = A.estimate,
    n: Annotated[int, typer.Option("-n", help="draws per generated architecture")] = A.n_generate,
    seed: Annotated[int, typer.Option(help="sample split and sampling seed")] = A.seed,
    prior: Annotated[Optional[int], typer.Option("--prior", help="prior artifact id (default: latest)")] = None,
    record: Annotated[bool, typer.Option(help="record the answer in the registry")] = True,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
    out: Annotated[Optional[Path], typer.Option("--out", help="write the answer's weights (the best hit) to PATH")] = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="with --out: onnx | timm | native | safetensors (default)")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Which weights to start from: search by TEXT, and with --data score stored and generated starts on your data."""
    from igpg_zoo.errors import ConfigError

    _check_kinds(kind)
    if fmt is not None and out is None:
        raise ConfigError(f"--format {fmt} exports the best hit and needs --out PATH; add --out or drop --format")
    if k < 1:
        raise ConfigError(f"-k must be at least 1, got {k}")
    if data is None and mode != "generate":
        if mode not in ("auto", "retrieve"):
            raise ConfigError(f"--mode must be one of auto, retrieve, generate, got '{mode}'")
        _search(text, k, arch, dataset, task, kind, tag, where, registry, blobs, json_out, out, fmt, overwrite)
        return
    from dataclasses import replace

    settings = replace(A, mode=mode, k=k, all_members=all_members, estimate=estimate, n_generate=n, seed=seed)
    with _zoo(registry, blobs) as zoo:
        result = zoo.answer(text, data, tuple(arch or ()), filters=_filters(dataset, task, kind, tag, where),
                            settings=settings, out=out, fmt=fmt or "safetensors", overwrite=overwrite,
                            record=record, label=label, prior_id=prior)
    if json_out:
        _echo_json(result.to_dict())
        return
    _print_answer(result, k)


def _select_table(sel) -> None:
    from rich.console import Console
    from rich.table import Table

    rank = {o: {cid: i + 1 for i, cid in enumerate(ids)} for o, ids in sel.ranks.items()}
    table = Table(box=None, pad_edge=False)
    for col in ("#", "id", "arch", "trained on", "estimate", "rank by acc", "stored acc", "rank by params", "params"):
        table.add_column(col, overflow="fold", no_wrap=col == "arch")
    for i, r in enumerate(sel.rows, 1):
        rec = r.record
        _row(table, str(i), f"#{rec.id}", _shown(r.arch), _shown(rec.dataset or rec.task), _fmt(r.estimate),
             str(rank["acc"][rec.id]), _fmt(rec.metric("acc")), str(rank["params"][rec.id]), f"{rec.n_params:,}")
    Console().print(table)


class _LazyBar:
    """A rich progress bar on stderr that appears with the first update (so an early error prints alone)."""

    def __init__(self, label: str):
        self.label, self.bar, self.job = label, None, None

    def update(self, done: int, total: int) -> None:
        if self.bar is None:
            from rich.console import Console
            from rich.progress import Progress

            self.bar = Progress(console=Console(stderr=True), transient=True)
            self.bar.start()
            self.job = self.bar.add_task(self.label, total=total)
        self.bar.update(self.job, completed=done, total=total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def select(
    data: Annotated[Path, typer.Option("--data", help="your labelled data: .npz (x, y), .csv or image folder")],
    arch: ArchFilter = None, dataset: DatasetFilter = None, task: TaskFilter = None, kind: KindFilter = None,
    tag: TagFilter = None, where: WhereFilter = None,
    k: Annotated[int, typer.Option("-k", "--top", help="how many rows")] = S.k,
    estimate: EstimateOpt = S.estimate,
    order: Annotated[str, typer.Option(help="estimate | acc (stored accuracy) | params: the shortlist's order")] = S.order,
    label: LabelOpt = "label", seed: Annotated[int, typer.Option(help="sample split seed")] = S.seed,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """Rank stored members as starts for your data: the estimate and static baselines side by side (cached)."""
    from dataclasses import replace

    _check_kinds(kind)
    settings = replace(S, k=k, estimate=estimate, order=order, seed=seed)
    bar = _LazyBar("scoring members")
    try:
        with _zoo(registry, blobs) as zoo:
            sel = zoo.select(data, tuple(arch or ()), filters=_filters(dataset, task, kind, tag, where),
                             settings=settings, label=label, progress=bar.update)
    finally:
        bar.close()
    if json_out:
        _echo_json(sel.to_dict())
        return
    _select_table(sel)
    fresh = sel.scored - sel.cache_hits
    typer.echo(f"{sel.scored} member(s) take your data; {fresh} scored now, {sel.cache_hits} from the cache; "
               f"ordered by {sel.settings.order} ({sel.settings.estimate} estimate on a held-out part of your data)")


def answers(
    answer_id: Annotated[Optional[int], typer.Argument(metavar="[ID]", help="answer id (default: list them)")] = None,
    reproduce: Annotated[bool, typer.Option(help="make answer ID again (give the same --data) and compare")] = False,
    data: DataOpt = None,
    limit: Annotated[int, typer.Option(help="at most this many when listing")] = 20,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """List recorded answers, show one, or reproduce one (--reproduce --data PATH)."""
    from igpg_zoo.errors import ConfigError

    if reproduce and answer_id is None:
        raise ConfigError("--reproduce needs the answer ID")
    with _zoo(registry, blobs) as zoo:
        if answer_id is None:
            found = zoo.answers.list(limit)
        else:
            found = [zoo.answers.get(answer_id)]
        again = None
        if reproduce:
            from igpg_zoo.answer import reproduce as run

            again = run(zoo, answer_id, data)
    if json_out:
        out = [a.to_dict() for a in found] if answer_id is None else found[0].to_dict()
        if again is not None:
            out = {"recorded": out, "again": again.to_dict(), "same_decision": _same(found[0].decision, again)}
        _echo_json(out)
    else:
        for a in found:
            d = a.decision
            typer.echo(f"#{a.id} {a.created_at[:19]} {d.get('choice')}: {_shown(d.get('reason', ''))}")
        if again is not None:
            same = _same(found[0].decision, again)
            typer.echo(f"again: {again.decision.choice}: {again.decision.reason}")
            typer.echo("same decision" if same else "a different decision")
    if again is not None and not _same(found[0].decision, again):
        raise SystemExit(1)


def _same(recorded: dict, again) -> bool:
    now = again.decision.to_dict()
    return recorded.get("choice") == now["choice"] and recorded.get("chosen") == now["chosen"]


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(query)
    app.command()(select)
    app.command()(answers)
