"""Adapter discovery: broken plugins become a warning and a 'failed' row; `igpg-zoo adapters`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import igpg_zoo.adapters as adapters
from igpg_zoo.adapters.smallnet import SmallNetAdapter
from igpg_zoo.cli.app import app

SMALLNET = ("smallnet", "igpg_zoo.adapters.smallnet:SmallNetAdapter", "igpg-zoo", "builtin")


@pytest.fixture
def fresh_discovery(monkeypatch):
    monkeypatch.delenv("IGPG_ZOO_PLUGINS", raising=False)  # conftest turns plugins off
    adapters.reset_adapters()
    yield
    adapters.reset_adapters()


@pytest.fixture
def broken_plugins(tmp_path, monkeypatch, fresh_discovery):
    (tmp_path / "h3_boom_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "h3_wrong_plugin.py").write_text("class NotAnAdapter:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    candidates = [SMALLNET,
                  ("boom", "h3_boom_plugin:Adapter", "boom-dist", "1.0"),
                  ("wrong", "h3_wrong_plugin:NotAnAdapter", "wrong-dist", "2.0"),
                  ("missing", "h3_no_such_module:Adapter", "missing-dist", "0.1")]
    monkeypatch.setattr(adapters, "_candidates", lambda: candidates)


def test_failing_plugins_warn_and_others_still_work(broken_plugins):
    with pytest.warns(UserWarning) as caught:
        infos = {i.name: i for i in adapters.list_adapters()}
    assert sorted(str(w.message).split("'")[1] for w in caught) == ["boom", "missing", "wrong"]
    assert {n: i.state for n, i in infos.items()} == {"smallnet": "ok", "boom": "failed", "wrong": "failed",
                                                     "missing": "failed"}
    assert "RuntimeError: boom at import" in infos["boom"].message
    assert "not an igpg_zoo Adapter" in infos["wrong"].message
    assert "ModuleNotFoundError" in infos["missing"].message
    assert adapters.get_adapter("mlp-i13-h32-o3").name == "smallnet"
    with pytest.raises(adapters.UnknownArchitecture, match=r"failed to load: boom, wrong, missing"):
        adapters.get_adapter("timm/test_resnet")


def test_cli_lists_failed_rows_without_crashing(broken_plugins):
    result = CliRunner().invoke(app, ["adapters", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["boom"]["state"] == "failed" and rows["boom"]["distribution"] == "boom-dist"
    assert rows["smallnet"]["formats"] == "onnx,native,safetensors"
    table = CliRunner().invoke(app, ["adapters"])
    assert table.exit_code == 0
    assert "boom-dist" in table.stdout and "failed" in table.stdout
    assert "3 adapter(s) failed to load: boom, wrong, missing" in table.stderr


def test_plugins_can_be_disabled(monkeypatch, fresh_discovery):
    monkeypatch.setattr(adapters, "_candidates", lambda: [SMALLNET, ("boom", "h3_never:X", "d", "1")])
    monkeypatch.setenv("IGPG_ZOO_PLUGINS", "none")
    infos = {i.name: i.state for i in adapters.list_adapters()}
    assert infos == {"smallnet": "ok", "boom": "disabled"}


def test_register_adapter_replaces_its_row(fresh_discovery):
    class Mine(SmallNetAdapter):
        name = "mine"

    adapters.register_adapter(Mine())
    adapters.register_adapter(Mine())
    assert [i.name for i in adapters.list_adapters()].count("mine") == 1
    adapters.unregister_adapter("mine")
    assert "mine" not in [i.name for i in adapters.list_adapters()]


class _NoTestArch(SmallNetAdapter):
    name = "no-test-arch"
    test_arch = None


@pytest.mark.parametrize("adapter, words", [(object(), "is not an igpg_zoo Adapter"),
                                            (_NoTestArch(), "has no test_arch")])
def test_register_adapter_holds_in_process_adapters_to_the_plugin_contract(fresh_discovery, adapter, words):
    with pytest.raises(TypeError, match=words):  # else `adapters --check` crashed on it later
        adapters.register_adapter(adapter)
    assert "no-test-arch" not in [i.name for i in adapters.list_adapters()]


def test_listing_adapters_does_not_import_torch():
    code = ("import sys; from typer.testing import CliRunner; from igpg_zoo.cli.app import app; "
            "r = CliRunner().invoke(app, ['adapters']); assert r.exit_code == 0, r.output; "
            "print(sorted(m for m in ('torch', 'timm') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cli_describes_one_arch_with_its_keys():
    result = CliRunner().invoke(app, ["adapters", "--arch", "cnn-i1x8x8-c8k3-c16k3-h32-o10-bn", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["adapter"] == "smallnet" and info["n_params"] == 2170 and info["head"] == ["head.weight", "head.bias"]
    assert info["keys"]["conv2.weight"] == [16, 8, 3, 3] and "bn1.running_var" in info["keys"]


def test_cli_check_runs_the_contract_and_fails_loudly(fresh_discovery, monkeypatch):
    monkeypatch.setenv("IGPG_ZOO_PLUGINS", "none")
    good = CliRunner().invoke(app, ["adapters", "--check"])
    assert good.exit_code == 0, good.output
    assert good.stdout.startswith("ok      smallnet")

    class Liar(SmallNetAdapter):
        name = "liar"

        def param_layout(self, arch):
            return super().param_layout(arch)[1:]

    adapters.register_adapter(Liar())
    bad = CliRunner().invoke(app, ["adapters", "--check"])
    assert bad.exit_code == 1
    assert "FAILED  liar" in bad.stdout and "step param_layout" in bad.stdout
