"""IGPG generator: the acceptance benchmark of a trained prior, for the default recipe and `best`.

``python -m bench generator`` builds the ``full`` zoo under bench/scratch/generator-full, trains the
default tokenizer on its training tasks, then a prior per recipe with ``train_prior`` (what
`igpg-zoo train --recipe NAME` runs: ``default`` and ``best``), and measures with `generate`'s default sampling
(temperature 1, top-p 0.9): 13 seen (task, architecture) pairs x 5 samples (best-of-5 picked on
training data, the first draw as a single sample, exact token copies, what `generate` returns with
copies dropped), the swap control (own vs another task's condition), held-out tasks fine-tuned from
generated weights with the head fitted on the task's data vs random init, widths never trained, and
sampling speed with vs without the KV cache. It trains for hours on one CPU thread. ``--quick``: the
digits family (168 checkpoints), short tokenizer training, the default recipe at 20 epochs.

``python -m bench.generator --recipe default`` measures one recipe and merges it into the results:
the other recipes' figures stay as they were (their rows name the run that measured them). The
figures of the run before the generator's API change are kept in ``data["before"]`` and shown beside
the default recipe's current ones.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

TITLE = "IGPG generator"
COMMAND = "python -m bench generator"
SCRATCH = Path(__file__).resolve().parent / "scratch"
RESULTS = Path(__file__).resolve().parent / "results" / "generator.json"
RECIPES = ("default", "best")


def _log(msg: str) -> None:
    print(time.strftime("%H:%M:%S"), msg, flush=True)


def _evaluate(gen, zoo, setup: dict, archs, full: bool, quick: bool) -> dict:
    from bench._generator_eval import eval_arch_variants, eval_heldout, eval_seen, eval_swap

    H = setup["holdout"]
    out = {"seen": eval_seen(gen, zoo, archs, H, quick, _log), "swap": eval_swap(gen, zoo, archs, H, quick, _log)}
    if full:
        out["heldout"] = eval_heldout(gen, zoo, archs, H, quick, _log)
        out["variants"] = eval_arch_variants(gen, zoo, setup["variants"], H, _log)
    return out


def measure(quick: bool, recipes: tuple[str, ...] = RECIPES) -> dict:
    import torch

    from bench import _generator_eval
    from bench._generator_eval import tokenizer_fidelity
    from bench._generator_setup import archs_for, build, tokenizer, train_recipe, zoo_setup
    from bench._generator_speed import eval_speed
    from igpg_zoo.igpg.generate import Generator
    from igpg_zoo.igpg.sampling import SamplingSettings
    from igpg_zoo.zoo import open_zoo

    _generator_eval.SETTINGS = SamplingSettings(temperature=1.0, top_p=0.9)  # `generate`'s defaults
    torch.set_num_threads(1)
    setup = zoo_setup("digits" if quick else "full", quick)
    registry = SCRATCH / setup["stem"] / "registry.db"
    registry.parent.mkdir(parents=True, exist_ok=True)
    data: dict = {"sampling": {"temperature": 1.0, "top_p": 0.9}, "recipes": {}}
    with open_zoo(str(registry)) as zoo:
        data["zoo"] = build(zoo, quick, setup, _log)
        data["tokenizer"] = tokenizer(zoo, 100 if quick else None, {}, setup["holdout"], _log)
        data["tokenizer"].update(tokenizer_fidelity(zoo, data["tokenizer"]["id"], setup["holdout"]))
    for recipe in ("default",) if quick else recipes:
        prior = train_recipe(registry, data["tokenizer"]["id"], setup["holdout"], recipe, quick, _log)
        with open_zoo(str(registry)) as zoo:
            gen = Generator.load(zoo, prior["id"])
            archs = archs_for(zoo, setup, data["zoo"]["archs"])
            data["recipes"][recipe] = {"prior": prior, **_evaluate(gen, zoo, setup, archs, recipe == "default", quick)}
            if recipe == "default":
                data["speed"] = eval_speed(gen, sorted({r.arch for r in zoo.list()}), _generator_eval.SETTINGS, _log,
                                           repeats=2 if quick else 5)
    return data


# -- the summary and the section ------------------------------------------------------------------


def _pairs(share: float, n: int) -> str:
    return f"{round(share * n)} of {n}"


def _seen_rows(name: str, recipe: dict) -> list[dict]:
    seen = recipe["seen"]
    n = seen["pairs"]
    draws = sum(sum(100 * (r["median_trained"] - a) <= 5 for a in r["generated_all"]) for r in seen["rows"])
    total = sum(r["n"] for r in seen["rows"])
    label = f"`{name}` recipe" if name != "default" else "default recipe"
    if recipe.get("measured"):  # carried over from an earlier run
        label += f" (run of {recipe['measured']})"
    extra: dict = {}
    return [
        {"measure": f"{label}: seen pairs with best-of-5 within 2 pp of the median trained", "target": f"{n} of {n}",
         "value": _pairs(seen["share_pairs_best5_within_2pp"], n), "met": seen["share_pairs_best5_within_2pp"] == 1,
         **extra},
        {"measure": f"{label}: seen pairs with a single draw within 5 pp (all draws within 5 pp)", "target": f"{n} of {n}",
         "value": f"{_pairs(seen['share_pairs_single_within_5pp'], n)} ({draws} of {total})",
         "met": seen["share_pairs_single_within_5pp"] == 1, **extra},
        {"measure": f"{label}: exact token copies of zoo members", "target": "≤ 10 %",
         "value": f"{100 * seen['exact_copy_share']:.1f} %", "met": seen["exact_copy_share"] <= 0.10, **extra},
    ]


def summary(data: dict) -> list[dict]:
    d = data["recipes"]["default"]
    seen, n = d["seen"], d["seen"]["pairs"]
    rows = _seen_rows("default", d)
    novel_best = seen.get("novel_share_pairs_best5_within_2pp", 0.0)  # absent when no pair had a new sample
    novel_likeliest = seen.get("novel_share_pairs_likeliest_within_5pp", 0.0)
    rows.append({"measure": "default recipe, what `generate` returns (copies dropped): best-of-5 within 2 pp / "
                            "likeliest of 5, no data, within 5 pp", "target": f"{n} / {n} of {n}",
                 "value": f"{_pairs(novel_best, n)} / {_pairs(novel_likeliest, n)}",
                 "met": novel_best == 1 and novel_likeliest == 1})
    swap = d["swap"]
    rows.append({"measure": "swap control: own vs another task's condition, mean (weakest pair)", "target": "≥ 20 pp",
                 "value": f"{swap['mean_difference_pp']:.1f} pp ({swap['min_difference_pp']:.1f})",
                 "met": swap["mean_difference_pp"] >= 20})
    if "heldout" in d:
        g = d["heldout"]["gain_over_random_pp"]["0.01"]["generated_head_fit"]
        rows.append({"measure": "held-out tasks, head fitted: gain over random init after 5 / 20 steps / 1 epoch",
                     "target": "≥ +10 pp small budget, ≥ 0 after 1 epoch",
                     "value": f"+{g['5']:.1f} / +{g['20']:.1f} / +{g['epoch']:.1f} pp",
                     "met": max(g["5"], g["20"]) >= 10 and g["epoch"] >= 0})
    if "best" in data["recipes"]:
        rows += _seen_rows("best", data["recipes"]["best"])
    s = data["speed"]
    kv = (data.get("quick_check") or {}).get("kv_full_shape")
    if kv:  # measured on the current code at the full zoo's prior shape; `generate` draws 5 by default
        a, b = kv["after"], kv["before"]
        rows.append({"measure": f"KV-cache speed-up (prior of the full zoo's shape): 5 in a batch, `generate`'s "
                                f"default / one {kv['tokens']}-token sequence / 512-token context",
                     "target": "≥ 5×", "value": f"{a['five']:.1f}× / {a['one']:.1f}× / {a['long']:.1f}× (before the "
                                                f"API change {b['five']:.1f}× / {b['one']:.1f}× / {b['long']:.1f}×)",
                     "met": a["five"] >= 5})
    else:
        rows.append({"measure": f"KV-cache speed-up, one {s['tokens']}-token sequence / 5 in a batch / "
                                f"{s['long_tokens']}-token context", "target": "≥ 5×",
                     "value": f"{s['speedup']:.1f}× / {s['n5_speedup']:.1f}× / {s['long_speedup']:.1f}×",
                     "met": s["speedup"] >= 5})
    return [{**r, "command": COMMAND} for r in rows]


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _recipe_line(name: str, r: dict) -> str:
    p, s = r["prior"], r["seen"]
    name += f" (run of {r['measured']})" if r.get("measured") else ""
    loss = "–" if p.get("final_loss") is None else f"{p['final_loss']:.2f}"
    return (f"| {name} | {p.get('steps') or '–'} steps, {p['seconds']:,.0f} s, loss {loss} "
            f"| {100 * s['mean_best_of_5']:.1f} / {100 * s['mean_single']:.1f} | {100 * s['exact_copy_share']:.1f} % "
            f"| {100 * s['mean_generated_acc']:.1f} vs {_pct(s['mean_noise_baseline_acc'])} "
            f"| {r['swap']['mean_difference_pp']:.1f} ({r['swap']['min_difference_pp']:.1f}) |")


def details(data: dict) -> str:
    z, t = data["zoo"], data["tokenizer"]
    lines = [f"Zoo: preset `{z['preset']}`, {z['records']} checkpoints, {len(z['archs'])} architectures; held out of "
             f"training: {', '.join(f'`{h}`' for h in z['holdout'])}. Tokenizer #{t['id']} (the default): round trip on "
             f"training-task members {t['fidelity_mean_loss_pp']:+.2f} pp mean, {t['fidelity_worst_loss_pp']:.1f} pp worst. "
             "Recipes: `default` = what `igpg-zoo train` does with no options (50 epochs, dropout 0.1, 2 finest "
             "codes recombined per sequence); `best` = 80 epochs, recombination limited to swaps checked on "
             "training data (2 pp), members labelled by their standing in their group and `generate` asking for the "
             "top half. Sampling: temperature 1, top-p 0.9 (`generate`'s defaults).", "",
             "| recipe | prior training | seen: best-of-5 / single, mean % | copies | samples vs member + noise "
             "at the same distance | swap, pp (weakest) |", "|---|---|---|---|---|---|"]
    lines += [_recipe_line(name, r) for name, r in data["recipes"].items()]
    lines += _before_after(data)
    d = data["recipes"]["default"]
    if "heldout" in d:
        g = d["heldout"]["gain_over_random_pp"]["0.01"]
        lines += ["", "Held-out tasks (default recipe), gain over random init after 0 / 5 / 20 / 100 Adam steps "
                  "(lr 1e-2) / one epoch, mean of 3 data orders:", "",
                  "| start | 0 | 5 | 20 | 100 | epoch |", "|---|---|---|---|---|---|"]
        for start in ("generated_head_fit", "generated", "retrieved_head_fit", "retrieved_head_reset"):
            if start in g:
                lines.append(f"| {start.replace('_', ' ')} | " + " | ".join(f"{g[start][b]:+.1f}" for b in
                                                                          ("0", "5", "20", "100", "epoch")) + " |")
        v = d["variants"]["rows"]
        lines += ["", f"Widths never trained ({len(v)} pairs): best-of-5 above chance on "
                  f"{sum(r['best_of_5'] > r['chance'] for r in v)}; with the head fitted, the generated body beats a "
                  f"random one on {sum(r['best_of_5_head_fit'] > r['random_head_fit'] for r in v)}."]
    s = data["speed"]
    lines += ["", f"Sampling speed: the KV cache vs recomputing each window, fastest of {s.get('repeats', 5)} alternated "
              f"runs: {s['seconds_cached']:.2f} vs {s['seconds_uncached']:.2f} s for one {s['tokens']}-token sequence; "
              f"generating the largest model ({s['largest_n_params']:,} params) takes {s['generate_largest_seconds']:.2f} s.",
              *(["", *data["notes"]] if data.get("notes") else []),
              "", "Why these recipes (and what else was tried): docs/history.md."]
    return "\n".join(lines)


BEFORE_AFTER = ("default recipe", "swap control", "held-out tasks", "KV-cache")  # the rows compared


def _prior_cell(p: dict) -> str:
    loss = "–" if p.get("final_loss") is None else f"{p['final_loss']:.2f}"
    return f"{p.get('steps') or '–'} steps, {p['seconds']:,.0f} s, loss {loss}"


def _side_by_side(title: str, before: dict, after: dict) -> list[str]:
    """The default recipe's prior and rows of two runs ({"summary", "prior"} each), before | after."""
    now = {r["measure"]: r["value"] for r in after["summary"]}
    then = [r for r in before["summary"] if r["measure"].startswith(BEFORE_AFTER) and r["measure"] in now]
    return (["", title, "", "| measure | before | after |", "|---|---|---|",
             f"| prior training | {_prior_cell(before['prior'])} | {_prior_cell(after['prior'])} |"]
            + [f"| {r['measure'].removeprefix('default recipe: ')} | {r['value']} | {now[r['measure']]} |" for r in then])


