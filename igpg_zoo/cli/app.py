"""The typer app and ``main()``: known errors become one line and a non-zero exit code.

Command modules import nothing heavy at module level, so ``--help`` and ``list`` stay instant; a run
imports and builds only the command it names (``COMMANDS``).
"""

from __future__ import annotations

import os
import sys
import warnings

import importlib

import typer

from igpg_zoo.errors import ZooError

APP_SETTINGS = {
    "name": "igpg-zoo",
    "help": "A model-zoo registry: add checkpoints, query them, generate weights with IGPG, export.",
    "no_args_is_help": True,
    "pretty_exceptions_show_locals": False,
    "add_completion": False,
}
# the command modules in help order; each has register(app)
MODULES = ("registry_cmds", "answer_cmds", "adapter_cmds", "zoo_cmds", "tokenizer_cmds", "generator_cmds",
           "finetune_cmds", "export_cmds", "artifact_cmds", "serve_cmds")
# command (or command group) -> the module that registers it: a run imports only that module
# (tests/test_cli_light_imports.py checks this against the whole app)
COMMANDS = {"add": "registry_cmds", "list": "registry_cmds", "show": "registry_cmds", "remove": "registry_cmds",
            "verify": "registry_cmds", "reindex": "registry_cmds", "query": "answer_cmds", "select": "answer_cmds",
            "answers": "answer_cmds", "adapters": "adapter_cmds", "zoo": "zoo_cmds", "datasets": "zoo_cmds",
            "tokenize": "tokenizer_cmds", "train": "generator_cmds", "generate": "generator_cmds",
            "finetune": "finetune_cmds", "export": "export_cmds", "artifacts": "artifact_cmds",
            "serve": "serve_cmds", "report": "serve_cmds", "version": "app"}
_FULL: list[typer.Typer] = []


def version() -> None:
    """Print the igpg-zoo version."""
    from igpg_zoo import __version__

    typer.echo(__version__)


def _registered(modules) -> typer.Typer:
    built = typer.Typer(**APP_SETTINGS)
    for name in modules:
        if name == "app":
            built.command()(version)
        else:
            importlib.import_module(f"igpg_zoo.cli.{name}").register(built)
    return built


def full_app() -> typer.Typer:
    """Every command (what ``--help`` lists), built once."""
    if not _FULL:
        _FULL.append(_registered((*MODULES, "app")))
    return _FULL[0]


def __getattr__(name: str):
    if name == "app":  # ``from igpg_zoo.cli.app import app``: the whole app, built on first use
        return full_app()
    raise AttributeError(name)


def _app_for(argv: list[str]) -> typer.Typer:
    """The app holding only the command (or command group) that ``argv`` names, else the whole app.

    Typer turns every command's signature into options before running any command, and importing
    every command module costs as much again; importing and building the one command that runs
    keeps a read as cheap as the read itself. Help, typos and bare options get the whole app."""
    name = argv[0] if argv else ""
    if name not in COMMANDS:
        return full_app()
    registered = _registered([COMMANDS[name]])
    commands = [c for c in registered.registered_commands
                if (c.name or typer.main.get_command_name(c.callback.__name__)) == name]
    groups = [g for g in registered.registered_groups if g.name == name]
    if not (commands or groups):
        return full_app()
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
