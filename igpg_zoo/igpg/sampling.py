"""Sampling token sequences from the prior: KV cache, temperature / top-k / top-p, seed, and
windowed generation for models longer than the context (method doc §7, Algorithm 1).

Window ``j`` covers tokens ``[j * stride, j * stride + block_size)`` of the model's sequence,
``stride = block_size - window_context``. The first window is sampled from the prefix alone;
every later one starts from the last ``window_context`` tokens of the one before, which it is
given rather than sampling, and carries its index in the ``window`` prefix slot. Training crops
the same windows (prior_dataset.py), so the two agree; a window past the prior's window table (the
most windows a training model needed) is refused, never clamped (``check_windows``).

Each window is decoded through the prior's KV cache (``CachedDecoder``); ``sample_tokens`` takes
another decoder with the same two methods (the speed benchmark passes one that recomputes every step).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.prior import Prior, PriorConfig


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0  # 0: greedy (argmax)
    top_k: int | None = None
    top_p: float | None = 0.9  # nucleus mass; 1 or None: off (strays further from the zoo, fails more often)
    min_p: float | None = None  # keep tokens with p >= min_p * max p (after temperature)

    def __post_init__(self) -> None:
        bad = [f"{name} {value} (allowed: {allowed})" for name, value, ok, allowed in (
            ("temperature", self.temperature, self.temperature >= 0, ">= 0"),
            ("top-k", self.top_k, self.top_k is None or self.top_k >= 1, ">= 1"),
            ("top-p", self.top_p, self.top_p is None or 0 < self.top_p <= 1, "in (0, 1]"),
            ("min-p", self.min_p, self.min_p is None or 0 <= self.min_p < 1, "in [0, 1)")) if not ok]
        if bad:
            raise GeneratorError(f"bad sampling setting: {', '.join(bad)}")

    def to_dict(self) -> dict:
        return asdict(self)


def n_windows(cfg: PriorConfig, length: int) -> int:
    """How many windows a sequence of ``length`` tokens needs."""
    if length <= cfg.block_size:
        return 1
    return 1 + math.ceil((length - cfg.block_size) / cfg.stride)


def check_windows(cfg: PriorConfig, length: int, what: str = "a model",
                  fix: str = "train a prior on a zoo holding models this long (igpg-zoo train)") -> None:
    """Refuse, in one line, a sequence that needs a window past the prior's window table (``max_windows``,
    the most windows a model it trained on needed): that window's slot was never trained."""
    need = n_windows(cfg, length)
    if need > cfg.max_windows:
        raise GeneratorError(f"{what} of {length:,} tokens needs {need} windows of {cfg.block_size} tokens, but the "
                             f"prior's window table holds {cfg.max_windows}; {fix}")


def window_bounds(cfg: PriorConfig, j: int, length: int) -> tuple[int, int]:
    """[start, end) of window ``j`` in a sequence of ``length`` tokens."""
    start = j * cfg.stride
    return start, min(start + cfg.block_size, length)


def pick(logits: torch.Tensor, s: SamplingSettings, gen: torch.Generator | None) -> torch.Tensor:
    """One token per row from next-token logits (B, V) -> (B,)."""
    if s.temperature <= 0:
        return logits.argmax(dim=-1)
    if s.temperature != 1.0:
        logits = logits / s.temperature
    if s.top_k is not None and s.top_k < logits.size(-1):
        kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if s.min_p is not None and s.min_p > 0:  # relative floor: prunes harder where the prior is sure
        floor = logits.max(dim=-1, keepdim=True).values + math.log(s.min_p)  # (B, 1), in logit space
        logits = logits.masked_fill(logits < floor, float("-inf"))
    if s.top_p is not None and s.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum - sorted_logits.softmax(-1) > s.top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)  # (B, V)
    # exponential race: argmax_i p_i / E_i with E_i ~ Exp(1) picks i with probability p_i
    # (what multinomial does for one draw, at a fraction of its per-call cost)
    race = torch.empty_like(probs).exponential_(generator=gen)
    return (probs / race).argmax(dim=-1)


