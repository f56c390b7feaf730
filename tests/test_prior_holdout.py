"""The task-disjoint hold-out on a real SQLite registry: a task name is held out however its options
are spelt, and a hold-out that matches nothing is an error instead of a silent train-on-test."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.prior_dataset import is_held_out, select_records
from igpg_zoo.records import CheckpointMeta
from igpg_zoo.zoo import open_zoo

MLP = "mlp-i4-h8-o3"
DATASETS = ("digits[classes=0,1,2,3,4][n=200]", "digits[classes=3,5,8][n=120]", "digits[classes=2-4]")


@pytest.fixture
def zoo(tmp_path):
    with open_zoo(str(tmp_path / "r.db"), str(tmp_path / "blobs")) as z:
        for i, ds in enumerate(DATASETS):
            torch.manual_seed(i)
            z.add_weights(get_adapter(MLP).build(MLP).state_dict(), CheckpointMeta(MLP, task=f"task {i}", dataset=ds))
        yield z


@pytest.mark.parametrize("holdout, kept", [
    (["digits[classes=0-4][n=200]"], {1, 2}),  # the preset's spelling of a stored canonical name
    (["digits[classes=0,1,2,3,4][n=200]"], {1, 2}),
    (["digits[classes=2,3,4]"], {0, 1}),  # a canonical pattern, a record stored as it was typed
    (["digits[classes=0-4]*"], {1, 2}),  # a name before the wildcard is canonicalised too
    (["digits[classes=3,5,8]*", "task 2"], {0}),
    (["DIGITS[classes=3,5,8][n=120]"], {0, 2}),
])
def test_holdout_matches_a_task_name_however_its_options_are_spelt(zoo, holdout, kept):
    datasets = {r.dataset for r in select_records(zoo, holdout)}
    assert datasets == {DATASETS[i] for i in kept}


@pytest.mark.parametrize("holdout", [["digits[classes=0-5]"], ["digits[classes=3,5,8]"], ["task 9"], ["wine*"]])
def test_a_holdout_that_matches_no_record_is_refused(zoo, holdout):
    with pytest.raises(GeneratorError, match="matches no record"):
        select_records(zoo, ["task 0", *holdout])


@pytest.mark.parametrize("task, holdout, expected", [
    ("digits[classes=0,1,2,3,4]", ["digits[classes=0-4]"], True),
    ("digits[classes=0-4]", ["digits[classes=0,1,2,3,4]"], True),
    ("digits[classes=0,1,2,3,4]", ["digits[classes=0-3]"], False),
    ("classify digits 0-4", ["classify digits 0-4"], True),
])
def test_is_held_out_compares_canonical_task_names(task, holdout, expected):
    assert is_held_out(task, holdout) is expected
