"""igpg-zoo train (both stages, hold-out, resume) on the tiny zoo preset."""

from __future__ import annotations

import json

import pytest


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.mark.slow  # builds the tiny zoo and trains both stages: ~20 s quiet
def test_train_both_stages_with_holdout_then_resume(cli, tmp_path):
    built = cli("zoo", "build", "--preset", "tiny")
    assert built.exit_code == 0, built.output
    args = ["train", "--stage", "both", "--tokenizer-steps", "20", "--steps", "12", "--layers", "1", "--width", "32",
            "--batch", "4", "--holdout-task", "digits[classes=3,5,8]*", "--tokens-per-chunk", "2",
            "--codebook-size", "64", "--json"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert {"tokenizer", "prior"} <= set(out)
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        prior = zoo.get_artifact(out["prior"]["id"], kind="prior")
        datasets = {zoo.get(i).dataset for i in prior.provenance["snapshot"]["ids"]}
        assert datasets and not any(d.startswith("digits[classes=3,5,8]") for d in datasets)
        assert prior.parent_id == out["tokenizer"]["id"]
        assert prior.config["prior"]["dropout"] == 0.1  # the CLI's default, saved inside the artifact
        assert prior.config["train"]["recombine"] == 2.0  # so is its recombination rate
        tok = zoo.get_artifact(out["tokenizer"]["id"], kind="tokenizer")
        assert tok.config["tokenizer"]["tokens_per_chunk"] == 2 and tok.config["tokenizer"]["codebook_size"] == 64
        assert prior.config["prior"]["vocab_size"] == 64  # the prior's vocabulary is the tokenizer's codebook
    assert (tmp_path / "igpg-runs" / "prior.pt").exists()
    again = cli("train", "--stage", "prior", "--steps", "12", "--layers", "1", "--width", "32", "--batch", "4",
                "--holdout-task", "digits[classes=3,5,8]*", "--resume", "--json")
    assert again.exit_code == 0, again.output
    with open_zoo() as zoo:
        latest = zoo.get_artifact(kind="prior")
        assert latest.provenance["resumed_from"] == 12  # nothing left to train: the checkpoint was complete
    by_epochs = cli("train", "--stage", "prior", "--epochs", "2", "--layers", "1", "--width", "32", "--batch", "4",
                    "--holdout-task", "digits[classes=3,5,8]*", "--checkpoint", tmp_path / "e.pt", "--recombine", "0",
                    "--json")
    assert by_epochs.exit_code == 0, by_epochs.output
    with open_zoo() as zoo:
        art = zoo.get_artifact(json.loads(by_epochs.output.strip().splitlines()[-1])["prior"]["id"], kind="prior")
        n = len(art.provenance["snapshot"]["ids"])
        assert art.config["train"]["steps"] == -(-2 * n // 4) and art.config["train"]["epochs"] == 2.0
        assert art.config["train"]["recombine"] == 0.0


@pytest.mark.parametrize("args, flag", [(("--stage", "decoder"), "--stage"), (("--dropout", "1.5"), "--dropout"),
                                        (("--dropout", "-0.1"), "--dropout"), (("--epochs", "0"), "--epochs"),
                                        (("--tokens-per-chunk", "0"), "--tokens-per-chunk"),
                                        (("--device", "tpu"), "--device"), (("--device", "cuda:x"), "--device"),
                                        (("--codebook-size", "1"), "--codebook-size")])
def test_train_rejects_bad_options(cli, args, flag):
    result = cli("train", *args)
    assert result.exit_code == 2 and flag in result.output


@pytest.mark.parametrize("args, phrase", [(("--min-p", "1.5"), "min-p 1.5"), (("--top-p", "0"), "top-p 0.0"),
                                          (("--temperature", "-1"), "temperature -1.0"),
                                          (("-n", "0"), "-n must lie in 1..1,000"),
                                          (("-n", "1000000000"), "got 1,000,000,000")])
def test_generate_refuses_bad_sampling_settings_before_touching_the_registry(cli, tmp_path, args, phrase):
    db = tmp_path / "registry.db"
    result = cli("generate", "--arch", "mlp-i4-h16-o3", "--dataset", "iris", "--registry", f"sqlite:///{db}", *args)
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


def test_a_tokenizer_without_residual_stages_trains_without_recombination_and_says_so(cli):
    assert cli("zoo", "build", "--preset", "tiny").exit_code == 0
    result = cli("train", "--stage", "both", "--tokenizer-steps", "10", "--steps", "4", "--layers", "1",
                 "--width", "32", "--batch", "4", "--tokens-per-chunk", "1", "--codebook-size", "32",
                 "--recombine-tol", "0.02")
    assert result.exit_code == 0, result.output
    assert "note: no recombination: the tokenizer has no finest residual codes" in result.stdout
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        prior = zoo.get_artifact(kind="prior")
        assert prior.config["train"]["recombine"] == 0.0 and "recombine_skipped" in prior.provenance
        assert prior.config["train"]["recombine_tol"] is None and "recombine_check" not in prior.provenance


def test_a_checked_recombination_says_what_it_kept(cli):
    assert cli("zoo", "build", "--preset", "tiny").exit_code == 0
    result = cli("train", "--stage", "both", "--tokenizer-steps", "10", "--steps", "4", "--layers", "1",
                 "--width", "32", "--batch", "4", "--tokens-per-chunk", "2", "--codebook-size", "32",
                 "--recombine-tol", "0.02", "--recombine-checks", "8")
    assert result.exit_code == 0, result.output
    note = [line for line in result.stdout.splitlines() if line.startswith("note: recombination checked: ")]
    assert len(note) == 1 and "within 0.02 of the member's accuracy" in note[0]
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        check, n_records = zoo.get_artifact(kind="prior").provenance["recombine_check"], len(zoo.list())
    assert f"{check['kept']} of {check['checked']} swaps kept" in note[0]
    assert 0 < check["kept"] <= check["checked"] <= min(check["candidates"], 8 * n_records)


def test_a_member_floor_says_what_it_left_out(cli):
    assert cli("zoo", "build", "--preset", "tiny").exit_code == 0
    result = cli("train", "--stage", "both", "--tokenizer-steps", "10", "--steps", "4", "--layers", "1",
                 "--width", "32", "--batch", "4", "--tokens-per-chunk", "2", "--codebook-size", "32",
                 "--member-floor", "0", "--recombine-tol", "0.02", "--recombine-checks", "4")
    assert result.exit_code == 0, result.output
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        prior, records = zoo.get_artifact(kind="prior"), zoo.list()
    floor = prior.provenance["member_floor"]
    assert floor["tol"] == 0 and floor["records"] == len(records) and floor["dropped"]  # tol 0: below-median go
    note = [line for line in result.stdout.splitlines() if line.startswith("note: member floor: ")]
    assert len(note) == 1 and f"{len(floor['dropped'])} of {len(records)} members left out" in note[0]
    assert "; recombination checked: " in note[0]
