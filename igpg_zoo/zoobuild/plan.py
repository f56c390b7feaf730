"""A preset and a seed -> the ordered list of training runs (bases first), each with a stable id.

The run id hashes everything that determines the run's weights (preset, build seed, task,
architecture, member kind, hyper-parameters, epochs, base run), so a resumed build recognises the
runs it already registered and a different seed never collides with them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from igpg_zoo.data.tasks import canonical_name, parse_task
from igpg_zoo.zoobuild.presets import Family, Preset, Variant

MEMBERS = ("base", "finetuned", "independent")


@dataclass(frozen=True)
class Run:
    preset: str
    build_seed: int
    task: str  # canonical task name
    arch: str
    member: str  # "base" | "finetuned" | "independent"
    variant: Variant
    epochs: int
    keep: int
    base: Run | None = None  # the base a fine-tuned member starts from
    holdout: bool = False

    @property
    def run_id(self) -> str:
        key = {"preset": self.preset, "seed": self.build_seed, "task": self.task, "arch": self.arch,
               "member": self.member, "variant": [self.variant.seed, self.variant.lr, self.variant.batch_size],
               "epochs": self.epochs, "base": self.base.run_id if self.base else None}
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]

    @property
    def seed(self) -> int:
        """The torch seed of this run (init and data order), derived from the build seed."""
        return int(hashlib.sha256(f"{self.build_seed}|{self.run_id}".encode()).hexdigest()[:8], 16)

    @property
    def kept_epochs(self) -> tuple[int, ...]:
        return tuple(range(max(1, self.epochs - self.keep + 1), self.epochs + 1))

    @property
    def kind(self) -> str:
        return "finetuned" if self.member == "finetuned" else "trained"


def _n_classes(task: str) -> int:
    return parse_task(task).n_classes


def _family_runs(preset: Preset, family: Family, seed: int, holdout: set[str]) -> tuple[list[Run], list[Run]]:
    base_task = canonical_name(family.base_task)
    bases, members = [], []
    for template in family.archs:
        base = None
        if family.finetuned:
            base = Run(preset.name, seed, base_task, template.format(k=_n_classes(base_task)), "base",
                       family.base, family.base_epochs, family.keep, holdout=base_task in holdout)
            bases.append(base)
        for task in map(canonical_name, family.tasks):
            arch = template.format(k=_n_classes(task))
            for v in family.finetuned:
                members.append(Run(preset.name, seed, task, arch, "finetuned", v, family.finetune_epochs,
                                   family.keep, base=base, holdout=task in holdout))
            for v in family.independent:
                members.append(Run(preset.name, seed, task, arch, "independent", v, family.scratch_epochs,
                                   family.keep, holdout=task in holdout))
    return bases, members


def plan_runs(preset: Preset, seed: int = 0) -> list[Run]:
    """Every run of ``preset`` for build seed ``seed``: all bases, then all members."""
    holdout = {canonical_name(t) for t in preset.holdout}
    bases, members = [], []
    for family in preset.families:
        b, m = _family_runs(preset, family, seed, holdout)
        bases += b
        members += m
    return bases + members
