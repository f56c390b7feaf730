"""The gain-shape codec: a chunk's scale as L digit tokens, its shape as residual k-means codes.

The chunk VQ-VAE (vqvae.py) spends about 0.3 bits per parameter (4 tokens of 10 bits per 128 floats):
enough when its decoder can memorise a zoo of 10^3-parameter models, far too little for 10^5-parameter
networks, whose weights carry their random initialisation (docs/igpg-tokenizer.md, section 7). This
codec spends the bits directly and has nothing to memorise:

- a chunk of K floats (one tensor's, zero-padded) is divided by its RMS; this unit-RMS shape is cut into
  K/d sub-vectors of d floats, each coded by L residual stages of V codes (one codebook per stage, fitted
  by Lloyd's algorithm on the training zoo's sub-vectors);
- the gain is RMS(chunk) / RMS(coded shape), so a decoded chunk keeps its energy; it is log2-quantized to
  V**L levels over ``LOG2_RANGE`` and written as L base-V digits, coarse first.

A chunk is 1 + K/d units of L tokens (the gain, then each sub-vector), the last token of every unit its
finest, so the prior's finest-code stride stays L. The codebooks quantize unit-scale sub-vectors, so a
model or an architecture the zoo never had is coded as well as a seen one.
"""

from __future__ import annotations

import torch
from torch import nn

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.quantize import kmeans, nearest

LOG2_RANGE = (-24.0, 8.0)  # gains outside [2^-24, 2^8] are clamped
KMEANS_ITERS = 15
SAMPLES_PER_CODE = 128  # k-means fits each stage on at most V * this many sub-vectors


class GainShapeCodec(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        if cfg.chunk_size % cfg.sub_dim:
            raise GeneratorError(f"chunk_size {cfg.chunk_size} must be a multiple of sub_dim {cfg.sub_dim}")
        self.cfg = cfg
        self.register_buffer("codebooks", torch.zeros(cfg.tokens_per_chunk, cfg.codebook_size, cfg.sub_dim))

    @property
    def chunk_tokens(self) -> int:
        """Tokens per chunk: the gain's L digits, then L per sub-vector."""
        return self.cfg.tokens_per_chunk * (1 + self.cfg.chunk_size // self.cfg.sub_dim)

    def _digits(self, gain: torch.Tensor) -> torch.Tensor:
        """Gains (N,) -> their L base-V digits (N, L), coarse first: log2 quantized to V**L levels."""
        V, L = self.cfg.codebook_size, self.cfg.tokens_per_chunk
        lo, hi = LOG2_RANGE
        g = gain.double().clamp(min=2.0 ** lo).log2().clamp(lo, hi)
        q = torch.round((g - lo) / (hi - lo) * (V ** L - 1)).long()
        return torch.stack([(q // V ** (L - 1 - i)) % V for i in range(L)], 1)

    def _gain_of(self, digits: torch.Tensor) -> torch.Tensor:
        V, L = self.cfg.codebook_size, self.cfg.tokens_per_chunk
        lo, hi = LOG2_RANGE
        q = sum(digits[:, i].double() * V ** (L - 1 - i) for i in range(L))
        return torch.exp2(lo + q / (V ** L - 1) * (hi - lo))

    def _shapes(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunks (N, K) -> (unit-RMS shapes as sub-vectors (N * K/d, d), the chunks' RMS (N,) float64)."""
        rms = x.double().pow(2).mean(1).sqrt()
        return (x.double() / rms.clamp(min=1e-30)[:, None]).float().reshape(-1, self.cfg.sub_dim), rms

    @torch.no_grad()
    def fit(self, x: torch.Tensor, gen: torch.Generator) -> None:
        """Fit the L stage codebooks on the shapes of chunks x (N, K) (all-zero sub-vectors left out)."""
        sub = self._shapes(x)[0]
        sub = sub[sub.abs().sum(1) > 0]
        n = min(len(sub), self.cfg.codebook_size * SAMPLES_PER_CODE)
        resid = sub[torch.randperm(len(sub), generator=gen)[:n]]
        for stage in range(self.cfg.tokens_per_chunk):
            self.codebooks[stage] = kmeans(resid, self.cfg.codebook_size, KMEANS_ITERS, gen)
            resid = resid - self.codebooks[stage][nearest(resid, self.codebooks[stage])]

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor]:
        """Chunks (N, K) -> (None, tokens (N, chunk_tokens), 0): the ChunkVQVAE.encode signature.

        The gain is chosen after the shape: RMS(chunk) / RMS(coded shape), so a decoded chunk keeps the
        chunk's energy (k-means codes alone shrink it, which a BatchNorm network with its stored statistics
        does not forgive)."""
        sub, rms = self._shapes(x)
        resid, codes = sub, []
        for book in self.codebooks:
            idx = nearest(resid, book)
            resid = resid - book[idx]
            codes.append(idx)
        coded = (sub - resid).reshape(x.shape[0], -1).double().pow(2).mean(1).sqrt()  # RMS of the coded shapes
        digits = self._digits(rms / coded.clamp(min=1e-30))
        shape_tokens = torch.stack(codes, 1).reshape(x.shape[0], -1)  # (N, K/d * L), sub-vector by sub-vector
        return None, torch.cat([digits, shape_tokens], 1), torch.zeros(())

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens (N, chunk_tokens) -> chunks (N, K)."""
        L, N = self.cfg.tokens_per_chunk, indices.shape[0]
        codes = indices[:, L:].reshape(-1, L)  # (N * K/d, L)
        shape = sum(self.codebooks[s][codes[:, s]] for s in range(L)).reshape(N, -1)
        return (shape.double() * self._gain_of(indices[:, :L])[:, None]).float()
