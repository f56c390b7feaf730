"""A floor on the members the prior learns from (``igpg-zoo train --member-floor TOL``).

A zoo's groups (records of one task, dataset and architecture) hold a few members whose training went
worse than their siblings'; a prior that learns every member replays those too. On the full zoo the
last single-sample miss of the checked prior is an exact replay of a trained member 8.5 pp below its
pair's median (BENCHMARKS.md, "Checked recombination"). ``floored`` scores every member as the prior
would see it (its tokens, decoded) on a stratified sample of its dataset's *training* split, with
BatchNorm statistics re-estimated there as ``generate`` does, and leaves out the members more than
``tol`` below their group's median there. The test split is never read.

It changes what the prior learns: "the zoo's distribution, without its weak members". A group's
median member always stays, so no task or architecture disappears. A record whose dataset does not
load or fit its architecture cannot be scored and is kept; so is every member of a group where
fewer than two could be scored.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field, replace

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.prior_dataset import TokenSet, sibling_lists
from igpg_zoo.igpg.training_probe import PROBE, record_probe


@dataclass
class FloorStats:
    tol: float
    probe: int
    records: int = 0  # records offered
    dropped: list[dict] = field(default_factory=list)  # {id, group, accuracy, median} per member left out
    records_without_data: int = 0  # kept unscored: their dataset did not load or fit
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def member_accuracies(tokenizer, records: list, data: TokenSet, seed: int = 0, progress=None) -> list[float | None]:
    """Per record (in ``data``'s order): its decoded accuracy on the training sample, None when its dataset
    does not load or fit. Under torchrun each rank scores every world-th record and all ranks gather the
    same list. ``progress(done, total)`` after each record."""
    from igpg_zoo.igpg import distributed

    if [r.id for r in records] != list(data.ids):
        raise GeneratorError("member_accuracies needs the records of the token set, in its order")
    rank, world = distributed.rank_world()
    cache, mine = {}, {}
    for i in range(rank, len(records), world):
        probe = record_probe(records[i], seed, cache)
        mine[i] = None if probe is None else probe.accuracy_of_state(tokenizer.decode(data.tokens[i], probe.arch))
        if progress is not None:
            progress(min(len(records), i + world), len(records))
    merged: dict[int, float | None] = {}
    for part in distributed.gather_objects(mine):
        merged.update(part)
    return [merged[i] for i in range(len(records))]


def group_medians(keys: list, accs: list[float | None]) -> dict:
    """Group key -> the median accuracy of its scored members, for groups with at least two scored
    (a pair's median is the mean of the two)."""
    groups: dict = {}
    for key, acc in zip(keys, accs):
        if acc is not None:
            groups.setdefault(key, []).append(acc)
    return {key: statistics.median(v) for key, v in groups.items() if len(v) >= 2}


def floor_keep(keys: list, accs: list[float | None], tol: float) -> list[bool]:
    """Per record: whether it stays, i.e. its accuracy is at most ``tol`` below the median of the scored
    members of its group (``keys``: one hashable group key per record). Unscored records stay, and every
    record of a group with fewer than two scored members."""
    medians = group_medians(keys, accs)
    return [_stays(key, acc, medians, tol) for key, acc in zip(keys, accs)]


def _stays(key, acc: float | None, medians: dict, tol: float) -> bool:
    return acc is None or key not in medians or acc >= medians[key] - tol - 1e-9


def floored(tokenizer, records: list, data: TokenSet, tol: float, seed: int = 0,
            progress=None) -> tuple[list, TokenSet, FloorStats]:
    """(records kept, their TokenSet with siblings among the kept, what the floor did). Runs before the
    recombination check: ``data`` must not carry checked swaps yet."""
    if data.allowed is not None:
        raise GeneratorError("the member floor runs before the recombination check, on an unchecked token set")
    t0 = time.perf_counter()
    accs = member_accuracies(tokenizer, records, data, seed, progress)
    keys = [(r.task, r.dataset, r.arch) for r in records]
    medians = group_medians(keys, accs)
    keep = [_stays(key, acc, medians, tol) for key, acc in zip(keys, accs)]
    stats = FloorStats(tol=tol, probe=PROBE, records=len(records), records_without_data=sum(a is None for a in accs),
                       dropped=[{"id": int(r.id), "group": list(key), "accuracy": round(acc, 4),
                                 "median": round(medians[key], 4)}
                                for key, acc, r, k in zip(keys, accs, records, keep) if not k])
    stats.seconds = round(time.perf_counter() - t0, 1)
    idx = [i for i, k in enumerate(keep) if k]
    subset = replace(data, tokens=[data.tokens[i] for i in idx], conds=[data.conds[i] for i in idx],
                     ids=[data.ids[i] for i in idx], siblings=sibling_lists([keys[i] for i in idx]),
                     quality=None if data.quality is None else [data.quality[i] for i in idx])
    return [records[i] for i in idx], subset, stats
