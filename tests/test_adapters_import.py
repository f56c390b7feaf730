"""`igpg-zoo add` with models made outside igpg-zoo: plain state dicts and native folders."""

from __future__ import annotations

import json

import torch
from torch import nn
from torch.nn import functional as F

from igpg_zoo.adapters.smallnet import SmallNetAdapter

ARCH = "cnn-i1x8x8-c8k3-c16k3-h32-o10"


class UserCNN(nn.Module):
    """A user's own module of ARCH, written from docs/adapters.md only."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc1 = nn.Linear(16, 32)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.head(F.relu(self.fc1(x.mean(dim=(2, 3)))))


def test_add_plain_state_dict_then_mismatch(cli, tmp_path):
    torch.manual_seed(0)
    torch.save(UserCNN().state_dict(), tmp_path / "mine.pt")
    ok = cli("add", tmp_path / "mine.pt", "--arch", ARCH, "--dataset", "digits", "--json")
    assert ok.exit_code == 0, ok.output
    record = json.loads(ok.stdout)
    assert record["arch"] == ARCH and record["n_params"] == SmallNetAdapter().n_params(ARCH)

    wrong = "cnn-i1x8x8-c8k3-c16k3-o10"  # forgets the hidden layer
    bad = cli("add", tmp_path / "mine.pt", "--arch", wrong)
    assert bad.exit_code == 2
    line = bad.stderr.strip()
    assert "\n" not in line and "unexpected 2 key(s): fc1.bias, fc1.weight" in line
    assert "wrong shape: head.weight (10, 32) != (10, 16)" in line


def test_add_native_smallnet_folder(cli, tmp_path):
    adapter = SmallNetAdapter()
    arch = "mlp-i13-h16-o3-tanh"
    folder = adapter.write_checkpoint(arch, adapter.build(arch).state_dict(), tmp_path / "wine-mlp",
                                      {"dataset": "wine"})
    result = cli("add", folder, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["arch"] == arch


def test_bad_arch_string_is_one_line(cli, tmp_path):
    torch.save(UserCNN().state_dict(), tmp_path / "mine.pt")
    result = cli("add", tmp_path / "mine.pt", "--arch", "cnn-i1x8x8-c8k3-h32-c16k3-o10")
    assert result.exit_code == 2
    assert "token 'c16k3'" in result.stderr and "docs/adapters.md" in result.stderr
