"""The pieces of ``--compare`` and of head replacement that need no zoo: class-count rewriting, and
steps to a target / accuracy at a budget read off a curve."""

from __future__ import annotations

import pytest

from igpg_zoo.finetune.compare import at_budget, default_budgets, steps_to, summarize
from igpg_zoo.finetune.head import retarget
from igpg_zoo.finetune.train import Curve


@pytest.mark.parametrize("arch,k,expect", [
    ("mlp-i64-h32-o10", 4, "mlp-i64-h32-o4"),
    ("cnn-i1x8x8-c16k3-c32k3-o10-gelu", 3, "cnn-i1x8x8-c16k3-c32k3-o3-gelu"),
    ("cnn-i1x8x8-c8k3-c16k3-h32-o5-tanh-bn", 7, "cnn-i1x8x8-c8k3-c16k3-h32-o7-tanh-bn"),
    ("mlp-i4-h16-o3", 3, "mlp-i4-h16-o3"),
    ("timm/resnet18", 4, "timm/resnet18"),  # no class count in the string: as given
])
def test_retarget_changes_only_the_class_count(arch, k, expect):
    assert retarget(arch, k) == expect


CURVE = Curve([0, 2, 4, 6], [0.3, 0.5, 0.8, 0.7], [None, 1.0, 0.5, 0.4])


@pytest.mark.parametrize("target,expect", [(0.3, 0), (0.5, 2), (0.75, 4), (0.81, None)])
def test_steps_to_is_the_first_evaluation_reaching_the_target(target, expect):
    assert steps_to(CURVE, target) == expect


@pytest.mark.parametrize("budget,expect", [(0, 0.3), (1, 0.3), (4, 0.8), (5, 0.8), (100, 0.7)])
def test_accuracy_at_a_budget_is_the_last_evaluation_before_it(budget, expect):
    assert at_budget(CURVE, budget) == expect


def test_summary_targets_a_share_of_random_inits_final_accuracy():
    slow = Curve([0, 2, 4, 6], [0.1, 0.3, 0.6, 0.8], [None] * 4)
    out = summarize({"record": CURVE, "random": slow}, 0.95, [0, 4])
    assert out["reference"] == "random" and out["target"] == pytest.approx(0.76)
    assert out["starts"]["random"]["steps_to_target"] == 6 and out["starts"]["record"]["steps_to_target"] == 4
    assert out["starts"]["record"]["speedup"] == pytest.approx(1.5)
    assert out["starts"]["record"]["at"] == {"0": 0.3, "4": 0.8}


@pytest.mark.parametrize("total,per_epoch,expect", [(70, 7, [0, 7, 10, 50, 70]), (5, 5, [0, 5])])
def test_default_budgets(total, per_epoch, expect):
    assert default_budgets(total, per_epoch) == expect
