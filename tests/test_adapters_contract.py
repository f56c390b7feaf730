"""The shipped contract test (igpg_zoo.testing.check_adapter) over every loaded adapter."""

from __future__ import annotations

import pytest

from igpg_zoo.adapters import loaded_adapters
from igpg_zoo.adapters.smallnet import SmallNetAdapter
from igpg_zoo.testing import ContractFailure, check_adapter

SMALLNET_ARCHS = [
    "mlp-i13-h32-o3",
    "mlp-i1x8x8-h32-h16-o10-tanh",
    "cnn-i1x8x8-c8k3-c16k3-o10-gelu",
    "cnn-i1x40-c8k5-c16k5-h32-o10-silu-bn",
    "cnn-i1x28x28-c8k3-c16k3-c32k3-h64-o10-bn",
]


@pytest.mark.parametrize("adapter", loaded_adapters(), ids=lambda a: a.name)
def test_every_loaded_adapter_passes_on_its_test_arch(adapter, tmp_path):
    report = check_adapter(adapter, adapter.test_arch, tmp_path)
    assert not report.failed
    assert [s for s, state, _ in report.steps if state == "ok"][:2] == ["build", "param_layout"]


@pytest.mark.parametrize("arch", SMALLNET_ARCHS)
def test_smallnet_family_passes_with_onnx_parity(arch, tmp_path):
    report = check_adapter(SmallNetAdapter(), arch, tmp_path)
    steps = {step: (state, detail) for step, state, detail in report.steps}
    assert steps["native"][0] == "ok" and steps["flatten/unflatten"][0] == "ok"
    assert steps["onnx"][0] == "ok", steps["onnx"]
    assert (tmp_path / "model.onnx").is_file()


class _GroupsLie(SmallNetAdapter):
    name = "group-liar"

    def unit_groups(self, arch):
        g = super().unit_groups(arch)[0]
        return [type(g)(g.size, g.outputs, ())]  # forgets that the next layer reads these units


def test_contract_catches_a_permutation_that_changes_the_function(tmp_path):
    with pytest.raises(ContractFailure, match="unit_groups"):
        check_adapter(_GroupsLie(), "mlp-i8-h8-o3", tmp_path)


class _LayoutLies(SmallNetAdapter):
    name = "liar"

    def param_layout(self, arch):
        return super().param_layout(arch)[:-1]  # forgets the head bias


class _NoNative(SmallNetAdapter):
    name = "nonative"

    def read_native(self, path):
        return None


@pytest.mark.parametrize("adapter,step", [(_LayoutLies(), "param_layout"), (_NoNative(), "native")])
def test_contract_catches_broken_adapters(adapter, step, tmp_path):
    with pytest.raises(ContractFailure, match=f"step {step}"):
        check_adapter(adapter, "mlp-i13-h32-o3", tmp_path)
