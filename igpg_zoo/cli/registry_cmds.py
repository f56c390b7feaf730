"""Registry commands: add, list, show, remove, verify, reindex (``query`` lives in answer_cmds).

Nothing heavy is imported at module level: ``list`` and ``--help`` never load torch,
sentence-transformers or faiss. Each command parses, calls the Zoo, and prints.
"""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, OverwriteOpt, RegistryOpt

ArchFilter = Annotated[
    Optional[list[str]], typer.Option("--arch", help="architecture; * and ? match any text (repeat to OR)")
]
DatasetFilter = Annotated[
    Optional[list[str]], typer.Option("--dataset", help="dataset; * and ? allowed (repeat to OR)")
]
TaskFilter = Annotated[Optional[list[str]], typer.Option("--task", help="task; * and ? allowed (repeat to OR)")]
KindFilter = Annotated[Optional[list[str]], typer.Option("--kind", help="trained|finetuned|generated|imported")]
TagFilter = Annotated[Optional[list[str]], typer.Option("--tag", help="tag; * and ? allowed (repeat to OR)")]
WhereFilter = Annotated[
    Optional[list[str]], typer.Option("--where", help="metric condition such as 'acc>=0.9' (repeat to AND)")
]


def _zoo(registry: str | None, blobs: str | None):
    """The registry, read through ``sqlite3`` where it is a SQLite file (a command reads once and exits)."""
    from igpg_zoo.config import resolve_config
    from igpg_zoo.zoo import Zoo

    return Zoo(resolve_config(registry, blobs), light_reads=True)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, sort_keys=True))


def _record_json(record) -> dict[str, Any]:
    """``Checkpoint.to_dict()``, except that a metric measured on several datasets keeps every value:
    the one on the record's dataset (or the first) under its name, the others under ``name@dataset``."""
    out = record.to_dict()
    metrics: dict[str, dict[str, Any]] = {}
    ordered = sorted(record.metrics, key=lambda m: (m.name, m.dataset != record.dataset, m.dataset))
    for m in ordered:
        key = m.name if m.name not in metrics else f"{m.name}@{m.dataset}"
        metrics[key] = {"value": m.value, "dataset": m.dataset}
    out["metrics"] = metrics
    return out


def _metrics_text(record) -> str:
    return " ".join(f"{m.name}={m.value:.4g}" + (f"@{m.dataset}" if m.dataset != record.dataset else "")
                    for m in record.metrics)


