"""The tokenizer front door on a real SQLite registry: train, store, reload, encode, decode, CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.tokenizer import Tokenizer
from igpg_zoo.igpg.tokenizer_train import train_tokenizer
from igpg_zoo.igpg.vqvae import TokenizerConfig
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.zoo import open_zoo

ARCHS = ["mlp-i8-h8-o3", "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"]
CFG = TokenizerConfig(chunk_size=32, tokens_per_chunk=2, code_dim=8, codebook_size=32, hidden=(32,),
                      batch_size=32, steps=30, refine_steps=10)


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture
def zoo(tmp_path):
    zoo = open_zoo(str(tmp_path / "registry.db"))
    for i in range(4):
        arch = ARCHS[i % 2]
        torch.manual_seed(i)
        weights = get_adapter(arch).build(arch).state_dict()
        meta = CheckpointMeta(arch=arch, task="digits", dataset="digits", metrics=(Metric("acc", 0.5, "digits"),),
                              name=f"m{i}", kind="trained")
        zoo.add_weights(weights, meta)
    yield zoo
    zoo.close()


def test_train_store_reload_and_decode_identically(zoo):
    ids = [c.id for c in zoo.list()][:3]
    artifact = train_tokenizer(zoo, CFG, ids=ids, seed=3, progress=False)
    assert artifact.kind == "tokenizer"
    assert artifact.provenance["seed"] == 3
    assert artifact.provenance["snapshot"] == zoo.snapshot(ids)
    assert artifact.config["tokenizer"]["chunk_size"] == 32
    tok = Tokenizer.load(zoo)  # latest tokenizer
    again = Tokenizer.load(zoo, artifact_id=artifact.id)
    for c in zoo.list():
        weights = zoo.load_weights(c.id)
        tokens = tok.encode(weights, c.arch)
        assert tokens.dtype == torch.long and tokens.shape == (tok.sequence_length(c.arch),)
        assert torch.equal(tokens, tok.encode(weights, c.arch))  # deterministic
        assert torch.equal(tokens, again.encode(weights, c.arch))
        decoded = tok.decode(tokens, c.arch)
        redecoded = again.decode(tokens, c.arch)
        assert all(torch.equal(decoded[k], redecoded[k]) for k in decoded)
        module = get_adapter(c.arch).build(c.arch)
        module.load_state_dict(decoded, strict=True)  # buffers included
    assert tok.vocab_size == 32 and tok.config == replace(CFG, codec="vqvae")  # "auto" decided: small models


def test_same_seed_same_tokenizer(zoo):
    a = train_tokenizer(zoo, CFG, seed=1, progress=False)
    b = train_tokenizer(zoo, CFG, seed=1, progress=False)
    assert a.sha256 == b.sha256


def test_decode_refuses_wrong_length_or_ids(zoo):
    train_tokenizer(zoo, CFG, progress=False)
    tok = Tokenizer.load(zoo)
    T = tok.sequence_length(ARCHS[0])
    with pytest.raises(GeneratorError):
        tok.decode(torch.zeros(T + 1, dtype=torch.long), ARCHS[0])
    with pytest.raises(GeneratorError):
        tok.decode(torch.full((T,), 32), ARCHS[0])


def test_load_without_a_tokenizer_says_what_to_do(tmp_path):
    with open_zoo(str(tmp_path / "empty.db")) as zoo:
        with pytest.raises(Exception) as err:
            Tokenizer.load(zoo)
    assert "tokenizer" in str(err.value)


def test_tokenize_command_shows_tokens_and_error(zoo, cli, tmp_path):
    train_tokenizer(zoo, CFG, progress=False)
    cid = zoo.list()[0].id
    result = cli("tokenize", str(cid), "--registry", str(tmp_path / "registry.db"), "--json", "--no-accuracy")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["id"] == cid and len(out["tokens"]) == out["sequence_length"]
    assert out["weight_mse"] >= 0
    text = cli("tokenize", str(cid), "--registry", str(tmp_path / "registry.db"), "--no-accuracy")
    assert text.exit_code == 0 and "weight MSE" in text.output
    missing = cli("tokenize", "999", "--registry", str(tmp_path / "registry.db"))
    assert missing.exit_code != 0


@pytest.mark.parametrize("arch,why", [
    ("cnn-i1x8x8-c4k3-c8k3-h16-o10-bn", None),  # digits fits: accuracy before / after
    ("mlp-i8-h8-o3", "mat1 and mat2"),  # 8 features cannot take digits' 1x8x8 images: skipped, named, no traceback
    ("cnn-i1x8x8-c4k3-c8k3-h16-o3-bn", "(3 outputs)"),  # the images fit, the 10 classes do not
])
def test_tokenize_measures_accuracy_only_where_the_dataset_fits(zoo, cli, tmp_path, arch, why):
    if arch not in ARCHS:
        torch.manual_seed(9)
        zoo.add_weights(get_adapter(arch).build(arch).state_dict(),
                        CheckpointMeta(arch=arch, task="digits", dataset="digits", name="odd", kind="trained"))
    train_tokenizer(zoo, CFG, progress=False)
    cid = next(c.id for c in zoo.list() if c.arch == arch)
    result = cli("tokenize", str(cid), "--registry", str(tmp_path / "registry.db"), "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    measured = why is None
    assert ("acc_before" in out) is measured and ("accuracy_skipped" in out) is not measured
    if not measured:
        assert f"dataset 'digits' (input 1x8x8, 10 classes) does not fit '{arch}'" in out["accuracy_skipped"]
        assert why in out["accuracy_skipped"]
        text = cli("tokenize", str(cid), "--registry", str(tmp_path / "registry.db"))
        assert text.exit_code == 0 and "accuracy not measured: dataset 'digits'" in text.stdout
