"""How good a start a model is for the user's data, estimated cheaply from one forward pass.

Every estimate reads the model's penultimate features of the sample; none is measured on samples
it was fitted on:

- ``ridge``: a ridge head fitted on the fit part, its accuracy on the held-out part;
- ``knn``: 5-nearest-neighbour (cosine) accuracy on the held-out part, neighbours from the fit part;
- ``logme``: LogME-like evidence (per sample, mean over classes) of a Bayesian linear head on
  the fit part (no accuracy; only comparable between models on the same sample).

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
    fit_accuracy: float  # accuracy of the ridge head on the fit part (what the head was fitted on)
    held_accuracy: float  # accuracy of the ridge head on the held-out part
    W: np.ndarray = field(repr=False, default=None)  # (D+1, K) the ridge head


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


def score_features(F_fit, F_held, sample: UserSample, n_out: int, estimate: str, ridge: float) -> Scored:
    """The estimate from features of the fit and held-out parts (the ridge head is always fitted)."""
    W = ridge_solve(F_fit, sample.y_fit, n_out, ridge)
    fit_acc = float((predict(F_fit, W) == sample.y_fit).mean())
    held_acc = float((predict(F_held, W) == sample.y_held).mean())
    if estimate == "ridge":
        value = held_acc
    elif estimate == "knn":
        value = knn_accuracy(F_fit, sample.y_fit, F_held, sample.y_held)
    else:
        value = logme(F_fit, sample.y_fit)
    return Scored(value, estimate, fit_acc, held_acc, W)


def score_model(arch: str, weights: dict[str, torch.Tensor], sample: UserSample, estimate: str,
                ridge: float) -> Scored:
    """Build ``arch`` with ``weights`` (batch norm re-estimated on the fit part) and score it."""
    module = build(arch, dict(weights), sample.x_fit)
    F_fit = features(module, arch, sample.x_fit)
    F_held = features(module, arch, sample.x_held)
    n_out = output_count(arch, sample.input_shape) or sample.n_classes
    return score_features(F_fit, F_held, sample, n_out, estimate, ridge)


def weights_for_user(arch: str, weights: dict[str, torch.Tensor], sample: UserSample, scored: Scored
                     ) -> dict[str, torch.Tensor]:
    """The weights handed out: batch norm re-estimated and the head fitted on the fit part."""
    module = build(arch, dict(weights), sample.x_fit)
    set_head(module, arch, scored.W)
    return {k: v.detach().clone() for k, v in module.state_dict().items()}
