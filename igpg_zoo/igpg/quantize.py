"""The tokenizer's quantizer: residual stages of nearest-code EMA codebooks over code vectors z (N, D).

Distances are ``||z||^2 - 2 z.c^T + ||c||^2`` under ``no_grad`` (never the (N, K, D) broadcast);
gradients reach the encoder by the straight-through estimator.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def sq_distances(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances (N, K) between rows of z (N, D) and codebook (K, D)."""
    with torch.no_grad():
        return (z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)[None, :])


def codebook_usage(indices: torch.Tensor, codebook_size: int) -> dict[str, float]:
    """How the codes were chosen: perplexity, codes used and never used."""
    counts = torch.bincount(indices.reshape(-1).cpu(), minlength=codebook_size)
    p = counts.double() / counts.sum().clamp(min=1).double()
    ppl = float(torch.exp(-(p * torch.log(p.clamp(min=1e-12))).sum()))
    return {"perplexity": ppl, "used": int((counts > 0).sum()), "dead": int((counts == 0).sum()),
            "codebook_size": codebook_size}


class EMAQuantizer(nn.Module):
    """Nearest code, codebook updated by exponential moving averages (no codebook gradient).

    Codes whose EMA usage falls below ``dead_threshold`` times the usage of a code under a uniform
    assignment (batch vectors / codebook size) are re-seeded with random encoder outputs of the current
    batch (dead-code revival); relative, so that a rarely used but live code is not taken for a dead one.
    """

    def __init__(self, code_dim: int, codebook_size: int, decay: float = 0.99, dead_threshold: float = 0.01,
                 eps: float = 1e-5):
        super().__init__()
        self.codebook_size, self.decay = codebook_size, decay
        self.dead_threshold, self.eps = dead_threshold, eps
        self.register_buffer("codebook", torch.randn(codebook_size, code_dim))
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("embed_sum", self.codebook.clone())
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))
        self.revived = 0  # codes re-seeded so far (training statistic)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(z_q (straight-through), indices)."""
        flat = z.reshape(-1, z.shape[-1])  # (N, D)
        if self.training and not bool(self.initialized):
            self._seed(flat, torch.arange(self.codebook_size))
            self.initialized.fill_(True)
        indices = sq_distances(flat, self.codebook).argmin(1)  # (N,)
        z_q = self.codebook[indices]  # (N, D)
        if self.training:
            self._ema_update(flat.detach(), indices)
        z_q = flat + (z_q - flat).detach()  # straight-through
        return z_q.view_as(z), indices.view(z.shape[:-1])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        return F.embedding(indices, self.codebook)

    @torch.no_grad()
    def _seed(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """Set ``codes`` to randomly chosen rows of ``flat`` (with a little noise when rows repeat)."""
        pick = torch.randint(0, flat.shape[0], (len(codes),))
        new = flat[pick] + 1e-3 * flat.std() * torch.randn(len(codes), flat.shape[1], device=flat.device)
        self.codebook[codes] = new
        self.embed_sum[codes] = new
        self.cluster_size[codes] = 1.0

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor) -> None:
        onehot = F.one_hot(indices, self.codebook_size).to(flat.dtype)  # (N, K)
        self.cluster_size.mul_(self.decay).add_(onehot.sum(0), alpha=1 - self.decay)
        self.embed_sum.mul_(self.decay).add_(onehot.t() @ flat, alpha=1 - self.decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + self.eps) / (n + self.codebook_size * self.eps) * n  # Laplace
        self.codebook.copy_(self.embed_sum / smoothed[:, None])
        expected = flat.shape[0] / self.codebook_size
        dead = (self.cluster_size < self.dead_threshold * expected).nonzero().squeeze(1)
        if len(dead):
            self._seed(flat, dead)
            self.revived += len(dead)


class ResidualQuantizer(nn.Module):
    """Residual VQ: L EMA codebooks, stage s quantizes what stages < s left over.

    z (N, D) -> indices (N, L), z ~ sum_s C_s[i_s]. Stage 1 picks the coarse code and later stages
    refine it, so two chunks that differ only slightly (a fine-tuned model and its base) still get
    different token tuples; with independent codebooks per slot they collapse onto the same tuple.
    Loss = commitment * ||z - sg(sum_s C_s[i_s])||^2 (each codebook follows its stage's residuals by EMA).
    """

    def __init__(self, code_dim: int, codebook_size: int, stages: int, decay: float = 0.99,
                 commitment: float = 0.25):
        super().__init__()
        self.commitment = commitment
        self.stages = nn.ModuleList(EMAQuantizer(code_dim, codebook_size, decay=decay) for _ in range(stages))

    @property
    def revived(self) -> int:
        return sum(q.revived for q in self.stages)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flat = z.reshape(-1, z.shape[-1])  # (N, D)
        done = torch.zeros_like(flat)  # sum of the codes chosen so far
        indices = []
        for q in self.stages:
            code, idx = q((flat - done).detach())  # code == C_s[idx]; this stage's EMA follows its residuals
            done = done + code.detach()
            indices.append(idx)
        loss = self.commitment * F.mse_loss(flat, done)
        z_q = flat + (done - flat).detach()  # (N, D), straight-through
        return z_q, torch.stack(indices, dim=1), loss  # (N, D), (N, L), ()

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens (N, L) -> summed code vectors (N, D)."""
        return sum(q.lookup(indices[:, s]) for s, q in enumerate(self.stages))


@torch.no_grad()
def nearest(x: torch.Tensor, codebook: torch.Tensor, rows: int = 65536) -> torch.Tensor:
    """Index of the nearest code for every row of x (N, D), in batches of ``rows``: (N,)."""
    return torch.cat([sq_distances(x[i: i + rows], codebook).argmin(1) for i in range(0, len(x), rows)]
                     ) if len(x) else torch.zeros(0, dtype=torch.long)


@torch.no_grad()
def _seeds(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next centroid a row drawn with probability proportional to its squared
    distance from the centroids chosen so far (uniformly once every row is covered)."""
    picks = [int(torch.randint(0, len(x), (1,), generator=gen))]
    d2 = (x - x[picks[0]]).pow(2).sum(1)
    for _ in range(k - 1):
        w = d2 if float(d2.sum()) > 0 else torch.ones_like(d2)
        picks.append(int(torch.multinomial(w, 1, generator=gen)))
        d2 = torch.minimum(d2, (x - x[picks[-1]]).pow(2).sum(1))
    return x[picks].clone()


@torch.no_grad()
def kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    """Lloyd's algorithm from k-means++ seeds: k centroids (k, D) of the rows of x (N, D); a centroid
    that loses all its rows is re-seeded with a random row. Deterministic for a given generator."""
    centroids = _seeds(x, k, gen)
    for _ in range(iters):
        assign = nearest(x, centroids)
        counts = torch.bincount(assign, minlength=k)
        centroids = torch.zeros_like(centroids).index_add_(0, assign, x) / counts.clamp(min=1)[:, None]
        empty = (counts == 0).nonzero().squeeze(1)
        if len(empty):
            centroids[empty] = x[torch.randint(0, len(x), (len(empty),), generator=gen)]
    return centroids
