"""The ``timm`` zoo preset: its plan, what it needs installed, and the trainer on BatchNorm / timm models."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.errors import UnknownArchitecture
from igpg_zoo.zoobuild.plan import plan_runs
from igpg_zoo.zoobuild.presets import PRESETS


def test_timm_preset_plan_meets_its_size():
    runs = plan_runs(PRESETS["timm"])
    members = [r for r in runs if r.member != "base"]
    assert sum(len(r.kept_epochs) for r in members) >= 48
    assert {r.member for r in runs} == {"base", "finetuned", "independent"}
    assert len({r.task for r in runs}) >= 8 and len({r.run_id for r in runs}) == len(runs)
    families = {r.arch.split("?")[0] if r.arch.startswith("timm/") else r.arch.split("-o")[0] for r in runs}
    assert len(families) >= 4 and sum(f.startswith("timm/") for f in families) >= 3
    from igpg_zoo.data.tasks import canonical_name

    assert {r.task for r in runs if r.holdout} == {canonical_name(t) for t in PRESETS["timm"].holdout}


def test_timm_preset_tasks_are_three_channel_32px():
    from igpg_zoo.data.tasks import parse_task
    from igpg_zoo.data.sources import get_source

    for task in PRESETS["timm"].tasks:
        spec = parse_task(task)
        keys = dict(spec.options)
        assert "size" in keys or get_source(spec.base).info.input_shape[1:] == (32, 32), task
        assert keys.get("size", "32") == "32"
        assert "rgb" in keys or "colour" in keys or get_source(spec.base).info.input_shape[0] == 3, task


def test_missing_plugin_fails_before_training(tmp_path, monkeypatch):
    """With plugins off, the build stops in one line naming the architecture, having trained nothing."""
    from igpg_zoo.zoo import open_zoo
    from igpg_zoo.zoobuild import build as build_mod

    monkeypatch.setattr(build_mod, "_require_sources", lambda runs: None)  # no Fashion-MNIST needed here
    monkeypatch.setattr(build_mod, "train_run", lambda *a, **k: pytest.fail("trained before checking adapters"))
    with open_zoo(str(tmp_path / "r.db"), embedder="hash") as zoo:
        with pytest.raises(UnknownArchitecture, match="no adapter supports architecture 'timm/") as err:
            build_mod.build_zoo(zoo, "timm")
        assert zoo.list() == []
    assert "\n" not in str(err.value)


def test_trainer_skips_a_lone_last_sample_on_batchnorm_models():
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.zoobuild.trainer import fit, init_module

    arch = "cnn-i3x8x8-c4k3-o2-bn"
    x, y = torch.rand(17, 3, 8, 8), torch.arange(17) % 2  # 16 + a lone 17th: BatchNorm cannot train on it
    epochs = []
    fit(init_module(get_adapter(arch).build(arch), 0), x, y, epochs=2, batch_size=8,
        on_epoch=lambda e, m: epochs.append(e))
    assert epochs == [1, 2]


@pytest.fixture
def timm_on(monkeypatch):
    pytest.importorskip("timm")
    pytest.importorskip("igpg_zoo_timm")
    from igpg_zoo.adapters import reset_adapters

    monkeypatch.setenv("IGPG_ZOO_PLUGINS", "timm")
    reset_adapters()
    yield
    reset_adapters()


@pytest.mark.parametrize("arch", ["timm/test_vit?num_classes=3&img_size=32", "timm/test_resnet?num_classes=3&img_size=32"])
def test_seeded_build_makes_timm_inits_reproducible(timm_on, arch):
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.zoobuild.build import seeded_build
    from igpg_zoo.zoobuild.trainer import init_module

    adapter = get_adapter(arch)
    a, b, c = (init_module(seeded_build(adapter, arch, s), s).state_dict() for s in (4, 4, 5))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("preset, lrs", [("timm", {"timm/test_vit": 5e-4, "timm/test_resnet": 1e-2}),
                                         ("demo", {"cnn-i1x8x8-c8k3-c16k3": 1e-2})])
def test_base_runs_take_their_familys_base_variant(preset, lrs):
    bases = [r for r in plan_runs(PRESETS[preset]) if r.member == "base"]
    for prefix, lr in lrs.items():
        assert {r.variant.lr for r in bases if r.arch.startswith(prefix)} == {lr}
