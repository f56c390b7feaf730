"""``igpg-zoo artifacts``: the generator artifacts (tokenizers, priors) the registry stores."""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, RegistryOpt

KINDS = ("tokenizer", "prior")


def _summary(a) -> dict:
    """One artifact as a row: what it is, what it was trained on, and how."""
    p = a.provenance
    snapshot = p.get("snapshot") or {}
    train = (a.config or {}).get("train") or {}
    return {"id": a.id, "kind": a.kind, "name": a.name, "parent_id": a.parent_id, "created_at": a.created_at,
            "records": len(snapshot.get("ids") or ()), "snapshot": (snapshot.get("hash") or "")[:12],
            "steps": train.get("steps"), "holdout_tasks": p.get("holdout_tasks") or [],
            "machine": p.get("machine") or p.get("device") or ""}


def artifacts(
    kind: Annotated[Optional[str], typer.Option(help="tokenizer | prior")] = None,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """List the stored tokenizers and priors (ids for --tokenizer / --prior)."""
    from igpg_zoo.errors import ConfigError
    from igpg_zoo.zoo import open_zoo

    if kind is not None and kind not in KINDS:
        raise ConfigError(f"unknown --kind {kind}; use one of {', '.join(KINDS)}")
    with open_zoo(registry, blobs) as zoo:
        rows = [_summary(a) for a in zoo.list_artifacts(kind)]
    if json_out:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no generator artifacts yet; train them with 'igpg-zoo train'")
        return
    for r in rows:
        parent = f", from #{r['parent_id']}" if r["parent_id"] else ""
        steps = f", {r['steps']} steps" if r["steps"] else ""
        typer.echo(f"#{r['id']} {r['kind']} {r['name']}{parent}: {r['records']} records "
                   f"(snapshot {r['snapshot'] or '-'}){steps}, {r['created_at']}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(artifacts)
