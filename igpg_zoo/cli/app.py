"""The typer app and ``main()``: known errors become one line and a non-zero exit code.

Command modules import nothing heavy at module level, so ``--help`` and ``list`` stay instant.
"""

from __future__ import annotations

import os
import sys
import warnings

import typer

from igpg_zoo.cli import (
    adapter_cmds,
    answer_cmds,
    artifact_cmds,
    export_cmds,
    finetune_cmds,
    generator_cmds,
    registry_cmds,
    serve_cmds,
    tokenizer_cmds,
    zoo_cmds,
)
from igpg_zoo.errors import ZooError

APP_SETTINGS = {
    "name": "igpg-zoo",
    "help": "A model-zoo registry: add checkpoints, query them, generate weights with IGPG, export.",
    "no_args_is_help": True,
    "pretty_exceptions_show_locals": False,
    "add_completion": False,
}
app = typer.Typer(**APP_SETTINGS)

for module in (registry_cmds, answer_cmds, adapter_cmds, zoo_cmds, tokenizer_cmds, generator_cmds, finetune_cmds,
               export_cmds, artifact_cmds):
    module.register(app)
serve_cmds.register(app)


@app.command()
def version() -> None:
    """Print the igpg-zoo version."""
    from igpg_zoo import __version__

    typer.echo(__version__)


def _app_for(argv: list[str]) -> typer.Typer:
    """The app holding only the command (or command group) that ``argv`` names, else the whole app.

    Typer turns every command's signature into options before running any command; building the
    one command that runs keeps a read as cheap as the read itself. Help, typos and bare options get
    the whole app, so they see every command."""
    name = argv[0] if argv else ""
    commands = [c for c in app.registered_commands
                if (c.name or typer.main.get_command_name(c.callback.__name__)) == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not name or name.startswith("-") or not (commands or groups):
        return app
    light = typer.Typer(**APP_SETTINGS)
    light.registered_commands, light.registered_groups = commands, groups
    light.callback()(_group)  # stay a group: the command's name is still the first argument
    return light


def _group() -> None:
    """A model-zoo registry: add checkpoints, query them, generate weights with IGPG, export."""


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {_printable(message)}\n"


def _printable(message) -> str:
    """``message`` on one line: characters that break or control a terminal line (a user's input echoed
    back: carriage returns, record separators, escapes) are shown escaped."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in str(message))


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    warnings.formatwarning = _one_line_warning
    try:
        # standalone_mode=False: click returns a command's exit code instead of exiting
        rc = _app_for(sys.argv[1:])(standalone_mode=False)
    except ZooError as exc:
        if os.environ.get("IGPG_ZOO_DEBUG") == "1":
            raise
        typer.echo(f"error: {_printable(exc)} (set IGPG_ZOO_DEBUG=1 for the traceback)", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:  # a path the user named cannot be read or written (permissions, a file for a folder)
        if os.environ.get("IGPG_ZOO_DEBUG") == "1":
            raise
        where = f" {exc.filename}" if exc.filename else ""
        typer.echo(_printable(f"error: cannot use{where}: {exc.strerror or exc}; check the path and its permissions"),
                   err=True)
        sys.exit(1)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except Exception as exc:  # usage errors (bad option, missing argument) carry their own exit code
        if callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(rc, int) and rc:
        sys.exit(rc)
