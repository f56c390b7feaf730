"""BatchNorm statistics before export: estimated on data when asked (or for a generated record that
never had them), recorded in the provenance; left alone otherwise; refused in one line without data."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import ExportNotSupported
from igpg_zoo.export import export_record, export_weights
from igpg_zoo.export.batchnorm import estimate, fresh_statistics, training_sample
from igpg_zoo.export.single_file import read_single_file
from igpg_zoo.records import CheckpointMeta

BN = "cnn-i1x8x8-c4k3-c8k3-o3-bn"
PLAIN = "cnn-i1x8x8-c4k3-o3"
TASK = "digits[classes=0,1,2][n=60]"
PROVENANCE = {"generator": {"prior_artifact_id": 1, "tokenizer_artifact_id": 2}, "seed": 0}


def _fresh(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return get_adapter(arch).build(arch).state_dict()


def _estimated(arch: str, weights: dict) -> dict[str, torch.Tensor]:
    module = get_adapter(arch).build(arch)
    module.load_state_dict(weights)
    estimate(module, training_sample(TASK))
    return module.state_dict()


def test_fresh_statistics_names_the_default_layers():
    module = get_adapter(BN).build(BN)
    assert fresh_statistics(module) == ["bn1", "bn2"]
    module.bn1.running_mean.fill_(0.5)
    assert fresh_statistics(module) == ["bn2"]


@pytest.mark.parametrize("arch, changed", [(BN, True), (PLAIN, False)])
def test_export_weights_with_calibration(tmp_path, arch, changed):
    weights = _fresh(arch)
    report = export_weights(arch, weights, "safetensors", tmp_path / "m.safetensors",
                            {"provenance": PROVENANCE}, calibration=training_sample(TASK))
    _, back, meta = read_single_file(tmp_path / "m.safetensors")
    expected = _estimated(arch, weights) if changed else weights
    assert all(torch.equal(back[k], expected[k]) for k in expected)
    if changed:
        facts = {"layers": 2, "statistics": "estimated", "on": f"{TASK}:train", "samples": 60, "when": "export"}
        assert report.batchnorm == facts and meta["provenance"]["batchnorm"] == facts
        assert report.facts()["batchnorm"] == facts
    else:
        assert report.batchnorm is None and "batchnorm" not in meta["provenance"]


def _record(zoo, weights, kind, dataset, extra=None):
    meta = CheckpointMeta(arch=BN, task="t", dataset=dataset, kind=kind, extra=extra or {})
    return zoo.add_weights(weights, meta).checkpoint


@pytest.mark.parametrize("kind, estimated_before, estimated_on_export", [
    ("generated", False, True),  # generated without data: estimated on the dataset's training split
    ("generated", True, False),  # generated with data: its statistics are kept
    ("trained", False, False),  # a trained record is exported as it is
])
def test_export_record_estimates_only_what_was_never_estimated(tmp_path, kind, estimated_before,
                                                               estimated_on_export):
    from igpg_zoo.zoo import open_zoo

    weights = _fresh(BN)
    if estimated_before:
        weights = _estimated(BN, weights)
    with open_zoo(str(tmp_path / "r.db"), embedder="hash") as zoo:
        ck = _record(zoo, weights, kind, TASK, {"provenance": PROVENANCE} if kind == "generated" else None)
        report = export_record(zoo, ck.id, "safetensors", tmp_path / "m.safetensors")
        stored = zoo.get(ck.id).extra["export_safetensors"]
    _, back, _ = read_single_file(tmp_path / "m.safetensors")
    expected = _estimated(BN, weights) if estimated_on_export else weights
    assert all(torch.equal(back[k], expected[k]) for k in expected)
    assert (report.batchnorm is not None) == estimated_on_export == ("batchnorm" in stored)


@pytest.mark.parametrize("dataset", ["", "user:mine.npz"])
def test_generated_record_without_loadable_data_is_refused_in_one_line(tmp_path, dataset):
    from igpg_zoo.zoo import open_zoo

    with open_zoo(str(tmp_path / "r.db"), embedder="hash") as zoo:
        ck = _record(zoo, _fresh(BN), "generated", dataset, {"provenance": PROVENANCE})
        with pytest.raises(ExportNotSupported, match="BatchNorm layers have no statistics yet") as err:
            export_record(zoo, ck.id, "onnx", tmp_path / "out" / "m.onnx")
    assert "\n" not in str(err.value) and not (tmp_path / "out").exists()
