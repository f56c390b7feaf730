"""What the tokenizer costs each seen pair of the acceptance benchmark: every member's test accuracy as
trained and after encode -> decode, the two medians, and the largest loss.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/tokenizer_pairs.py --tokenizer 2

Reads the `full` benchmark registry (bench/scratch/generator-full); writes
bench/results/tokenizer-roundtrip-pairs.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from generator_bench import archs_for, zoo_setup  # noqa: E402
from generator_eval import _members, _test_acc, seen_tasks  # noqa: E402


def pair_row(zoo, tokenizer, task: str, arch: str) -> dict:
    from igpg_zoo.data import load_dataset

    ds = load_dataset(task)
    members = _members(zoo, task, arch)
    trained = [r.metric("acc") for r in members]
    decoded = [_test_acc(arch, tokenizer.round_trip(zoo.load_weights(r.id), arch), ds) for r in members]
    return {"task": task, "arch": arch, "ids": [r.id for r in members], "trained": trained, "decoded": decoded,
            "median_trained": statistics.median(trained), "median_decoded": statistics.median(decoded),
            "worst_loss": max(t - d for t, d in zip(trained, decoded))}


def write_markdown(rows: list[dict], command: str, path: Path) -> None:
    lines = ["# The tokenizer's round trip on the acceptance benchmark's seen pairs", "",
             f"Command: `{command}`. Test accuracy (%) of every member of each pair, as trained and encoded -> "
             "decoded.", "", "| task | arch | members | median trained | median decoded | largest loss (pp) |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['arch']} | {len(r['ids'])} | {100 * r['median_trained']:.1f} | "
              f"{100 * r['median_decoded']:.1f} | {100 * r['worst_loss']:.1f} |" for r in rows]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    import torch

    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.zoo import open_zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", type=int, required=True)
    args = ap.parse_args()
    torch.set_num_threads(1)
    zoo = open_zoo(str(ROOT / "scratch" / "generator-full" / "registry.db"))
    setup = zoo_setup("full", False)
    pick = archs_for(zoo, setup, None)
    tokenizer = Tokenizer.load(zoo, args.tokenizer)
    rows = [pair_row(zoo, tokenizer, t, a) for t in seen_tasks(zoo, setup["holdout"], 8) for a in pick(t)]
    zoo.close()
    command = " ".join(["bench/tokenizer_pairs.py"] + sys.argv[1:])
    path = ROOT / "results" / "tokenizer-roundtrip-pairs.json"
    path.write_text(json.dumps({"command": command, "rows": rows}, indent=1))
    write_markdown(rows, command, path.with_suffix(".md"))


if __name__ == "__main__":
    main()