def _with_window(cond: dict, j: int, batch: int) -> dict:
    out = dict(cond)
    out["window"] = torch.full((batch,), j, dtype=torch.long)
    return out


def _logprob(logits: torch.Tensor, tok: torch.Tensor) -> torch.Tensor:
    """log p(tok) under the prior itself (temperature 1, no truncation): (B, V), (B,) -> (B,)."""
    return logits.log_softmax(-1).gather(1, tok.view(-1, 1)).squeeze(1)


class CachedDecoder:
    """One window decoded through the prior's KV cache: the prefix and the context fed at once, then
    one token per step. ``logits``: the next token's (B, V); ``feed(tok)`` appends tokens (B,)."""

    def __init__(self, prior: Prior, cond: dict, context: torch.Tensor):
        self.prior, self.cache, self.pos = prior, prior.new_cache(context.size(0)), context.size(1)
        self.logits = prior.step(cond, context, self.cache, start=0)  # (B, V)

    def feed(self, tok: torch.Tensor) -> None:
        self.logits = self.prior.step(None, tok.view(-1, 1), self.cache, start=self.pos)
        self.pos += 1


@torch.inference_mode()
def _sample_window(prior: Prior, cond: dict, context: torch.Tensor, n_new: int, s: SamplingSettings,
                   gen: torch.Generator | None, decoder) -> tuple[torch.Tensor, torch.Tensor]:
    """``n_new`` tokens after ``context`` (B, c) in one window -> (B, n_new), and their log-likelihood (B,)."""
    out, logp = [], torch.zeros(context.size(0))
    dec = decoder(prior, cond, context)
    for k in range(n_new):
        tok = pick(dec.logits, s, gen)  # (B,)
        out.append(tok)
        logp += _logprob(dec.logits, tok)
        if k + 1 < n_new:
            dec.feed(tok)
    return torch.stack(out, dim=1), logp


@torch.inference_mode()
def sample_tokens(prior: Prior, cond: dict, length: int, n: int = 1,
                  settings: SamplingSettings = SamplingSettings(), seed: int | None = None,
                  with_logprob: bool = False, decoder=CachedDecoder
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """``n`` token sequences of ``length`` for one condition -> LongTensor (n, length).

    ``cond`` holds unbatched vectors (task, data, arch_text, arch_struct; any may be missing) and,
    for a prior with ``quality_levels``, the level asked for (``quality``, an int).
    ``with_logprob`` also returns each sequence's log-likelihood under the prior (n,) (temperature
    1, whatever the sampling settings): a data-free score for choosing among samples.
    """
    cfg = prior.cfg
    check_windows(cfg, length)
    prior.eval()
    gen = None
    if seed is not None:
        gen = torch.Generator().manual_seed(seed)
    batched = {k: (v.view(1, -1).expand(n, -1) if v is not None else None) for k, v in cond.items()
               if k in ("task", "data", "arch_text", "arch_struct")}
    if cond.get("quality") is not None:  # the member standing asked for (conditioning.REQUESTS), one level for all n
        batched["quality"] = torch.full((n,), int(cond["quality"]), dtype=torch.long)
    tokens, logp = torch.empty(n, 0, dtype=torch.long), torch.zeros(n)
    for j in range(n_windows(cfg, length)):
        start, end = window_bounds(cfg, j, length)
        context = tokens[:, start:]  # the tail of the previous window (empty for j = 0)
        new, lp = _sample_window(prior, _with_window(batched, j, n), context, end - start - context.size(1),
                                 settings, gen, decoder)
        tokens, logp = torch.cat([tokens, new], dim=1), logp + lp
    return (tokens, logp) if with_logprob else tokens  # (n, length), (n,)
