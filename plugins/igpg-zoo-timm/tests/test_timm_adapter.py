"""The timm adapter on timm's tiny test architectures: contract, arch strings, timm-native folders."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
timm = pytest.importorskip("timm")
import torch  # noqa: E402

from igpg_zoo.adapters import get_adapter, validate_weights  # noqa: E402
from igpg_zoo.errors import CheckpointMismatch, UnknownArchitecture  # noqa: E402
from igpg_zoo.testing import check_adapter  # noqa: E402
from igpg_zoo_timm import TimmAdapter, parse_arch  # noqa: E402

ADAPTER = TimmAdapter()


@pytest.fixture(autouse=True)
def _timm_plugin_on(monkeypatch):
    """Discovery must see this plugin even where a suite turns plugins off."""
    from igpg_zoo.adapters import reset_adapters

    monkeypatch.setenv("IGPG_ZOO_PLUGINS", "timm")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    reset_adapters()
    yield
    reset_adapters()
TINY = [
    "timm/test_resnet?num_classes=10&in_chans=1&img_size=32",
    "timm/test_vit?num_classes=5&in_chans=3&img_size=32",
    "timm/test_efficientnet?num_classes=7&img_size=48",
]


@pytest.mark.parametrize("arch", TINY)
def test_contract_on_tiny_timm_models(arch, tmp_path):
    report = check_adapter(ADAPTER, arch, tmp_path)
    steps = {step: state for step, state, _ in report.steps}
    assert steps["native"] == "ok" and steps["onnx"] == "ok", report.steps


@pytest.mark.parametrize("arch,canonical", [
    ("timm/test_resnet", "timm/test_resnet"),
    ("timm/test_vit?img_size=32x32&num_classes=3", "timm/test_vit?num_classes=3&img_size=32"),
    ("timm/test_vit?img_size=32x48", "timm/test_vit?img_size=32x48"),
    ("timm/resnet18.a1_in1k?in_chans=1&global_pool=max", "timm/resnet18.a1_in1k?in_chans=1&global_pool=max"),
])
def test_arch_strings_parse_to_canonical_form(arch, canonical):
    assert parse_arch(arch).to_arch() == canonical == ADAPTER.canonical_arch(arch)


@pytest.mark.parametrize("arch,fragment", [
    ("timm/", "is not a timm model name"),
    ("timm/test_resnet?classes=10", "unknown option 'classes=10'"),
    ("timm/test_resnet?num_classes=0", "num_classes='0' must be a positive integer"),
    ("timm/test_resnet?num_classes=3&num_classes=4", "given twice"),
    ("timm/test_resnet?img_size=3x4x5", "must be S or HxW"),
])
def test_malformed_strings_are_one_line(arch, fragment):
    with pytest.raises(UnknownArchitecture, match=fragment) as info:
        parse_arch(arch)
    assert "\n" not in str(info.value)


def test_supports_only_known_timm_names():
    assert ADAPTER.supports("timm/test_resnet?num_classes=3")
    assert not ADAPTER.supports("timm/no_such_model_xyz")
    assert not ADAPTER.supports("cnn-i1x8x8-c4k3-o2")
    assert get_adapter("timm/test_vit").name == "timm"
    with pytest.raises(UnknownArchitecture, match="no adapter supports"):
        get_adapter("timm/no_such_model_xyz")


def test_options_reach_the_module_and_the_input():
    arch = "timm/test_resnet?num_classes=10&in_chans=1&img_size=32"
    module = ADAPTER.build(arch)
    assert module.num_classes == 10 and ADAPTER.input_size(arch) == (1, 32, 32)
    assert module(ADAPTER.example_input(arch)).shape == (2, 10)
    assert ADAPTER.head_names(arch) == ["fc.weight", "fc.bias"]
    assert ADAPTER.head_names("timm/test_vit?num_classes=3") == ["head.weight", "head.bias"]
    assert ADAPTER.head_names("timm/test_convnext?num_classes=3") == ["head.fc.weight", "head.fc.bias"]
    feats = ADAPTER.structure(arch)
    assert list(feats) == list(ADAPTER.structure("timm/test_vit?num_classes=3"))
    assert feats["input_channels"] == 1 and feats["n_classes"] == 10 and feats["n_conv"] > 0
    assert "test_resnet" in ADAPTER.describe(arch) and "1x32x32" in ADAPTER.describe(arch)


@pytest.mark.parametrize("arch", TINY[:2])
def test_folder_loads_in_timm_itself_with_same_outputs(arch, tmp_path):
    module = ADAPTER.build(arch)
    torch.nn.init.normal_(module.get_classifier().weight)  # a head timm could not invent
    x = ADAPTER.example_input(arch)
    with torch.no_grad():
        expected = module(x)
    out = ADAPTER.write_checkpoint(arch, module.state_dict(), tmp_path / "m", {"dataset": "digits"})
    cfg = json.loads((out / "config.json").read_text())
    spec = parse_arch(arch)
    assert cfg["architecture"] == spec.model and cfg["num_classes"] == spec.num_classes
    assert cfg["pretrained_cfg"]["input_size"] == list(ADAPTER.input_size(arch))
    assert {"mean", "std", "classifier", "first_conv", "crop_pct"} <= set(cfg["pretrained_cfg"])
    ours = ADAPTER.read_native_meta(out)
    assert ours["dataset"] == "digits" and ours["dataset_info"]["base"]["name"] == "digits"
    local = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    size = {"img_size": spec.img_size} if "img_size" in cfg.get("model_args", {}) else {}
    overlay = timm.create_model(spec.model, pretrained=True, num_classes=spec.num_classes, in_chans=spec.in_chans,
                                pretrained_cfg_overlay=dict(file=str(out / "model.safetensors"),
                                                            num_classes=spec.num_classes), **size).eval()
    with torch.no_grad():
        assert torch.equal(local(x), expected)
        assert torch.equal(overlay(x), expected)


def test_foreign_timm_folder_reads_back(tmp_path):
    """A folder written by timm's own save_for_hf (not by igpg-zoo) gives a working arch string."""
    from timm.models import save_for_hf

    model = timm.create_model("test_resnet", num_classes=6, in_chans=1).eval()
    save_for_hf(model, str(tmp_path), safe_serialization=True)
    arch, weights = ADAPTER.read_native(tmp_path)
    assert arch == "timm/test_resnet?num_classes=6&in_chans=1&img_size=160"
    validate_weights(ADAPTER, arch, weights)
    assert ADAPTER.read_native(tmp_path / "missing") is None


