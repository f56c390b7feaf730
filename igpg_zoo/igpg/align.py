"""Permutation alignment: reorder a model's hidden units to match a reference of the same architecture.

Independently trained networks compute the same function with their hidden units in different
orders. A generator trained on such a zoo sees one task's members spread over many orderings, and a
sample that follows one member's ordering for a few layers and another's after (a chimera) is
broken. Aligning every member to one reference per architecture removes that symmetry without
changing any model's function (adapter.unit_groups says which permutations are exact).

Weight matching: maximise sum_layers <W_ref, P_out W P_in^T> over the permutations, by coordinate
ascent: one group at a time, the others fixed, the best permutation is an exact linear assignment
on the similarity S[i, j] = <ref unit i, model unit j> over the group's outgoing and incoming
weights. Sweeps repeat until no permutation changes.
"""

from __future__ import annotations

import torch

from igpg_zoo.records import UnitGroup

MAX_SWEEPS = 20


def _permuted(weights: dict[str, torch.Tensor], groups: list[UnitGroup], perms: list[torch.Tensor],
              name: str, skip: int = -1) -> torch.Tensor:
    """``weights[name]`` with every group's permutation applied (but group ``skip``'s)."""
    t = weights[name]
    for gi, g in enumerate(groups):
        if gi == skip:
            continue
        if name in g.outputs or name in g.buffers:
            t = t.index_select(0, perms[gi])
        if name in g.inputs:
            t = t.index_select(1, perms[gi])
    return t


def _similarity(weights: dict, reference: dict, groups: list[UnitGroup], perms: list[torch.Tensor],
                gi: int, incoming_only: bool = False) -> torch.Tensor:
    """S (n, n): S[i, j] = <reference unit i, model unit j> over group ``gi``'s weights."""
    g = groups[gi]
    S = torch.zeros(g.size, g.size, dtype=torch.float64)
    for name, axis in [(n, 0) for n in g.outputs] + ([] if incoming_only else [(n, 1) for n in g.inputs]):
        a = reference[name].to(torch.float64).movedim(axis, 0).reshape(g.size, -1)  # (n, rest)
        b = _permuted(weights, groups, perms, name, skip=gi).to(torch.float64).movedim(axis, 0).reshape(g.size, -1)
        S += a @ b.T
    return S


def match(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], groups: list[UnitGroup],
          max_sweeps: int = MAX_SWEEPS) -> list[torch.Tensor]:
    """One permutation (n,) per group: aligned unit i is the model's unit perm[i].

    The start is order-blind: a forward pass matching each layer on its incoming weights alone (the
    layers before it already matched), so the result does not depend on the order the units came in.
    """
    from scipy.optimize import linear_sum_assignment

    def assign(gi: int, incoming_only: bool = False) -> torch.Tensor:
        S = _similarity(weights, reference, groups, perms, gi, incoming_only)
        return torch.as_tensor(linear_sum_assignment(S.numpy(), maximize=True)[1], dtype=torch.long)

    perms = [torch.arange(g.size) for g in groups]
    for gi in range(len(groups)):
        perms[gi] = assign(gi, incoming_only=True)
    for _ in range(max_sweeps):
        changed = False
        for gi in range(len(groups)):
            p = assign(gi)
            if not torch.equal(p, perms[gi]):
                perms[gi], changed = p, True
        if not changed:
            break
    return perms


def permute(weights: dict[str, torch.Tensor], groups: list[UnitGroup], perms: list[torch.Tensor]
            ) -> dict[str, torch.Tensor]:
    """``weights`` with the permutations applied to every tensor they touch (buffers included)."""
    touched = {n for g in groups for n in (*g.outputs, *g.inputs, *g.buffers)}
    return {k: (_permuted(weights, groups, perms, k).clone() if k in touched else v) for k, v in weights.items()}


def align(weights: dict[str, torch.Tensor], reference: dict[str, torch.Tensor], groups: list[UnitGroup]
          ) -> dict[str, torch.Tensor]:
    """``weights`` reordered to match ``reference``: the same function, the reference's unit order."""
    if not groups:
        return dict(weights)
    return permute(weights, groups, match(weights, reference, groups))


def to_reference(weights: dict[str, torch.Tensor], arch: str, references: dict[str, dict[str, torch.Tensor]]
                 ) -> dict[str, torch.Tensor]:
    """``weights`` of ``arch`` aligned to its reference in ``references`` (unchanged when it has none)."""
    if arch not in references:
        return weights
    from igpg_zoo.adapters import get_adapter

    return align(weights, references[arch], get_adapter(arch).unit_groups(arch))


def reference_tensors(weights: dict[str, torch.Tensor], groups: list[UnitGroup]) -> dict[str, torch.Tensor]:
    """What a reference must keep for matching: every group's outputs and inputs (not the buffers)."""
    names = {n for g in groups for n in (*g.outputs, *g.inputs)}
    return {k: v.detach().to(torch.float32).clone().contiguous() for k, v in weights.items() if k in names}
