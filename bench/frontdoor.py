"""Front door: does the answer pick the best start, which estimate ranks candidates like fine-tuning
does (the one the product uses is decided here), and how fast is an answer? (issue 23's acceptance,
on the demo zoo)

Cases: bench/_frontdoor_cases.py (held-out tasks of the `full` preset the demo zoo lacks, and user
datasets absent from every preset). Per case and architecture, `Zoo.answer` with `--arch` (the
product's default estimate) names its best retrieved and best generated start and chooses between
them; both and random init are fine-tuned with one schedule, and the test accuracy after a small fixed
budget and after one epoch is what the decision is judged on. Selection: the candidates `query --data`
scores for the case (one per task x architecture group, most similar data first) are each fine-tuned
for the budget; every estimate of `igpg_zoo.answer.estimate` (on the answer's own sample of the
training split) and the static baselines are compared with that accuracy by weighted Kendall tau.
"""

from __future__ import annotations

import numpy as np

from bench._frontdoor_cases import cells, estimate_names, latency, mean

TITLE = "Front door: generate-or-retrieve decision, selection, latency"
STARTS = ("retrieved", "generated", "random")
STATIC = ("stored_acc", "n_params")
COMBOS = {"rank(margin, ridge)": ("margin", "ridge"), "rank(loo_margin, loo_acc)": ("loo_margin", "loo_acc"),
          "rank(loo_margin, stored_acc)": ("loo_margin", "stored_acc")}  # reported only, never the default


def _regret(case_cells: list[dict], mark: str, key: str | None = None) -> list[dict]:
    """Per cell: each start's test accuracy at ``mark`` and the regret of the choice (``key``: an
    estimate's choice between the retrieved and the generated start instead of the answer's)."""
    rows = []
    for c in case_cells:
        at = str(c["per_epoch"]) if mark == "epoch" else mark
        acc = {k: r["test_at"].get(at) for k, r in c["runs"].items()}
        choice = c["choice"] if key is None else c["choices"][key]
        rows.append({"arch": c["arch"], "choice": choice, "acc": acc, "regret": max(acc.values()) - acc[choice]})
    return rows


