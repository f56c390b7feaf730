"""Crash campaign: SIGKILL at random moments of registry and generator commands, on SQLite and PostgreSQL.

    python -m bench crash            # >= 200 kill points per backend (bench/results/crash.json)
    python -m bench crash --quick    # about 10 per backend (bench/scratch/crash.quick.json)

PostgreSQL runs where ``IGPG_ZOO_TEST_POSTGRES_URL`` is set or ``.ci/postgres.sh`` can start a
throwaway server; otherwise its rows say it did not run. Each kill point: prepare the input, run the
command in a forked child with warm imports (bench/_crash_steps.py), SIGKILL it after a delay drawn
uniformly from 0 to 1.2 x the command's uninterrupted duration, then check in fresh processes:
(1) no partial record (every row has its blob, intact, and its vector), (2) re-running the command
completes (a remove that had committed says the id is gone), and the result exists exactly once,
(3) after the grace period for leftover temporaries, ``verify --repair`` leaves ``verify`` clean with
no orphan blob and the index in step with the database. ``train --resume`` (a tiny recipe, 40 steps,
a checkpoint every 4) must also continue from the step its checkpoint held after the kill, and an
uninterrupted run of the same seed must give the very same prior (so nothing new is registered);
``generate --register`` must add exactly one record.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from bench import _crash_steps as steps

TITLE = "Crash campaign"
COMMAND = "python -m bench crash"
MLP = "mlp-i4-h8-o3"
GRACE_S = 600.0  # igpg_zoo.registry.health.STALE_TEMPORARY_S
BUDGET_S = 3600.0  # a full run stops drawing kill points after this much wall time per backend
SHARES = {"add FILE": 0.2, "add DIR --manifest": 0.15, "remove": 0.15, "reindex": 0.1, "verify --repair": 0.1,
          "train": 0.15, "generate --register": 0.15}


def _write_weights(path: str, seed: int) -> None:
    import torch
    from safetensors.torch import save_file

    from igpg_zoo.adapters import get_adapter

    torch.manual_seed(seed)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(get_adapter(MLP).build(MLP).state_dict(), path)


def _plant_orphan(seed: int) -> None:
    import hashlib

    from igpg_zoo.zoo import open_zoo

    data = f"orphan {seed}".encode()
    with open_zoo() as zoo:
        zoo.blobs.write(hashlib.sha256(data).hexdigest(), data)


# -- the operations: prepare the input, give the command and what must hold once it has completed ----

def _op_add(root: Path, i: int) -> tuple[list[str], callable]:
    path = root / "in" / f"w{i}.safetensors"
    steps.in_child(_write_weights, str(path), 0 if i % 5 == 0 else 10_000 + i)  # every 5th shares a blob
    name = f"add-{i}"
    return (["add", str(path), "--arch", MLP, "--dataset", f"d{i}", "--name", name],
            lambda s: [] if s["names"].get(name) == 1 else [f"{name} recorded {s['names'].get(name, 0)} times"])


def _op_manifest(root: Path, i: int):
    folder = root / "in" / f"dir{i}"
    lines = ["models:"]
    for j in range(3):
        steps.in_child(_write_weights, str(folder / f"m{j}.safetensors"), 20_000 + 3 * i + j)
        lines.append(f"  - {{path: m{j}.safetensors, arch: {MLP}, dataset: d{i}, name: man-{i}-{j}}}")
    (folder / "manifest.yaml").write_text("\n".join(lines) + "\n")
    names = [f"man-{i}-{j}" for j in range(3)]
    return (["add", str(folder), "--manifest", str(folder / "manifest.yaml")],
            lambda s: [f"{n} recorded {s['names'].get(n, 0)} times" for n in names if s["names"].get(n) != 1])


def _op_remove(root: Path, i: int):
    path = root / "in" / f"r{i}.safetensors"
    steps.in_child(_write_weights, str(path), 0 if i % 3 == 0 else 30_000 + i)  # every 3rd shares a blob
    name = f"rm-{i}"
    code = steps.run(["add", str(path), "--arch", MLP, "--dataset", f"r{i}", "--name", name], root / "prep.log")
    state = steps.in_child(steps.registry_state)
    rid = state["ids_by_name"].get(name)
    if code != 0 or rid is None:
        raise RuntimeError(f"cannot prepare remove #{i}: add exited {code}")
    return (["remove", str(rid)],
            lambda s: [f"record #{rid} ({name}) still there"] if name in s["names"] else [])


def _op_reindex(root: Path, i: int):
    return ["reindex"], lambda s: [p for p in s["residue"] if "search index" in p]


def _op_repair(root: Path, i: int):
    steps.in_child(_plant_orphan, i)
    return ["verify", "--repair"], lambda s: [f"orphan blobs left: {len(s['orphans'])}"] if s["orphans"] else []


# -- the generator: a tiny recipe trains in seconds on a few records of their own dataset ---------------

TINY = {"tokenizer": {"steps": 10, "refine_steps": 60, "tokens_per_chunk": 2, "codebook_size": 32},
        "prior": {"n_layer": 1, "n_embd": 32, "n_head": 1},
        "train": {"steps": 40, "batch_size": 4, "warmup": 5, "ckpt_every": 4, "log_every": 4}}
TRAIN_SET = "crash-train-set"


def _train_argv(root: Path, seed: int, checkpoint: Path, resume: bool = True) -> list[str]:
    return ["train", "--stage", "prior", "--config", str(root / "tiny.yaml"), "--only", f"dataset={TRAIN_SET}",
            "--seed", str(seed), "--checkpoint", str(checkpoint), *(["--resume"] if resume else []), "--json"]


def prepare_generator(root: Path) -> None:
    """Records to train on, a tokenizer and a first prior (for ``generate``), data for ``generate --data``."""
    import numpy as np
    import yaml

    (root / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    lines = ["models:"]
    for j in range(6):
        steps.in_child(_write_weights, str(root / "in" / "train" / f"t{j}.safetensors"), 40_000 + j)
        lines.append(f"  - {{path: t{j}.safetensors, arch: {MLP}, dataset: {TRAIN_SET}, name: train-{j}}}")
    (root / "in" / "train" / "manifest.yaml").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(90, 4)).astype(np.float32)
    np.savez(root / "in" / "gen.npz", x=x, y=(x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5))
    for argv in (["add", str(root / "in" / "train"), "--manifest", str(root / "in" / "train" / "manifest.yaml")],
                 ["train", "--stage", "tokenizer", "--config", str(root / "tiny.yaml"), "--only",
                  f"dataset={TRAIN_SET}"], _train_argv(root, 0, root / "ck" / "first.pt", resume=False)):
        code = steps.run(argv, root / "prepare.log")
        if code != 0:
            raise RuntimeError(f"cannot prepare the generator ({argv[0]} exited {code}): "
                               f"{(root / 'prepare.log').read_text()[-300:]}")


def _op_train(root: Path, i: int):
    """``train --resume`` killed, then re-run: it continues from the checkpoint the kill left (not from
    step 0), registers its prior once, and an uninterrupted run of the same seed gives the same prior."""
    seed, checkpoint = 1_000 + i if i >= 0 else 900 - i, root / "ck" / f"t{i}.pt"
    seen: dict = {}

    def probe(after_kill: dict) -> dict:
        seen.update(checkpoint_step=steps.in_child(steps.checkpoint_step, str(checkpoint)),
                    registered_before_rerun=len(after_kill["priors"].get(str(seed), [])))
        return dict(seen)

    def expect(s: dict) -> list[str]:
        priors = s["priors"].get(str(seed), [])
        out = [] if len(priors) == 1 else [f"prior of seed {seed} registered {len(priors)} times"]
        if len(priors) == 1 and not seen["registered_before_rerun"] and priors[0] != seen["checkpoint_step"]:
            out.append(f"the re-run resumed from step {priors[0]}; the kill left the checkpoint at step "
                       f"{seen['checkpoint_step']}")
        code = steps.run(_train_argv(root, seed, root / "ck" / f"ref{i}.pt", resume=False), root / "reference.log")
        again = steps.in_child(steps.registry_state)["priors"].get(str(seed), [])
        if code != 0 or len(again) != len(priors):
            out.append(f"an uninterrupted run of seed {seed} (exit {code}) gave another prior: the resumed one differs")
        return out
    return _train_argv(root, seed, checkpoint), expect, probe


def _op_generate(root: Path, i: int):
    seed = 5_000 + i if i >= 0 else 4_000 - i
    argv = ["generate", "--arch", MLP, "--data", str(root / "in" / "gen.npz"), "-n", "2", "--seed", str(seed),
            "--register", "--json"]
    before = steps.in_child(steps.registry_state)["kinds"].get("generated", 0)

    def expect(s: dict) -> list[str]:
        n = s["kinds"].get("generated", 0) - before
        return [] if n == 1 else [f"generate --register of seed {seed} added {n} records"]
    return argv, expect


OPS = {"add FILE": _op_add, "add DIR --manifest": _op_manifest, "remove": _op_remove, "reindex": _op_reindex,
       "verify --repair": _op_repair, "train": _op_train, "generate --register": _op_generate}
FOUND_AND_FIXED = [
    "a `train --resume` re-run after a training that had finished (the kill landed after the last checkpoint "
    "or after registering) registered a second, identical prior; the newest identical artifact of a kind is now "
    "returned instead of a second row (igpg_zoo/zoo.py `add_artifact(reuse_newest=True)`, used by the prior's "
    "and the tokenizer's training)",
]
RERUN_OK = {"remove": (0, 3)}  # a remove that committed before the kill: re-running says the id is gone


def kill_point(root: Path, op: str, i: int, delay_s: float) -> dict:
    """One kill point of ``op``: what the kill left and whether the registry came back whole."""
    argv, expect, *probe = OPS[op](root, i)
    killed, status = steps.run_and_kill(argv, root / "killed.log", delay_s)
    after_kill = steps.in_child(steps.registry_state)
    probed = probe[0](after_kill) if probe else {}
    rerun = steps.run(argv, root / "rerun.log")
    checked = steps.in_child(steps.age_and_repair, GRACE_S)
    after_rerun, repaired = checked["before"], checked["after"]
    violations = [f"partial record after the kill: {p}" for p in after_kill["damage"]]
    if rerun not in RERUN_OK.get(op, (0,)) and not (op == "verify --repair" and rerun == 1 and not killed):
        violations.append(f"re-running exited {rerun}: {(root / 'rerun.log').read_text()[-300:]}")
    violations += expect(after_rerun) + [f"after re-running: {p}" for p in after_rerun["damage"]]
    violations += [f"after repair: {p}" for p in repaired["damage"] + repaired["residue"]]
    violations += [f"orphan blob after repair: {o}" for o in repaired["orphans"]]
    return {"op": op, "i": i, "delay_ms": round(delay_s * 1000, 1), "killed": killed, "status": status,
            "residue_after_kill": len(after_kill["residue"]), "clean_after_rerun": not after_rerun["residue"],
            "repairs": len(checked["repairs"]), **probed, "violations": violations}


def _calibrate(root: Path, op: str) -> float:
    """Seconds an uninterrupted run of ``op`` takes (its kill delays are drawn up to 1.2x this): the
    faster of two runs (the first pays for a cold file cache)."""
    times = []
    for k in range(2):
        argv, *_ = OPS[op](root, -1 - 2 * list(OPS).index(op) - k)
        started = time.perf_counter()
        steps.run(argv, root / "calibrate.log")
        times.append(time.perf_counter() - started)
    return min(times)


def prepare(root: Path, env: dict) -> None:
    """Point this process (and so every child) at the registry ``env`` names; give it one record."""
    os.environ.update(env)
    steps.in_child(_write_weights, str(root / "in" / "seed.safetensors"), 1)
    steps.run(["add", str(root / "in" / "seed.safetensors"), "--arch", MLP, "--dataset", "seed"], root / "seed.log")
    prepare_generator(root)


def plan(root: Path, points: int, seed: int = 0) -> list[tuple[str, float, float]]:
    """``points`` (operation, kill delay, uninterrupted duration) spread over the operations by ``SHARES``."""
    rng = random.Random(seed)
    durations = {op: _calibrate(root, op) for op in OPS}
    ops = [op for op, share in SHARES.items() for _ in range(max(1, round(points * share)))]
    rng.shuffle(ops)
    return [(op, rng.uniform(0.0, 1.2 * durations[op]), durations[op]) for op in ops]


def campaign(root: Path, kills: list[tuple], budget_s: float | None = None) -> list[dict]:
    """One kill point per (operation, delay[, duration]), against the registry ``prepare`` set up;
    stops early once ``budget_s`` of wall time is spent (the result says how many ran)."""
    out, started = [], time.perf_counter()
    for i, (op, delay, *duration) in enumerate(kills):
        if budget_s is not None and time.perf_counter() - started > budget_s:
            break
        out.append({**kill_point(root, op, i, delay), "duration_ms": round(1000 * duration[0], 1) if duration else None})
    return out


def common_env(root: Path) -> dict:
    return {"IGPG_ZOO_EMBEDDER": "hash", "IGPG_ZOO_PLUGINS": "none", "IGPG_ZOO_CACHE": str(root / "cache"),
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def postgres_url() -> tuple[str | None, str | None]:
    """(server URL, folder of a server started here to stop afterwards), or (None, None)."""
    if os.environ.get("IGPG_ZOO_TEST_POSTGRES_URL"):
        return os.environ["IGPG_ZOO_TEST_POSTGRES_URL"], None
    script = Path(__file__).resolve().parent.parent / ".ci" / "postgres.sh"
    out = subprocess.run(["bash", "-c", f'source "{script}" >&2 && echo "$IGPG_ZOO_TEST_POSTGRES_URL $IGPG_ZOO_PG_DIR"'],
                         capture_output=True, text=True)
    parts = out.stdout.split()
    return (parts[0], parts[1]) if len(parts) == 2 else (None, None)


def stop_postgres(url: str, folder: str) -> None:
    script = Path(__file__).resolve().parent.parent / ".ci" / "postgres.sh"
    subprocess.run(["bash", "-c", f'source "{script}" && igpg_zoo_pg_stop'], capture_output=True,
                   env={**os.environ, "IGPG_ZOO_TEST_POSTGRES_URL": url, "IGPG_ZOO_PG_DIR": folder})


def postgres_schema(base: str) -> tuple[str, callable]:
    """A fresh schema on the server and a URL whose search_path points at it; and its dropper."""
    import uuid

    import sqlalchemy as sa

    schema = f"crash_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})

    def drop() -> None:
        engine = sa.create_engine(base)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()
    return url.render_as_string(hide_password=False), drop


def backend_env(backend: str, root: Path, base_url: str | None) -> tuple[dict, callable]:
    env = common_env(root)
    if backend == "sqlite":
        return {**env, "IGPG_ZOO_REGISTRY": str(root / "registry.db")}, lambda: None
    url, drop = postgres_schema(base_url)
    return {**env, "IGPG_ZOO_REGISTRY": url, "IGPG_ZOO_BLOBS": str(root / "blobs"),
            "IGPG_ZOO_INDEX_DIR": str(root / "index")}, drop


def _backend_run(backend: str, points: int, base_url: str | None, budget_s: float | None = None) -> list[dict]:
    root = Path(tempfile.mkdtemp(prefix=f"igpg-zoo-crash-{backend}-"))
    saved = dict(os.environ)
    env, drop = backend_env(backend, root, base_url)
    try:
        prepare(root, env)
        return campaign(root, plan(root, points), budget_s)
    finally:
        os.environ.clear()
        os.environ.update(saved)
        drop()
        shutil.rmtree(root, ignore_errors=True)


def _rows(backend: str, results: list[dict]) -> list[str]:
    out = []
    for op in OPS:
        rs = [r for r in results if r["op"] == op]
        if rs:
            out.append(f"| {backend} | {op} | {len(rs)} | {sum(r['killed'] for r in rs)} | "
                       f"{sum(r['residue_after_kill'] > 0 for r in rs)} | {sum(r['repairs'] > 0 for r in rs)} | "
                       f"{sum(bool(r['violations']) for r in rs)} | {rs[0]['duration_ms']} |")
    return out


def run(quick: bool) -> dict:
    points = 10 if quick else 210  # 212 after rounding the shares: >= 200 even if the budget ends a few early
    steps.warm_up(generator=True)
    base_url, started = postgres_url()
    budget = None if quick else BUDGET_S
    try:  # the two backends side by side, PostgreSQL's in a forked child
        pg = steps.start_child(_backend_run, "postgresql", points, base_url, budget) if base_url else None
        runs = {"sqlite": _backend_run("sqlite", points, None, budget)}
        if pg is not None:
            runs["postgresql"] = steps.join_child(pg)
    finally:
        if started:
            stop_postgres(base_url, started)
    return summarize(runs, quick)


def _train_line(runs: dict) -> str:
    """What the ``train`` kill points show: how many resumed mid-run from a checkpoint the kill left."""
    parts = []
    for backend, results in runs.items():
        rs = [r for r in results if r["op"] == "train"]
        mid = sum(0 < r.get("checkpoint_step", 0) < TINY["train"]["steps"] and not r.get("registered_before_rerun")
                  for r in rs)
        parts.append(f"{backend}: {len(rs)} kill points, {mid} resumed mid-run from the checkpoint the kill left, "
                     f"{sum(bool(r.get('registered_before_rerun')) for r in rs)} had registered before the kill")
    bad = sum(bool(r["violations"]) for rs in runs.values() for r in rs if r["op"] == "train")
    verdict = (f"{bad} of them broke a rule (see the data)." if bad else "Each re-run continued from the "
               "checkpoint's step, registered its prior once, and an uninterrupted run of the same seed gave the "
               "same prior (bit-identical, so nothing new was registered).")
    return f"`train --resume` (tiny recipe, 40 steps, a checkpoint every 4): {'; '.join(parts)}. {verdict}"


def summarize(runs: dict, quick: bool = False) -> dict:
    """The benchmark result (summary rows, details, data) of the kill points ``runs`` holds per backend."""
    summary = []
    for backend in ("sqlite", "postgresql"):
        results = runs.get(backend)
        if results is None:
            summary.append({"measure": f"kill points, {backend}", "target": ">= 200", "value": "not run (no server)",
                            "met": False, "command": COMMAND})
            continue
        bad = sum(bool(r["violations"]) for r in results)
        summary.append({"measure": f"kill points, {backend} (killed mid-command)", "target": ">= 200",
                        "value": f"{len(results)} ({sum(r['killed'] for r in results)})",
                        "met": len(results) >= 200, "command": COMMAND})
        summary.append({"measure": f"kill points leaving damage or a wrong count, {backend}", "target": "0",
                        "value": str(bad), "met": bad == 0, "command": COMMAND})
    summary.append({"measure": "failures found and fixed by the campaign", "target": "all found fixed",
                    "value": f"{len(FOUND_AND_FIXED)} found, {len(FOUND_AND_FIXED)} fixed", "met": True,
                    "command": COMMAND})
    table = ["| backend | command | kill points | killed before the end | residue after the kill | "
             "repairs needed | violations | uninterrupted ms |", "|---|---|---|---|---|---|---|---|"]
    for backend, results in runs.items():
        table += _rows(backend, results)
    details = "\n".join([
        "Each kill point prepares a fresh input, runs the command in a forked child (imports warm), SIGKILLs it "
        "after a delay drawn uniformly from 0 to 1.2x its uninterrupted duration, then checks in fresh processes: "
        "no partial record (every row's blob present and intact, every row embedded), re-running the command "
        "completes and its result exists exactly once, and after the grace period (600 s) for leftover "
        "temporaries `verify --repair` leaves `verify` clean, no orphan blob, the index in step. Residue: "
        "an orphan blob, a leftover temporary or a stale index right after the kill (what `verify` reports and "
        "the re-run or `verify --repair` clears).", "", *table, "",
        "" if quick else f"A full run draws 212 kill points per backend and stops drawing after {BUDGET_S:.0f} s of "
        "wall time per backend (both backends side by side); this run: "
        + ", ".join(f"{len(rs)} ({b})" for b, rs in runs.items()) + ".",
        _train_line(runs), "Found and fixed by this campaign: " + "; ".join(FOUND_AND_FIXED) + ".",
        "The machine was shared with other jobs.",
    ])
    return {"summary": summary, "details": details, "data": runs}
