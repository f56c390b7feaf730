"""The gain-shape codec: a chunk's scale as L digit tokens, its shape as residual k-means codes.

The chunk VQ-VAE (vqvae.py) spends about 0.3 bits per parameter (4 tokens of 10 bits per 128 floats):
enough when its decoder can memorise a zoo of 10^3-parameter models, far too little for 10^5-parameter
networks, whose weights carry their random initialisation (docs/igpg-tokenizer.md, section 7). This
codec spends the bits directly and has nothing to memorise:

- a chunk of K floats (one tensor's, zero-padded) is split into its gain g (RMS over the chunk,
  log2-quantized to V**L levels over ``LOG2_RANGE``, written as L base-V digits, coarse first) and its
  shape (chunk / g, unit RMS);
- the shape is cut into K/d sub-vectors of d floats, each coded by L residual stages of V codes (one
  codebook per stage, fitted by Lloyd's algorithm on the training zoo's sub-vectors).

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

    def _gain(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunks (N, K) -> (quantized gain (N,) float64, its L digits (N, L))."""
        V, L = self.cfg.codebook_size, self.cfg.tokens_per_chunk
        lo, hi = LOG2_RANGE
        rms = x.double().pow(2).mean(1).sqrt().clamp(min=2.0 ** lo)
        q = torch.round((rms.log2().clamp(lo, hi) - lo) / (hi - lo) * (V ** L - 1)).long()
        digits = torch.stack([(q // V ** (L - 1 - i)) % V for i in range(L)], 1)
        return self._gain_of(digits), digits

    def _gain_of(self, digits: torch.Tensor) -> torch.Tensor:
        V, L = self.cfg.codebook_size, self.cfg.tokens_per_chunk
        lo, hi = LOG2_RANGE
        q = sum(digits[:, i].double() * V ** (L - 1 - i) for i in range(L))
        return torch.exp2(lo + q / (V ** L - 1) * (hi - lo))

    def _subvectors(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        gain, digits = self._gain(x)
        return (x.double() / gain[:, None]).float().reshape(-1, self.cfg.sub_dim), digits

    @torch.no_grad()
    def fit(self, x: torch.Tensor, gen: torch.Generator) -> None:
        """Fit the L stage codebooks on the shapes of chunks x (N, K) (all-zero sub-vectors left out)."""
        sub = self._subvectors(x)[0]
        sub = sub[sub.abs().sum(1) > 0]
        n = min(len(sub), self.cfg.codebook_size * SAMPLES_PER_CODE)
        resid = sub[torch.randperm(len(sub), generator=gen)[:n]]
        for stage in range(self.cfg.tokens_per_chunk):
            self.codebooks[stage] = kmeans(resid, self.cfg.codebook_size, KMEANS_ITERS, gen)
            resid = resid - self.codebooks[stage][nearest(resid, self.codebooks[stage])]

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[None, torch.Tensor, torch.Tensor]:
        """Chunks (N, K) -> (None, tokens (N, chunk_tokens), 0): the ChunkVQVAE.encode signature."""
        sub, digits = self._subvectors(x)
        resid, codes = sub, []
        for book in self.codebooks:
            idx = nearest(resid, book)
            resid = resid - book[idx]
            codes.append(idx)
        shape_tokens = torch.stack(codes, 1).reshape(x.shape[0], -1)  # (N, K/d * L), sub-vector by sub-vector
        return None, torch.cat([digits, shape_tokens], 1), torch.zeros(())

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens (N, chunk_tokens) -> chunks (N, K)."""
        L, N = self.cfg.tokens_per_chunk, indices.shape[0]
        codes = indices[:, L:].reshape(-1, L)  # (N * K/d, L)
        shape = sum(self.codebooks[s][codes[:, s]] for s in range(L)).reshape(N, -1)
        return (shape.double() * self._gain_of(indices[:, :L])[:, None]).float()
