"""Architectures proposed for the user's data when no ``--arch`` is given.

From what the zoo holds: every stored architecture that takes the data's input shape, as the
architecture it becomes for the data's class count (a resized head where the adapter allows),
with how many members stand behind it and whether the generator learned it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from igpg_zoo.answer.sample import UserSample


@dataclass(frozen=True)
class Proposal:
    arch: str  # the architecture for the user's data
    from_archs: tuple[str, ...]  # the stored architectures it comes from
    members: int  # stored members of those architectures
    generator: bool  # the generator learned one of them

    def to_dict(self) -> dict:
        return {**asdict(self), "from_archs": list(self.from_archs)}


def propose(zoo, sample: UserSample, covered: list[str]) -> list[Proposal]:
    """Proposals, most members first."""
    from igpg_zoo.answer.heads import target_arch

    counts: dict[str, int] = {}
    for record in zoo.list():
        counts[record.arch] = counts.get(record.arch, 0) + 1
    merged: dict[str, list[str]] = {}
    for arch in sorted(counts):
        target = target_arch(arch, sample.input_shape, sample.n_classes)
        if target is not None:
            merged.setdefault(target, []).append(arch)
    out = [Proposal(t, tuple(src), sum(counts[a] for a in src), any(a in covered for a in src))
           for t, src in merged.items()]
    return sorted(out, key=lambda p: (-p.members, p.arch)) or [Proposal(a, (), 0, False) for a in fresh(sample)]


def fresh(sample: UserSample) -> list[str]:
    """Small-network architectures for the data's shape when the zoo holds none that take it."""
    shape, k = sample.input_shape, sample.n_classes
    if len(shape) == 3:
        return [f"cnn-i{'x'.join(map(str, shape))}-c8k3-c16k3-h32-o{k}", f"mlp-i{'x'.join(map(str, shape))}-h64-o{k}"]
    if len(shape) == 2:
        return [f"cnn-i{shape[0]}x{shape[1]}-c8k5-c16k5-h32-o{k}"]
    return [f"mlp-i{shape[0]}-h32-o{k}"]
