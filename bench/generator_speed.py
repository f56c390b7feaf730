"""Sampling speed of bench/generator_bench.py: the KV cache against recomputing each window, on the
zoo's longest model, on five sequences in one batch and on a 512-token context; and the time to
generate the zoo's largest model."""

from __future__ import annotations

import time

import torch

from igpg_zoo.igpg.sampling import SamplingSettings, sample_tokens
from igpg_zoo.igpg.vectorize import Layout


def eval_speed(gen, templates, settings: SamplingSettings, log) -> dict:
    """Sampling with vs without the KV cache (same seed, same tokens), and a full generation of the
    zoo's largest model (``archs``: the zoo's architecture strings)."""
    archs = list(templates)
    largest = max(archs, key=gen.tokenizer.sequence_length)
    length = gen.tokenizer.sequence_length(largest)
    cond = gen.condition(largest, "handwritten digits")
    timings = {}
    for cached in (True, False):
        s = SamplingSettings(temperature=1.0, use_cache=cached)
        t0 = time.perf_counter()
        toks = sample_tokens(gen.prior, cond, length, n=1, settings=s, seed=0)
        timings["cached" if cached else "uncached"] = time.perf_counter() - t0
        timings["tokens_" + ("cached" if cached else "uncached")] = toks
    same = bool(torch.equal(timings.pop("tokens_cached"), timings.pop("tokens_uncached")))
    batch5 = {}
    for cached in (True, False):  # best-of-5 samples its 5 sequences as one batch
        t0 = time.perf_counter()
        sample_tokens(gen.prior, cond, length, n=5, settings=SamplingSettings(use_cache=cached), seed=0)
        batch5[cached] = time.perf_counter() - t0
    t0 = time.perf_counter()
    gen.generate(largest, task="handwritten digits", n=1, settings=settings, novelty=False)
    full = time.perf_counter() - t0
    return {**_long_context_speed(gen.prior.cfg), "arch": largest, "tokens": length,
            "block_size": gen.prior.cfg.block_size,
            "seconds_cached": timings["cached"], "seconds_uncached": timings["uncached"],
            "speedup": timings["uncached"] / timings["cached"], "identical_tokens": same,
            "n5_seconds_cached": batch5[True], "n5_seconds_uncached": batch5[False],
            "n5_speedup": batch5[False] / batch5[True],
            "tokens_per_second_cached": length / timings["cached"], "generate_largest_seconds": full,
            "largest_n_params": Layout.of(largest).numel}


def _long_context_speed(cfg, length: int = 512) -> dict:
    """The same prior shape with a 512-token context (untrained: speed does not depend on weights)."""
    from dataclasses import replace

    from igpg_zoo.igpg.prior import Prior

    prior = Prior(replace(cfg, block_size=length)).eval()
    out = {}
    for cached in (True, False):
        t0 = time.perf_counter()
        sample_tokens(prior, {}, length, n=1, settings=SamplingSettings(use_cache=cached), seed=0)
        out[cached] = time.perf_counter() - t0
    return {"long_tokens": length, "long_seconds_cached": out[True], "long_seconds_uncached": out[False],
            "long_speedup": out[False] / out[True]}