def _before_after(data: dict) -> list[str]:
    """The default recipe's rows from the run before the API change beside this run's; and the
    ``--quick`` check of the same change (``data["quick_check"]``: both runs' rows, stored)."""
    lines = []
    if data.get("before"):
        b, d = data["before"], data["recipes"]["default"]
        lines += _side_by_side(f"Default recipe before → after the generator's API change (run of {b['date']} → "
                               f"{d.get('measured') or 'this run'}):",
                               {"summary": b["summary"], "prior": b["default_prior"]},
                               {"summary": summary(data), "prior": d["prior"]})
    if data.get("quick_check"):
        q = data["quick_check"]
        lines += _side_by_side(q["title"], q["before"], q["after"])
        if q.get("kv_full_shape"):
            lines += ["", q["kv_full_shape"]["note"]]
    return lines


def _before(old: dict) -> dict:
    """What a results file says about the default recipe, kept as the "before" of a later run."""
    if "before" in old.get("data", {}):
        return old["data"]["before"]
    return {"date": old["meta"]["date"], "machine": old["meta"].get("machine"), "summary": old["summary"],
            "default_prior": old["data"]["recipes"]["default"]["prior"]}


def merge(data: dict, old: dict | None) -> dict:
    """``data`` with what the previous results ``old`` hold and this run did not measure: the other
    recipes (marked with their run's date), the speed row, and the figures from before the API change."""
    if not old:
        return data
    for name, recipe in old["data"]["recipes"].items():
        if name not in data["recipes"]:
            data["recipes"][name] = {"measured": recipe.get("measured") or old["meta"]["date"], **recipe}
    data.setdefault("speed", old["data"]["speed"])
    data["before"] = _before(old)
    return data


def run(quick: bool) -> dict:
    data = measure(quick, RECIPES)
    if not quick and RESULTS.exists():
        data = merge(data, json.loads(RESULTS.read_text()))
    return {"summary": summary(data), "details": details(data), "data": data}


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.generator --recipe NAME``: measure the named recipes only, merged into the results."""
    from bench.__main__ import run_area

    parser = argparse.ArgumentParser(prog="python -m bench.generator", description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", action="append", choices=RECIPES, help="a recipe to measure (repeatable)")
    parser.add_argument("--quick", action="store_true", help="a small, fast version (results go to bench/scratch/)")
    args = parser.parse_args(argv)
    module = __import__("bench.generator", fromlist=["RECIPES"])  # the copy run_area imports, not __main__
    module.RECIPES = tuple(args.recipe or RECIPES)
    print(f"wrote {run_area('generator', args.quick)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
