"""How good a start a model is for the user's data, estimated cheaply from one forward pass.

Every estimate reads the model's penultimate features of the sample; none is measured on samples
it was fitted on:

- ``ridge``: a ridge head fitted on the fit part, its accuracy on the held-out part;
- ``knn``: 5-nearest-neighbour (cosine) accuracy on the held-out part, neighbours from the fit part;
- ``logme``: LogME-like evidence (per sample, mean over classes) of a Bayesian linear head on
  the fit part (no accuracy; only comparable between models on the same sample);
- ``margin``: the ridge head's mean margin on the held-out part (the true class's output minus
  the best other class's; the head regresses one-hot labels, so 1 is a confident right answer);
- ``loo_acc`` / ``loo_margin``: accuracy / mean margin of a ridge head over the whole sample (fit
  and held-out parts), each sample predicted by the head fitted without it (exact leave-one-out),
  the ridge strength chosen per model by the leave-one-out error (features' scale left out).

docs/frontdoor.md reports which one ranked starts best on the cases measured; that one is the default.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from igpg_zoo.answer.heads import build, features, output_count, predict, ridge_solve, set_head
from igpg_zoo.answer.sample import UserSample
from igpg_zoo.answer.settings import ESTIMATES
from igpg_zoo.errors import ConfigError

KNN = 5


@dataclass
class Scored:
    """A model's estimate on the sample, and what ``weights_for_user`` needs to hand it out."""

    value: float
    estimate: str
    fit_accuracy: float | None  # accuracy of the ridge head on the fit part (what the head was fitted on)
    held_accuracy: float | None  # accuracy of the ridge head on the held-out part
    W: np.ndarray | None = field(repr=False, default=None)  # (D+1, K) the ridge head; None: read from the cache


def check_estimate(name: str) -> str:
    if name not in ESTIMATES:
        raise ConfigError(f"unknown estimate '{name}'; use one of {', '.join(ESTIMATES)}")
    return name


def knn_accuracy(F_fit: np.ndarray, y_fit: np.ndarray, F_held: np.ndarray, y_held: np.ndarray, k: int = KNN) -> float:
    a = F_fit / np.maximum(np.linalg.norm(F_fit, axis=1, keepdims=True), 1e-12)
    b = F_held / np.maximum(np.linalg.norm(F_held, axis=1, keepdims=True), 1e-12)
    nearest = np.argsort(-(b @ a.T), axis=1)[:, :min(k, len(a))]  # (n_held, k)
    votes = np.zeros((len(b), int(max(y_fit.max(), y_held.max())) + 1))
    for j in range(nearest.shape[1]):
        votes[np.arange(len(b)), y_fit[nearest[:, j]]] += 1.0
    return float((votes.argmax(1) == y_held).mean())


def logme(F: np.ndarray, y: np.ndarray, iterations: int = 50) -> float:
    """Mean over classes of the log evidence per sample of a Bayesian ridge on one-hot targets."""
    n, d = F.shape
    u, s, _ = np.linalg.svd(F, full_matrices=False)
    sigma = s ** 2
    total = 0.0
    classes = np.unique(y)
    for c in classes:
        t = (y == c).astype(np.float64)
        z = u.T @ t
        extra = max(float(t @ t - z @ z), 0.0)  # the part of t outside F's column space
        alpha, beta = 1.0, 1.0
        for _ in range(iterations):
            gamma = float((beta * sigma / (alpha + beta * sigma)).sum())
            m2 = float(((beta * s * z / (alpha + beta * sigma)) ** 2).sum())
            res = float(((alpha * z / (alpha + beta * sigma)) ** 2).sum()) + extra
            new_alpha, new_beta = gamma / max(m2, 1e-12), (n - gamma) / max(res, 1e-12)
            done = abs(new_alpha - alpha) / alpha < 1e-3 and abs(new_beta - beta) / beta < 1e-3
            alpha, beta = new_alpha, new_beta
            if done:
                break
        evidence = (n / 2 * np.log(beta) + d / 2 * np.log(alpha) - n / 2 * np.log(2 * np.pi)
                    - beta / 2 * res - alpha / 2 * m2 - 0.5 * np.log(alpha + beta * sigma).sum()
                    - 0.5 * (d - len(sigma)) * np.log(alpha))
        total += evidence / n
    return float(total / len(classes))


def mean_margin(outputs: np.ndarray, y: np.ndarray) -> float:
    """Mean over samples of the true class's output minus the best other class's (``outputs`` (N, K))."""
    idx = np.arange(len(y))
    true = outputs[idx, y]
    other = outputs.copy()
    other[idx, y] = -np.inf
    return float((true - other.max(1)).mean())


LOO_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # ridge strengths, times the mean eigenvalue of A^T A


