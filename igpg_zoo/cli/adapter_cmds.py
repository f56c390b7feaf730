"""``igpg-zoo adapters``: the installed architecture adapters and their state.

Listing loads the adapters' modules (discovery instantiates them) but never torch: adapter
modules import torch inside their methods.
"""

from __future__ import annotations

import json

import typer

from igpg_zoo.cli.options import JsonOpt

COLUMNS = ("name", "distribution", "version", "state", "formats", "message")


def _rows() -> list[dict[str, str]]:
    from igpg_zoo.adapters import list_adapters, loaded_adapters

    formats = {a.name: ",".join(("safetensors", *a.export_formats)) for a in loaded_adapters()}
    return [
        {"name": i.name, "distribution": i.distribution, "version": i.version, "state": i.state,
         "formats": formats.get(i.name, "-") if i.state == "ok" else "-", "message": i.message,
         "target": i.target}
        for i in list_adapters()
    ]


def _table(rows: list[dict[str, str]]) -> str:
    widths = {c: max([len(c)] + [len(r[c]) for r in rows]) for c in COLUMNS}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in rows]
    return "\n".join(lines)


def adapters(json_out: JsonOpt = False) -> None:
    """List installed architecture adapters (built-in and plugins) and whether they loaded."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a failed plugin is shown as a row instead
        rows = _rows()
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    typer.echo(_table(rows))
    failed = [r["name"] for r in rows if r["state"] == "failed"]
    if failed:
        typer.echo(f"{len(failed)} adapter(s) failed to load: {', '.join(failed)}; "
                   "reinstall them or disable with IGPG_ZOO_PLUGINS", err=True)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("adapters")(adapters)
