"""bench/results/generator.json -> a Markdown summary (bench/results/generator.md)."""

from __future__ import annotations

from pathlib import Path


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def _seen(r: dict) -> list[str]:
    out = ["## Seen tasks (no fine-tuning; test accuracy %)", "",
           "| task | arch | median trained | tokenizer round trip of members | best-of-5 | single | likeliest of 5 (no data) "
           "| random init | best-of-5, head fit | single, head fit | random, head fit | exact copies |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        out.append(f"| {x['task']} | {x['arch']} | {_pct(x['median_trained'])} | {_pct(x.get('tokenizer_ceiling'))} | "
                   f"{_pct(x['best_of_n'])} | {_pct(x['single'])} | {_pct(x.get('likeliest'))} | {_pct(x['random_init'])} | "
                   f"{_pct(x.get('best_of_n_head_fit'))} | {_pct(x.get('single_head_fit'))} | "
                   f"{_pct(x.get('random_head_fit'))} | {x['exact_copies']}/{x['n']} |")
    out += ["", f"Means: median trained {_pct(r['mean_median_trained'])}, tokenizer round trip "
            f"{_pct(r.get('mean_tokenizer_ceiling'))}, best-of-5 {_pct(r['mean_best_of_5'])}, single "
            f"{_pct(r['mean_single'])}, random init {_pct(r['mean_random_init'])}, best-of-5 with head fit "
            f"{_pct(r.get('mean_best_of_5_head_fit'))}, single with head fit {_pct(r.get('mean_single_head_fit'))}, "
            f"random body with head fit {_pct(r.get('mean_random_head_fit'))}.",
            f"With head fit: gap to median trained best-of-5 {r.get('mean_gap_best_of_5_head_fit_pp', float('nan')):.1f} pp, "
            f"single {r.get('mean_gap_single_head_fit_pp', float('nan')):.1f} pp."]
    out += ["", f"Mean gap to median trained: best-of-5 {r['mean_gap_best_of_5_pp']:.1f} pp (worst "
            f"{r['worst_gap_best_of_5_pp']:.1f}), single sample {r['mean_gap_single_pp']:.1f} pp (worst "
            f"{r['worst_gap_single_pp']:.1f}). Pairs with best-of-5 within 2 pp: "
            f"{100 * r['share_pairs_best5_within_2pp']:.0f} %; single within 5 pp: "
            f"{100 * r['share_pairs_single_within_5pp']:.0f} %" + _all_raw_within(r["rows"]) + "."
            + (f" Likeliest of 5 (chosen by the prior's own likelihood, no data): mean {_pct(r['mean_likeliest'])}, "
               f"gap {r['mean_gap_likeliest_pp']:.1f} pp, within 5 pp: {100 * r['share_pairs_likeliest_within_5pp']:.0f} %, "
               f"exact copies {100 * r.get('likeliest_copy_share', float('nan')):.0f} %, distance to the nearest member "
               f"{100 * r.get('likeliest_mean_relative_distance', float('nan')):.1f} % of its norm."
               if "mean_likeliest" in r else ""),
            f"Novelty: exact token copies {100 * r['exact_copy_share']:.1f} % of samples; mean distance to the "
            f"nearest member {100 * r['mean_relative_distance_to_nearest']:.1f} % of its norm; generated mean "
            f"accuracy {_pct(r['mean_generated_acc'])} vs nearest member + noise at the same distance "
            f"{_pct(r['mean_noise_baseline_acc'])}."] + _novel_line(r) + [""]
    return out


def _heat(r: dict) -> str:
    """Results from before replacement rounds ran hotter (4 rounds at the user's temperature) say nothing."""
    if "novel_heat" not in r:
        return ""
    step, cap = r["novel_heat"]
    return f", up to {r['novel_max_rounds']} rounds, round r at T x min(1 + {step} r, {cap})"


def _novel_single(r: dict) -> str:
    if "novel_mean_single" not in r:
        return ""
    return (f"; first novel draw (a single sample) {_pct(r['novel_mean_single'])}, "
            f"{100 * r['novel_share_pairs_single_within_5pp']:.0f} % of pairs within 5 pp")