def test_plain_state_dict_needs_the_right_num_classes():
    weights = timm.create_model("test_resnet", num_classes=10).state_dict()
    validate_weights(ADAPTER, "timm/test_resnet?num_classes=10", weights)
    with pytest.raises(CheckpointMismatch, match=r"wrong shape: fc.weight \(10, \d+\) != \(1000, \d+\)"):
        validate_weights(ADAPTER, "timm/test_resnet", weights)


def test_igpg_zoo_add_imports_a_timm_folder_and_a_plain_state_dict(tmp_path, monkeypatch):
    from timm.models import save_for_hf
    from typer.testing import CliRunner

    from igpg_zoo.cli.app import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IGPG_ZOO_REGISTRY", str(tmp_path / "registry.db"))
    monkeypatch.setenv("IGPG_ZOO_EMBEDDER", "hash")
    model = timm.create_model("test_vit", num_classes=3, in_chans=1, img_size=32).eval()
    save_for_hf(model, str(tmp_path / "vit-folder"), safe_serialization=True)
    torch.save(model.state_dict(), tmp_path / "vit.pth")
    runner = CliRunner()
    folder = runner.invoke(app, ["add", str(tmp_path / "vit-folder"), "--json"])
    assert folder.exit_code == 0, folder.output
    assert json.loads(folder.stdout)["arch"] == "timm/test_vit?num_classes=3&in_chans=1&img_size=32"
    plain = runner.invoke(app, ["add", str(tmp_path / "vit.pth"), "--arch",
                                "timm/test_vit?num_classes=3&in_chans=1&img_size=32", "--json"])
    assert plain.exit_code == 0, plain.output
    assert json.loads(plain.stdout)["sha256"] == json.loads(folder.stdout)["sha256"]


@pytest.mark.parametrize("arch,fragment", [
    ("timm/test_resnet?num_classes=3&global_pool=bogus", "AssertionError: Invalid pool type: bogus"),
    ("timm/test_vit?num_classes=3&global_pool=bogus", "AssertionError: Only avg"),
])
def test_options_timm_rejects_are_one_line(arch, fragment):
    with pytest.raises(UnknownArchitecture, match=f"timm cannot build .*{fragment}") as info:
        ADAPTER.build(arch)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("fmt", ["safetensors", "native"])
