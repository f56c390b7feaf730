"""Many raw draws per seen pair: the odds that one sample is within 5 pp of the median trained
member, and the share of exact copies, per (task, architecture), at several temperatures.

The acceptance benchmark (generator_bench.py) draws 5 samples per pair at seed 0; its "single"
is the first of them, one draw per pair. This script draws ``-n`` more per pair at another seed,
so a result like "13 of 13 singles within 5 pp" can be read against each pair's odds.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/generator_draws.py --priors 14,33 --temperatures 1.0 \\
        --top-p 0.9 -n 10 --seed 7001 --tag lp1

Reads the `full` benchmark registry (bench/scratch/generator-full); writes
bench/results/generator-draws[-TAG].json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from generator_bench import archs_for, zoo_setup  # noqa: E402
from generator_eval import _condition_args, _members, _test_acc, seen_tasks  # noqa: E402


def draws(gen, zoo, task: str, arch: str, settings, n: int, seed: int, learned: set[int] | None = None,
          quality: str | None = None) -> dict:
    """``learned``: the ids the prior trained on (its snapshot), to count the members it learned from;
    ``quality``: the member standing asked of a prior trained with ``--quality`` (None: its default, top)."""
    from igpg_zoo.data import load_dataset
    from igpg_zoo.igpg.novelty import NeighbourIndex

    ds, args = load_dataset(task), _condition_args(zoo, task)
    cond = gen.condition(arch, args["task"], args["data_embedding"], quality)
    tokens, _ = gen.sample(arch, cond, n, settings, seed)
    weights = [gen.tokenizer.decode(tokens[i], arch) for i in range(n)]
    accs = [_test_acc(arch, w, ds) for w in weights]
    copies = [gen.is_replay(arch, tokens[i]) for i in range(n)]
    members = _members(zoo, task, arch)
    index = NeighbourIndex.build(zoo, gen.tokenizer, arch, ids=[r.id for r in members])
    distances = [index.relative_distance(w) for w in weights]  # to the nearest member, share of its norm
    coded = {tuple(gen.tokenizer.encode(zoo.load_weights(r.id), arch).flatten().tolist()) for r in members}
    median = statistics.median(r.metric("acc") for r in members)
    return {"task": task, "arch": arch, "tokens": gen.tokenizer.sequence_length(arch), "median_trained": median,
            "accs": accs, "copies": copies, "distances": distances, "within_5pp": sum(median - a <= 0.05 for a in accs),
            "members": len(members), "distinct_member_sequences": len(coded),
            "members_within_5pp": sum(median - r.metric("acc") <= 0.05 for r in members),  # a member drawn at random
            "members_replayed": len(coded & {tuple(t.tolist()) for t in tokens}),
            **({"learned_members": sum(r.id in learned for r in members),  # a --member-floor leaves some out
                "learned_within_5pp": sum(r.id in learned and median - r.metric("acc") <= 0.05 for r in members)}
               if learned is not None else {})}


def run(args) -> dict:
    from igpg_zoo.igpg.generate import Generator
    from igpg_zoo.igpg.sampling import SamplingSettings
    from igpg_zoo.zoo import open_zoo

    zoo = open_zoo(str(ROOT / "scratch" / "generator-full" / "registry.db"))
    setup = zoo_setup("full", False)
    pick = archs_for(zoo, setup, None)
    pairs = [(t, a) for t in seen_tasks(zoo, setup["holdout"], 8) for a in pick(t)]
    if args.max_tokens:
        length = Generator.load(zoo, args.priors[0]).tokenizer.sequence_length
        pairs = [(t, a) for t, a in pairs if length(a) <= args.max_tokens]
    out = {"command": " ".join(["bench/generator_draws.py"] + sys.argv[1:]), "n": args.n, "seed": args.seed,
           "top_p": args.top_p, "top_k": args.top_k, "min_p": args.min_p, "runs": []}
    for pid in args.priors:
        gen = Generator.load(zoo, pid)
        train = gen.artifact.config["train"]
        for T, quality in [(T, q) for T in args.temperatures
                           for q in (args.quality if gen.prior.cfg.quality_levels else [None])]:
            settings = SamplingSettings(temperature=T, top_p=args.top_p if args.top_p < 1 else None,
                                        top_k=args.top_k, min_p=args.min_p)
            t0 = time.perf_counter()
            learned = set(gen.artifact.provenance["snapshot"]["ids"])
            rows = [draws(gen, zoo, t, a, settings, args.n, args.seed, learned, quality) for t, a in pairs]
            out["runs"].append({"prior": pid, "steps": train["steps"], "length_power": train.get("length_power", 0.0),
                                "recombine": train.get("recombine", 0.0), "recombine_tol": train.get("recombine_tol"),
                                "member_floor": train.get("member_floor"), "quality": gen.quality_asked(quality),
                                "temperature": T, "rows": rows, "seconds": round(time.perf_counter() - t0, 1)})
            print(summary_line(out["runs"][-1]), flush=True)
    zoo.close()
    return out


def summary_line(run: dict) -> str:
    rows, n = run["rows"], len(run["rows"][0]["accs"])
    within = sum(r["within_5pp"] for r in rows)
    copies = sum(sum(r["copies"]) for r in rows)
    members = (f"; the zoo's own members: {sum(r['members_within_5pp'] for r in rows)} of "
               f"{sum(r['members'] for r in rows)} within 5 pp" if all("members_within_5pp" in r for r in rows) else "")
    if all("learned_members" in r for r in rows) and any(r["learned_members"] < r["members"] for r in rows):
        members += (f", the {sum(r['learned_members'] for r in rows)} it learned from: "
                    f"{sum(r['learned_within_5pp'] for r in rows)} within 5 pp")
    training = ", ".join([f"{run['steps']} steps"] + [f"{name} {run[key]:g}" for key, name in
                                                       (("length_power", "length power"), ("recombine", "recombine"),
                                                        ("recombine_tol", "checked"), ("member_floor", "member floor"))
                                                       if run.get(key)])
    asked = f", asked for {run['quality']} members" if run.get("quality") else ""
    return (f"prior #{run['prior']} ({training}), T {run['temperature']:g}{asked}: "
            f"draws within 5 pp {within} of {n * len(rows)}, exact copies {copies} ({100 * copies / (n * len(rows)):.1f} %), "
            f"pairs with every draw within 5 pp {sum(r['within_5pp'] == n for r in rows)} of {len(rows)}{members}")


def _distance(row: dict) -> str:
    return f"{100 * statistics.median(row['distances']):.1f} %" if "distances" in row else "—"  # older results lack it


def _learned(row: dict) -> str:
    return f"{row['learned_members']} ({row['learned_within_5pp']})" if "learned_members" in row else "—"


def write_markdown(out: dict, path: Path) -> None:
    lines = ["# Raw draws per seen pair", "", f"Command: `{out['command']}`. {out['n']} draws per pair at seed "
             f"{out['seed']} (the acceptance benchmark draws at seed 0), top-p {out['top_p']:g}, top-k {out.get('top_k')}, "
             f"min-p {out.get('min_p')}; shared 2-core CPU.", ""]
    for run in out["runs"]:
        lines += [f"## {summary_line(run)}", "", "| task | arch | tokens | median trained | draws within 5 pp | "
                  "exact copies | mean accuracy | median distance to nearest member | members (distinct token sequences) "
                  "| members within 5 pp | members learned from (within 5 pp) | members replayed |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['task']} | {r['arch']} | {r['tokens']} | {100 * r['median_trained']:.1f} | {r['within_5pp']} | "
                  f"{sum(r['copies'])} | {100 * statistics.mean(r['accs']):.1f} | {_distance(r)} | "
                  f"{r['members']} ({r['distinct_member_sequences']}) | {r.get('members_within_5pp', '—')} | "
                  f"{_learned(r)} | {r['members_replayed']} |" for r in run["rows"]]
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--priors", type=lambda s: [int(x) for x in s.split(",")], required=True)
    ap.add_argument("--temperatures", type=lambda s: [float(x) for x in s.split(",")], default=[1.0])
    ap.add_argument("--top-p", type=float, default=0.9)
    ap.add_argument("--top-k", type=int, default=None)
    ap.add_argument("--min-p", type=float, default=None)
    ap.add_argument("--max-tokens", type=int, default=None, help="only pairs whose models have at most this many tokens")
    ap.add_argument("--quality", type=lambda s: s.split(","), default=[None],
                    help="standings to ask a prior trained with --quality for, e.g. top,any (default: its default)")
    ap.add_argument("-n", type=int, default=10)
    ap.add_argument("--seed", type=int, default=7001)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = run(args)
    path = ROOT / "results" / ("generator-draws" + (f"-{args.tag}" if args.tag else "") + ".json")
    path.write_text(json.dumps(out, indent=1, default=float))
    write_markdown(out, path.with_suffix(".md"))


if __name__ == "__main__":
    main()
