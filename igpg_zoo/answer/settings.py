"""The defaults of ``query``'s answer and ``select`` (the CLI reads them from here)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

MODES = ("auto", "retrieve", "generate")
ESTIMATES = ("ridge", "knn", "logme", "margin", "loo_acc", "loo_margin")


@dataclass(frozen=True)
class AnswerSettings:
    """How an answer is made; every field is recorded with the answer, so it reproduces."""

    mode: str = "auto"  # auto | retrieve | generate
    k: int = 5  # rows shown (candidates, best first)
    all_members: bool = False  # every member instead of one per task x architecture group
    estimate: str = "loo_margin"  # ESTIMATES; chosen by bench/frontdoor.py (docs/frontdoor.md says how)
    probe: int = 512  # user samples used at most (stratified) for scoring
    held_fraction: float = 0.3  # of the probe held out for scoring; the rest fits heads (never scored on)
    max_scored: int = 12  # retrieved candidates scored at most (groups, or members with --all)
    n_generate: int = 5  # draws per generated architecture
    generate_archs: int = 2  # architectures drawn for at most (those of the best retrieved, or --arch)
    replica_distance: float = 0.02  # a draw nearer a member than this share of its norm is that member
    seed: int = 0  # sample split and generation seed
    ridge: float = 1e-2  # ridge strength of fitted heads (times the number of samples)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SelectSettings:
    """How ``select`` ranks: the estimate and the sample it scores on (the cache key includes them)."""

    k: int = 10
    estimate: str = AnswerSettings.estimate  # the same estimate as the answer
    order: str = "estimate"  # estimate | acc | params: the order of the shortlist
    probe: int = 512
    held_fraction: float = 0.3
    seed: int = 0
    ridge: float = 1e-2

    def to_dict(self) -> dict:
        return asdict(self)


ORDERS = ("estimate", "acc", "params")
