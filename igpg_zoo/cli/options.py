"""Shared ``Annotated`` option aliases, so every command spells them the same way."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

RegistryOpt = Annotated[
    Optional[str],
    typer.Option("--registry", help="SQLite file or SQLAlchemy URL (default: IGPG_ZOO_REGISTRY, config, ./registry.db)"),
]
BlobsOpt = Annotated[
    Optional[str], typer.Option("--blobs", help="blob folder (required for a server database)")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print machine-readable JSON")]
OverwriteOpt = Annotated[bool, typer.Option(
    "--overwrite", help="replace an existing .onnx / .safetensors file at --out (a folder must be empty or new)")]
