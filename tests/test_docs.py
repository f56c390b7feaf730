"""Every command has help text, and every top-level command is shown in the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from igpg_zoo.cli.app import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands(group, prefix=()):
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name), command
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))


ROOT = typer.main.get_command(app)
COMMANDS = list(_commands(ROOT))


@pytest.mark.parametrize("path,command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_has_help(path, command):
    assert (command.help or "").strip(), f"'igpg-zoo {' '.join(path)}' has no help text"
    for param in command.params:
        if param.name != "help" and getattr(param, "help", None) is not None:
            assert param.help.strip(), f"option {param.name} of {' '.join(path)} has empty help"


@pytest.mark.parametrize("name", sorted(n for n in ROOT.commands if n != "version"))
def test_every_top_level_command_is_in_the_readme(name):
    assert f"igpg-zoo {name}" in README, f"README never shows 'igpg-zoo {name}'"


ROOT_DIR = Path(__file__).resolve().parents[1]
CITED = re.compile(r"(?<![\w/.-])((?:bench|docs|tests|igpg_zoo)/[\w/.\-]*\w\.(?:py|md|json))")
RESULT_DOCS = ["BENCHMARKS.md", "docs/history.md", "docs/igpg-prior.md", "docs/igpg-tokenizer.md",
               "bench/investigations/README.md"]


@pytest.mark.parametrize("doc", RESULT_DOCS)
def test_benchmark_docs_cite_only_files_in_the_repository(doc):
    missing = sorted({path for path in CITED.findall((ROOT_DIR / doc).read_text()) if not (ROOT_DIR / path).exists()})
    assert not missing, f"{doc} cites files that are not in the repository: {missing}"
