"""Does the recombination check (igpg_zoo/igpg/recombine_check.py) reject the swaps that break a model?

For each given (task, arch) pair of the benchmark registry (bench/scratch/generator-full, built by
generator_bench.py --zoo full): every single finest-code swap of every member, its test accuracy against
the pair's median trained (the check itself never sees the test split), and which swaps the check keeps
at each tolerance. Writes bench/results/recombine-check[-TAG].json and .md.

    .venv/bin/python bench/recombine_check_bench.py --tokenizer 2 --pair iris:mlp-i4-h16-o3 --pair wine:mlp-i13-h16-o3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from generator_eval import _members, _test_acc  # noqa: E402

TOLS = (0.0, 0.01, 0.02, 0.03, 0.05, 1.0)


def pair_rows(zoo, tokenizer, task: str, arch: str) -> dict:
    from igpg_zoo.data import load_dataset
    from igpg_zoo.igpg.conditioning import Conditioner
    from igpg_zoo.igpg.prior_dataset import build_token_set
    from igpg_zoo.igpg.recombine_check import candidate_swaps, check_swaps

    members, ds = _members(zoo, task, arch), load_dataset(task)
    median = statistics.median(r.metric("acc") for r in members)
    data = build_token_set(zoo, tokenizer, Conditioner(zoo.embedder, ["depth"], 0), members)
    broken, costly = set(), set()  # (member, position, code) > 5 pp below the median / the member, test split
    n = 0
    for i in range(len(data)):
        own = _test_acc(arch, tokenizer.decode(data.tokens[i], arch), ds)
        for pos, code in candidate_swaps(data, i):
            t = data.tokens[i].clone()
            t[pos] = code
            n += 1
            acc = _test_acc(arch, tokenizer.decode(t, arch), ds)
            if median - acc > 0.05:
                broken.add((i, pos, code))
            if own - acc > 0.05:
                costly.add((i, pos, code))
    rows = []
    for tol in TOLS:
        allowed, stats = check_swaps(tokenizer, members, data, tol, per_record=10_000)
        kept = {(i, pos, c) for i, a in enumerate(allowed) for pos, codes in a.items() for c in codes}
        rows.append({"tol": tol, "kept": len(kept), "broken_kept": len(kept & broken),
                     "costly_kept": len(kept & costly), "seconds": stats.seconds})
    return {"task": task, "arch": arch, "members": len(members), "median": median, "swaps": n,
            "broken": len(broken), "costly": len(costly), "rows": rows}


def write_markdown(out: dict, path: Path) -> None:
    lines = ["# Does the recombination check reject the swaps that break a model?", "",
             f"Command: `{out['command']}`. Every single finest-code swap of every member, scored on the test split, "
             "which the check never reads (it scores 256 training samples): 'broken' = more than 5 pp below the "
             "pair's median trained (every swap of a member already outside that band counts), 'costly' = more "
             "than 5 pp below the member itself. Cells: swaps kept (broken kept / costly kept). Shared 2-core CPU.",
             "", "| task | arch | members | swaps | broken / costly | "
             + " | ".join(f"tol {t:g}" for t in TOLS) + " |", "|---" * (5 + len(TOLS)) + "|"]
    for p in out["pairs"]:
        cells = " | ".join(f"{r['kept']} ({r['broken_kept']} / {r['costly_kept']})" for r in p["rows"])
        lines.append(f"| {p['task']} | {p['arch']} | {p['members']} | {p['swaps']} | {p['broken']} / {p['costly']} "
                     f"| {cells} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.zoo import open_zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", type=int, required=True)
    ap.add_argument("--pair", action="append", required=True, help="TASK:ARCH (repeatable)")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    zoo = open_zoo(str(ROOT / "scratch" / "generator-full" / "registry.db"))
    tokenizer = Tokenizer.load(zoo, args.tokenizer)
    out = {"command": " ".join(["bench/recombine_check_bench.py"] + sys.argv[1:]),
           "pairs": [pair_rows(zoo, tokenizer, *p.rsplit(":", 1)) for p in args.pair]}
    for p in out["pairs"]:
        print(p["task"], p["arch"], p["swaps"], "swaps,", p["broken"], "broken,", p["costly"], "costly;",
              ", ".join(f"tol {r['tol']:g}: {r['kept']} kept ({r['broken_kept']} / {r['costly_kept']})"
                        for r in p["rows"]))
    zoo.close()
    path = ROOT / "results" / ("recombine-check" + (f"-{args.tag}" if args.tag else "") + ".json")
    path.write_text(json.dumps(out, indent=1, default=float))
    write_markdown(out, path.with_suffix(".md"))


if __name__ == "__main__":
    main()