def _shown(value) -> str:
    """``value`` as text for a terminal: control and format characters (newlines, tabs, escape
    sequences) written as their escapes, so a name cannot break a table or restyle the terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(c.encode("unicode_escape").decode("ascii") if unicodedata.category(c) in _UNSHOWN else c
                   for c in text)


_UNSHOWN = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}  # controls, format, surrogates, private, unassigned, breaks


def _table(rows: list[list[str]], header: list[str]) -> None:
    """A rich table (``cli.tables``) of values shown safely (``_shown``); numbers right-aligned."""
    from igpg_zoo.cli.tables import print_table

    print_table([[_shown(c) for c in row] for row in rows], header, right=("params", "score"))


def _summary(record) -> str:
    where = _shown(record.dataset or "-")
    return (f"#{record.id} {_shown(record.name)} [{_shown(record.arch)}] {where} ({record.n_params:,} params, "
            f"sha {record.sha256[:12]})")


# -- add ---------------------------------------------------------------------------------------


def _flag_fields(arch, task, dataset, metric, tag, license, source, name) -> dict[str, Any]:
    from igpg_zoo.registry.manifest import parse_metric

    values = {"arch": arch, "task": task, "dataset": dataset, "license": license, "source": source, "name": name}
    fields: dict[str, Any] = {k: v for k, v in values.items() if v is not None}
    if metric:
        fields["metrics"] = tuple(parse_metric(m) for m in metric)
    if tag:
        fields["tags"] = tuple(tag)
    return fields


def _read_native(path: Path):
    from igpg_zoo.adapters import loaded_adapters
    from igpg_zoo.errors import CheckpointError

    for adapter in loaded_adapters():
        found = getattr(adapter, "read_native", lambda _p: None)(path)
        if found is not None:
            return found
    raise CheckpointError(f"no adapter recognises folder {path}; pass a checkpoint file, or "
                          "--manifest zoo.yaml to import the folder's models")


def _add_one(zoo, path: Path, flags: dict[str, Any], meta_file: Path | None, as_json: bool) -> None:
    from igpg_zoo.registry.labels import labelled_fields
    from igpg_zoo.registry.manifest import sidecar_fields, to_meta
    from igpg_zoo.registry.metadata import read_yaml_fields

    base = sidecar_fields(path) if path.is_file() else {}
    extra = read_yaml_fields(meta_file) if meta_file else {}
    if path.is_dir():
        arch, weights = _read_native(path)
        fields = labelled_fields(path, {"arch": arch, "name": path.name}, base, extra, flags)
        result = zoo.add_weights(weights, to_meta(fields, str(path)))
    else:  # the file's own metadata (arch; kind and provenance of generated weights) comes first
        fields = labelled_fields(path, {"name": path.stem}, base, extra, flags)
        result = zoo.add(path, to_meta(fields, str(path)))
    if as_json:
        _echo_json({**_record_json(result.checkpoint), "created": result.created})
    else:
        typer.echo(("added " if result.created else "already registered ") + _summary(result.checkpoint))


def _entry_items(entries, flags, refused: list[tuple[str, str]], names: list[str], bar):
    """(weights, meta) per readable manifest entry; unreadable ones go to ``refused``."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.errors import ZooError
    from igpg_zoo.registry.ingest import read_for_add
    from igpg_zoo.registry.labels import labelled_fields
    from igpg_zoo.registry.manifest import to_meta

    for entry in entries:
        try:
            if entry.path.is_dir():
                arch, weights = _read_native(entry.path)
                fields = labelled_fields(entry.path, {"arch": arch, "name": entry.path.name}, entry.fields, flags)
            else:
                fields = labelled_fields(entry.path, {"name": entry.path.stem}, entry.fields, flags)
            meta = to_meta(fields, str(entry.path))
            if not entry.path.is_dir():
                weights = read_for_add(get_adapter(meta.arch), entry.path)
        except ZooError as err:
            refused.append((str(entry.path), str(err)))
            bar.update(1)
            continue
        names.append(str(entry.path))
        bar.update(1)
        yield weights, meta


def _add_manifest(zoo, folder: Path, manifest: Path, flags: dict[str, Any], as_json: bool) -> None:
    from igpg_zoo.registry.manifest import read_manifest
    from igpg_zoo.zoo import BULK_BATCH

    entries = read_manifest(manifest, folder)
    refused: list[tuple[str, str]] = []
    names: list[str] = []
    from igpg_zoo.progress import Bar

    with Bar("adding", total=len(entries), unit="models") as bar:
        results = zoo.add_many(_entry_items(entries, flags, refused, names, bar), batch=BULK_BATCH,
                               on_error=lambda pos, err: refused.append((names[pos], str(err))))
    added = [r.checkpoint for r in results if r.created]
    duplicates = [r.checkpoint for r in results if not r.created]
    if as_json:
        _echo_json({"added": [c.id for c in added], "duplicates": [c.id for c in duplicates],
                    "refused": [{"path": p, "reason": why} for p, why in refused]})
    else:
        for record in added:
            typer.echo("added " + _summary(record))
        for record in duplicates:
            typer.echo("already registered " + _summary(record))
        for path, why in refused:
            typer.echo(f"refused {path}: {why}")
        typer.echo(f"{len(added)} added, {len(duplicates)} duplicate(s), {len(refused)} refused")
    if refused:
        raise SystemExit(1)  # typer.Exit(1) is lost by app.main (standalone_mode=False returns it)


