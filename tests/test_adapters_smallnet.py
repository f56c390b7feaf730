"""The built-in small-network family: grammar table, module, native folder, strict import."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from igpg_zoo.adapters import get_adapter, validate_weights
from igpg_zoo.adapters.smallnet import SmallNetAdapter
from igpg_zoo.adapters.smallnet_grammar import STRUCTURE_SLOTS, parse
from igpg_zoo.errors import CheckpointMismatch, UnknownArchitecture

ADAPTER = SmallNetAdapter()

# arch -> parameter count (computed by hand in docs/adapters.md)
VALID = [
    ("mlp-i13-h32-o3", 547),  # 13*32+32 + 32*3+3
    ("mlp-i64-h64-o10", 4810),
    ("mlp-i1x8x8-h32-h16-o10-tanh", 2778),
    ("mlp-i1x28x28-h128-h64-o10-gelu", 109386),
    ("cnn-i1x8x8-c16k3-c32k3-o10", 5130),
    ("cnn-i1x8x8-c4k3-c8k3-h16-o10-bn", 674),
    ("cnn-i1x28x28-c16k3-c32k3-o10-silu-bn", 5226),
    ("cnn-i1x28x28-c8k5-c16k3-c32k3-h64-o10", 8778),
    ("cnn-i1x40-c8k5-c16k5-c32k3-o10", 2602),
    ("cnn-i3x32x32-c16k3-c32k3-c64k3-h128-o100-gelu-bn", 45028),
    ("cnn-i3x2x2-c4k2-o2", 62),
]

INVALID = [
    ("resnet-i1x8x8-o10", "resnet"),
    ("mlp", "<end>"),
    ("mlp-x", "x"),
    ("mlp-i13-o3", "o3"),
    ("mlp-i13-h0-o3", "h0"),
    ("mlp-i13-c4k3-h4-o3", "c4k3"),
    ("mlp-i13-h3-o3-bn", "bn"),
    ("mlp-i13-h4", "<end>"),
    ("cnn-i13-c4k3-o2", "i13"),
    ("cnn-i1x8x8-o2", "o2"),
    ("cnn-i1x8x8-h3-c4k3-o2", "c4k3"),
    ("cnn-i1x8x8-c4k3-h8-c8k3-o2", "c8k3"),
    ("cnn-i1x8x8-c4k3-o2-foo", "foo"),
    ("cnn-i1x8x8-c4k3-o2-bn-relu", "relu"),
    ("cnn-i1x8x8-c4k3-o2-relu-relu", "relu"),
    ("cnn-i1x8x8x8x8-c4k3-o2", "i1x8x8x8x8"),
    ("cnn-i1x8x8-c4-o2", "c4"),
]


@pytest.mark.parametrize("arch,n_params", VALID)
def test_valid_arch_builds_with_documented_param_count(arch, n_params):
    module = ADAPTER.build(arch)
    assert not module.training
    assert sum(p.numel() for p in module.parameters()) == n_params == ADAPTER.n_params(arch)
    out = module(ADAPTER.example_input(arch))
    assert out.shape == (2, parse(arch).n_classes)
    assert get_adapter(arch) is not None and ADAPTER.supports(arch)
    assert parse(parse(arch).to_arch()) == parse(arch)
    assert ADAPTER.canonical_arch(arch) == arch.removesuffix("-relu")  # the table is canonical already
    assert ADAPTER.canonical_arch(arch + ("-relu" if arch.endswith(tuple("0123456789")) else "")) == arch


@pytest.mark.parametrize("arch,token", INVALID)
def test_invalid_arch_is_one_line_naming_the_token(arch, token):
    with pytest.raises(UnknownArchitecture) as info:
        ADAPTER.build(arch) if ADAPTER.supports(arch) else get_adapter(arch)
    msg = str(info.value)
    assert "\n" not in msg and "docs/adapters.md" in msg
    if ADAPTER.supports(arch):
        assert f"'{token}'" in msg


def test_structure_has_fixed_keys_across_the_family():
    keys = {tuple(ADAPTER.structure(a)) for a, _ in VALID}
    assert len(keys) == 1
    feats = ADAPTER.structure("cnn-i1x28x28-c8k5-c16k3-c32k3-h64-o10")
    assert feats["n_conv"] == 3 and feats["conv1_kernel"] == 5 and feats["conv3_channels"] == 32
    assert feats["hidden1_width"] == 64 and feats[f"hidden{STRUCTURE_SLOTS}_width"] == 0
    assert feats["n_params"] == 8778 and feats["input_height"] == 28 and feats["n_classes"] == 10
    deep = "cnn-i1x40-" + "-".join(["c4k3"] * (STRUCTURE_SLOTS + 2)) + "-o2"
    assert list(ADAPTER.structure(deep)) == list(feats) and ADAPTER.structure(deep)["n_conv"] == STRUCTURE_SLOTS + 2


def test_describe_names_the_parts():
    text = ADAPTER.describe("cnn-i1x28x28-c16k3-c32k3-o10-silu-bn")
    for part in ("CNN", "1x28x28", "conv 16 channels kernel 3", "batch norm", "silu", "10 classes", "5,226 parameters"):
        assert part in text
    assert "MLP" in ADAPTER.describe("mlp-i13-h32-o3")


def test_state_dict_keys_and_head_names():
    keys = list(ADAPTER.build("cnn-i1x8x8-c4k3-c8k3-h16-o10-bn").state_dict())
    assert keys[:7] == ["conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                        "bn1.running_var", "bn1.num_batches_tracked"]
    assert keys[-4:] == ["fc1.weight", "fc1.bias", "head.weight", "head.bias"]
    assert ADAPTER.head_names("mlp-i13-h32-o3") == ["head.weight", "head.bias"]
    # the base-class default (last nn.Linear) agrees
    assert super(SmallNetAdapter, ADAPTER).head_names("mlp-i13-h32-o3") == ["head.weight", "head.bias"]


def test_native_folder_round_trip(tmp_path):
    arch = "cnn-i1x40-c8k5-c16k5-o10-bn"
    weights = ADAPTER.build(arch).state_dict()
    out = ADAPTER.write_checkpoint(arch, weights, tmp_path / "m", {"dataset": "mnist1d", "task": "classify"})
    doc = json.loads((out / "igpg-zoo.json").read_text())
    assert doc["arch"] == arch and doc["dataset"] == "mnist1d" and doc["adapter"] == "smallnet"
    meta = ADAPTER.read_native_meta(out)
    assert meta["task"] == "classify" and meta["dataset_info"]["base"]["input_shape"] == [1, 40]
    described = ADAPTER.write_checkpoint("mlp-i1x8x8-h8-o3", ADAPTER.build("mlp-i1x8x8-h8-o3").state_dict(),
                                         tmp_path / "d", {"dataset": "digits[classes=1,2,3]"})
    info = ADAPTER.read_native_meta(described)["dataset_info"]
    assert info["name"] == "digits[classes=1,2,3]" and info["n_classes"] == 3 and info["modality"] == "image"
    own = ADAPTER.write_checkpoint("mlp-i13-h4-o3", ADAPTER.build("mlp-i13-h4-o3").state_dict(), tmp_path / "o",
                                   {"dataset": "my-lab-data"})
    assert ADAPTER.read_native_meta(own) == {"dataset": "my-lab-data"}
    got_arch, got = ADAPTER.read_native(out)
    assert got_arch == arch and sorted(got) == sorted(weights)
    assert all(torch.equal(got[k], weights[k]) for k in weights)
    assert ADAPTER.read_native(tmp_path) is None  # not a native folder
    assert ADAPTER.read_native(out / "model.safetensors") is None
    with pytest.raises(CheckpointMismatch):
        ADAPTER.write_checkpoint("cnn-i1x40-c8k5-o10", weights, tmp_path / "bad", {})
    assert not (tmp_path / "bad").exists()


class PlainCNN(nn.Module):
    """What a user writes outside igpg-zoo for cnn-i1x8x8-c8k3-c16k3-h32-o10 (docs/adapters.md)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 8, 4, 4)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 16, 2, 2)
        return self.head(F.relu(self.fc1(x.mean(dim=(2, 3)))))


