"""The novelty / quality frontier of one trained prior: its seen-task results under several sampling
settings, side by side (bench/results/generator-frontier.md).

Each row is a ``generator_bench.py --phases seen`` run on the same tokenizer and prior (reused from
the scratch registry), only the sampling settings differ; a tokenizer override (``align``) gives a
second prior. Regenerate the rows, then this table:

    for tp in "0.75 1" "0.75 0.9" "0.75 0.8" "1.0 0.8" "1.0 0.6"; do set -- $tp
      .venv/bin/python bench/generator_bench.py --prior-steps 800 --tokenizer-steps 1200 \
          --tag probe-t$1-p$2 --temperature $1 --top-p $2 --phases seen; done
    .venv/bin/python bench/generator_frontier.py
"""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ROWS = [  # (results file, tokenizer) in the order of the table
    ("generator-probe-t0.75-p1.json", "residual VQ"),
    ("generator-probe-t0.75-p1-d0.25.json", "residual VQ"),
    ("generator-probe-t0.75-p0.9.json", "residual VQ"),
    ("generator-probe-t0.75-p0.9-d0.1.json", "residual VQ"),
    ("generator-probe-t0.75-p0.8.json", "residual VQ"),
    ("generator-probe-t1.0-p0.8.json", "residual VQ"),
    ("generator-probe-t1.0-p0.6.json", "residual VQ"),
    ("generator-align.json", "residual VQ, aligned units"),
    ("generator-probe-align-t0.75-p0.9.json", "residual VQ, aligned units"),
    ("generator-probe-align-t0.75-p0.8.json", "residual VQ, aligned units"),
    ("generator-drop01-s1500.json", "residual VQ; prior dropout 0.1, 1,500 steps"),
    ("generator-drop01-s1500-t1.0-p0.9.json", "residual VQ; prior dropout 0.1, 1,500 steps"),
    ("generator-drop01-s1500-t1.0-p1.json", "residual VQ; prior dropout 0.1, 1,500 steps"),
]


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def row(path: Path, tokenizer: str) -> str:
    r = json.loads(path.read_text())
    s, samp = r["seen"], r["sampling"]
    top_p = samp.get("top_p") or 1
    return (f"| {tokenizer} | {samp['temperature']} | {top_p} | {_pct(s['exact_copy_share'])} | "
            f"{_pct(s['mean_relative_distance_to_nearest'])} | {_pct(s['mean_single'])} | "
            f"{100 * s['share_pairs_single_within_5pp']:.0f} % | {_pct(s['mean_best_of_5'])} | "
            f"{_pct(s.get('mean_likeliest'))} ({_pct(s.get('likeliest_copy_share'))} % copies) | "
            f"{_pct(s['mean_generated_acc'])} / {_pct(s['mean_noise_baseline_acc'])} | {_novel(s)} |")


def _novel(s: dict) -> str:
    """min distance | best-of-5 (pairs within 2 pp) | likeliest (pairs within 5 pp) | distance | member + noise"""
    if "novel_min_distance" not in s:
        return "- | - | - | - | -"
    if "novel_mean_likeliest" not in s:
        return f"{s['novel_min_distance']:g} | none | none | - | -"
    return (f"{s['novel_min_distance']:g} | {_pct(s['novel_mean_best_of_5'])} "
            f"({100 * s['novel_share_pairs_best5_within_2pp']:.0f} %) | {_pct(s['novel_mean_likeliest'])} "
            f"({100 * s['novel_share_pairs_likeliest_within_5pp']:.0f} %) | "
            f"{_pct(s['novel_likeliest_mean_relative_distance'])} | {_pct(s['novel_likeliest_mean_noise_baseline'])}")


def main() -> None:
    first = json.loads((RESULTS / ROWS[0][0]).read_text())
    lines = ["# Generator frontier: novelty vs quality under sampling settings", "",
             "Seen tasks (16 task x architecture pairs, 5 samples each, test accuracy %), 800-step priors without dropout unless stated, "
             f"zoo `{first['zoo']['preset']}`; median trained checkpoint {_pct(first['seen']['mean_median_trained'])}. "
             "Copies = exact token copies of a zoo member; distance = to the nearest member, % of its norm; "
             "likeliest = the sample of 5 the prior itself scores highest (no data); last column = mean accuracy of "
             "all samples vs the nearest member plus Gaussian noise at the same distance. "
             "Novel columns: `generate(novel=True, min_distance=d)` drops exact token copies of a member (and, "
             "d > 0, samples nearer than d of its norm) and draws again, up to 4 rounds of 5; its best-of-5 on "
             "validation data (share of pairs within 2 pp of the median trained), its likeliest sample "
             "(no data; share within 5 pp), that sample's distance to the nearest member and the member + "
             "noise baseline at that distance. A pair with no novel sample in 4 rounds counts as a miss.", "",
             "| tokenizer / prior | temperature | top-p | copies % | distance % | single | single within 5 pp | best-of-5 "
             "| likeliest of 5 | samples / member + noise | novel: min distance | novel best-of-5 "
             "| novel likeliest | its distance % | member + noise |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [row(RESULTS / f, tok) for f, tok in ROWS if (RESULTS / f).is_file()]
    (RESULTS / "generator-frontier.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
