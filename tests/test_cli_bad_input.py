"""Bad input through the console entry point: one line, a non-zero exit, nothing half-written."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.generate import check_data_fits

MLP = "mlp-i4-h8-o3"
HUGE = "99999999999999999999"  # beyond any database integer


def _one_line(result, code):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture
def one_record(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IGPG_ZOO_REGISTRY", str(tmp_path / "registry.db"))
    save_file(get_adapter(MLP).build(MLP).state_dict(), str(tmp_path / "m.safetensors"))
    assert cli("add", "m.safetensors", "--arch", MLP, "--dataset", "iris").exit_code == 0
    return tmp_path


@pytest.mark.parametrize("args,code,words", [
    (("show", HUGE), 3, "no checkpoint"),
    (("remove", HUGE), 3, "no checkpoint"),
    (("export", HUGE, "--out", "x.safetensors"), 3, "no checkpoint"),
    (("export", "1", "--out", "m.safetensors/x.onnx"), 2, "cannot be created under it"),  # refused before any work
    (("export", "1", "--format", "safetensors", "--out", "/proc/x.safetensors"), 2, "cannot write /proc/x.safetensors"),
    (("list", "--kind", "bogus"), 2, "unknown --kind bogus"),
    (("query", "iris", "--kind", "bogus"), 2, "unknown --kind bogus"),
    (("query", "iris", "--format", "onnx"), 2, "needs --out PATH"),  # was ignored: nothing exported
    (("list", "--limit", "0"), 2, "--limit must be at least 1"),
    (("adapters", "--arch", "mlp-i99999999999-h99999999-o3"), 2, "stops at 100,000,000"),
    (("add", "m.safetensors", "--arch", MLP, "--name", "again", "--blobs", "m.safetensors"), 2, "is a file"),
])
def test_bad_input_is_one_line_and_changes_nothing(cli, one_record, args, code, words):
    assert words in _one_line(cli(*args), code)
    listed = json.loads(cli("list", "--json").stdout)
    assert [r["id"] for r in listed] == [1] and cli("verify").exit_code == 0


@pytest.mark.parametrize("args", [("list", "--limit", HUGE), ("query", "iris", "-k", HUGE)])
def test_a_limit_beyond_any_integer_means_everything(cli, one_record, args):
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.stdout)] == [1]


def test_list_and_query_show_each_record_kind(cli, one_record):
    for args in (("list",), ("query", "iris classifier")):
        header, row = cli(*args).stdout.splitlines()[:2]
        assert "kind" in header.split() and "imported" in row.split()


@pytest.mark.parametrize("change,words", [
    (lambda sd: {k: v.to(torch.int64) for k, v in sd.items()}, "must be floating point"),
    (lambda sd: {k: v.fill_(float("nan")) if k.endswith("bias") else v for k, v in sd.items()}, "NaN or infinite"),
    (lambda sd: {k: v.fill_(float("inf")) if k == "head.weight" else v for k, v in sd.items()}, "NaN or infinite"),
])
def test_weights_that_cannot_be_a_model_are_refused(cli, one_record, change, words):
    save_file(change(get_adapter(MLP).build(MLP).state_dict()), str(one_record / "bad.safetensors"))
    assert words in _one_line(cli("add", "bad.safetensors", "--arch", MLP), 2)
    assert len(json.loads(cli("list", "--json").stdout)) == 1
    assert len(list((one_record / "blobs").glob("*.safetensors"))) == 1


@pytest.mark.parametrize("features,top_label,words", [
    (10, 2, "do not fit"),  # an mlp-i4 takes 4 features
    (4, 9, "labels up to 9"),  # three outputs cannot label ten classes
    (4, 2, None),
])
def test_generation_refuses_data_the_architecture_cannot_take(features, top_label, words):
    x, y = torch.randn(12, features), torch.arange(12) % (top_label + 1)
    if words is None:
        check_data_fits(MLP, x, y)
        return
    with pytest.raises(GeneratorError, match=words):
        check_data_fits(MLP, x, y)


def test_resume_from_a_file_that_is_not_a_checkpoint_is_refused(tmp_path):
    from igpg_zoo.igpg.prior import Prior, PriorConfig
    from igpg_zoo.igpg.prior_train import _load_checkpoint, _optimizer, PriorTrainConfig

    prior = Prior(PriorConfig(vocab_size=16, block_size=8, n_layer=1, n_head=1, n_embd=8, window_context=4))
    for name, content in (("text.pt", b"hello, not a checkpoint\n"), ("other.pt", None)):
        path = tmp_path / name
        if content is None:
            torch.save({"weights": torch.ones(2)}, path)
        else:
            path.write_bytes(content)
        with pytest.raises(GeneratorError, match="not a prior training checkpoint"):
            _load_checkpoint(path, prior, _optimizer(prior, PriorTrainConfig()), torch.Generator())


def test_artifacts_lists_what_the_hints_point_at(cli, one_record):
    from igpg_zoo.zoo import open_zoo

    assert "train them with 'igpg-zoo train'" in cli("artifacts").stdout
    assert "igpg-zoo train --stage prior" in _one_line(cli("generate", "--arch", MLP, "--dataset", "iris"), 3)
    with open_zoo() as zoo:
        tok = zoo.add_artifact("tokenizer", "tok", {"w": torch.ones(2)}, {}, {"snapshot": zoo.snapshot()})
        zoo.add_artifact("prior", "gpt", {"w": torch.ones(3)}, {"train": {"steps": 7}}, {}, parent_id=tok.id)
    rows = json.loads(cli("artifacts", "--json").stdout)
    assert [(r["kind"], r["parent_id"], r["records"], r["steps"]) for r in rows] == [
        ("tokenizer", None, 1, None), ("prior", tok.id, 0, 7)]
    assert [r["kind"] for r in json.loads(cli("artifacts", "--kind", "prior", "--json").stdout)] == ["prior"]
    assert "unknown --kind" in _one_line(cli("artifacts", "--kind", "bogus"), 2)
    assert "holds no prior config" in _one_line(cli("generate", "--arch", MLP, "--dataset", "iris"), 1)
