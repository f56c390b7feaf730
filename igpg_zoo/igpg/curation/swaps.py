"""Checked recombination (``train.recombine_tol``): which finest-code swaps keep a zoo member working.

Recombining finest residual codes (``TokenSet.recombined``) gives the prior new sequences next to
the members, but some of them break the model: on the full zoo, 9 of iris's 96 single swaps cost
more than 5 pp of test accuracy, and a prior trained on every swap samples them. ``check_swaps``
decodes each candidate single swap (one finest code of a member replaced by the code a sibling holds
there) and keeps it when its accuracy on a stratified sample of the member's *training* split stays
within ``tol`` of the member's own decoded accuracy there (BatchNorm statistics re-estimated on that
sample, as ``generate`` does). Training then draws swaps only from the kept ones, so the prior never
sees a single swap that failed the check; two kept swaps in one sequence are not checked together.
The test split is never read.

A record whose dataset does not load or does not fit its architecture gets no swaps: nothing could
check them. Records with more candidates than ``per_record`` have a seeded random subset checked;
the rest are not used.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from igpg_zoo.igpg.prior_dataset import TokenSet
from igpg_zoo.igpg.curation.probe import SAMPLES, record_probe

@dataclass
class CheckStats:
    tol: float
    per_record: int
    probe: int
    candidates: int = 0  # (record, position, code) swaps the siblings offer
    checked: int = 0
    kept: int = 0
    records_without_data: int = 0  # records whose dataset did not load or fit: no swaps
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_swaps(data: TokenSet, i: int) -> list[tuple[int, int]]:
    """(position, code): the codes record i's siblings hold at its finest positions, other than its own."""
    tokens, stride = data.tokens[i], data.finest_stride
    sibs = data.siblings[i] if data.siblings else []
    if stride < 2 or not sibs:
        return []
    out = []
    for pos in range(stride - 1, len(tokens), stride):
        codes = {int(data.tokens[j][pos]) for j in sibs} - {int(tokens[pos])}
        out += [(pos, code) for code in sorted(codes)]
    return out


def _chosen(cands: list, per_record: int, seed: int, record_id: int) -> list:
    if len(cands) <= per_record:
        return cands
    gen = torch.Generator().manual_seed(seed * 1_000_003 + int(record_id))
    return [cands[k] for k in sorted(torch.randperm(len(cands), generator=gen)[:per_record].tolist())]


def _check_record(tokenizer, probe, tokens: torch.Tensor, swaps: list, tol: float) -> set:
    """The swaps (position, code) whose decoded accuracy stays within ``tol`` of the member's own."""
    own = probe.accuracy_of_state(tokenizer.decode(tokens, probe.arch))
    kept = set()
    for pos, code in swaps:
        t = tokens.clone()
        t[pos] = code
        if probe.accuracy_of_state(tokenizer.decode(t, probe.arch)) >= own - tol - 1e-9:
            kept.add((pos, code))
    return kept


def check_swaps(tokenizer, records: list, data: TokenSet, tol: float, per_record: int, seed: int = 0,
                progress=None) -> tuple[list[dict[int, frozenset]], CheckStats]:
    """Per record (in ``data``'s order, ``records`` alike): finest position -> the sibling codes that
    passed the check there; and what the check did. ``progress(done, total)`` after each record.

    Under torchrun each rank checks every world-th record and all ranks gather the same result.
    """
    from igpg_zoo.errors import GeneratorError
    from igpg_zoo.igpg import distributed

    if [r.id for r in records] != list(data.ids):
        raise GeneratorError("check_swaps needs the records of the token set, in its order")
    rank, world = distributed.rank_world()
    stats, cache, mine = CheckStats(tol=tol, per_record=per_record, probe=SAMPLES), {}, {}
    t0 = time.perf_counter()
    for i in range(rank, len(records), world):
        mine[i] = _check_one(tokenizer, records[i], data, i, tol, per_record, seed, cache, stats)
        if progress is not None:
            progress(min(len(records), i + world), len(records))
    stats.seconds = round(time.perf_counter() - t0, 1)
    return _merged(distributed.gather_objects((mine, stats)), len(records))


def _check_one(tokenizer, record, data: TokenSet, i: int, tol: float, per_record: int, seed: int, cache: dict,
               stats: CheckStats) -> dict[int, frozenset]:
    cands = candidate_swaps(data, i)
    stats.candidates += len(cands)
    probe = record_probe(record, seed, cache) if cands else None
    if cands and probe is None:
        stats.records_without_data += 1
    if probe is None:
        return {}
    chosen = _chosen(cands, per_record, seed, record.id)
    kept = _check_record(tokenizer, probe, data.tokens[i], chosen, tol)
    stats.checked, stats.kept = stats.checked + len(chosen), stats.kept + len(kept)
    by_pos: dict[int, set] = {}
    for pos, code in kept:
        by_pos.setdefault(pos, set()).add(code)
    return {pos: frozenset(codes) for pos, codes in by_pos.items()}


def _merged(parts: list[tuple[dict, CheckStats]], n: int) -> tuple[list[dict[int, frozenset]], CheckStats]:
    """Every rank's records and counts as one result (seconds: the slowest rank's)."""
    allowed: dict[int, dict] = {}
    total = CheckStats(tol=parts[0][1].tol, per_record=parts[0][1].per_record, probe=parts[0][1].probe)
    for mine, st in parts:
        allowed.update(mine)
        for key in ("candidates", "checked", "kept", "records_without_data"):
            setattr(total, key, getattr(total, key) + getattr(st, key))
        total.seconds = max(total.seconds, st.seconds)
    return [allowed[i] for i in range(n)], total


def allowed_digest(allowed: list[dict[int, frozenset]]) -> str:
    """A short hash of what the check kept: part of a run's identity, so a resume trains on the same swaps."""
    import hashlib

    text = repr([sorted((pos, sorted(codes)) for pos, codes in a.items()) for a in allowed])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
