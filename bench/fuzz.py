"""Fuzz campaign: generated hostile inputs through the real CLI; every one must be refused in one line.

    python -m bench fuzz            # >= 10,000 generated inputs (bench/results/fuzz.json)
    python -m bench fuzz --quick    # about 400 (bench/scratch/fuzz.quick.json)

Each area feeds one kind of input (bench/_fuzz_cases.py: hypothesis strategies) to one or more
commands run in-process through ``igpg_zoo.cli.app.main`` under click's CliRunner, against one
registry per area that already holds a record (bench/_fuzz_oracle.py). The oracle per input: no
exception escapes, a failure exits non-zero with one error line, a failed command leaves every table
row and every file beside the registry as it was. Findings are counted, not stopped at; the first few
of each area are kept in the data.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from bench import _fuzz_cases as cases
from bench import _fuzz_oracle as oracle

TITLE = "Fuzz campaign"
COMMAND = "python -m bench fuzz"
BUDGET_S = 1200.0  # a full run stops generating inputs after this much wall time (the counts say how many ran)
# area -> (target, strategy, share of the inputs)
AREAS = {
    "checkpoint files": (oracle.checkpoint, cases.CHECKPOINTS, 0.22),
    "YAML sidecars": (oracle.sidecar, st.tuples(cases.sidecars(), st.booleans()), 0.12),
    "manifests": (oracle.manifest, cases.manifests(), 0.12),
    "--where / --metric": (oracle.condition, st.tuples(cases.conditions(),
                                                       st.sampled_from(["list", "query", "metric"])), 0.14),
    "architecture strings": (oracle.arch, st.tuples(cases.arch_strings(), st.sampled_from(["add", "list"])), 0.12),
    "--data files (CLI)": (oracle.data_file, cases.data_files(), 0.08),
    "--data files for an arch": (oracle.data_for_arch, cases.data_files(), 0.06),
    "CLI arguments": (oracle.cli_args, cases.argv(), 0.14),
}
# what the campaign found while it was built (each fixed in the owning module, with a test)
FOUND_AND_FIXED = [
    ("--where / --metric, architecture strings",
     "a carriage return or record separator (\\r, \\x1e) in the user's text, echoed in the error, split the one-line "
     "error over two lines (the CLI now escapes non-printable characters: igpg_zoo/cli/app.py)"),
    ("checkpoint files",
     "a .bin/.pt pickle of protocol 4 made torch print a warning line before the one-line refusal (the safe "
     "loader now silences torch's warnings: igpg_zoo/registry/checkpoint_io.py)"),
    ("YAML sidecars", "a sidecar or --meta file that is not UTF-8 ended in a UnicodeDecodeError traceback, and the "
     "file was left open (igpg_zoo/registry/metadata.py)"),
    ("manifests", "a manifest that is not UTF-8 ended in a traceback; one with a number and a text among its unknown "
     "top-level keys failed sorting them (TypeError traceback) (igpg_zoo/registry/manifest.py)"),
    ("--data files for an arch", "found by the first full run: a .csv whose quoted header or cell holds a line "
     "break put that break into the loader's error (the CLI escaped it; the loader now does: "
     "igpg_zoo/data/userdata.py)"),
]


class _Budget(Exception):
    """The campaign's wall-time budget is spent: stop generating inputs."""


def _run_area(name: str, total: int, root: Path, deadline: float | None = None) -> dict:
    target, strategy, share = AREAS[name]
    folder = root / name.replace(" ", "_").replace("/", "").replace("-", "")
    folder.mkdir(parents=True)
    os.chdir(folder)
    oracle.set_env(folder, root / "cache")
    n = max(1, round(total * share))
    counts = {"inputs": 0, "refused": 0, "accepted": 0, "findings": 0}
    examples: list[dict] = []

    @seed(20261207)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def check(case):
        if deadline is not None and time.time() > deadline:
            raise _Budget
        outcome = target(folder, case)
        counts["inputs"] += 1
        counts["refused" if outcome.exit_code else "accepted"] += 1
        if outcome.problem is not None:
            counts["findings"] += 1
            if len(examples) < 5:
                examples.append({"input": repr(case)[:300], "problem": outcome.problem})

    started = time.perf_counter()
    try:
        check()
    except (_Budget, ExceptionGroup):
        pass  # the budget ran out (hypothesis re-raises it, once or grouped): the counts say how far it got
    return {"area": name, "planned": n, **counts, "seconds": round(time.perf_counter() - started, 1), "examples": examples}


def run(quick: bool) -> dict:
    total = 400 if quick else 10_400
    root = Path(tempfile.mkdtemp(prefix="igpg-zoo-fuzz-"))
    cwd, env = os.getcwd(), dict(os.environ)
    deadline = None if quick else time.time() + BUDGET_S
    try:  # one forked process per area (imports warm), side by side
        from bench._crash_steps import join_child, start_child, warm_up

        warm_up()
        children = [start_child(_run_area, name, total, root, deadline) for name in AREAS]
        rows = [join_child(c) for c in children]
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        shutil.rmtree(root, ignore_errors=True)
    inputs = sum(r["inputs"] for r in rows)
    findings = sum(r["findings"] for r in rows)
    summary = [
        {"measure": "generated hostile inputs", "target": ">= 10,000", "value": f"{inputs:,}",
         "met": inputs >= 10_000, "command": COMMAND},
        {"measure": "tracebacks, multi-line errors or writes on failure", "target": "0",
         "value": str(findings), "met": findings == 0, "command": COMMAND},
        {"measure": "failures found and fixed while building the campaign", "target": "all found fixed",
         "value": f"{len(FOUND_AND_FIXED)} found, {len(FOUND_AND_FIXED)} fixed", "met": True, "command": COMMAND},
    ]
    table = ["| area | inputs (planned) | refused (one line) | accepted | findings | s |", "|---|---|---|---|---|---|"]
    table += [f"| {r['area']} | {r['inputs']:,} ({r['planned']:,}) | {r['refused']:,} | {r['accepted']:,} | "
              f"{r['findings']} | {r['seconds']} |" for r in rows]
    details = "\n".join([
        "Hypothesis strategies (bench/_fuzz_cases.py) generate hostile inputs: checkpoint files (truncated, "
        "bit-flipped, wrong dtypes, huge declared shapes in safetensors headers and stride-0 torch views, "
        "non-tensor pickles, nested containers, code-loading pickles), YAML sidecars and manifests, "
        "`--where`/`--metric` expressions, architecture strings, `--data` files and whole argument lists. "
        "Each runs through the real entry point in-process (click's CliRunner); an input passes when no "
        "exception escapes, a failure exits non-zero with one error line (click's usage errors keep their "
        "`Usage:`/`Try` lines around one `Error:` line) and the registry's rows and files are unchanged.",
        "", *table, "",
        "Found and fixed while building it: " + "; ".join(f"{a}: {what}" for a, what in FOUND_AND_FIXED) + ".",
        "The areas run side by side, one process each, within a wall-time budget; the machine was shared with "
        "other jobs; the seconds are wall time.",
    ])
    return {"summary": summary, "details": details,
            "data": {"areas": rows, "inputs": inputs, "findings": findings, "found_and_fixed": FOUND_AND_FIXED}}