def test_an_arch_that_cannot_run_on_its_input_size_exports_nothing(fmt, tmp_path):
    from igpg_zoo.errors import ExportNotSupported
    from igpg_zoo.export import export_weights

    arch = "timm/test_vit?num_classes=3&img_size=40"  # builds, but 40 is no multiple of the 16-pixel patch
    weights = ADAPTER.build(arch).state_dict()
    with pytest.raises(ExportNotSupported, match=r"does not run on its example input of shape \(1, 3, 40, 40\)"):
        export_weights(arch, weights, fmt, tmp_path / "out" / f"m.{fmt}")
    assert list(tmp_path.iterdir()) == []


def test_cli_arch_description_lists_the_timm_format():
    from typer.testing import CliRunner

    from igpg_zoo.cli.app import app

    result = CliRunner().invoke(app, ["adapters", "--arch", TINY[0], "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["export_formats"] == ["onnx", "timm", "native", "safetensors"]


def test_the_folders_weights_file_carries_a_generated_label(tmp_path):
    """The file timm's pretrained_cfg_overlay loads keeps kind and provenance when taken alone."""
    from safetensors import safe_open

    from igpg_zoo.registry.labels import file_label

    arch = TINY[0]
    provenance = {"generator": {"prior_artifact_id": 7}, "seed": 3}
    out = ADAPTER.write_checkpoint(arch, ADAPTER.build(arch).state_dict(), tmp_path / "m",
                                   {"kind": "generated", "provenance": provenance})
    with safe_open(str(out / "model.safetensors"), framework="pt") as f:
        strings = f.metadata()
    assert strings["arch"] == arch and strings["kind"] == "generated"
    assert json.loads(strings["provenance"]) == provenance
    assert file_label(out / "model.safetensors")["kind"] == "generated"
    timm.create_model(f"local-dir:{out}", pretrained=True)  # the extra metadata does not bother timm


PRESET_ARCHS = [  # two of the timm zoo preset's architectures (presets.TIMM_*_ARCHS): with and without BatchNorm
    "timm/test_resnet?num_classes=3&img_size=32",
    "timm/test_vit?num_classes=3&img_size=32",
]


@pytest.mark.slow
@pytest.mark.parametrize("arch", PRESET_ARCHS)
def test_preset_archs_end_to_end_add_tokenize_export(arch, tmp_path):
    """A 3x32x32 timm model: registered, tokenized, decoded (fresh BatchNorm buffers), its statistics
    estimated on a colour task's training split, exported to ONNX and checked against onnxruntime."""
    from igpg_zoo.export import export_weights
    from igpg_zoo.export.batchnorm import batchnorm_layers, training_sample
    from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
    from igpg_zoo.igpg.vqvae import TokenizerConfig
    from igpg_zoo.records import CheckpointMeta
    from igpg_zoo.zoo import open_zoo

    task = "shapes[classes=0,1,2][n=60][ntest=30]"
    torch.manual_seed(0)
    weights = ADAPTER.build(arch).state_dict()
    with open_zoo(str(tmp_path / "r.db"), embedder="hash") as zoo:
        ck = zoo.add_weights(weights, CheckpointMeta(arch=arch, task="t", dataset=task)).checkpoint
        stored = zoo.load_weights(ck.id)
    cfg = TokenizerConfig(codebook_size=16, hidden=(32,), code_dim=8, steps=5, refine_steps=0, batch_size=64)
    tok, _ = fit_tokenizer([(stored, ck.arch)], cfg, seed=0, progress=False)
    tokens = tok.encode(stored, ck.arch)
    assert tokens.numel() == tok.sequence_length(ck.arch) > 0
    decoded = tok.decode(tokens, ck.arch)
    report = export_weights(ck.arch, decoded, "onnx", tmp_path / "m.onnx", calibration=training_sample(task))
    assert report.max_abs_diff <= report.atol
    layers = len(batchnorm_layers(ADAPTER.build(arch)))
    assert (report.batchnorm or {}).get("layers", 0) == layers  # test_vit has none, the CNNs do