def _novel_line(r: dict) -> list[str]:
    if "novel_min_distance" not in r:
        return []
    if "novel_mean_likeliest" not in r:
        return [f"Novel only (min_distance {r['novel_min_distance']}): no pair gave a novel sample in "
                f"{r.get('novel_max_rounds', 4)} rounds."]
    return [f"Novel only (`generate(novel=True, min_distance={r.get('novel_min_distance', 0)})`: replays dropped, "
            f"replaced by further draws{_heat(r)}; "
            f"{r['novel_extra_rounds_pairs']} of {r['pairs']} pairs needed them): best-of-5 "
            f"{_pct(r['novel_mean_best_of_5'])} ({100 * r['novel_share_pairs_best5_within_2pp']:.0f} % of pairs within "
            f"2 pp); likeliest, no data {_pct(r['novel_mean_likeliest'])} "
            f"({100 * r['novel_share_pairs_likeliest_within_5pp']:.0f} % of pairs within 5 pp, worst gap "
            f"{r['novel_worst_gap_likeliest_pp']:.1f} pp), "
            f"{100 * r['novel_likeliest_mean_relative_distance']:.1f} % of a member's norm away, vs member + noise "
            f"at that distance {_pct(r['novel_likeliest_mean_noise_baseline'])}; mean of all novel samples "
            f"{_pct(r['novel_mean_accuracy'])}{_novel_single(r)}; pairs with no novel sample in {r.get('novel_max_rounds', 4)} rounds: "
            f"{r.get('novel_pairs_without_output', 0)} (counted as misses)."]


def _swap(r: dict) -> list[str]:
    out = ["## Swap control (mean of 3 samples, test accuracy %)", "", "| task | condition from | arch | own | swapped |",
           "|---|---|---|---|---|"]
    out += [f"| {x['task']} | {x['condition_from']} | {x['arch']} | {_pct(x['own'])} | {_pct(x['swapped'])} |"
            for x in r["rows"]]
    out += ["", f"Mean difference own - swapped: {r['mean_difference_pp']:.1f} pp (min {r['min_difference_pp']:.1f}).", ""]
    return out


def _heldout(r: dict) -> list[str]:
    if "lrs" not in r:  # a result from an older version of the benchmark
        return []
    budgets = r["budgets"]
    out = ["## Held-out tasks: test accuracy % after N Adam fine-tuning steps (batch 64; mean of 3 data orders, "
           "the same for every start)", "",
           f"'epoch' = one pass over the training split: {r.get('epoch_steps')} steps. 'head fit' = classifier solved "
           "by ridge regression on the training sample (`--head fit`)."
           + (f" Retrieved starts: the {r['rows_with_retrieval']} of {len(r['rows'])} pairs whose architecture a "
              "seen task also has (means and gains over those)." if r.get("rows_with_retrieval", len(r["rows"]))
              < len(r["rows"]) else ""), ""]
    for lr in r["lrs"]:
        out += [f"### lr {lr}", "", "| start | " + " | ".join(budgets) + " |", "|---|" + "---|" * len(budgets)]
        for name, accs in r["mean_acc"][lr].items():
            out.append(f"| {name} | " + " | ".join(_pct(accs[b]) for b in budgets) + " |")
        out += ["", "Gain over random init (pp):", ""]
        for name, g in r["gain_over_random_pp"][lr].items():
            if name != "random_init":
                out.append(f"- {name}: " + ", ".join(f"{b}: {g[b]:+.1f}" for b in budgets))
        out.append("")
    out += ["Per pair (lr " + r["lrs"][0] + "):", "", "| task | arch | start | " + " | ".join(budgets) + " |",
            "|---|---|---|" + "---|" * len(budgets)]
    for x in r["rows"]:
        for name, c in x["curves"][r["lrs"][0]].items():
            out.append(f"| {x['task']} | {x['arch']} | {name} | " + " | ".join(_pct(c[b]) for b in budgets) + " |")
    return out + [""]


def _variants(r: dict) -> list[str]:
    out = ["## Held-out architecture variants (zero-shot, test accuracy %)", "",
           "| arch | task | best-of-5 | mean of 5 | random init | chance | best-of-5, head fit | random body, head fit |",
           "|---|---|---|---|---|---|---|---|"]
    out += [f"| {x['arch']} | {x['task']} | {_pct(x['best_of_5'])} | {_pct(x['mean_of_5'])} | "
            f"{_pct(x['random_init'])} | {_pct(x['chance'])} | {_pct(x.get('best_of_5_head_fit'))} | "
            f"{_pct(x.get('random_head_fit'))} |" for x in r["rows"]]
    return out + [""]


def _all_raw_within(rows: list[dict], pp: float = 5.0) -> str:
    """Every raw sample, not only the first, scored against its pair's median trained: a single draw's odds."""
    gaps = [100 * (x["median_trained"] - a) for x in rows for a in x.get("generated_all", [])]
    if not gaps:
        return ""
    return f" (of all {len(gaps)} raw samples, {sum(g <= pp for g in gaps)} within {pp:.0f} pp)"


