"""Defaults and the request of a fine-tuning run (no torch here, so the CLI's ``--help`` stays instant).

``FinetuneConfig`` holds the schedule every start shares; ``FinetuneRequest`` names the data, the
start (a record id, a query's answer or a generated draw) and the starts to compare against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.errors import ConfigError

if TYPE_CHECKING:
    from igpg_zoo.data.dataset import Dataset

#: where a run starts from: the front door's answer for the data (the default), a stored record, a text
#: query's best hit, a generated draw, random init
START_KINDS = ("answer", "record", "query", "generated", "random")
#: the other starts ``compare`` can run with the same schedule
COMPARE_STARTS = ("random", "retrieved", "generated")
#: head policies: "auto" keeps a stored head of the right size only when it beats a fitted one on the
#: training part; "fit" solves it (ridge on the body's features); "replace" re-initialises it; "keep"
#: keeps it (class counts must match)
HEADS = ("auto", "fit", "replace", "keep")


@dataclass(frozen=True)
class FinetuneConfig:
    """The schedule of one run; ``--compare`` runs every start with the same one."""

    lr: float = 3e-3
    batch_size: int = 64
    epochs: int = 10
    max_steps: int | None = None  # stop after this many optimiser steps (None: epochs decide)
    patience: int = 3  # epochs without a better held-out accuracy before stopping (0: never stop early)
    val_fraction: float = 0.2  # share of the user's training split held out for early stopping
    evals_per_epoch: int = 4  # held-out evaluations per epoch (the curve's resolution)
    seed: int = 0  # split, data order, fresh heads and random init
    weight_decay: float = 0.0
    head: str = "auto"
    draws: int = 5  # generated start: draws scored on the training part, the best is kept
    target_fraction: float = 0.95  # compare: steps until this share of random init's final accuracy
    budgets: tuple[int, ...] = ()  # compare: report held-out accuracy at these steps (default: derived)

    def check(self) -> FinetuneConfig:
        """Refuse values no run can use (one line saying which)."""
        rules = [(self.lr > 0, f"--lr must be > 0, got {self.lr}"),
                 (self.batch_size >= 1, f"--batch must be >= 1, got {self.batch_size}"),
                 (self.epochs >= 1, f"--epochs must be >= 1, got {self.epochs}"),
                 (self.max_steps is None or self.max_steps >= 1, f"--max-steps must be >= 1, got {self.max_steps}"),
                 (self.patience >= 0, f"--patience must be >= 0 (0: no early stopping), got {self.patience}"),
                 (0.05 <= self.val_fraction <= 0.5, f"--val-fraction must lie in 0.05..0.5, got {self.val_fraction}"),
                 (self.evals_per_epoch >= 1, f"evals_per_epoch must be >= 1, got {self.evals_per_epoch}"),
                 (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
                 (self.head in HEADS, f"--head must be one of {', '.join(HEADS)}, got '{self.head}'"),
                 (1 <= self.draws <= 100, f"draws must lie in 1..100, got {self.draws}"),
                 (0 < self.target_fraction <= 1, f"--target must lie in (0, 1], got {self.target_fraction}"),
                 (all(b >= 0 for b in self.budgets), f"budgets must be steps >= 0, got {list(self.budgets)}")]
        for ok, message in rules:
            if not ok:
                raise ConfigError(message)
        return self

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["budgets"] = list(self.budgets)
        return d


@dataclass(frozen=True)
class FinetuneRequest:
    """What to fine-tune on what. At most one of ``record_id``, ``query``, ``generated`` names the start;
    with none, the run starts from the front door's answer for the data (``Zoo.answer``)."""

    data: str | Path | Dataset
    record_id: int | None = None
    query: str | None = None
    generated: bool = False
    arch: str | None = None  # answer / generated start: the architecture (default: proposed / best retrieved)
    compare: tuple[str, ...] = ()  # other starts from COMPARE_STARTS, same schedule
    config: FinetuneConfig = field(default_factory=FinetuneConfig)
    label: str = "label"  # a .csv's label column
    register: bool = True  # add the result to the registry (kind "finetuned")
    name: str | None = None  # the registered record's name (default: derived)

    @property
    def start_kind(self) -> str:
        given = [k for k, v in (("record", self.record_id is not None), ("query", self.query is not None),
                                ("generated", self.generated)) if v]
        if len(given) > 1:
            raise ConfigError("name at most one start: a record ID, --query TEXT or --generated (none: the answer)")
        return given[0] if given else "answer"

    def check(self) -> FinetuneRequest:
        kind = self.start_kind
        if self.query is not None and not self.query.strip():
            raise ConfigError("--query needs some text")
        unknown = [c for c in self.compare if c not in COMPARE_STARTS]
        if unknown:
            raise ConfigError(f"--compare takes {', '.join(COMPARE_STARTS)}; got {', '.join(unknown)}")
        if len(set(self.compare)) != len(self.compare):
            raise ConfigError("--compare names a start twice; name each once")
        if self.arch is not None and kind in ("record", "query"):
            raise ConfigError("--arch chooses the architecture of an answer or a generated start; a record "
                              "or a query's hit brings its own")
        self.config.check()
        return self


def parse_compare(text: str | None) -> tuple[str, ...]:
    """``"random,retrieved"`` -> ("random", "retrieved")."""
    if not text:
        return ()
    return tuple(part.strip() for part in text.split(",") if part.strip())
