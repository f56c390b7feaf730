"""The fuzz campaign's oracle, and the targets that feed each kind of hostile input to the CLI.

The real console entry point (``igpg_zoo.cli.app.main``, its error mapping included) runs in-process
under click's ``CliRunner``. An input passes when no exception escapes (no traceback), a failure
exits non-zero with exactly one error line (click's own usage errors print ``Usage:``/``Try`` lines
around their one ``Error:`` line), and a failed command changed nothing: the same rows in every
table and the same bytes in every other file of the registry's folder.
"""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from bench._fuzz_cases import CNN, MLP, good_checkpoint

PROGRESS_LINES = ("Usage:", "Try '", "adding")  # click's usage lines; the bulk import's progress label
BULK_SUMMARY = re.compile(r"(\d+) added, \d+ duplicate\(s\), \d+ refused")


def _build_commands_once() -> None:
    """typer rebuilds the click command tree on every call (most of a call's time); build it once."""
    import typer.main

    if getattr(typer.main.get_command, "fuzz_cached", False):
        return
    built, original = {}, typer.main.get_command

    def get_command(typer_instance):
        if id(typer_instance) not in built:
            built[id(typer_instance)] = (typer_instance, original(typer_instance))
        return built[id(typer_instance)][1]

    get_command.fuzz_cached = True
    typer.main.get_command = get_command


class _Main:
    """Lets click's CliRunner drive ``igpg_zoo.cli.app.main`` (which reads sys.argv)."""

    name = "igpg-zoo"

    def main(self, args=(), prog_name=None, **_extra):
        from igpg_zoo.cli import app as cli_app

        _build_commands_once()
        saved = sys.argv
        sys.argv = ["igpg-zoo", *args]
        try:
            cli_app.main()
        finally:
            sys.argv = saved


def snapshot(folder: Path) -> tuple:
    """What a failed command must leave as it was: rows of every table and every other file's bytes."""
    rows = []
    db = folder / "registry.db"
    if db.exists():
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            for t in sorted(tables):
                digest = hashlib.sha256(repr(con.execute(f'SELECT * FROM "{t}"').fetchall()).encode()).hexdigest()
                rows.append((t, digest))
        finally:
            con.close()
    files = []
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.name.startswith("registry.db"):
            files.append((str(p.relative_to(folder)), hashlib.sha256(p.read_bytes()).hexdigest()))
    return tuple(rows), tuple(files)


@dataclass
class Outcome:
    exit_code: int
    problem: str | None  # None: the input passed the oracle
    error: str  # the error line (or '' on success)


def run_cli(args: list[str], folder: Path) -> Outcome:
    """Run ``igpg-zoo ARGS`` in-process with the registry in ``folder``; judge it by the oracle."""
    from click.testing import CliRunner

    before = snapshot(folder)
    with warnings.catch_warnings(record=True) as caught:  # the CLI prints each as a "warning:" line
        warnings.simplefilter("always")
        result = CliRunner().invoke(_Main(), [str(a) for a in args], catch_exceptions=True)
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        return Outcome(-1, f"traceback: {type(exc).__name__}: {str(exc)[:200]}", "")
    text = result.stdout + result.stderr
    if "Traceback (most recent call last)" in text:
        return Outcome(result.exit_code, "traceback printed", "")
    if result.exit_code == 0:
        return Outcome(0, None, "")
    bulk = BULK_SUMMARY.search(result.stdout)
    if bulk:  # a folder import reports each refused file on its own line; the others are added
        added = int(bulk.group(1))
        changed = snapshot(folder) != before
        problem = "refused every file but changed the registry" if added == 0 and changed else None
        return Outcome(result.exit_code, problem, bulk.group(0))
    lines = [ln for ln in result.stderr.splitlines() if ln.strip() and not ln.startswith(PROGRESS_LINES)]
    shown = [w for w in caught if not issubclass(w.category, ResourceWarning)]  # the CLI's filters hide these
    lines += [f"warning: {w.message}" for w in shown if not any(str(w.message) in ln for ln in lines)]
    if len(lines) != 1:
        return Outcome(result.exit_code, f"{len(lines)} error lines: {' | '.join(lines)[:300]}", "")
    after = snapshot(folder)
    if after != before:
        changed = sorted(set(after[0]) ^ set(before[0])) + sorted(set(after[1]) ^ set(before[1]))
        return Outcome(result.exit_code, f"failed but changed {changed[:3]}: {lines[0][:200]}", lines[0])
    return Outcome(result.exit_code, None, lines[0])