def add(
    path: Annotated[Path, typer.Argument(help="checkpoint file (.safetensors/.pt/.pth/.bin) or folder")],
    arch: Annotated[Optional[str], typer.Option(help="architecture string (see 'igpg-zoo adapters')")] = None,
    task: Annotated[Optional[str], typer.Option(help="task, free text")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="dataset the model was trained on")] = None,
    metric: Annotated[Optional[list[str]], typer.Option("--metric", "-m",
                      help="NAME=VALUE or NAME@DATASET=VALUE (repeatable)")] = None,
    tag: Annotated[Optional[list[str]], typer.Option("--tag", help="tag (repeatable)")] = None,
    license: Annotated[Optional[str], typer.Option(help="license of the weights")] = None,
    source: Annotated[Optional[str], typer.Option(help="where the weights come from")] = None,
    name: Annotated[Optional[str], typer.Option(help="display name (default: the file name)")] = None,
    meta: Annotated[Optional[Path], typer.Option(help="YAML metadata file (default: PATH.yaml if present)")] = None,
    manifest: Annotated[Optional[Path], typer.Option(help="YAML manifest listing the models of folder PATH")] = None,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a checkpoint (or a folder with --manifest) to the registry; adding it again changes nothing."""
    from igpg_zoo.errors import CheckpointError

    flags = _flag_fields(arch, task, dataset, metric, tag, license, source, name)
    if manifest is not None and not path.is_dir():
        raise CheckpointError(f"--manifest imports a folder, but {path} is not one")
    if not path.exists():
        raise CheckpointError(f"{path} does not exist; give a checkpoint file or a folder")
    with _zoo(registry, blobs) as zoo:
        if manifest is not None:
            _add_manifest(zoo, path, manifest, flags, json_out)
        else:
            _add_one(zoo, path, flags, meta, json_out)


# -- list / show / query -------------------------------------------------------------------------


def list_(
    arch: ArchFilter = None, dataset: DatasetFilter = None, task: TaskFilter = None, kind: KindFilter = None,
    tag: TagFilter = None, where: WhereFilter = None,
    sort: Annotated[Optional[str], typer.Option(help="metric name (or id, name, created_at, n_params)")] = None,
    ascending: Annotated[bool, typer.Option("--asc", help="smallest first")] = False,
    limit: Annotated[Optional[int], typer.Option(help="at most this many")] = None,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """List checkpoints, filtered (values of one option ORed, options ANDed) and sorted."""
    from igpg_zoo.errors import ConfigError

    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {limit}")
    _check_kinds(kind)
    with _zoo(registry, blobs) as zoo:
        if sort is not None and not zoo.store.sort_is_known(sort):
            raise ConfigError(f"no record has a metric '{sort}'; sort by a metric shown in 'igpg-zoo list' or by "
                              "id, name, created_at, n_params")
        records = zoo.list(arch or (), dataset or (), task or (), kind or (), tag or (), where or (),
                           sort=sort, descending=not ascending, limit=limit)
    if json_out:
        _echo_json([_record_json(r) for r in records])
        return
    if not records:
        typer.echo("no checkpoints match" if any((arch, dataset, task, kind, tag, where)) else
                   "the registry is empty; add one with 'igpg-zoo add PATH --arch ARCH'")
        return
    _table([[f"#{r.id}", r.kind, r.name, r.arch, r.task, r.dataset, f"{r.n_params:,}", _metrics_text(r)]
            for r in records], ["id", "kind", "name", "arch", "task", "dataset", "params", "metrics"])


def _check_kinds(kinds: list[str] | None) -> None:
    from igpg_zoo.errors import ConfigError
    from igpg_zoo.records import KINDS

    unknown = sorted(set(kinds or ()) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown --kind {', '.join(unknown)}; use one of {', '.join(KINDS)}")


def show(
    checkpoint_id: Annotated[int, typer.Argument(metavar="ID", help="record id")],
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """Show one checkpoint record."""
    with _zoo(registry, blobs) as zoo:
        record = zoo.get(checkpoint_id)
        blob = zoo.blobs.path(record.sha256) if (zoo.config.blobs or zoo.config.is_sqlite_file) else None
    if json_out:
        _echo_json(_record_json(record))
        return
    lines = [("id", f"#{record.id}"), ("name", record.name), ("arch", record.arch), ("task", record.task),
             ("dataset", record.dataset), ("kind", record.kind), ("params", f"{record.n_params:,}"),
             ("tags", ", ".join(record.tags)), ("license", record.license), ("source", record.source),
             ("created", record.created_at), ("sha256", record.sha256), ("size", f"{record.size_bytes:,} bytes"),
             ("blob", str(blob or "-")), ("parent", f"#{record.parent_id}" if record.parent_id else "-")]
    for key, value in lines:
        typer.echo(f"{key:<9}{_shown(value)}")
    for m in record.metrics:
        typer.echo(f"{'metric':<9}{_shown(m.name)} = {m.value:.6g} on {_shown(m.dataset or '-')}")
    for key, value in sorted(record.extra.items()):
        typer.echo(f"{'extra':<9}{_shown(key)} = {json.dumps(value)}")


def _export_best(zoo, hits, fmt: str, out: Path, overwrite: bool):
    """Export the best hit (retrieved weights, recorded as such) through the export module."""
    from igpg_zoo.errors import NothingToReturn
    from igpg_zoo.export import export_record

    if not hits:
        raise NothingToReturn("no checkpoint matches the query, so nothing was exported; widen the filters")
    return export_record(zoo, hits[0].checkpoint.id, fmt, out, overwrite=overwrite)


# -- remove / verify / reindex -------------------------------------------------------------------


def remove(
    checkpoint_id: Annotated[int, typer.Argument(metavar="ID", help="record id")],
    registry: RegistryOpt = None, blobs: BlobsOpt = None,
) -> None:
    """Remove a checkpoint; its weights blob stays while another record uses it."""
    with _zoo(registry, blobs) as zoo:
        record = zoo.remove(checkpoint_id)
        kept = zoo.blobs.has(record.sha256)
    typer.echo(f"removed #{record.id} {_shown(record.name)}" + (" (blob kept: another record uses it)" if kept else ""))


def verify(
    repair: Annotated[bool, typer.Option(
        help="first put right what needs no weights from you: delete orphan blobs and old leftover temporary "
             "files, put back a blob an interrupted remove moved aside, rebuild a stale search index")] = False,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """Recompute every blob hash and check database, blobs and search index agree; exit 1 on problems."""
    with _zoo(registry, blobs) as zoo:
        repaired = zoo.repair() if repair else []
        problems = zoo.verify()
        count = zoo.store.count()
    if json_out:
        _echo_json({"ok": not problems, "records": count, "problems": problems, "repaired": repaired})
        if problems:
            raise SystemExit(1)
        return
    for action in repaired:
        typer.echo(f"repaired: {action}")
    if problems:
        for problem in problems:
            typer.echo(f"problem: {problem}")
        typer.echo(f"{len(problems)} problem(s) in a registry of {count} record(s)")
    else:
        typer.echo(f"ok: {count} record(s); blobs, database and search index agree")
    if problems:
        raise SystemExit(1)  # typer.Exit(1) is lost by app.main (standalone_mode=False returns it)


def reindex(
    reembed: Annotated[
        bool, typer.Option(help="embed every record's text again (after changing the embedder)")
    ] = False,
    registry: RegistryOpt = None, blobs: BlobsOpt = None,
) -> None:
    """Rebuild the search index from the vectors stored in the database."""
    with _zoo(registry, blobs) as zoo:
        n = zoo.reindex(reembed=reembed)
    typer.echo(f"search index rebuilt: {n} vector(s)")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(add)
    app.command("list")(list_)
    app.command()(show)
    app.command()(remove)
    app.command()(verify)
    app.command()(reindex)
