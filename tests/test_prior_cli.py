"""igpg-zoo train (both stages, hold-out, resume) on the tiny zoo preset."""

from __future__ import annotations

import json

import pytest


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.slow  # builds the tiny zoo and trains both stages: ~20 s quiet
def test_train_both_stages_with_holdout_then_resume(cli, tmp_path, tiny_recipe):
    built = cli("zoo", "build", "--preset", "tiny")
    assert built.exit_code == 0, built.output
    recipe = tiny_recipe(tokenizer={"steps": 20, "codebook_size": 64}, train={"steps": 12})
    args = ["train", "--stage", "both", "--config", recipe, "--holdout-task", "digits[classes=3,5,8]*", "--json"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert {"tokenizer", "prior"} <= set(out) and out["recipe"] == "default+tiny.yaml"
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        prior = zoo.get_artifact(out["prior"]["id"], kind="prior")
        datasets = {zoo.get(i).dataset for i in prior.provenance["snapshot"]["ids"]}
        assert datasets and not any(d.startswith("digits[classes=3,5,8]") for d in datasets)
        assert prior.parent_id == out["tokenizer"]["id"]
        assert prior.config["prior"]["dropout"] == 0.1  # the default recipe's, saved inside the artifact
        assert prior.config["train"]["recombine"] == 2.0  # so is its recombination rate
        recipe_saved = prior.config["recipe"]
        assert recipe_saved["name"] == "default+tiny.yaml" and recipe_saved["prior"]["n_layer"] == 1
        assert recipe_saved["prior"]["block_size"] == prior.config["prior"]["block_size"]  # resolved, not None
        tok = zoo.get_artifact(out["tokenizer"]["id"], kind="tokenizer")
        assert tok.config["tokenizer"]["tokens_per_chunk"] == 2 and tok.config["tokenizer"]["codebook_size"] == 64
        assert tok.config["recipe"]["tokenizer"] == tok.config["tokenizer"]
        assert prior.config["prior"]["vocab_size"] == 64  # the prior's vocabulary is the tokenizer's codebook
    assert (tmp_path / "igpg-runs" / "prior.pt").exists()
    again = cli("train", "--stage", "prior", "--config", recipe, "--holdout-task", "digits[classes=3,5,8]*",
                "--resume", "--json")
    assert again.exit_code == 0, again.output
    with open_zoo() as zoo:  # nothing left to train (the checkpoint was complete): the same prior, registered once
        rerun = json.loads(again.output.strip().splitlines()[-1])
        assert zoo.get_artifact(kind="prior").id == out["prior"]["id"] == rerun["prior"]["id"]
        assert len(zoo.list_artifacts("prior")) == 1
    by_epochs = cli("train", "--stage", "prior", "--config", tiny_recipe("e.yaml", train={"recombine": 0}),
                    "--epochs", "2", "--holdout-task", "digits[classes=3,5,8]*", "--checkpoint", tmp_path / "e.pt",
                    "--json")
    assert by_epochs.exit_code == 0, by_epochs.output
    with open_zoo() as zoo:
        art = zoo.get_artifact(json.loads(by_epochs.output.strip().splitlines()[-1])["prior"]["id"], kind="prior")
        n = len(art.provenance["snapshot"]["ids"])
        assert art.config["train"]["steps"] == -(-2 * n // 4) and art.config["train"]["epochs"] == 2.0
        assert art.config["train"]["recombine"] == 0.0


@pytest.mark.parametrize("name, changes", [
    ("default", {}),
    ("fast", {"train": {"epochs": 30}}),
    ("best", {"train": {"epochs": 80, "recombine_tol": 0.02, "quality": True}}),
])
def test_named_recipes_change_only_what_they_name(name, changes):
    from dataclasses import asdict

    from igpg_zoo.igpg.recipe import PriorTrainConfig, get_recipe

    recipe = get_recipe(name)
    assert recipe.name == name
    assert asdict(recipe.train) == {**asdict(PriorTrainConfig()), **changes.get("train", {})}


def test_library_defaults_are_the_default_recipe():
    from igpg_zoo.igpg.generate import GenerateRequest
    from igpg_zoo.igpg.prior import PriorConfig
    from igpg_zoo.igpg.recipe import Recipe, get_recipe

    assert get_recipe("default") == Recipe()
    train, prior = Recipe().train, PriorConfig()
    assert (train.epochs, train.recombine, prior.dropout) == (50.0, 2.0, 0.1)
    req = GenerateRequest("mlp-i4-h16-o3")
    assert (req.sampling.top_p, req.drop_copies) == (0.9, True)


@pytest.mark.parametrize("text, phrase", [
    ("train: {epochs: 0}", "bad training setting: epochs 0"),
    ("train: {epoch: 3}", "unknown key(s) epoch in 'train'"),
    ("prior: {layers: 3}", "unknown key(s) layers in 'prior'"),
    ("prior: {dropout: 1.5}", "bad prior setting: dropout 1.5"),
    ("tokenizer: {tokens_per_chunk: 0}", "tokens_per_chunk must be >= 1"),
    ("tokenizer: {quantizer: gumbel}", "unknown key(s) quantizer in 'tokenizer'"),
    ("optimizer: adam", "unknown key(s) optimizer"),
    ("recipe: quick", "unknown recipe 'quick'"),
    ("train: [1, 2]", "'train' must be a mapping"),
    ("train: {epochs: many}", "recipe 'default+r.yaml'"),
])
def test_a_bad_recipe_file_is_refused_in_one_line_before_the_registry_opens(cli, tmp_path, text, phrase):
    (tmp_path / "r.yaml").write_text(text + "\n")
    db = tmp_path / "registry.db"
    result = cli("train", "--config", tmp_path / "r.yaml", "--registry", db)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and phrase in lines[0], result.output
    assert not db.exists()


@pytest.mark.parametrize("args, flag", [(("--stage", "decoder"), "--stage"), (("--epochs", "0"), "epochs 0"),
                                        (("--recipe", "quick"), "unknown recipe 'quick'"),
                                        (("--only", "colour=red"), "--only takes KEY=VALUE"),
                                        (("--device", "tpu"), "--device"), (("--device", "cuda:x"), "--device")])
def test_train_rejects_bad_options(cli, args, flag):
    result = cli("train", *args)
    assert result.exit_code == 2 and flag in result.output


@pytest.mark.parametrize("config, phrase", [("min_p: 1.5", "min-p 1.5"), ("top_p: 0", "top-p 0"),
                                            ("temperature: -1", "temperature -1"), ("colour: red", "unknown key(s) colour"),
                                            ("quality: best", "unknown quality 'best'")])
def test_generate_refuses_bad_settings_before_touching_the_registry(cli, tmp_path, config, phrase):
    db = tmp_path / "registry.db"
    (tmp_path / "g.yaml").write_text(config + "\n")
    result = cli("generate", "--arch", "mlp-i4-h16-o3", "--dataset", "iris", "--registry", f"sqlite:///{db}",
                 "--config", tmp_path / "g.yaml")
    assert result.exit_code in (1, 2) and phrase in result.output and len(result.output.strip().splitlines()) == 1
    assert not db.exists()


@pytest.mark.parametrize("n, phrase", [("0", "-n must lie in 1..1,000"), ("1000000000", "got 1,000,000,000")])
def test_generate_refuses_a_bad_sample_count_before_touching_the_registry(cli, tmp_path, n, phrase):
    db = tmp_path / "registry.db"
    result = cli("generate", "--arch", "mlp-i4-h16-o3", "--dataset", "iris", "--registry", f"sqlite:///{db}", "-n", n)
    assert result.exit_code == 1 and phrase in result.output and len(result.output.strip().splitlines()) == 1
    assert not db.exists()


def test_train_on_a_missing_gpu_says_so_before_touching_the_registry(cli, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    db = tmp_path / "registry.db"
    result = cli("train", "--device", "cuda", "--registry", f"sqlite:///{db}")
    assert result.exit_code == 2 and "no CUDA GPU" in result.output and "--device cpu" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not db.exists()


def test_a_tokenizer_without_residual_stages_trains_without_recombination_and_says_so(cli, tiny_recipe):
    assert cli("zoo", "build", "--preset", "tiny").exit_code == 0
    recipe = tiny_recipe(tokenizer={"tokens_per_chunk": 1}, train={"recombine_tol": 0.02})
    result = cli("train", "--stage", "both", "--config", recipe)
    assert result.exit_code == 0, result.output
    assert "note: no recombination: the tokenizer has one code per chunk" in result.stdout
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        prior = zoo.get_artifact(kind="prior")
        assert prior.config["train"]["recombine"] == 0.0 and "recombine_skipped" in prior.provenance
        assert prior.config["train"]["recombine_tol"] is None and "recombine_check" not in prior.provenance


def test_a_checked_recombination_says_what_it_kept(cli, tiny_recipe):
    assert cli("zoo", "build", "--preset", "tiny").exit_code == 0
    result = cli("train", "--stage", "both", "--config", tiny_recipe(train={"recombine_tol": 0.02, "recombine_checks": 8}))
    assert result.exit_code == 0, result.output
    note = [line for line in result.stdout.splitlines() if line.startswith("note: recombination checked: ")]
    assert len(note) == 1 and "within 0.02 of the member's accuracy" in note[0]
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        check, n_records = zoo.get_artifact(kind="prior").provenance["recombine_check"], len(zoo.list())
    assert f"{check['kept']} of {check['checked']} swaps kept" in note[0]
    assert 0 < check["kept"] <= check["checked"] <= min(check["candidates"], 8 * n_records)
