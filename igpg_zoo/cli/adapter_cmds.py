"""``igpg-zoo adapters``: the installed architecture adapters and their state.

``--arch STRING`` describes one architecture (adapter, size, head, state-dict keys: what a module
written outside igpg-zoo must provide); ``--check`` runs the contract test (igpg_zoo.testing).

Listing loads the adapters' modules (discovery instantiates them) but never torch: adapter
modules import torch inside their methods.
"""

from __future__ import annotations

import json
from typing import Annotated, Optional

import typer

from igpg_zoo.cli.options import JsonOpt
from igpg_zoo.cli.tables import print_table

COLUMNS = ("name", "distribution", "version", "state", "formats", "message")


def _rows() -> list[dict[str, str]]:
    from igpg_zoo.adapters import list_adapters, loaded_adapters

    from igpg_zoo.export.weights import supported_formats

    formats = {a.name: ",".join(supported_formats(a)) for a in loaded_adapters()}
    return [
        {"name": i.name, "distribution": i.distribution, "version": i.version, "state": i.state,
         "formats": formats.get(i.name, "-") if i.state == "ok" else "-", "message": i.message,
         "target": i.target}
        for i in list_adapters()
    ]


def _arch_info(arch: str) -> dict:
    """What igpg-zoo knows about one arch string: adapter, text, size, head, state-dict keys."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.export.weights import supported_formats

    adapter = get_adapter(arch)
    state = adapter.build(arch).state_dict()
    return {
        "arch": arch, "adapter": adapter.name, "description": adapter.describe(arch),
        "n_params": sum(p.numel for p in adapter.param_layout(arch)),
        "head": adapter.head_names(arch),
        "keys": {k: list(v.shape) for k, v in state.items()},
        "export_formats": list(supported_formats(adapter)),  # the formats `igpg-zoo export` accepts
    }


def _check(arch: str | None) -> bool:
    """Run the contract test on every loaded adapter's test_arch (or on ``arch``); True if all pass."""
    from igpg_zoo.adapters import get_adapter, loaded_adapters
    from igpg_zoo.testing import check_adapter

    targets = [(get_adapter(arch), arch)] if arch else [(a, a.test_arch) for a in loaded_adapters()]
    ok = True
    for adapter, target in targets:
        try:
            report = check_adapter(adapter, target)
            skipped = f" (skipped: {'; '.join(report.skipped)})" if report.skipped else ""
            typer.echo(f"ok      {adapter.name:10s} {target}{skipped}")
        except Exception as exc:  # report every adapter, not just the first failure
            ok = False
            typer.echo(f"FAILED  {adapter.name:10s} {target}: {type(exc).__name__}: {exc}")
    return ok


def adapters(
    arch: Annotated[Optional[str], typer.Option("--arch", help="describe this architecture string "
                                                "(adapter, size, head, state-dict keys)")] = None,
    check: Annotated[bool, typer.Option("--check", help="run the adapter contract test (igpg_zoo.testing) on "
                                        "each adapter's test_arch, or on --arch")] = False,
    json_out: JsonOpt = False,
) -> None:
    """List installed architecture adapters (built-in and plugins) and whether they loaded."""
    import warnings

    if check:
        if not _check(arch):
            raise typer.Exit(1)
        return
    if arch:
        info = _arch_info(arch)
        if json_out:
            typer.echo(json.dumps(info, indent=2))
            return
        typer.echo(f"{info['arch']}  (adapter {info['adapter']}; exports {', '.join(info['export_formats'])})")
        typer.echo(info["description"])
        typer.echo(f"head: {', '.join(info['head'])}")
        for key, shape in info["keys"].items():
            typer.echo(f"  {key:40s} {tuple(shape)}")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a failed plugin is shown as a row instead
        rows = _rows()
    if json_out:
        typer.echo(json.dumps(rows, indent=2))
        return
    print_table([[r[c] for c in COLUMNS] for r in rows], [c.upper() for c in COLUMNS])
    failed = [r["name"] for r in rows if r["state"] == "failed"]
    if failed:
        typer.echo(f"{len(failed)} adapter(s) failed to load: {', '.join(failed)}; "
                   "reinstall them or disable with IGPG_ZOO_PLUGINS", err=True)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("adapters")(adapters)
