"""export_weights with the built-in smallnet family: ONNX parity, native folder, safetensors file, refusals."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from igpg_zoo.adapters import get_adapter, register_adapter, unregister_adapter
from igpg_zoo.adapters.base import Adapter
from igpg_zoo.errors import CheckpointMismatch, ConfigError, ExportNotSupported, ExportParityError
from igpg_zoo.export import export_weights, supported_formats
from igpg_zoo.export.single_file import read_single_file

ARCHS = [
    "mlp-i64-h32-o10",  # flat MLP
    "cnn-i1x8x8-c8k3-c16k3-o10",  # 2-D conv
    "cnn-i1x40-c8k5-o10",  # 1-D conv
    "cnn-i1x8x8-c8k3-o10-bn",  # BatchNorm
    "cnn-i1x8x8-c4k3-c8k3-h16-o10-gelu-bn",  # everything at once
]


def _weights(arch: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights with non-trivial BatchNorm statistics."""
    torch.manual_seed(seed)
    module = get_adapter(arch).build(arch)
    for m in module.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    return module.state_dict()


def _outputs(arch: str, weights: dict, x: torch.Tensor) -> np.ndarray:
    module = get_adapter(arch).build(arch)
    module.load_state_dict(weights)
    with torch.no_grad():
        return module.eval()(x).numpy()


@pytest.mark.parametrize("arch", ARCHS)
def test_onnx_parity_for_the_builtin_family(tmp_path, arch):
    weights = _weights(arch)
    report = export_weights(arch, weights, "onnx", tmp_path / "m.onnx")
    assert report.path == tmp_path / "m.onnx" and report.adapter == "smallnet"
    assert report.max_abs_diff <= 1e-4 and report.opset >= 17 and report.exporter == "legacy"

    example = get_adapter(arch).example_input(arch)
    x = torch.randn((4, *example.shape[1:]))
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - _outputs(arch, weights, x)).max() <= 1e-4


@pytest.mark.parametrize("arch", [ARCHS[1], ARCHS[3]])
def test_native_folder_reads_back_with_the_adapter(tmp_path, arch):
    weights = _weights(arch)
    out = tmp_path / "folder"
    out.mkdir()  # an empty folder is fine (replaced atomically)
    report = export_weights(arch, weights, "native", out, meta={"dataset": "digits", "id": 7})
    assert report.path == out and report.max_abs_diff == 0.0
    doc = json.loads((out / "igpg-zoo.json").read_text())
    assert doc["arch"] == arch and doc["dataset"] == "digits" and doc["meta"]["id"] == 7
    arch_back, weights_back = get_adapter(arch).read_native(out)
    assert arch_back == arch and weights_back.keys() == weights.keys()
    assert all(torch.equal(weights_back[k], weights[k]) for k in weights)
    assert [p.name for p in tmp_path.iterdir()] == ["folder"]  # no temp folder left


def test_safetensors_file_carries_the_arch(tmp_path):
    arch = ARCHS[3]
    weights = _weights(arch)
    report = export_weights(arch, weights, "safetensors", tmp_path / "out", meta={"task": "digits"})
    assert report.path == tmp_path / "out" / "model.safetensors"  # a folder gets model.safetensors
    arch_back, weights_back, meta = read_single_file(report.path)
    assert arch_back == arch and meta == {"arch": arch, "task": "digits"}
    assert sorted(weights_back) == sorted(weights) and all(torch.equal(weights_back[k], weights[k]) for k in weights)
    umask = os.umask(0)
    os.umask(umask)
    assert report.path.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temp file's private 0600


def test_smallnet_cannot_export_to_timm(tmp_path):
    arch = ARCHS[0]
    with pytest.raises(ExportNotSupported, match="adapter 'smallnet'.*cannot export to 'timm'; "
                                                  "formats it supports: onnx, native, safetensors"):
        export_weights(arch, _weights(arch), "timm", tmp_path / "t")
    assert list(tmp_path.iterdir()) == []


def test_unknown_format_lists_the_formats(tmp_path):
    with pytest.raises(ConfigError, match="unknown export format 'tflite'; choose one of onnx, timm, native"):
        export_weights(ARCHS[0], _weights(ARCHS[0]), "tflite", tmp_path / "t")


def test_weights_that_do_not_fit_write_nothing(tmp_path):
    weights = _weights(ARCHS[0])
    weights.pop("head.bias")
    with pytest.raises(CheckpointMismatch, match="missing 1 key"):
        export_weights(ARCHS[0], weights, "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_folder_is_not_overwritten(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an empty folder"):
        export_weights(ARCHS[0], _weights(ARCHS[0]), "native", tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


# -- adapters that export less, or badly ---------------------------------------------------------


class _PlainAdapter(Adapter):
    """An adapter with no example input and no export formats beyond safetensors."""

    name = "plain-test"
    test_arch = "plain-test-3"

    def supports(self, arch: str) -> bool:
        return arch.startswith("plain-test-")

    def build(self, arch: str) -> nn.Module:
        return nn.Linear(int(arch.rsplit("-", 1)[1]), 2).eval()


class _LossyAdapter(_PlainAdapter):
    """Claims native export, but its folder reads back with perturbed weights."""

    name = "lossy-test"
    test_arch = "lossy-test-3"
    export_formats = ("native",)

    def supports(self, arch: str) -> bool:
        return arch.startswith("lossy-test-")

    def example_input(self, arch: str) -> torch.Tensor:
        return torch.zeros(2, 3)

    def read_native(self, path: Path):
        from safetensors.torch import load_file

        weights = load_file(str(Path(path) / "model.safetensors"))
        return "lossy-test-3", {k: v + 0.5 for k, v in weights.items()}


@pytest.fixture
def extra_adapters():
    adapters = [_PlainAdapter(), _LossyAdapter()]
    for adapter in adapters:
        register_adapter(adapter)
    yield adapters
    for adapter in adapters:
        unregister_adapter(adapter.name)


def test_adapter_without_onnx_says_what_it_supports(tmp_path, extra_adapters):
    arch = "plain-test-3"
    assert supported_formats(extra_adapters[0]) == ("safetensors",)
    weights = nn.Linear(3, 2).state_dict()
    with pytest.raises(ExportNotSupported, match="adapter 'plain-test'.*formats it supports: safetensors$"):
        export_weights(arch, weights, "onnx", tmp_path / "m.onnx")
    report = export_weights(arch, weights, "safetensors", tmp_path / "m.safetensors")
    assert report.max_abs_diff == 0.0 and report.check == "re-read tensors vs original"


def test_a_folder_that_reads_back_differently_is_refused(tmp_path, extra_adapters):
    weights = nn.Linear(3, 2).state_dict()
    with pytest.raises(ExportParityError, match=r"max\|diff\| = .* > atol 0.0001"):
        export_weights("lossy-test-3", weights, "native", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []
