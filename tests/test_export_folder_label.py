"""The weights file inside an exported folder keeps a generated model's label on its own.

``igpg-zoo add FOLDER/model.safetensors`` (the file timm's ``pretrained_cfg_overlay`` points at,
or a file copied out of the folder) must record generated weights as generated, with provenance.
"""

from __future__ import annotations

import json

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.export import export_weights

ARCH = "cnn-i1x8x8-c4k3-o3-bn"
PROVENANCE = {"generator": {"prior_artifact_id": 7, "tokenizer_artifact_id": 6}, "seed": 3,
              "snapshot": {"hash": "abc"}, "condition": {"task": "digits[classes=0,1,2]"}}


@pytest.mark.parametrize("meta,kind", [
    ({"kind": "generated", "task": "gen task", "provenance": PROVENANCE}, "generated"),
    ({"kind": "trained", "task": "trained task"}, "imported"),
])
def test_add_of_the_folders_weights_file_keeps_the_label(tmp_path, cli, meta, kind):
    torch.manual_seed(0)
    weights = get_adapter(ARCH).build(ARCH).state_dict()
    export_weights(ARCH, weights, "native", tmp_path / "folder", meta)
    result = cli("add", tmp_path / "folder" / "model.safetensors", "--json")
    assert result.exit_code == 0, result.output
    added = json.loads(result.stdout)
    assert (added["arch"], added["kind"]) == (ARCH, kind)
    if kind == "generated":
        assert added["extra"]["provenance"] == PROVENANCE and added["task"] == "gen task"