def loo_scores(F: np.ndarray, y: np.ndarray, n_classes: int) -> dict[str, float]:
    """Exact leave-one-out accuracy and mean margin of a ridge head (one-hot targets, bias column) on
    ``F`` (N, D), the ridge strength picked from ``LOO_GRID`` by the leave-one-out squared error."""
    A = np.concatenate([F, np.ones((len(F), 1))], axis=1)
    Y = np.zeros((len(y), n_classes))
    Y[np.arange(len(y)), y] = 1.0
    u, s, _ = np.linalg.svd(A, full_matrices=False)  # A = u diag(s) v^T
    s2 = s ** 2
    scale = float(s2.sum()) / A.shape[1]
    uY = u.T @ Y  # (r, K)
    best = None
    for c in LOO_GRID:
        shrink = s2 / (s2 + c * scale)  # (r,)
        fitted = u @ (shrink[:, None] * uY)  # (N, K): predictions of the head fitted on every sample
        h = np.minimum((u ** 2) @ shrink, 1.0 - 1e-9)  # (N,) leverage of each sample
        loo = Y - (Y - fitted) / (1.0 - h)[:, None]  # predictions of the head fitted without the sample
        err = float(((Y - loo) ** 2).sum(1).mean())
        if best is None or err < best[0]:
            best = (err, loo, c)
    _, loo, c = best
    return {"loo_acc": float((loo.argmax(1) == y).mean()), "loo_margin": mean_margin(loo, y), "loo_ridge": c}


def estimates(F_fit, F_held, sample: UserSample, n_out: int, ridge: float, W: np.ndarray | None = None
              ) -> dict[str, float]:
    """Every estimate of ``ESTIMATES`` (and the head's fit-part accuracy) from one pair of feature arrays."""
    W = ridge_solve(F_fit, sample.y_fit, n_out, ridge) if W is None else W
    K = sample.n_classes
    held_out = np.concatenate([F_held, np.ones((len(F_held), 1))], axis=1) @ W  # (N_held, n_out)
    out = {"ridge": float((held_out.argmax(1) == sample.y_held).mean()),
           "knn": knn_accuracy(F_fit, sample.y_fit, F_held, sample.y_held),
           "logme": logme(F_fit, sample.y_fit),
           "margin": mean_margin(held_out[:, :K], sample.y_held)}
    out.update(loo_scores(np.concatenate([F_fit, F_held]), np.concatenate([sample.y_fit, sample.y_held]), K))
    out["fit_accuracy"] = float((predict(F_fit, W) == sample.y_fit).mean())
    return out


def score_features(F_fit, F_held, sample: UserSample, n_out: int, estimate: str, ridge: float) -> Scored:
    """The estimate from features of the fit and held-out parts (the ridge head is always fitted)."""
    W = ridge_solve(F_fit, sample.y_fit, n_out, ridge)
    fit_acc = float((predict(F_fit, W) == sample.y_fit).mean())
    held_acc = float((predict(F_held, W) == sample.y_held).mean())
    if estimate == "ridge":
        value = held_acc
    elif estimate == "knn":
        value = knn_accuracy(F_fit, sample.y_fit, F_held, sample.y_held)
    elif estimate == "logme":
        value = logme(F_fit, sample.y_fit)
    elif estimate == "margin":
        value = mean_margin((np.concatenate([F_held, np.ones((len(F_held), 1))], axis=1) @ W)[:, :sample.n_classes],
                            sample.y_held)
    else:
        loo = loo_scores(np.concatenate([F_fit, F_held]), np.concatenate([sample.y_fit, sample.y_held]),
                         sample.n_classes)
        value = loo[estimate]
    return Scored(value, estimate, fit_acc, held_acc, W)


def score_model(arch: str, weights: dict[str, torch.Tensor], sample: UserSample, estimate: str,
                ridge: float) -> Scored:
    """Build ``arch`` with ``weights`` (batch norm re-estimated on the fit part) and score it."""
    F_fit, F_held, n_out = model_features(arch, weights, sample)
    return score_features(F_fit, F_held, sample, n_out, estimate, ridge)


def model_features(arch: str, weights: dict[str, torch.Tensor], sample: UserSample
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Features of the fit and held-out parts (batch norm re-estimated on the fit part), and the output count."""
    module = build(arch, dict(weights), sample.x_fit)
    n_out = output_count(arch, sample.input_shape) or sample.n_classes
    return features(module, arch, sample.x_fit), features(module, arch, sample.x_held), n_out


def weights_for_user(arch: str, weights: dict[str, torch.Tensor], sample: UserSample, scored: Scored | None,
                     ridge: float = 1e-2) -> dict[str, torch.Tensor]:
    """The weights handed out: batch norm re-estimated and the head fitted on the fit part (``scored``'s
    head, or fitted here when the estimate came from the cache)."""
    module = build(arch, dict(weights), sample.x_fit)
    if scored is None or scored.W is None:
        n_out = output_count(arch, sample.input_shape) or sample.n_classes
        W = ridge_solve(features(module, arch, sample.x_fit), sample.y_fit, n_out, ridge)
    else:
        W = scored.W
    set_head(module, arch, W)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