def test_model_trained_outside_loads_strictly_and_agrees(tmp_path):
    arch = "cnn-i1x8x8-c8k3-c16k3-h32-o10"
    torch.manual_seed(0)
    plain = PlainCNN().eval()
    path = tmp_path / "plain.pt"
    torch.save(plain.state_dict(), path)
    weights = torch.load(path, weights_only=True)
    validate_weights(ADAPTER, arch, weights)
    module = ADAPTER.build(arch)
    module.load_state_dict(weights, strict=True)
    x = ADAPTER.example_input(arch)
    assert torch.allclose(module(x), plain(x), atol=1e-6)


@pytest.mark.parametrize("arch,mutate,names", [
    ("cnn-i1x8x8-c8k3-c16k3-h32-o10", lambda w: {("features." + k): v for k, v in w.items()},
     ["missing 8 key(s): conv1.weight, conv1.bias, conv2.weight (+5 more)", "unexpected 8 key(s): features.conv1.bias"]),
    ("cnn-i1x8x8-c8k3-c16k3-h32-o10", lambda w: {k: v for k, v in w.items() if k != "fc1.bias"},
     ["missing 1 key(s): fc1.bias"]),
    ("cnn-i1x8x8-c8k3-c16k3-o10", lambda w: w, ["unexpected 2 key(s): fc1.bias, fc1.weight"]),
    ("cnn-i1x8x8-c8k3-c16k3-h32-o5", lambda w: w, ["wrong shape: head.weight (10, 32) != (5, 32)"]),
])
def test_mismatch_is_one_line_naming_first_keys(arch, mutate, names):
    weights = mutate(PlainCNN().state_dict())
    with pytest.raises(CheckpointMismatch) as info:
        validate_weights(ADAPTER, arch, weights)
    msg = str(info.value)
    assert "\n" not in msg and arch in msg
    for name in names:
        assert name in msg
