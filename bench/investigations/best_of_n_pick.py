"""What best-of-n picks on a seen pair: each of the acceptance run's n draws with its accuracy and
cross-entropy on the training sample the pick is made on, the prior's log-likelihood, and its test
accuracy; beside them the zoo members' training and test accuracies.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/best_of_n_pick.py --priors 16,18,15 --task iris \\
        --arch mlp-i4-h16-o3 --tag iris

Same draws as bench/generator_bench.py's seen phase (seed 0, T 1, top-p 0.9, n 5). Reads the `full`
benchmark registry (bench/scratch/generator-full); writes bench/results/best-of-n-pick[-TAG].md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from generator_eval import _condition_args, _members, _test_acc  # noqa: E402


def _train_scores(arch: str, weights: dict, ds) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on the whole training split."""
    import numpy as np
    import torch

    from igpg_zoo.igpg.generate import build_loaded

    x = torch.tensor(np.asarray(ds.x_train), dtype=torch.float32)
    y = torch.tensor(np.asarray(ds.y_train), dtype=torch.long)
    with torch.no_grad():
        logits = build_loaded(arch, dict(weights), x)(x)  # (N, classes)
    return float((logits.argmax(1) == y).float().mean()), float(torch.nn.functional.cross_entropy(logits, y))


def _pcts(members: list, metric: str) -> str:
    return ", ".join(f"{100 * v:.1f}" for v in sorted(r.metric(metric) for r in members))


def run(args) -> list[str]:
    from igpg_zoo.data import load_dataset
    from igpg_zoo.igpg.generate import Generator
    from igpg_zoo.igpg.sampling import SamplingSettings
    from igpg_zoo.zoo import open_zoo

    zoo = open_zoo(str(ROOT / "scratch" / "generator-full" / "registry.db"))
    ds = load_dataset(args.task)
    members = _members(zoo, args.task, args.arch)
    lines = [f"# What best-of-{args.n} picks: {args.task}, {args.arch}", "",
             f"Command: `bench/best_of_n_pick.py {' '.join(sys.argv[1:])}`. Draws ranked as `generate` ranks them "
             "(training-sample accuracy, then the prior's likelihood); the first row is the pick.", "",
             f"Zoo members ({len(members)}): test accuracy {_pcts(members, 'acc')}; "
             f"training accuracy {_pcts(members, 'train_acc')}.", ""]
    for pid in args.priors:
        gen = Generator.load(zoo, pid)
        results = gen.generate(args.arch, data=ds, n=args.n, settings=SamplingSettings(temperature=1.0, top_p=0.9),
                               seed=0, **_condition_args(zoo, args.task))
        lines += [f"## prior #{pid}", "", "| draw | training accuracy (pick) | training cross-entropy | log-likelihood | "
                  "test accuracy |", "|---|---|---|---|---|"]
        for g in results:
            acc, ce = _train_scores(args.arch, g.weights, ds)
            lines.append(f"| {g.provenance['sample_index']} | {100 * g.val_accuracy:.1f} ({100 * acc:.1f} on all) | "
                         f"{ce:.3f} | {g.log_likelihood:.1f} | {100 * _test_acc(args.arch, g.weights, ds):.1f} |")
        lines.append("")
    zoo.close()
    return lines


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--priors", type=lambda s: [int(x) for x in s.split(",")], required=True)
    ap.add_argument("--task", required=True)
    ap.add_argument("--arch", required=True)
    ap.add_argument("-n", type=int, default=5)
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    out = ROOT / "results" / f"best-of-n-pick{'-' + args.tag if args.tag else ''}.md"
    out.write_text("\n".join(run(args)))
    print(out.read_text())


if __name__ == "__main__":
    main()
