"""Encode-time token search: the tokens whose decoding is closest to a chunk, not only the encoder's pick.

The encoder and the residual quantizer choose a chunk's L tokens greedily in code space, stage by
stage; what reconstructs the weights is the decoder, refined on those codes. Coordinate descent on
the decoded chunk closes part of that gap: for stage s, take the C codes of stage s nearest to what
the other stages leave of the encoder output, decode each with the other L - 1 tokens fixed, and keep
the one whose chunk is closest to the original (masked squared error) if it beats the current one.
Only improvements are accepted, so no chunk's error can rise. Decoding is untouched: stored sequences, the prior and old
artifacts need nothing new, and encoding stays deterministic.
"""

from __future__ import annotations

import torch

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.quantize import sq_distances

BLOCK = 256  # chunks searched at a time (bounds memory: BLOCK * candidates decoded chunks)


def chunk_errors(model, x: torch.Tensor, mask: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Masked squared error of each decoded chunk: x (N, K), mask (N, K), indices (N, L) -> (N,)."""
    return ((model.decode_indices(indices) - x) * mask).pow(2).sum(1)


@torch.no_grad()
def search_codes(model, x: torch.Tensor, mask: torch.Tensor, indices: torch.Tensor, sweeps: int,
                 candidates: int) -> torch.LongTensor:
    """Tokens (N, L) no worse than ``indices`` for chunks x (N, K): ``sweeps`` passes over the L stages."""
    if model.cfg.quantizer != "rvq":
        raise GeneratorError("encode_search needs the residual quantizer (quantizer 'rvq')")
    out = indices.clone()
    for start in range(0, len(x), BLOCK):
        block = slice(start, start + BLOCK)
        out[block] = _search_block(model, x[block], mask[block].to(x.dtype), out[block], sweeps, candidates)
    return out


def _search_block(model, x, mask, indices, sweeps: int, candidates: int) -> torch.LongTensor:
    N, L = indices.shape
    z = model.encoder(x)  # (N, D): the encoder output the stages approximate
    err = chunk_errors(model, x, mask, indices)  # (N,)
    for _ in range(sweeps):
        improved = False
        for s, stage in enumerate(model.quantizer.stages):
            rest = model.quantizer.lookup(indices) - stage.lookup(indices[:, s])  # (N, D): the other stages
            C = min(candidates, stage.codebook.shape[0])
            cand = sq_distances(z - rest, stage.codebook).topk(C, largest=False).indices  # (N, C)
            trial = indices.unsqueeze(1).repeat(1, C, 1)  # (N, C, L)
            trial[:, :, s] = cand
            e = chunk_errors(model, x.repeat_interleave(C, 0), mask.repeat_interleave(C, 0),
                             trial.view(N * C, L)).view(N, C)
            best_e, best = e.min(1)  # (N,), (N,)
            better = best_e < err
            if bool(better.any()):
                indices[better, s] = cand[better, best[better]]
                err = torch.where(better, best_e, err)
                improved = True
        if not improved:
            break
    return indices
