"""The prior's training set: one token sequence + condition per zoo record, cut into windows.

``select_records`` applies the filters and the task-disjoint hold-out (generated records never
train a generator). ``TokenSet.batch`` draws records and a window of each (the same windows
sampling.py generates), padded to ``block_size`` with a loss mask; with ``recombine`` it first swaps
some of a record's last-stage (finest residual) codes for the codes its siblings (records of the same
task, dataset and architecture) have there: new sequences next to the members, for the prior to
spread its mass over instead of replaying the members (BENCHMARKS.md, "Recombined finest codes").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache

import torch

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.conditioning import Conditioner, collate
from igpg_zoo.igpg.prior import PriorConfig
from igpg_zoo.igpg.sampling import n_windows, window_bounds


def _pattern(h: str) -> re.Pattern:
    """Only ``*`` is a wildcard: task names contain brackets (``digits[classes=3,5,8]``)."""
    return re.compile(".*".join(re.escape(part) for part in h.lower().split("*")) + r"\Z")


@lru_cache(maxsize=4096)
def _canonical(name: str) -> str | None:
    """The canonical form of a task name (``digits[classes=0-4]`` -> ``digits[classes=0,1,2,3,4]``),
    None for text that is no task name."""
    from igpg_zoo.data.tasks import canonical_name
    from igpg_zoo.errors import DatasetError

    try:
        return canonical_name(name) if name.strip() else None
    except DatasetError:
        return None


def _forms(text: str, star: str = "", rest: str = "") -> set[str]:
    """``text + star + rest`` as written and, when ``text`` is a task name, in canonical form."""
    canonical = _canonical(text)
    return {text + star + rest} | ({canonical + star + rest} if canonical else set())


def _matcher(holdout: list[str]):
    """A test of one text (a task text or a dataset name) against the hold-out patterns, where a task
    name (the part of a pattern before its first ``*``, or a record's dataset) matches however its
    options are spelt: the registry may hold ``digits[classes=0-4]`` or ``digits[classes=0,1,2,3,4]``."""
    patterns = [_pattern(form) for h in holdout for form in _forms(*h.partition("*"))]
    return lambda text: any(p.match(form.lower()) for form in _forms(text or "") for p in patterns)


def is_held_out(task: str, holdout: list[str]) -> bool:
    """Whether ``task`` matches a hold-out pattern (case-insensitive; ``*`` matches anything; task
    names match however their options are spelt)."""
    return _matcher(list(holdout))(task)


def select_records(zoo, holdout: list[str] = (), **filters) -> list:
    """Records a generator may learn from: the filters, minus generated ones and held-out tasks
    (a hold-out pattern matches a record's task text or its dataset name; one that matches no
    record is an error, since a misspelt hold-out would silently train on the evaluation task)."""
    listed = zoo.list(**filters)
    for h in holdout:
        held = _matcher([h])
        if not any(held(r.task) or held(r.dataset) for r in listed):
            raise GeneratorError(
                f"--holdout-task '{h}' matches no record's task or dataset ({len(listed)} records selected); "
                "check it against 'igpg-zoo list' (only * is a wildcard) or drop it")
    held = _matcher(list(holdout))
    records = [r for r in listed if r.kind != "generated"]
    kept = [r for r in records if not (held(r.task) or held(r.dataset))]
    if not kept:
        raise GeneratorError(
            f"no zoo records to train on ({len(records)} matched the filters, all held out or generated); "
            "widen the filters or run 'igpg-zoo zoo build --preset demo' first"
        )
    return kept


@dataclass
class TokenSet:
    tokens: list[torch.Tensor]  # one LongTensor (T_i,) per record
    conds: list[dict]  # one unbatched condition per record
    ids: list[int]
    siblings: list[list[int]] = field(default_factory=list)  # per record: the other records of its condition
    finest_stride: int = 0  # tokens per chunk when a chunk's last token is its finest residual code; 0: none
    allowed: list[dict] | None = None  # per record: finest position -> sibling codes a swap may bring; None: any
    quality: list[int] | None = None  # per record: its standing in its group (curation/standings.py); None: not labelled

    def with_allowed(self, allowed: list[dict]) -> "TokenSet":
        """This set with swaps restricted to ``allowed`` (curation/swaps.py)."""
        return replace(self, allowed=allowed)

    def recombined(self, i: int, rate: float, gen: torch.Generator) -> torch.Tensor:
        """Record i's tokens (T,) with each last-stage code swapped, with probability
        min(1, rate / n_chunks), for the code a random sibling has at that position: ``rate`` swaps
        per sequence on average, whatever its length. With ``allowed``, a swap to a code not allowed at
        that position keeps the record's own code. Without siblings, or without finest residual codes
        (``finest_stride`` 0), the tokens as they are."""
        tokens, sibs, stride = self.tokens[i], self.siblings[i] if self.siblings else [], self.finest_stride
        if rate <= 0 or not sibs or stride < 2:
            return tokens
        last = torch.arange(stride - 1, len(tokens), stride)  # (n_chunks,) finest positions
        swap = last[torch.rand(len(last), generator=gen) < min(1.0, rate / len(last))]  # (S,)
        donors = torch.randint(len(sibs), (len(swap),), generator=gen).tolist()
        out = tokens.clone()
        allowed = self.allowed[i] if self.allowed is not None else None
        for pos, d in zip(swap.tolist(), donors):
            code = int(self.tokens[sibs[d]][pos])
            if allowed is None or code in allowed.get(pos, ()):
                out[pos] = code
        return out

    def __len__(self) -> int:
        return len(self.tokens)

    def windows(self, cfg: PriorConfig) -> list[tuple[int, int]]:
        """Every (record, window) pair: the units a batch draws from."""
        return [(i, j) for i, t in enumerate(self.tokens) for j in range(n_windows(cfg, len(t)))]

    def batch(self, cfg: PriorConfig, picks: list[tuple[int, int]], recombine: float = 0.0,
              gen: torch.Generator | None = None):
        """(idx (B, block), mask (B, block), cond) for the given (record, window) pairs; with
        ``recombine`` > 0 each record's tokens are ``recombined`` first (drawn with ``gen``)."""
        B = len(picks)
        idx = torch.zeros(B, cfg.block_size, dtype=torch.long)
        mask = torch.zeros(B, cfg.block_size)
        for b, (i, j) in enumerate(picks):
            start, end = window_bounds(cfg, j, len(self.tokens[i]))
            tokens = self.recombined(i, recombine, gen) if recombine > 0 else self.tokens[i]
            idx[b, : end - start] = tokens[start:end]
            mask[b, : end - start] = 1.0
        cond = collate([self.conds[i] for i, _ in picks], cfg.struct_dim, cfg.data_dim, cfg.text_dim)
        cond["window"] = torch.tensor([j for _, j in picks], dtype=torch.long)
        if self.quality is not None:
            cond["quality"] = torch.tensor([self.quality[i] for i, _ in picks], dtype=torch.long)
        return idx, mask, cond


def condition_of(record, conditioner: Conditioner, zoo) -> dict:
    """A record's condition: its task text, its stored dataset embedding, its architecture."""
    return conditioner.condition(record.arch, record.task or None, zoo.dataset_embedding(record.id))


def sibling_lists(keys: list) -> list[list[int]]:
    """Per position, the other positions holding the same key."""
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return [[j for j in groups[key] if j != i] for i, key in enumerate(keys)]


def build_token_set(zoo, tokenizer, conditioner: Conditioner, records: list, progress=None) -> TokenSet:
    tokens, conds, ids = [], [], []
    for r in records:
        tokens.append(tokenizer.encode(zoo.load_weights(r.id), r.arch).long().flatten())
        conds.append(condition_of(r, conditioner, zoo))
        ids.append(r.id)
        if progress is not None:
            progress(1)
    siblings = sibling_lists([(r.task, r.dataset, r.arch) for r in records])
    return TokenSet(tokens, conds, ids, siblings, finest_stride(tokenizer.config))


def finest_stride(tcfg) -> int:
    """Tokens per chunk when each chunk's last token is its finest residual code (at least two stages),
    else 0: a single stage has no fine code that is safe to swap."""
    return tcfg.tokens_per_chunk if tcfg.tokens_per_chunk >= 2 else 0
