"""Curves side by side: steps each start needs to reach a target accuracy, and accuracy at fixed budgets.

Speed-up is the reference's steps to the target over a start's (a start already there at step 0
counts as 1 step).

The target is ``target_fraction`` of random init's final held-out accuracy when random init is among
the starts (the issue's measure), else of the best final accuracy of any start. Accuracy at a budget
is the held-out accuracy of the last evaluation at or before that step. Everything is read off the
held-out part; the test split is never used to compare.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from igpg_zoo.finetune.train import Curve


def default_budgets(total: int, per_epoch: int) -> list[int]:
    """0, a few early steps, one epoch and the end: where starts differ most."""
    marks = {0, min(10, total), min(50, total), min(per_epoch, total), total}
    return sorted(marks)


def at_budget(curve: Curve, budget: int) -> float:
    """Held-out accuracy of the last evaluation at or before ``budget`` steps."""
    value = curve.val_acc[0]
    for step, acc in zip(curve.steps, curve.val_acc):
        if step > budget:
            break
        value = acc
    return value


def steps_to(curve: Curve, target: float) -> int | None:
    """The first evaluated step whose held-out accuracy reaches ``target`` (None: never)."""
    for step, acc in zip(curve.steps, curve.val_acc):
        if acc >= target - 1e-12:
            return step
    return None


def summarize(curves: Mapping[str, Curve], target_fraction: float, budgets: Sequence[int]) -> dict:
    """The comparison table as data: target, and per start its steps to target, accuracies at budgets, final."""
    finals = {name: c.val_acc[-1] for name, c in curves.items()}
    reference = "random" if "random" in curves else max(finals, key=finals.get)
    target = target_fraction * finals[reference]
    rows = {}
    for name, c in curves.items():
        rows[name] = {"steps_to_target": steps_to(c, target), "final": finals[name], "best": max(c.val_acc),
                      "at": {str(b): at_budget(c, b) for b in budgets}}
    ref_steps = rows[reference]["steps_to_target"]
    for row in rows.values():
        s = row["steps_to_target"]
        row["speedup"] = max(ref_steps, 1) / max(s, 1) if ref_steps is not None and s is not None else None
    return {"target": target, "target_fraction": target_fraction, "reference": reference,
            "budgets": list(budgets), "starts": rows}
