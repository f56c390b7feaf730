"""Checked recombination: which finest-code swaps keep a zoo member working.

Recombining finest residual codes (``TokenSet.recombined``) gives the prior new sequences next to
the members, but some of them break the model: on the full zoo, 9 of iris's 96 single swaps cost
more than 5 pp of test accuracy, and a prior trained on every swap samples them. ``check_swaps``
decodes each candidate swap (one finest code of a member replaced by the code a sibling holds
there) and keeps it when its accuracy on a stratified sample of the member's *training* split stays
within ``tol`` of the member's own decoded accuracy there. Training then draws swaps only from the
kept ones, so the prior never sees a swap that failed the check. The test split is never read.

A record whose dataset does not load or does not fit its architecture gets no swaps: nothing could
check them. Records with more candidates than ``per_record`` have a seeded random subset checked;
the rest are not used.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from igpg_zoo.igpg.prior_dataset import TokenSet

PROBE = 256  # training samples per record the swaps are checked on (stratified, seeded)


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


class _Probe:
    """A record's architecture and a stratified sample of its dataset's training split."""

    def __init__(self, arch: str, dataset: str, seed: int, cache: dict):
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.data import load_dataset
        from igpg_zoo.data.dataset import stratified_subsample

        if dataset not in cache:
            ds = load_dataset(dataset)
            keep = stratified_subsample(ds.y_train, PROBE, seed)
            cache[dataset] = (torch.tensor(np.asarray(ds.x_train[keep]), dtype=torch.float32),
                              torch.tensor(np.asarray(ds.y_train[keep]), dtype=torch.long), ds.info.n_classes)
        self.x, self.y, n_classes = cache[dataset]
        self.module = get_adapter(arch).build(arch).eval()
        self.arch = arch
        if self.accuracy_of_state(self.module.state_dict(), outputs=n_classes) is None:
            raise ValueError(f"'{arch}' does not give {n_classes} outputs on '{dataset}'")

    @torch.no_grad()
    def accuracy_of_state(self, state: dict, outputs: int | None = None) -> float | None:
        self.module.load_state_dict(state, strict=True)
        logits = self.module(self.x)  # (N, classes)
        if outputs is not None and logits.shape[-1] != outputs:
            return None
        return float((logits.argmax(1) == self.y).float().mean())


def _record_probe(record, seed: int, cache: dict) -> _Probe | None:
    from igpg_zoo.errors import ZooError

    if not record.dataset:
        return None
    try:
        return _Probe(record.arch, record.dataset, seed, cache)
    except (ZooError, RuntimeError, ValueError, IndexError):  # no data, or data that does not fit the arch
        return None


def _chosen(cands: list, per_record: int, seed: int, record_id: int) -> list:
    if len(cands) <= per_record:
        return cands
    gen = torch.Generator().manual_seed(seed * 1_000_003 + int(record_id))
    return [cands[k] for k in sorted(torch.randperm(len(cands), generator=gen)[:per_record].tolist())]


def _check_record(tokenizer, probe: _Probe, tokens: torch.Tensor, swaps: list, tol: float) -> set:
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
    passed the check there; and what the check did. ``progress(done, total)`` after each record."""
    stats, cache, allowed = CheckStats(tol=tol, per_record=per_record, probe=PROBE), {}, []
    t0 = time.perf_counter()
    for i, record in enumerate(records):
        cands = candidate_swaps(data, i)
        stats.candidates += len(cands)
        probe = _record_probe(record, seed, cache) if cands else None
        kept: set = set()
        if cands and probe is None:
            stats.records_without_data += 1
        elif cands:
            chosen = _chosen(cands, per_record, seed, record.id)
            kept = _check_record(tokenizer, probe, data.tokens[i], chosen, tol)
            stats.checked += len(chosen)
            stats.kept += len(kept)
        by_pos: dict[int, set] = {}
        for pos, code in kept:
            by_pos.setdefault(pos, set()).add(code)
        allowed.append({pos: frozenset(codes) for pos, codes in by_pos.items()})
        if progress is not None:
            progress(i + 1, len(records))
    stats.seconds = round(time.perf_counter() - t0, 1)
    return allowed, stats
