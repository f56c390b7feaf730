"""The crash campaign's machinery: run a CLI command in a forked child, SIGKILL it at a chosen moment,
and judge the registry it leaves (bench/crash.py drives it; tests/test_crash_registry.py runs a few points).

The campaign process imports everything heavy once and then forks: each command runs ``igpg_zoo.cli.app
.main`` in a child with warm imports, so a kill lands in the command's own work rather than in Python's
start-up. The parent never opens the registry itself; every check also runs in a forked child, so no
database connection is ever shared across a fork.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from collections import Counter
from pathlib import Path

RESIDUE = ("(orphan)", "leftover temporary file", "moved aside by an interrupted remove", "search index")


def warm_up(generator: bool = False) -> None:
    """Import what the commands use, in the parent, so forked children start warm (``generator``: also
    what ``train`` and ``generate`` import, torch's optimisers' compiler among it)."""
    import torch

    torch.set_num_threads(1)
    import faiss  # noqa: F401
    import safetensors.torch  # noqa: F401
    import sqlalchemy  # noqa: F401
    import typer.main
    import yaml  # noqa: F401

    import numpy.ma  # noqa: F401
    import safetensors.numpy  # noqa: F401
    import typer._adapters  # noqa: F401  (pydantic: what typer loads to parse the arguments)

    import igpg_zoo.adapters  # noqa: F401
    import igpg_zoo.data  # noqa: F401
    import igpg_zoo.registry.health  # noqa: F401
    import igpg_zoo.registry.search_cache  # noqa: F401
    import igpg_zoo.search.index  # noqa: F401
    import igpg_zoo.zoo  # noqa: F401
    from igpg_zoo.cli import app as cli_app
    from igpg_zoo.search.embed import get_embedder

    try:
        import psycopg  # noqa: F401
    except ImportError:
        pass
    from bench._fuzz_oracle import _build_commands_once

    get_embedder("hash")
    if generator:
        import torch._dynamo  # noqa: F401  (torch.optim imports it on first use)

        import igpg_zoo.igpg.generate  # noqa: F401
        import igpg_zoo.igpg.prior_train  # noqa: F401
        import igpg_zoo.igpg.tokenizer_train  # noqa: F401
    _build_commands_once()
    typer.main.get_command(cli_app.app)  # built once here, reused by every child


def _fork(body) -> int:
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child never returns
        code = 70
        try:
            code = body()
        except BaseException:  # noqa: BLE001 - reported through the exit code and the log
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code if isinstance(code, int) else 0)
    return pid


def _cli_body(argv: list[str], log: Path):
    def body() -> int:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        from igpg_zoo.cli.app import main

        sys.argv = ["igpg-zoo", *argv]
        try:
            main()
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return 0
    return body


def _status(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def run(argv: list[str], log: Path) -> int:
    """Run ``igpg-zoo ARGV`` to its end in a child; its exit code."""
    pid = _fork(_cli_body(argv, log))
    return _status(os.waitpid(pid, 0)[1])


def run_and_kill(argv: list[str], log: Path, delay_s: float) -> tuple[bool, int]:
    """Start ``igpg-zoo ARGV`` and SIGKILL it after ``delay_s``: (killed before it ended, exit status)."""
    pid = _fork(_cli_body(argv, log))
    deadline = time.perf_counter() + delay_s
    while time.perf_counter() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return False, _status(status)
        time.sleep(min(0.002, max(0.0, deadline - time.perf_counter())))
    os.kill(pid, signal.SIGKILL)
    return True, _status(os.waitpid(pid, 0)[1])


def in_child(fn, *args):
    """``fn(*args)`` in a forked child; its JSON-able result (raises if it raised)."""
    return join_child(start_child(fn, *args))


def start_child(fn, *args) -> tuple[int, int]:
    """Start ``fn(*args)`` in a forked child; ``join_child`` waits for its JSON-able result."""
    r, w = os.pipe()

    def body() -> int:
        os.close(r)
        try:
            out = {"value": fn(*args)}
        except BaseException as exc:  # noqa: BLE001 - the caller reports it
            out = {"error": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(w, "w") as fh:
            json.dump(out, fh, default=str)
        return 0

    pid = _fork(body)
    os.close(w)
    return pid, r


def join_child(handle: tuple[int, int]):
    pid, r = handle
    with os.fdopen(r) as fh:
        text = fh.read()
    os.waitpid(pid, 0)
    out = json.loads(text) if text else {"error": "the check's process died"}
    if "error" in out:
        raise RuntimeError(out["error"])
    return out["value"]


# -- checks (each runs in a child) --------------------------------------------------------------------

def registry_state() -> dict:
    """Problems (split into crash residue and real damage), record names and ids, blob facts."""
    from igpg_zoo.registry import health
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        found = health.problems(zoo)
        records = zoo.list()
        owners = zoo.store.blob_owners()
        orphans = sorted(set(zoo.blobs) - set(owners)) if zoo.blobs.root.is_dir() else []
        priors: dict[str, list[int]] = {}
        for art in zoo.list_artifacts("prior"):  # seed -> the step each registered prior resumed from
            priors.setdefault(str(art.config.get("train", {}).get("seed")), []).append(
                int(art.provenance.get("resumed_from", 0)))
        return {"damage": [p for p in found if not any(r in p for r in RESIDUE)],
                "residue": [p for p in found if any(r in p for r in RESIDUE)],
                "names": dict(Counter(r.name for r in records)),
                "ids_by_name": {r.name: r.id for r in records}, "orphans": orphans, "priors": priors,
                "kinds": dict(Counter(r.kind for r in records)),
                "temporaries": [str(t) for t in zoo.blobs.temporaries()]}


def checkpoint_step(path: str) -> int:
    """The step a prior training checkpoint holds (0 when there is none yet)."""
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=True)["step"]) if Path(path).exists() else 0


def age_and_repair(grace_s: float) -> dict:
    """The state now; then let the grace period pass for every leftover temporary, run ``verify
    --repair``'s repair and take the state again."""
    from igpg_zoo.registry import health
    from igpg_zoo.zoo import open_zoo

    before = registry_state()
    with open_zoo() as zoo:
        old = time.time() - grace_s - 1
        for tmp in zoo.blobs.temporaries():
            os.utime(tmp, (old, old))
        done = health.repair(zoo)
    return {"before": before, "repairs": done, "after": registry_state()}
