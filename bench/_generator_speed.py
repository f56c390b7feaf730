"""Sampling speed of bench/generator.py: the KV cache against recomputing each window, on the
zoo's longest model, on five sequences in one batch and on a 512-token context; and the time to
generate the zoo's largest model.

The machine is shared and noisy, so each comparison alternates the two modes ``REPEATS`` times in one
run and reports the fastest time of each (every time is kept in the results, and the ratio of the
medians beside it): the fastest run is the one least disturbed by other jobs.
"""

from __future__ import annotations

import statistics
import time

import torch

from igpg_zoo.igpg.generate import GenerateRequest
from igpg_zoo.igpg.sampling import CachedDecoder, SamplingSettings, sample_tokens
from igpg_zoo.igpg.vectorize import Layout

REPEATS = 5


class Recomputing:
    """The no-cache baseline decoder: every step runs the whole window through ``Prior.forward``."""

    def __init__(self, prior, cond: dict, context: torch.Tensor):
        self.prior, self.cond, self.seq = prior, cond, context
        self.logits = self._next()

    def _next(self) -> torch.Tensor:
        idx = torch.cat([self.seq, torch.zeros(self.seq.size(0), 1, dtype=torch.long)], dim=1)  # (B, t+1)
        return self.prior(idx, self.cond)[0][:, -1]  # (B, V)

    def feed(self, tok: torch.Tensor) -> None:
        self.seq = torch.cat([self.seq, tok.view(-1, 1)], dim=1)
        self.logits = self._next()


def _side_by_side(prior, cond: dict, length: int, n: int, repeats: int = REPEATS) -> dict:
    """Cached vs uncached sampling of n sequences, alternated ``repeats`` times (same seed, same tokens)."""
    times = {True: [], False: []}
    tokens = {}
    for _ in range(repeats):
        for cached in (True, False):
            t0 = time.perf_counter()
            tokens[cached] = sample_tokens(prior, cond, length, n=n, decoder=CachedDecoder if cached else Recomputing,
                                           seed=0)
            times[cached].append(time.perf_counter() - t0)
    return {"cached": min(times[True]), "uncached": min(times[False]),
            "speedup": min(times[False]) / min(times[True]),
            "median_speedup": statistics.median(times[False]) / statistics.median(times[True]),
            "all_cached": times[True], "all_uncached": times[False],
            "identical_tokens": bool(torch.equal(tokens[True], tokens[False]))}


def eval_speed(gen, templates, settings: SamplingSettings, log, repeats: int = REPEATS) -> dict:
    """Sampling with vs without the KV cache, and a full generation of the zoo's largest model
    (``templates``: the zoo's architecture strings)."""
    largest = max(list(templates), key=gen.tokenizer.sequence_length)
    length = gen.tokenizer.sequence_length(largest)
    cond = gen.condition(largest, "handwritten digits")
    one = _side_by_side(gen.prior, cond, length, n=1, repeats=repeats)
    five = _side_by_side(gen.prior, cond, length, n=5, repeats=repeats)  # best-of-5 samples its 5 sequences as one batch
    t0 = time.perf_counter()
    gen.generate(GenerateRequest(largest, task="handwritten digits", n=1, sampling=settings, drop_copies=False,
                                 neighbours=False))
    full = time.perf_counter() - t0
    return {**_long_context_speed(gen.prior.cfg, repeats=repeats), "arch": largest, "tokens": length,
            "block_size": gen.prior.cfg.block_size, "repeats": repeats,
            "seconds_cached": one["cached"], "seconds_uncached": one["uncached"], "speedup": one["speedup"],
            "median_speedup": one["median_speedup"], "all_seconds": {"cached": one["all_cached"],
                                                                    "uncached": one["all_uncached"]},
            "identical_tokens": one["identical_tokens"],
            "n5_seconds_cached": five["cached"], "n5_seconds_uncached": five["uncached"],
            "n5_speedup": five["speedup"], "n5_median_speedup": five["median_speedup"],
            "tokens_per_second_cached": length / one["cached"], "generate_largest_seconds": full,
            "largest_n_params": Layout.of(largest).numel}


def _long_context_speed(cfg, length: int = 512, repeats: int = REPEATS) -> dict:
    """The same prior shape with a 512-token context (untrained: speed does not depend on weights)."""
    from dataclasses import replace

    from igpg_zoo.igpg.prior import Prior

    prior = Prior(replace(cfg, block_size=length)).eval()
    r = _side_by_side(prior, {}, length, n=1, repeats=repeats)
    return {"long_tokens": length, "long_seconds_cached": r["cached"], "long_seconds_uncached": r["uncached"],
            "long_speedup": r["speedup"], "long_median_speedup": r["median_speedup"]}
