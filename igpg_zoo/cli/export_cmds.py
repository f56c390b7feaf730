"""``igpg-zoo export``: write a record as ONNX, a timm folder, the adapter's native folder or safetensors.

Nothing heavy at module level; torch, onnx and timm load when the command runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, OverwriteOpt, RegistryOpt

FORMATS = ("onnx", "timm", "native", "safetensors")  # igpg_zoo.export.FORMATS, without importing it

FormatOpt = Annotated[str, typer.Option("--format", "-f", help=f"one of {', '.join(FORMATS)}")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="file (.onnx / .safetensors) or folder (native, timm)")]
AtolOpt = Annotated[float, typer.Option("--atol", help="largest accepted max|exported - PyTorch| output difference")]
ExporterOpt = Annotated[str, typer.Option("--exporter", help="ONNX exporter: auto (legacy, dynamo fallback), legacy, dynamo")]


def export(
    id: Annotated[int, typer.Argument(help="record id")],
    out: OutOpt,
    fmt: FormatOpt = "onnx",
    atol: AtolOpt = 1e-4,
    exporter: ExporterOpt = "auto",
    overwrite: OverwriteOpt = False,
    registry: RegistryOpt = None,
    blobs: BlobsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Export record ID, check it against PyTorch, print the parity figure and note it in the record."""
    from igpg_zoo.export import export_record
    from igpg_zoo.zoo import open_zoo

    with open_zoo(registry, blobs) as zoo:
        report = export_record(zoo, id, fmt, out, atol, exporter=exporter, overwrite=overwrite)
    if as_json:
        typer.echo(json.dumps({"id": id, "arch": report.arch, "path": str(report.path), **report.facts()},
                              indent=2, sort_keys=True))
    else:
        typer.echo(f"exported #{id} [{report.arch}] {report.summary()}")


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command("export")(export)
