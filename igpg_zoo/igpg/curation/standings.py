"""A member's standing in its group, as a condition of the prior (``train.quality``).

Every record's tokens are decoded and scored on a stratified sample of its dataset's *training* split
(curation/probe.py; the test split is never read), and labelled (levels in conditioning.py):

    TOP   (2)  at or above the median of its group (same task, dataset and architecture)
    LOWER (1)  below it
    UNKNOWN (0)  unscored (its dataset does not load or fit) or in a group with fewer than two scored

The prior learns the label as one prefix slot (``PriorConfig.quality_levels`` = 2), dropped to
UNKNOWN with the other conditions' dropout, so it also samples without it. Generation asks for TOP
by default: "weights like the better half of the zoo's members of this task and architecture".
A recombined sequence keeps its member's label.
"""

from __future__ import annotations

import hashlib
import json
import statistics
import time
from dataclasses import asdict, dataclass, replace

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.conditioning import LOWER, TOP, UNKNOWN
from igpg_zoo.igpg.curation.probe import SAMPLES, record_probe
from igpg_zoo.igpg.prior_dataset import TokenSet


@dataclass
class QualityStats:
    probe: int
    records: int = 0
    top: int = 0
    lower: int = 0
    unknown: int = 0  # unscored, or in a group with fewer than two scored
    records_without_data: int = 0
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


def standings(keys: list, accs: list[float | None]) -> list[int]:
    """Per record: TOP when its accuracy is at least its group's median, LOWER below it, UNKNOWN when
    unscored or its group has fewer than two scored members (``keys``: one group key per record)."""
    medians = group_medians(keys, accs)
    return [UNKNOWN if acc is None or key not in medians else TOP if acc >= medians[key] - 1e-9 else LOWER
            for key, acc in zip(keys, accs)]


def labels_digest(levels: list[int]) -> str:
    """A short fingerprint of the labels, for the run's identity (a resume must see the same)."""
    return hashlib.sha256(json.dumps(list(levels)).encode()).hexdigest()[:16]


def labelled(tokenizer, records: list, data: TokenSet, seed: int = 0, progress=None) -> tuple[TokenSet, QualityStats]:
    """``data`` with every record's standing (``TokenSet.quality``), and the counts."""
    t0 = time.perf_counter()
    accs = member_accuracies(tokenizer, records, data, seed, progress)
    levels = standings([(r.task, r.dataset, r.arch) for r in records], accs)
    stats = QualityStats(probe=SAMPLES, records=len(records), top=levels.count(TOP), lower=levels.count(LOWER),
                         unknown=levels.count(UNKNOWN), records_without_data=sum(a is None for a in accs))
    stats.seconds = round(time.perf_counter() - t0, 1)
    return replace(data, quality=levels), stats
