"""Which cheap estimate ranks stored starts best for a user's data (the default of ``query --data`` / ``select``).

    python -m bench answer_estimate [--quick]

On user datasets no demo-zoo task holds (sklearn digits class subsets and a flipped variant,
Fashion-MNIST subsets resized to 8x8), one member per (task, architecture) group of the demo zoo
that takes the data is handed out as ``query`` would (head fitted on the sample's fit part), then
fine-tuned for a fixed budget on the data's training split and scored on its test split (the
"truth"). Each estimate (ridge, knn, logme; measured on the held-out part of the sample only) and
the static baselines (stored accuracy, parameter count) are compared with that truth by weighted
Kendall tau (scipy.stats.weightedtau) and by the top-1 regret (truth of the best by truth minus
truth of the estimate's pick). The demo zoo is built once under bench/scratch (resumable), or
read from $BENCH_DEMO_REGISTRY.
"""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path

import numpy as np

TITLE = "Front door: which estimate ranks starts"
HERE = Path(__file__).resolve().parent
FASHION = Path("/usr/share/datasets/fashion-mnist")
ESTIMATES = ("ridge", "knn", "logme")
STATIC = ("stored_acc", "n_params")


def _digits(classes=None, flip=False):
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, classes) if classes is not None else np.ones(len(d.target), bool)
    x = d.images[keep].astype(np.float32)
    return (x[:, :, ::-1].copy() if flip else x), d.target[keep]


def _fashion(classes, n=1200, seed=0):
    from scipy.ndimage import zoom

    x = np.frombuffer(gzip.open(FASHION / "train-images-idx3-ubyte.gz").read(), np.uint8, offset=16).reshape(-1, 28, 28)
    y = np.frombuffer(gzip.open(FASHION / "train-labels-idx1-ubyte.gz").read(), np.uint8, offset=8)
    idx = np.random.default_rng(seed).choice(np.flatnonzero(np.isin(y, classes)), n, replace=False)
    return zoom(x[idx].astype(np.float32) / 255.0, (1, 8 / 28, 8 / 28), order=1), y[idx]


def cases(quick: bool) -> dict:
    out = {"digits[4,6,9]": _digits([4, 6, 9]), "digits[1,3,6,7]": _digits([1, 3, 6, 7]),
           "digits[flip]": _digits(flip=True)}
    if FASHION.is_dir():
        out["fashion8[0,1,7,8]"] = _fashion([0, 1, 7, 8])
        out["fashion8[2,5,9]"] = _fashion([2, 5, 9])
    return dict(list(out.items())[:3]) if quick else out


def _registry() -> str:
    if os.environ.get("BENCH_DEMO_REGISTRY"):
        return os.environ["BENCH_DEMO_REGISTRY"]
    from igpg_zoo.zoo import open_zoo
    from igpg_zoo.zoobuild.build import build_zoo

    path = HERE / "scratch" / "demo-zoo" / "registry.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_zoo(str(path)) as zoo:
        build_zoo(zoo, "demo")
    return str(path)


def _truth(arch, weights, ds, steps: int) -> float:
    """Test accuracy after ``steps`` Adam steps (lr 1e-3, batch 64) on the whole training split."""
    import torch

    from igpg_zoo.answer.heads import build
    from igpg_zoo.zoobuild.trainer import accuracy, fit

    module = build(arch, dict(weights))
    fit(module, ds.x_train, ds.y_train, steps=steps, lr=1e-3, seed=0)
    with torch.no_grad():
        return float(accuracy(module, ds.x_test, ds.y_test))


