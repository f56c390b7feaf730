"""``igpg-zoo export`` end to end on a real SQLite registry: parity printed and recorded, refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import CheckpointMeta
from igpg_zoo.zoo import open_zoo

ARCH = "cnn-i1x8x8-c8k3-o10-bn"


@pytest.fixture
def registry():
    """One smallnet record in the test's registry (conftest: tmp folder, hash embedder)."""
    torch.manual_seed(0)
    module = get_adapter(ARCH).build(ARCH)
    module.bn1.running_mean.uniform_(-1, 1)
    with open_zoo() as zoo:
        record = zoo.add_weights(module.state_dict(), CheckpointMeta(arch=ARCH, dataset="digits")).checkpoint
    return record, module


def test_onnx_export_prints_and_records_the_parity_figure(registry, cli):
    record, module = registry
    r = cli("export", str(record.id), "--format", "onnx", "--out", "m.onnx")
    assert r.exit_code == 0, r.stderr
    out = r.stdout
    assert out.startswith(f"exported #{record.id} [{ARCH}] onnx -> m.onnx (opset ")
    assert "parity max|diff| = " in out and "<= atol 0.0001" in out
    with open_zoo() as zoo:
        facts = zoo.get(record.id).extra["export_onnx"]
    assert facts["opset"] >= 17 and facts["max_abs_diff"] <= 1e-4 and facts["atol"] == 1e-4

    session = ort.InferenceSession("m.onnx", providers=["CPUExecutionProvider"])
    x = torch.randn(6, 1, 8, 8)
    with torch.no_grad():
        expected = module.eval()(x).numpy()
    assert np.abs(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0] - expected).max() <= 1e-4


def test_json_output_and_native_folder(registry, cli, tmp_path):
    record, _ = registry
    r = cli("export", str(record.id), "-f", "native", "-o", "folder", "--json")
    assert r.exit_code == 0, r.stderr
    facts = json.loads(r.stdout)
    assert facts["format"] == "native" and facts["max_abs_diff"] == 0.0 and facts["path"] == "folder"
    assert get_adapter(ARCH).read_native(tmp_path / "folder")[0] == ARCH


def test_unsupported_format_exits_2_with_one_line(registry, cli, tmp_path):
    record, _ = registry
    r = cli("export", str(record.id), "--format", "timm", "--out", "t")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert "adapter 'smallnet'" in r.stderr and "formats it supports: onnx, native, safetensors" in r.stderr
    assert not (tmp_path / "t").exists()
    with open_zoo() as zoo:
        assert "export_timm" not in zoo.get(record.id).extra


def test_parity_failure_exits_non_zero_and_records_nothing(registry, cli, tmp_path):
    record, _ = registry
    r = cli("export", str(record.id), "--out", "m.onnx", "--atol", "0")
    assert r.exit_code == 1 and "ONNX parity check failed" in r.stderr and "> atol 0" in r.stderr
    assert not (tmp_path / "m.onnx").exists()
    with open_zoo() as zoo:
        assert "export_onnx" not in zoo.get(record.id).extra


def test_unknown_record(registry, cli):
    r = cli("export", "99", "--out", "m.onnx")
    assert r.exit_code == 3 and "#99" in r.stderr


def _check(path: str, fmt: str) -> None:
    if fmt == "onnx":
        assert ort.InferenceSession(path).get_inputs()[0].shape[1:] == [1, 8, 8]
    else:
        from safetensors.torch import load_file

        assert "conv1.weight" in load_file(path)


@pytest.mark.parametrize("path, args", [
    ("taken.onnx", ("export", "{id}", "--format", "onnx", "--out", "taken.onnx")),
    ("taken.safetensors", ("export", "{id}", "--format", "safetensors", "--out", "taken.safetensors")),
    ("taken.onnx", ("query", "digits", "--out", "taken.onnx", "--format", "onnx")),
    ("d/model.safetensors", ("query", "digits", "--out", "d")),
])
def test_an_existing_out_file_needs_overwrite(registry, cli, path, args):
    record, _ = registry
    Path(path).parent.mkdir(exist_ok=True)
    Path(path).write_text("mine")
    argv = [a.format(id=record.id) for a in args]
    r = cli(*argv)
    assert r.exit_code == 2 and "already exists; pass --overwrite to replace it" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and Path(path).read_text() == "mine"
    r = cli(*argv, "--overwrite")
    assert r.exit_code == 0, r.stderr
    _check(path, "onnx" if path.endswith(".onnx") else "safetensors")


def test_generate_refuses_an_existing_out_before_it_samples(cli):
    Path("w.safetensors").write_text("mine")
    r = cli("generate", "--arch", "mlp-i4-h16-o3", "--dataset", "iris", "--out", "w.safetensors")
    assert r.exit_code == 2
    assert r.stderr.startswith("error: w.safetensors already exists; pass --overwrite")  # not "no prior"
    assert Path("w.safetensors").read_text() == "mine"
