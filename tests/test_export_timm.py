"""Export of timm architectures: ONNX parity, and folders the real timm loads with identical outputs.

Round trip: a folder written by timm itself -> ``igpg-zoo add`` -> ``igpg-zoo export --format timm``
-> ``timm.create_model("local-dir:PATH", pretrained=True)``. Note: timm loads a ``local-dir:``
folder's weights only with ``pretrained=True``; without it, it builds the architecture from
config.json with random weights.
"""

from __future__ import annotations

import json
import os

import numpy as np
import onnxruntime as ort
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
timm = pytest.importorskip("timm")
pytest.importorskip("igpg_zoo_timm")
import torch  # noqa: E402
from torch import nn  # noqa: E402

from igpg_zoo.adapters import get_adapter  # noqa: E402
from igpg_zoo.export import export_weights  # noqa: E402
from igpg_zoo.zoo import open_zoo  # noqa: E402

# (arch string, timm model name, create_model kwargs)
MODELS = [
    ("timm/test_resnet?num_classes=10&in_chans=1&img_size=32", "test_resnet",
     dict(num_classes=10, in_chans=1)),
    ("timm/test_vit?num_classes=10&in_chans=1&img_size=32", "test_vit",
     dict(num_classes=10, in_chans=1, img_size=32)),
    ("timm/test_efficientnet?num_classes=10&in_chans=1&img_size=32", "test_efficientnet",
     dict(num_classes=10, in_chans=1)),
]
IDS = [m[1] for m in MODELS]


def _randomize_norms(module: nn.Module) -> nn.Module:
    """Non-default BatchNorm statistics, so a lost buffer would show in the outputs."""
    gen = torch.Generator().manual_seed(1)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=gen) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=gen) + 0.5)
    return module.eval()


def _igpg_module(arch: str, weights: dict) -> nn.Module:
    module = get_adapter(arch).build(arch)
    module.load_state_dict(weights)
    return module.eval()


def _same_outputs(a: nn.Module, b: nn.Module, shape=(3, 1, 32, 32)) -> float:
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        return float((a.eval()(x) - b.eval()(x)).abs().max())


@pytest.fixture(autouse=True)
def _timm_plugin(monkeypatch):
    """conftest turns third-party plugins off; these tests need the timm one."""
    monkeypatch.setenv("IGPG_ZOO_PLUGINS", "timm")


@pytest.fixture(scope="module")
def weights_of():
    """Random weights (with BN statistics) per arch, built once."""
    cache = {}

    def get(arch):
        if arch not in cache:
            torch.manual_seed(0)
            cache[arch] = _randomize_norms(get_adapter(arch).build(arch)).state_dict()
        return cache[arch]
    return get


@pytest.mark.parametrize("arch,model,kwargs", MODELS, ids=IDS)
def test_onnx_parity_for_timm_models(tmp_path, weights_of, arch, model, kwargs):
    weights = weights_of(arch)
    report = export_weights(arch, weights, "onnx", tmp_path / "m.onnx")
    assert report.adapter == "timm" and report.max_abs_diff <= 1e-4

    x = torch.randn(4, 1, 32, 32)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = _igpg_module(arch, weights)(x).numpy()
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - expected).max() <= 1e-4


@pytest.mark.parametrize("arch,model,kwargs", MODELS, ids=IDS)
def test_timm_folder_loads_in_timm_both_ways(tmp_path, weights_of, arch, model, kwargs):
    weights = weights_of(arch)
    report = export_weights(arch, weights, "timm", tmp_path / "folder", meta={"dataset": "digits"})
    assert report.max_abs_diff == 0.0
    config = json.loads((tmp_path / "folder" / "config.json").read_text())
    assert config["architecture"] == model and config["num_classes"] == 10
    cfg = config["pretrained_cfg"]
    assert cfg["input_size"] == [1, 32, 32] and "mean" in cfg and "std" in cfg and cfg["num_classes"] == 10
    ours = _igpg_module(arch, weights)

    from_dir = timm.create_model(f"local-dir:{tmp_path / 'folder'}", pretrained=True)
    assert _same_outputs(ours, from_dir) == 0.0

    overlay = dict(file=str(tmp_path / "folder" / "model.safetensors"), num_classes=10)
    from_file = timm.create_model(model, pretrained=True, pretrained_cfg_overlay=overlay, **kwargs)
    assert _same_outputs(ours, from_file) == 0.0


def test_timm_folder_round_trips_through_add_and_export(cli):
    torch.manual_seed(0)
    original = _randomize_norms(timm.create_model("test_resnet", num_classes=10, in_chans=1))
    timm.models._hub.save_for_hf(original, "from_timm", safe_serialization=True,
                                 data_config={"input_size": (1, 32, 32)})

    result = cli("add", "from_timm", "--dataset", "digits", "--json")
    assert result.exit_code == 0, result.stderr
    added = json.loads(result.stdout)
    assert added["arch"].startswith("timm/test_resnet?num_classes=10&in_chans=1")
    result = cli("export", added["id"], "--format", "timm", "--out", "exported")
    assert result.exit_code == 0, result.stderr
    assert "parity max|diff| = 0 <= atol 0.0001" in result.stdout

    reloaded = timm.create_model("local-dir:exported", pretrained=True)
    assert _same_outputs(original, reloaded) == 0.0
    with open_zoo() as zoo:
        assert zoo.get(added["id"]).extra["export_timm"]["max_abs_diff"] == 0.0