def _ranks(v: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(v) / len(v)


def _tau(rows: list[dict], key: str) -> float | None:
    from scipy.stats import weightedtau

    true = np.array([r["true"] for r in rows], dtype=float)
    if len(rows) < 2 or np.ptp(true) == 0:
        return None
    if key in COMBOS:
        score = sum(_ranks(np.array([r[k] for r in rows], dtype=float)) for k in COMBOS[key])
    else:
        score = np.array([r[key] for r in rows], dtype=float)
    return float(weightedtau(true, score).statistic) if np.ptp(score) > 0 else 0.0


def _loco(taus: dict[str, list], names: tuple[str, ...]) -> tuple[list[str], list[float]]:
    """Leave one case out: the estimate with the best mean tau on the other cases, scored on the case left out."""
    picks, scores = [], []
    n = len(taus[names[0]])
    for i in range(n):
        best = max(names, key=lambda k: mean(t for j, t in enumerate(taus[k]) if j != i) or -2)
        picks.append(best)
        scores.append(taus[best][i])
    return picks, scores


def run(quick: bool) -> dict:
    from bench._frontdoor_process import whole_process

    data = cells(quick)
    names = estimate_names()
    keys = (*names, *STATIC, *COMBOS)
    regrets = {"budget": [], "epoch": []}
    alt = {e: [] for e in names}
    taus: dict[str, list] = {k: [] for k in keys}
    tau_cases = []
    budget = str(data["sizes"]["budget"])
    lines = [f"| case | kind | arch | answer | {data['estimate']} retrieved / generated / random | "
             "acc@budget r / g / rnd | regret pp |", "|---|---|---|---|---|---|---|"]
    for task, case in data["cases"].items():
        for mark in regrets:
            for r in _regret(case["cells"], budget if mark == "budget" else "epoch"):
                regrets[mark].append({**r, "case": task, "kind": case["kind"]})
        for e in names:
            alt[e] += _regret(case["cells"], budget, e)
        for r, c in zip(_regret(case["cells"], budget), case["cells"]):
            est = " / ".join(f"{c['estimates'][k][data['estimate']]:.2f}" if k in c["estimates"] else "-" for k in STARTS)
            acc = " / ".join(f"{r['acc'][k]:.3f}" if r["acc"].get(k) is not None else "-" for k in STARTS)
            lines.append(f"| {task} | {case['kind']} | {c['arch']} | {c['choice']} | {est} | {acc} | "
                         f"{100 * r['regret']:.1f} |")
        rows = case["selection"]["candidates"]
        if len(rows) >= 10:
            tau_cases.append(task)
            for key in keys:
                taus[key].append(_tau(rows, key))
    loco_picks, loco_taus = _loco(taus, names)
    in_process = latency(quick)
    proc = whole_process(data, quick)
    summary = _summary(regrets, taus, in_process, proc, data, quick, loco_taus)
    details = _details(lines, taus, tau_cases, keys, alt, loco_picks, loco_taus, proc, data)
    for case in data["cases"].values():  # the curves are the finetune area's; here the accuracies suffice
        for c in case["cells"]:
            for r in c["runs"].values():
                r.pop("curve", None)
    return {"summary": summary, "details": details,
            "data": {"cells": data, "regrets": regrets, "taus": taus, "tau_cases": tau_cases,
                     "loco": {"picks": loco_picks, "taus": loco_taus}, "in_process": in_process,
                     "whole_process": proc}}


def _summary(regrets, taus, latency, proc, data, quick, loco_taus) -> list[dict]:
    cmd = "python -m bench frontdoor" + (" --quick" if quick else "")
    est = data["estimate"]
    rows = []
    for mark, label in (("budget", f"after {data['sizes']['budget']} steps"), ("epoch", "after 1 epoch")):
        rs = regrets[mark]
        within = sum(r["regret"] <= 0.01 for r in rs)
        share = within / len(rs) if rs else 0.0
        means = {k: mean(r["acc"].get(k) for r in rs) for k in STARTS}
        auto = mean(r["acc"][r["choice"]] for r in rs)
        rows.append({"measure": f"decision regret {label}: the answer ({est}) within 1 pp of the best start",
                     "target": ">= 90 % of cases", "value": f"{within} of {len(rs)} ({100 * share:.0f} %)",
                     "met": share >= 0.9, "command": cmd})
        rows.append({"measure": f"mean test accuracy {label}: the answer vs always retrieve / generate / random",
                     "target": "answer above always-retrieve and always-generate",
                     "value": f"{auto:.3f} vs {means['retrieved']:.3f} / {means['generated'] or 0:.3f} / "
                              f"{means['random']:.3f}",
                     "met": auto > means["retrieved"] and auto > (means["generated"] or 0), "command": cmd})
    t = {k: mean(v) for k, v in taus.items()}
    static = max(t["stored_acc"] or -1, t["n_params"] or -1)
    rows.append({"measure": f"selection: weighted Kendall tau vs accuracy after {data['sizes']['budget']} steps, "
                            f"{len(taus[est])} datasets x >= 10 candidates: the product's estimate ({est}) vs "
                            "static stored accuracy / parameter count",
                 "target": ">= 0.6 and above the static baselines",
                 "value": f"{t[est]:.2f} vs {t['stored_acc']:.2f} / {t['n_params']:.2f}",
                 "met": bool(t[est] >= 0.6 and t[est] > static), "command": cmd})
    rows.append({"measure": "selection: mean tau of the estimate picked with each case left out (best on the others)",
                 "target": "–", "value": f"{mean(loco_taus):.2f}", "met": None, "command": cmd})
    med = {k: float(np.median([x[k] for x in latency])) for k in latency[0] if k != "case"}
    rows.append({"measure": "latency of an answer for --data (in process, warm; median over cases): without / with "
                            "generation, wall (CPU)", "target": "<= 3 s / <= 10 s",
                 "value": f"{med['retrieve_s']:.2f} s ({med['retrieve_cpu_s']:.2f} s CPU) / "
                          f"{med['retrieve_and_generate_s']:.2f} s ({med['retrieve_and_generate_cpu_s']:.2f} s CPU)",
                 "met": med["retrieve_s"] <= 3 and med["retrieve_and_generate_s"] <= 10, "command": cmd})
    r, g = proc["retrieve"], proc["generate"]
    rows.append({"measure": "latency of `query --data` as a whole process (cold, median of 3): without / with "
                            "generation, wall (CPU)",
                 "target": "<= 3 s / <= 10 s",
                 "value": f"{r['wall_s']:.2f} s ({r['cpu_s']:.2f} s CPU) / {g['wall_s']:.2f} s ({g['cpu_s']:.2f} s CPU)",
                 "met": r["wall_s"] <= 3 and g["wall_s"] <= 10, "command": cmd})
    return rows


def _details(lines, taus, tau_cases, keys, alt, loco_picks, loco_taus, proc, data) -> str:
    head = "| estimate | " + " | ".join(tau_cases) + " | mean |\n|---|" + "---|" * (len(tau_cases) + 1)
    tab = [f"| {k} | " + " | ".join("-" if v is None else f"{v:.2f}" for v in taus[k]) + f" | {mean(taus[k]):.2f} |"
           for k in keys]
    within = {e: sum(r["regret"] <= 0.01 for r in v) for e, v in alt.items()}
    est = data["estimate"]
    facts = (f"Sizes: {data['sizes']}; zoo: {data['zoo']}. Static baselines rank by stored test accuracy and by "
             "parameter count; rank(a, b) averages two rankings (reported, not offered). Chosen with each case "
             f"left out, the estimate picks were {', '.join(loco_picks)} (mean tau {mean(loco_taus):.2f} on the "
             f"cases left out). Deciding between the same two starts by each estimate puts within 1 pp after the "
             f"budget: " + ", ".join(f"{e} {n}" for e, n in within.items()) + f" of {len(next(iter(alt.values())))} "
             f"cells. The product's estimate is `{est}` (`AnswerSettings.estimate`). Whole-process latency: "
             f"`igpg-zoo query --data` on {proc['data']} with {proc['registry_note']}, 3 cold processes each "
             "(`--mode retrieve`; `--mode auto`, which draws; `--no-record`, a fresh `--seed` each, so no score is "
             "read from the cache); machine shared with other jobs, so wall times are "
             "upper bounds and CPU times are given beside them.")
    return (__doc__.split("\n\n")[1].replace("\n", " ") + "\n\n" + "\n".join(lines[:26]) + "\n\n" + head + "\n"
            + "\n".join(tab) + "\n\n" + facts)
