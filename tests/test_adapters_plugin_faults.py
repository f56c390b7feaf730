"""Faulty plugins found through real entry points (a dist-info on PYTHONPATH) never break the CLI.

Each case runs the real console entry point in a subprocess: a plugin that calls sys.exit on
import, one whose class name differs from its entry point, and one whose ``supports`` raises.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

PLUGINS = "exiter,misnamed,araise,zgood"

ENTRY_POINTS = """\
[igpg_zoo.adapters]
exiter = h4_exit_plugin:A
misnamed = h4_plugins:Misnamed
araise = h4_plugins:SupportsRaises
zgood = h4_plugins:Good
"""

MODULE = textwrap.dedent("""
    from torch import nn  # noqa: F401  (only methods use it)
    from igpg_zoo.adapters.base import Adapter


    class Misnamed(Adapter):
        name = "something-else"
        test_arch = "mis-1"

        def supports(self, arch):
            return arch.startswith("mis-")

        def build(self, arch):
            from torch import nn
            return nn.Linear(2, 2).eval()


    class SupportsRaises(Adapter):
        name = "araise"
        test_arch = "ar-1"

        def supports(self, arch):
            raise ValueError("supports exploded")

        def build(self, arch):
            raise NotImplementedError


    class Good(Misnamed):
        name = "zgood"
        test_arch = "zg-2"

        def supports(self, arch):
            return arch.startswith("zg-")
""")


@pytest.fixture
def plugin_path(tmp_path):
    site = tmp_path / "site"
    dist = site / "h4_faulty-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: h4-faulty\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    (site / "h4_exit_plugin.py").write_text("import sys\nsys.exit('plugin says bye')\n")
    (site / "h4_plugins.py").write_text(MODULE)
    return site


def _cli(plugin_path, *args):
    env = {**os.environ, "PYTHONPATH": str(plugin_path), "IGPG_ZOO_PLUGINS": PLUGINS}
    return subprocess.run([sys.executable, "-m", "igpg_zoo", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_listing_survives_exit_on_import_and_flags_a_misnamed_class(plugin_path):
    result = _cli(plugin_path, "adapters", "--json")
    assert result.returncode == 0, result.stderr
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert rows["exiter"]["state"] == "failed" and "plugin says bye" in rows["exiter"]["message"]
    assert rows["misnamed"]["state"] == "failed"
    assert "name 'something-else', but its entry point is 'misnamed'" in rows["misnamed"]["message"]
    assert rows["zgood"]["state"] == "ok" and rows["smallnet"]["state"] == "ok"


@pytest.mark.parametrize("arch,code,words", [
    ("zg-2", 0, "adapter zgood"),  # a later plugin still answers
    ("mlp-i13-h32-o3", 0, "adapter smallnet"),
    ("nobody-1", 2, "no adapter supports architecture 'nobody-1'.*raised in supports: araise"),
])
def test_a_plugin_whose_supports_raises_is_skipped(plugin_path, arch, code, words):
    result = _cli(plugin_path, "adapters", "--arch", arch)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    assert re.search(words, result.stdout + result.stderr)
    if code == 0 and arch.startswith("zg-"):
        assert "adapter 'araise' failed in supports('zg-2') (ValueError: supports exploded)" in result.stderr