def _one_case(zoo, name, x, y, steps: int, limit: int) -> dict:
    from igpg_zoo.answer.candidates import retrieve
    from igpg_zoo.answer.estimate import score_features, weights_for_user
    from igpg_zoo.answer.heads import build, features, transplant
    from igpg_zoo.answer.sample import split_sample
    from igpg_zoo.data.userdata import build_dataset

    ds = build_dataset(x, y, name, name)
    sample = split_sample(ds)
    rows = []
    for c in retrieve(zoo, None, {}, (), sample, False, limit):
        w = transplant(zoo.load_weights(c.record.id), c.record.arch, c.arch)
        t0 = time.perf_counter()
        module = build(c.arch, dict(w), sample.x_fit)
        f_fit, f_held = features(module, c.arch, sample.x_fit), features(module, c.arch, sample.x_held)
        n_out = int(module(__import__("torch").zeros(1, *sample.input_shape)).shape[-1])
        est = {e: score_features(f_fit, f_held, sample, n_out, e, 1e-2) for e in ESTIMATES}
        seconds = time.perf_counter() - t0
        start = weights_for_user(c.arch, w, sample, est["ridge"])
        rows.append({"id": c.record.id, "arch": c.arch, "task": c.record.dataset, "n_params": c.record.n_params,
                     "stored_acc": c.record.metric("acc") or 0.0, **{e: est[e].value for e in ESTIMATES},
                     "score_s": seconds, "truth": _truth(c.arch, start, ds, steps)})
    return {"case": name, "n": len(rows), "rows": rows}


def _compare(case: dict) -> dict:
    from scipy.stats import weightedtau

    truth = np.array([r["truth"] for r in case["rows"]])
    out = {}
    for key in (*ESTIMATES, *STATIC):
        v = np.array([r[key] for r in case["rows"]], dtype=float)
        tau = float(weightedtau(v, truth).statistic) if np.ptp(v) > 0 and np.ptp(truth) > 0 else 0.0
        out[key] = {"tau_w": tau, "regret": float(truth.max() - truth[int(np.argmax(v))])}
    return out


def run(quick: bool) -> dict:
    import torch

    torch.set_num_threads(1)
    steps, limit = (60, 12) if quick else (150, 40)
    from igpg_zoo.zoo import open_zoo

    data = {"steps": steps, "candidates_per_case": limit, "cases": []}
    with open_zoo(_registry()) as zoo:
        for name, (x, y) in cases(quick).items():
            case = _one_case(zoo, name, x, y, steps, limit)
            case["compare"] = _compare(case)
            data["cases"].append(case)
    keys = (*ESTIMATES, *STATIC)
    mean = {k: float(np.mean([c["compare"][k]["tau_w"] for c in data["cases"]])) for k in keys}
    regret = {k: float(np.mean([c["compare"][k]["regret"] for c in data["cases"]])) for k in keys}
    best = max(ESTIMATES, key=lambda k: (mean[k], -regret[k]))
    data.update(mean_tau_w=mean, mean_regret=regret, best=best)
    cmd = "python -m bench answer_estimate"
    summary = [{"measure": "default estimate (best mean weighted tau vs fine-tuned accuracy)", "target": "best of 3",
                "value": f"{best}: tau_w {mean[best]:.2f}", "met": True, "command": cmd},
               {"measure": "estimate vs static baseline (stored acc) mean tau_w", "target": "estimate above",
                "value": f"{mean[best]:.2f} vs {mean['stored_acc']:.2f}", "met": mean[best] > mean["stored_acc"],
                "command": cmd}]
    head = "| case | n | " + " | ".join(keys) + " |\n|---|---|" + "---|" * len(keys)
    lines = [f"| {c['case']} | {c['n']} | " + " | ".join(f"{c['compare'][k]['tau_w']:.2f} / {c['compare'][k]['regret']:.3f}"
                                                        for k in keys) + " |" for c in data["cases"]]
    details = (f"Weighted Kendall tau / top-1 regret against test accuracy after {steps} fine-tuning steps, "
               f"{limit} candidates at most per case (one per task x architecture group of the demo zoo). "
               f"Machine shared with other jobs.\n\n{head}\n" + "\n".join(lines) +
               "\n| mean | | " + " | ".join(f"{mean[k]:.2f} / {regret[k]:.3f}" for k in keys) + " |")
    return {"summary": summary, "details": details, "data": data}