def _speed(r: dict) -> list[str]:
    how = (f"fastest of {r['repeats']} alternated runs each (ratio of the medians in brackets)"
           if "repeats" in r else "one run each")
    med = (lambda key: f" ({r[key]:.1f}x)" if key in r else "")
    return ["## Speed", "",
            f"KV cache vs recomputing each step, {how}. "
            f"Sampling {r['tokens']} tokens ({r['arch']}, block {r['block_size']}): KV cache {r['seconds_cached']:.2f} s, "
            f"without {r['seconds_uncached']:.2f} s: {r['speedup']:.1f}x{med('median_speedup')} "
            f"(identical tokens: {r['identical_tokens']}). "
            + (f"Five sequences in one batch (best-of-5): {r['n5_seconds_cached']:.2f} s vs "
               f"{r['n5_seconds_uncached']:.2f} s, {r['n5_speedup']:.1f}x{med('n5_median_speedup')}. "
               if "n5_speedup" in r else "")
            + f"Full generation of the largest model ({r['largest_n_params']} parameters): "
            f"{r['generate_largest_seconds']:.2f} s.",
            f"Same prior shape with a {r.get('long_tokens')}-token context (untrained weights): KV cache "
            f"{r.get('long_seconds_cached', float('nan')):.2f} s, without {r.get('long_seconds_uncached', float('nan')):.2f} s: "
            f"{r.get('long_speedup', float('nan')):.1f}x{med('long_median_speedup')}.", ""]


def _temperature(r: dict) -> list[str]:
    out = ["## Memorisation vs temperature (5 samples per pair, 4 seen tasks x each arch; test accuracy %)", "",
           "| temperature | mean accuracy | mean best-of-5 | exact copies | distance to nearest (% of its norm) "
           "| non-copies: mean accuracy | non-copies: best of the pair's samples (pairs with one) |",
           "|---|---|---|---|---|---|---|"]
    out += [f"| {x['temperature']} | {_pct(x['mean_acc'])} | {_pct(x['mean_best_of_5'])} | "
            f"{100 * x['exact_copy_share']:.0f} % | {100 * x['mean_relative_distance']:.1f} | "
            f"{_pct(x.get('novel_mean_acc'))} | {_pct(x.get('novel_best_of_5'))} "
            f"({x.get('pairs_with_a_novel_sample', '?')}/{x.get('pairs', '?')}) |" for x in r["rows"]]
    return out + [""]


def write_markdown(results: dict, path: Path) -> None:
    lines = ["# IGPG generator benchmark", "", f"Command: `{results.get('command')}`. Machine: {results.get('machine')}.", ""]
    if "sampling" in results:
        lines += [f"Sampling (every phase but the temperature sweep): {results['sampling']}.", ""]
    if "zoo" in results:
        z = results["zoo"]
        lines += [f"Zoo: preset `{z['preset']}` ({z['records']} records, archs {', '.join(z['archs'])}); "
                  f"held-out tasks: {', '.join(z['holdout'])}.", ""]
    if "tokenizer" in results:
        t = results["tokenizer"]
        lines += [f"Tokenizer #{t['id']}: round-trip accuracy loss mean {t.get('fidelity_mean_loss_pp', 0):.2f} pp, "
                  f"worst {t.get('fidelity_worst_loss_pp', 0):.2f} pp"
                  + (f" (members of training tasks); on held-out tasks' members, never seen by it: mean "
                     f"{t['heldout_fidelity_mean_loss_pp']:.2f} pp, worst {t['heldout_fidelity_worst_loss_pp']:.2f} pp"
                     if t.get("heldout_fidelity_mean_loss_pp") is not None else "")
                  + f"; tokens per model {t.get('tokens_per_model')}."
                  + (f" Trained in {t['seconds']:.0f} s on {t['machine']}." if t.get("machine") else ""), ""]
    if "prior" in results:
        p = results["prior"]
        where = p.get("machine") or "1 thread of a shared 2-core machine"
        lines += [f"Prior #{p['id']}: {p.get('steps')} steps in {p.get('seconds', 0):.0f} s on {where}, "
                  f"final loss {p.get('final_loss', float('nan')):.3f} nats/token, "
                  f"{p.get('n_params', '?')} parameters, context {p.get('block_size')} tokens.", ""]
    for key, fn in (("seen", _seen), ("swap", _swap), ("heldout", _heldout), ("variants", _variants), ("speed", _speed),
                     ("temperature", _temperature)):
        if key in results:
            lines += fn(results[key])
    Path(path).write_text("\n".join(lines))
