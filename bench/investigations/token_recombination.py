"""Do new token sequences that work lie next to the zoo's members? One-token recombinations.

For a (task, architecture) pair, take a member's token sequence and replace the token at one
position by the token another member of the pair has there. Each such edit that is not itself a
member is a new sequence; decode it and score it on the test split, and measure how far it moves
the weights (relative to the edited member's norm). Short models are enumerated exhaustively, long
ones sampled (``--edits`` per pair).

    HF_HUB_OFFLINE=1 .venv/bin/python bench/token_recombination.py --tokenizer 2 --edits 60 [--prior 14[,15]] \
        [--finest] [--tag TAG]

With ``--prior``, also where each of those priors (trained on this tokenizer) puts its mass, teacher-forced on
each distinct member sequence of the pair: the probability of the member's own token at each position,
of the codes other members have there, and the mass of the whole set of member sequences: the share of raw draws
(temperature 1, no truncation) that replay a member. With ``--finest``, every sequence that recombines
the finest residual codes of a short pair's members (at most 20 tokens; what ``--recombine`` trains on)
is scored as well.

Reads the `full` benchmark registry; writes bench/results/token-recombination[-TAG].{json,md}.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from generator_eval import _members, _test_acc  # noqa: E402

PAIRS = (("iris", "mlp-i4-h16-o3"), ("wine", "mlp-i13-h16-o3"), ("breast_cancer", "mlp-i30-h16-o2"),
         ("fashion_mnist[classes=0,1,2,3,4][n=2000][size=14]", "cnn-i1x14x14-c8k3-c16k3-o5"),
         ("digits", "cnn-i1x8x8-c8k3-c16k3-h32-o10-tanh"), ("mnist1d", "mlp-i40-h64-o10"),
         ("digits", "cnn-i1x8x8-c16k3-c32k3-o10-gelu"))


def _flat(params: dict) -> torch.Tensor:
    return torch.cat([v.flatten() for v in params.values()])


def edits(seqs: list[tuple], limit: int, rng: random.Random) -> list[tuple[tuple, tuple, int]]:
    """(member, edited, position) triples: every one-token edit from a sibling when there are at most
    ``limit``, else ``limit`` drawn."""
    members = set(seqs)
    every = [(m, m[:j] + (c,) + m[j + 1:], j) for m in seqs for j in range(len(m))
             for c in sorted({s[j] for s in seqs} - {m[j]})]
    every = [(m, t, j) for m, t, j in every if t not in members]
    return every if len(every) <= limit else rng.sample(every, limit)


def finest_recombinations(zoo, tok, task: str, arch: str, limit: int = 600, seed: int = 0) -> dict:
    """New sequences whose finest residual codes (a chunk's last token) are any member's codes at those
    positions, on any member's coarser codes: all of them when there are at most ``limit``, else
    ``limit`` drawn uniformly; how many stay within 5 pp."""
    import math

    from igpg_zoo.data import load_dataset

    ds, members = load_dataset(task), _members(zoo, task, arch)
    median = statistics.median(r.metric("acc") for r in members)
    seqs = sorted({tuple(tok.encode(zoo.load_weights(r.id), arch).flatten().tolist()) for r in members})
    finest = range(tok.config.tokens_per_chunk - 1, len(seqs[0]), tok.config.tokens_per_chunk)
    codes = [sorted({s[p] for s in seqs}) for p in finest]
    rng, members_set, new = random.Random(seed), set(seqs), set()

    def recombine(m: tuple, combo) -> tuple:
        t = list(m)
        for p, c in zip(finest, combo):
            t[p] = c
        return tuple(t)

    if len(seqs) * math.prod(len(c) for c in codes) <= 20 * limit:  # few: every one, then a uniform draw
        every = sorted({recombine(m, c) for m in seqs for c in itertools.product(*codes)} - members_set)
        new = every if len(every) <= limit else rng.sample(every, limit)
    else:  # many: draw (member, codes) pairs until `limit` distinct new sequences
        for _ in range(50 * limit):
            t = recombine(rng.choice(seqs), [rng.choice(c) for c in codes])
            if t not in members_set:
                new.add(t)
            if len(new) == limit:
                break
        new = sorted(new)
    accs = [_test_acc(arch, tok.decode(torch.tensor(t), arch), ds) for t in new]
    return {"codes_per_position": [len(c) for c in codes], "sequences": len(new),
            "within_5pp": sum(median - a <= 0.05 for a in accs),
            "mean_acc": statistics.mean(accs) if accs else float("nan")}


def pair_row(zoo, tok, task: str, arch: str, limit: int, rng: random.Random) -> dict:
    from igpg_zoo.data import load_dataset

    ds, members = load_dataset(task), _members(zoo, task, arch)
    median = statistics.median(r.metric("acc") for r in members)
    seqs = sorted({tuple(tok.encode(zoo.load_weights(r.id), arch).flatten().tolist()) for r in members})
    accs, dists, stages = [], [], []
    for m, t, j in edits(seqs, limit, rng):
        accs.append(_test_acc(arch, tok.decode(torch.tensor(t), arch), ds))
        new, old = _flat(tok.decode_params(torch.tensor(t), arch)), _flat(tok.decode_params(torch.tensor(m), arch))
        dists.append(float((new - old).norm() / old.norm()))
        stages.append(j % tok.config.tokens_per_chunk)  # tokens are chunk-major: (chunk, residual stage)
    by_stage = {k: {"edits": stages.count(k), "within_5pp": sum(median - a <= 0.05 for a, g in zip(accs, stages) if g == k),
                    "median_distance": statistics.median([d for d, g in zip(dists, stages) if g == k])}
                for k in sorted(set(stages))}
    return {"task": task, "arch": arch, "tokens": len(seqs[0]), "members": len(members), "distinct": len(seqs),
            "median_trained": median, "edits": len(accs), "within_5pp": sum(median - a <= 0.05 for a in accs),
            "mean_acc": statistics.mean(accs), "median_distance": statistics.median(dists), "by_stage": by_stage}


@torch.no_grad()
def prior_mass(gen, zoo, task: str, arch: str) -> dict:
    """Teacher-forced on each distinct member sequence: per position, p(the member's token) and p(codes
    other members have there); per sequence, p(the whole sequence) (temperature 1, no truncation)."""
    from generator_eval import _condition_args

    args = _condition_args(zoo, task)
    cond = gen.condition(arch, args["task"], args["data_embedding"])
    seqs = sorted({tuple(gen.tokenizer.encode(zoo.load_weights(r.id), arch).flatten().tolist())
                   for r in _members(zoo, task, arch)})
    own, siblings, whole = [], [], []
    for m in seqs:
        batch = {k: v.view(1, -1) for k, v in cond.items() if v is not None}
        batch["window"] = torch.zeros(1, dtype=torch.long)
        logits, _ = gen.prior(torch.tensor([m]), {**cond, **batch})
        probs = logits[0].softmax(-1)  # (L, V): position j predicts token j
        mine = [float(probs[j, tok]) for j, tok in enumerate(m)]
        own += mine
        siblings += [float(probs[j, sorted({s[j] for s in seqs} - {tok})].sum()) for j, tok in enumerate(m)]
        whole.append(float(torch.tensor(mine).prod()))
    return {"p_own_token": statistics.mean(own), "p_sibling_codes": statistics.mean(siblings),
            "p_member_set": sum(whole), "distinct": len(seqs)}


def main() -> None:
    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.zoo import open_zoo

    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", type=int, default=2)
    ap.add_argument("--edits", type=int, default=60, help="most edits scored per pair (all when there are fewer)")
    ap.add_argument("--prior", type=lambda s: [int(x) for x in s.split(",")], default=[],
                    help="also measure where these priors put their mass (comma-separated ids)")
    ap.add_argument("--finest", action="store_true", help="also score every finest-code recombination of short pairs")
    ap.add_argument("--tag", default="", help="results file suffix")
    args = ap.parse_args()
    torch.set_num_threads(1)
    zoo = open_zoo(str(ROOT / "scratch" / "generator-full" / "registry.db"))
    tok, rng = Tokenizer.load(zoo, args.tokenizer), random.Random(0)
    rows = [pair_row(zoo, tok, t, a, args.edits, rng) for t, a in PAIRS]
    for row in rows:
        if args.finest and row["tokens"] <= 20:
            row["finest"] = finest_recombinations(zoo, tok, row["task"], row["arch"])
    if args.prior:
        from igpg_zoo.igpg.generate import Generator

        for pid in args.prior:
            gen = Generator.load(zoo, pid)
            for row in rows:
                row.setdefault("priors", []).append({"id": pid, "recombine": gen.artifact.config["train"].get(
                    "recombine", 0.0), **prior_mass(gen, zoo, row["task"], row["arch"])})
    zoo.close()
    out = ROOT / "results" / ("token-recombination" + (f"-{args.tag}" if args.tag else "") + ".json")
    out.write_text(json.dumps({"command": " ".join(["bench/token_recombination.py"] + sys.argv[1:]), "rows": rows}, indent=1))
    lines = ["# One-token recombinations of zoo members", "",
             f"Command: `bench/token_recombination.py {' '.join(sys.argv[1:])}` (tokenizer #{args.tokenizer}, the "
             "`full` benchmark registry; shared 2-core CPU).", "",
             "| task | arch | tokens | members (distinct sequences) | new sequences scored | within 5 pp of the median "
             "trained | mean accuracy (median trained) | median distance to the edited member |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['task']} | {r['arch']} | {r['tokens']} | {r['members']} ({r['distinct']}) | {r['edits']} | "
              f"{r['within_5pp']} ({100 * r['within_5pp'] / r['edits']:.0f} %) | {100 * r['mean_acc']:.1f} "
              f"({100 * r['median_trained']:.1f}) | {100 * r['median_distance']:.1f} % |" for r in rows]
    lines += ["", "By residual stage of the edited token (0: the coarsest code of its chunk): edits, share within "
              "5 pp, median distance.", "", "| task | arch | " + " | ".join(f"stage {k}" for k in range(4)) + " |",
              "|---|---|" + "---|" * 4]
    lines += [f"| {r['task']} | {r['arch']} | " + " | ".join(
        f"{b['edits']}, {100 * b['within_5pp'] / b['edits']:.0f} %, {100 * b['median_distance']:.1f} %"
        for b in r["by_stage"].values()) + " |" for r in rows]
    if args.finest:
        lines += ["", "Finest-code recombinations (each chunk's last code taken from any member, on any member's "
                  "coarser codes; new sequences only; every one when there are at most 600, else 600 drawn "
                  "uniformly):", "",
                  "| task | arch | finest codes per position | new sequences | within 5 pp | mean accuracy |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['task']} | {r['arch']} | {r['finest']['codes_per_position']} | {r['finest']['sequences']} | "
                  f"{r['finest']['within_5pp']} ({100 * r['finest']['within_5pp'] / max(1, r['finest']['sequences']):.0f} %) | "
                  f"{100 * r['finest']['mean_acc']:.1f} |" for r in rows if "finest" in r]
    for i, pid in enumerate(args.prior):
        recombine = rows[0]["priors"][i]["recombine"]
        lines += ["", f"Where prior #{pid} (recombine {recombine:g}) puts its mass, teacher-forced on each distinct "
                  "member sequence (temperature 1, no truncation; means over members and positions):", "",
                  "| task | arch | p(the member's own token) | p(codes other members have there; mostly another member "
                  "sharing the prefix) | mass on the member sequences (sum over the distinct ones) |",
                  "|---|---|---|---|---|"]
        lines += [f"| {r['task']} | {r['arch']} | {r['priors'][i]['p_own_token']:.3f} | "
                  f"{r['priors'][i]['p_sibling_codes']:.3f} | {r['priors'][i]['p_member_set']:.3f} "
                  f"({r['priors'][i]['distinct']}) |" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