def set_env(folder: Path, cache: Path) -> None:
    """Point the registry, caches and embedder at ``folder`` (hash embedder, plugins off, offline)."""
    os.environ.update({
        "IGPG_ZOO_REGISTRY": str(folder / "registry.db"), "IGPG_ZOO_PLUGINS": "none",
        "IGPG_ZOO_EMBEDDER": "hash", "IGPG_ZOO_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1", "XDG_CACHE_HOME": str(cache / "xdg"),
    })
    for var in ("IGPG_ZOO_BLOBS", "IGPG_ZOO_INDEX_DIR", "IGPG_ZOO_CONFIG", "IGPG_ZOO_DEBUG"):
        os.environ.pop(var, None)



# -- targets: one hostile input -> one CLI run (or a direct call) in ``folder`` ---------------------

def _write(folder: Path, name: str, data: bytes | str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    return path


def _good_files(folder: Path) -> None:
    """The good checkpoints the targets name, and a registry holding one record of them."""
    if (folder / "m.pt").exists():
        return
    for suffix in (".safetensors", ".pt"):
        _write(folder, f"m{suffix}", good_checkpoint(suffix))
    seeded = run_cli(["add", "m.pt", "--arch", MLP, "--dataset", "seed", "--metric", "acc=0.5"], folder)
    if seeded.exit_code != 0:
        raise RuntimeError(f"cannot seed the fuzz registry: {seeded.problem or seeded.error}")


def checkpoint(folder: Path, case: tuple[str, bytes]) -> Outcome:
    suffix, data = case
    _good_files(folder)
    _write(folder, f"in/c{suffix}", data)
    return run_cli(["add", f"in/c{suffix}", "--arch", MLP, "--dataset", "iris"], folder)


def sidecar(folder: Path, case: tuple[str, bool]) -> Outcome:
    text, with_arch = case
    _good_files(folder)
    _write(folder, "in/meta.yaml", text)
    return run_cli(["add", "m.safetensors", "--meta", "in/meta.yaml", *(["--arch", MLP] if with_arch else [])], folder)


def manifest(folder: Path, text: str) -> Outcome:
    _good_files(folder)
    for suffix in (".safetensors", ".pt"):
        if not (folder / f"d/m{suffix}").exists():
            _write(folder, f"d/m{suffix}", good_checkpoint(suffix))
    (folder / "d/sub").mkdir(exist_ok=True)
    _write(folder, "in/manifest.yaml", text)
    return run_cli(["add", "d", "--manifest", "in/manifest.yaml"], folder)


def condition(folder: Path, case: tuple[str, str]) -> Outcome:
    where, how = case
    _good_files(folder)
    args = {"list": ["list", "--where", where], "query": ["query", "iris", "--where", where],
            "metric": ["add", "m.safetensors", "--arch", MLP, "--metric", where]}[how]
    return run_cli(args, folder)


def arch(folder: Path, case: tuple[str, str]) -> Outcome:
    text, how = case
    _good_files(folder)
    args = {"add": ["add", "m.safetensors", "--arch", text], "list": ["list", "--arch", text],
            "tokenize": ["tokenize", "1", "--arch", text]}[how]
    return run_cli(args, folder)


def data_file(folder: Path, case: tuple[str, bytes]) -> Outcome:
    suffix, data = case
    _good_files(folder)
    _write(folder, f"in/data{suffix}", data)
    return run_cli(["datasets", "--data", f"in/data{suffix}"], folder)


def data_for_arch(folder: Path, case: tuple[str, bytes]) -> Outcome:
    """The loader with an architecture: returns a dataset or raises one line (no CLI run)."""
    from igpg_zoo.data.userdata import load_user_data
    from igpg_zoo.errors import ZooError

    suffix, data = case
    path = _write(folder, f"in/arch_data{suffix}", data)
    try:
        load_user_data(path, arch=CNN)
    except ZooError as exc:
        text = str(exc)
        return Outcome(2, None if "\n" not in text else "multi-line error", text)
    except Exception as exc:  # noqa: BLE001 - the finding
        return Outcome(-1, f"traceback: {type(exc).__name__}: {str(exc)[:200]}", "")
    return Outcome(0, None, "")


def cli_args(folder: Path, args: list[str]) -> Outcome:
    _good_files(folder)
    return run_cli(args, folder)
