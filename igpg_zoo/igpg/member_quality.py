"""A member's standing in its group, as a condition of the prior (``igpg-zoo train --quality``).

The member floor (member_floor.py) leaves a group's weak members out of what the prior learns; this
keeps every member and tells the prior which half of its group each one stands in, as G.pt conditions
on a checkpoint's loss. Each record's tokens are decoded and scored on the same stratified sample of
its dataset's *training* split (training_probe.py; the test split is never read), and labelled:

    TOP   (2)  at or above the median of its group (same task, dataset and architecture)
    LOWER (1)  below it
    UNKNOWN (0)  unscored (its dataset does not load or fit) or in a group with fewer than two scored

The prior learns the label as one prefix slot (``PriorConfig.quality_levels`` = 2), dropped to
UNKNOWN with the other conditions' dropout, so it also samples without it. ``generate`` asks for TOP
by default: "weights like the better half of the zoo's members of this task and architecture".
A recombined sequence keeps its member's label.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.member_floor import group_medians, member_accuracies
from igpg_zoo.igpg.prior_dataset import TokenSet
from igpg_zoo.igpg.training_probe import PROBE

UNKNOWN, LOWER, TOP = 0, 1, 2
LEVELS = 2  # PriorConfig.quality_levels of a prior trained with --quality
#: What ``generate --quality`` accepts: the level asked for (UNKNOWN: the null row, which unscored members share).
REQUESTS = {"top": TOP, "any": UNKNOWN}


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
    stats = QualityStats(probe=PROBE, records=len(records), top=levels.count(TOP), lower=levels.count(LOWER),
                         unknown=levels.count(UNKNOWN), records_without_data=sum(a is None for a in accs))
    stats.seconds = round(time.perf_counter() - t0, 1)
    return replace(data, quality=levels), stats


def requested_level(prior_levels: int, quality: str | None, prior_id=None) -> int | None:
    """The level ``generate`` conditions on: None for a prior without the slot (and no request), else
    the request's level (default "top")."""
    if quality is not None and quality not in REQUESTS:
        raise GeneratorError(f"unknown quality '{quality}'; use one of {', '.join(REQUESTS)}")
    if prior_levels == 0:
        if quality not in (None, "any"):
            raise GeneratorError(f"prior #{prior_id} was not trained with --quality, so it cannot be asked for "
                                 f"'{quality}' members; drop --quality or retrain with 'igpg-zoo train --quality'")
        return None
    return REQUESTS[quality or "top"]
