"""``igpg-zoo serve`` (the registry over HTTP, with a web page) and ``igpg-zoo report`` (one HTML file).

Nothing heavy at module level: FastAPI, uvicorn and matplotlib load when a command runs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from igpg_zoo.cli.options import BlobsOpt, JsonOpt, RegistryOpt
from igpg_zoo.errors import ConfigError
from igpg_zoo.server.settings import ServeConfig  # defaults only: a dataclass, nothing heavy

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_DEFAULTS = ServeConfig()


def serve(
    host: Annotated[str, typer.Option(help="address to listen on (default: this machine only)")] = _DEFAULTS.host,
    port: Annotated[int, typer.Option(help="port to listen on")] = _DEFAULTS.port,
    workers: Annotated[int, typer.Option(
        help="server processes, each with its own warm registry (on SQLite, writes wait for each other)")] = _DEFAULTS.workers,
    registry: RegistryOpt = None, blobs: BlobsOpt = None,
) -> None:
    """Serve the registry: a JSON API (OpenAPI page at /docs) and a web page; writes need IGPG_ZOO_TOKEN."""
    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        raise ConfigError("serve needs FastAPI and uvicorn; install them with pip install 'igpg-zoo[serve]'") from None
    from igpg_zoo.config import resolve_config
    from igpg_zoo.server.settings import TOKEN_ENV

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must lie in 1..65535, got {port}")
    if not 1 <= workers <= 64:
        raise ConfigError(f"--workers must lie in 1..64, got {workers}")
    _check_free(host, port)
    config = resolve_config(registry, blobs)  # a bad --registry fails here, before the server starts
    os.environ["IGPG_ZOO_REGISTRY"] = config.registry
    if config.blobs:
        os.environ["IGPG_ZOO_BLOBS"] = config.blobs
    if host not in _LOOPBACK:
        typer.echo(f"note: listening on {host}: other machines can read this registry", err=True)
    mode = "writes allowed with the token" if os.environ.get(TOKEN_ENV) else f"read-only ({TOKEN_ENV} not set)"
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"serving {config.blob_owner} at http://{shown}:{port}/ (API page /docs; {mode})", err=True)
    uvicorn.run("igpg_zoo.server.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


def _check_free(host: str, port: int) -> None:
    """A one-line error when the address cannot be bound (in use, not this machine's), before uvicorn starts."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise ConfigError(f"--host {host}: {err.strerror}; give an address of this machine") from None
    family, _, _, _, addr = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as err:
            raise ConfigError(f"cannot listen on {host}:{port} ({err.strerror}); choose another --port") from None


def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write")] = Path("report.html"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing file at --out")] = False,
    registry: RegistryOpt = None, blobs: BlobsOpt = None, json_out: JsonOpt = False,
) -> None:
    """Write the zoo map and charts (accuracy, novelty, fine-tuning) into one self-contained HTML file."""
    from igpg_zoo.report import render_report
    from igpg_zoo.zoo import open_zoo

    if out.exists() and (out.is_dir() or not overwrite):
        raise ConfigError(f"{out} exists; pass --overwrite to replace it or choose another --out"
                          if not out.is_dir() else f"{out} is a folder; give a file name such as {out / 'report.html'}")
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of {out} does not exist; create it or choose another --out")
    with open_zoo(registry, blobs) as zoo:
        text = render_report(zoo, _DEFAULTS.map_points)
        count = zoo.store.count()
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)  # never a half-written report at --out
    if json_out:
        typer.echo(json.dumps({"out": str(out), "records": count, "bytes": len(text.encode())}))
    else:
        typer.echo(f"wrote {out} ({count:,} records, {len(text.encode()) / 1024:.0f} KiB)", file=sys.stdout)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(serve)
    app.command()(report)
