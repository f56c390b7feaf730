"""Long models through windows: the context the prior picks, the window table sized from the data, sampling
across many windows (the tokens decode to weights of the right shape), refusing a window past the table,
and the memory estimate that refuses an impossible training or sampling request in one line."""

from __future__ import annotations

import json

import pytest
import torch

ARCH = "mlp-i64-h128-o10"  # 9,610 parameters -> 151 chunks of 64 -> 302 tokens
LONGER = "mlp-i64-h160-o10"  # 12,010 parameters: more windows than ARCH needs

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def long_zoo(tmp_path_factory, tiny_token_zoo):
    """Three members of ARCH, a tokenizer, and a prior of context 32 trained a few steps on them."""
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior
    from igpg_zoo.igpg.recipe import Recipe

    root = tmp_path_factory.mktemp("long")
    with tiny_token_zoo(root, ARCH, [(seed, "digits", False) for seed in range(3)]) as (zoo, tokenizer, records, _, _):
        recipe = Recipe(prior={"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 32},
                        train=PriorTrainConfig(steps=6, batch_size=4, warmup=2))
        art = train_prior(zoo, recipe)
        yield zoo, tokenizer, records, art, root


@pytest.mark.parametrize("block_size, context, windows", [
    (None, 256, 2),  # the default: at most PriorConfig.block_size, the rest in windows
    (32, 32, 13),  # stride 24: 1 + ceil(270 / 24)
    (1000, 302, 1),  # never longer than the longest model
])
def test_context_and_window_table_come_from_the_zoo(long_zoo, block_size, context, windows):
    from igpg_zoo.igpg.prior_train import _prior_config
    from igpg_zoo.igpg.recipe import Recipe

    zoo, tokenizer, records, _, _ = long_zoo
    assert tokenizer.sequence_length(ARCH) == 302
    cfg = _prior_config(zoo, tokenizer, records, Recipe(prior={"block_size": block_size}))
    assert (cfg.block_size, cfg.max_windows) == (context, windows)


def test_a_recipe_window_table_too_small_is_refused(long_zoo):
    from igpg_zoo.errors import ConfigError
    from igpg_zoo.igpg.prior_train import _prior_config
    from igpg_zoo.igpg.recipe import Recipe

    zoo, tokenizer, records, _, _ = long_zoo
    with pytest.raises(ConfigError, match="needs 13 windows"):
        _prior_config(zoo, tokenizer, records, Recipe(prior={"block_size": 32, "max_windows": 12}))


@pytest.mark.parametrize("n, seed", [(1, 0), (3, 7)])
def test_samples_across_many_windows_decode_to_the_architecture(long_zoo, n, seed):
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.igpg.generate import Generator
    from igpg_zoo.igpg.sampling import SamplingSettings, n_windows

    zoo, tokenizer, _, art, _ = long_zoo
    gen = Generator.load(zoo, art.id)
    assert art.config["prior"]["max_windows"] == n_windows(gen.prior.cfg, 302) == 13
    cond = gen.condition(ARCH, "digits")
    tokens, logp = gen.sample(ARCH, cond, n, SamplingSettings(), seed)
    assert tokens.shape == (n, 302) and logp.shape == (n,) and torch.isfinite(logp).all()
    assert 0 <= int(tokens.min()) and int(tokens.max()) < tokenizer.vocab_size
    expected = {k: v.shape for k, v in get_adapter(ARCH).build(ARCH).state_dict().items()}
    for row in tokens:
        assert {k: v.shape for k, v in tokenizer.decode(row, ARCH).items()} == expected


def test_a_window_past_the_table_is_refused_in_one_line(long_zoo, cli):
    from igpg_zoo.errors import GeneratorError
    from igpg_zoo.igpg.generate import Generator
    from igpg_zoo.igpg.sampling import sample_tokens

    zoo, tokenizer, _, art, root = long_zoo
    gen = Generator.load(zoo, art.id)
    length = tokenizer.sequence_length(LONGER)
    with pytest.raises(GeneratorError, match="window table holds 13") as err:
        sample_tokens(gen.prior, gen.condition(LONGER, "digits"), length)
    assert "\n" not in str(err.value)
    out = root / "model.safetensors"
    result = cli("generate", "--arch", LONGER, "--dataset", "digits", "-n", "1", "--out", out,
                 "--registry", root / "registry.db")
    assert result.exit_code == 1 and "windows" in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.parametrize("rows", [1, 13, 64])
def test_the_window_table_initialises_as_the_fixed_table_did(rows):
    from igpg_zoo.igpg.prior import Prior, PriorConfig

    def build(max_windows):
        torch.manual_seed(0)
        return Prior(PriorConfig(vocab_size=16, block_size=8, n_layer=1, n_head=1, n_embd=8, text_dim=4,
                                 max_windows=max_windows)).state_dict()

    old, new = build(64), build(rows)
    assert new["prefix.window.weight"].shape == (rows, 8)
    assert torch.equal(new["prefix.window.weight"], old["prefix.window.weight"][:rows])
    assert all(torch.equal(new[k], old[k]) for k in old if k != "prefix.window.weight")


@pytest.mark.parametrize("saved_rows, needed, other, adopted", [
    (64, 13, {}, 64),  # a checkpoint from before the table was sized: resumes with its 64 rows
    (13, 13, {}, 13),
    (4, 13, {}, 13),  # too few rows: not adopted (the resume then refuses the other config)
    (64, 13, {"n_embd": 16}, 13),  # another shape altogether: not adopted
])
def test_a_resume_adopts_an_older_larger_window_table(tmp_path, saved_rows, needed, other, adopted):
    from igpg_zoo.igpg import prior_checkpoint
    from igpg_zoo.igpg.prior import Prior, PriorConfig
    from igpg_zoo.igpg.recipe import PriorTrainConfig

    shape = dict(vocab_size=16, block_size=8, n_layer=1, n_head=2, n_embd=8, text_dim=4)
    saved = Prior(PriorConfig(**{**shape, **other, "max_windows": saved_rows}))
    opt = torch.optim.AdamW(saved.parameters())
    path = tmp_path / "prior.pt"
    prior_checkpoint.save(path, saved, opt, 1, PriorTrainConfig(steps=2),
                          [prior_checkpoint.rng_states(torch.Generator(), saved)], {})
    cfg = prior_checkpoint.adopt_window_table(path, PriorConfig(**shape, max_windows=needed))
    assert cfg.max_windows == adopted


@pytest.mark.parametrize("estimate, limit_gb, fix", [
    (("prior_training", 14_700, 16), None, "block_size"),  # the timm test_resnet at its full length
    (("prior_training", 256, 16), 0.01, "batch_size"),
    (("prior_sampling", 256, 1000), 0.01, "-n"),
])
def test_an_impossible_request_is_refused_in_one_line(estimate, limit_gb, fix, monkeypatch):
    from igpg_zoo.errors import GeneratorError
    from igpg_zoo.igpg import memory
    from igpg_zoo.igpg.prior import PriorConfig

    monkeypatch.setattr(memory, "available", lambda device=None: 8 * memory.GIB)  # a machine with 8 GiB free
    kind, block, size = estimate
    cfg = PriorConfig(vocab_size=1024, block_size=block, text_dim=384)
    est = memory.prior_training(cfg, size) if kind == "prior_training" else memory.prior_sampling(cfg, size, 14_700)
    with pytest.raises(GeneratorError, match=fix) as err:
        memory.check(est, limit_gb)
    assert "\n" not in str(err.value) and "GiB" in str(err.value)


def test_training_both_stages_checks_the_prior_it_will_train_before_the_tokenizer(long_zoo, tiny_recipe, monkeypatch):
    from igpg_zoo.errors import GeneratorError
    from igpg_zoo.igpg import memory
    from igpg_zoo.igpg.prior_train import check_memory
    from igpg_zoo.igpg.recipe import load_recipe

    zoo = long_zoo[0]
    from igpg_zoo.igpg.vectorize import Layout, n_chunks

    recipe = load_recipe(tiny_recipe(prior={"block_size": 4096}))  # capped at ARCH's length under this tokenizer
    seen = []
    monkeypatch.setattr(memory, "check", lambda est, *a: seen.append((est.what, est.parts)))
    check_memory(zoo, recipe, stage="both")
    assert [what for what, _ in seen] == ["tokenizer training", "prior training"]
    tok = recipe.tokenizer
    length = n_chunks(Layout.of(ARCH), tok.chunk_size) * tok.tokens_per_chunk
    assert seen[1][1]["logits"] == 3 * recipe.train.batch_size * length * tok.codebook_size * memory.FLOAT


@pytest.mark.parametrize("block, batch", [(32, 4), (256, 16)])
def test_a_request_that_fits_passes_and_grows_with_context_and_batch(block, batch):
    from igpg_zoo.igpg import memory
    from igpg_zoo.igpg.prior import PriorConfig

    cfg = PriorConfig(vocab_size=64, block_size=block, n_layer=1, n_head=2, n_embd=32, text_dim=8)
    est = memory.check(memory.prior_training(cfg, batch), limit_gb=4.0)
    bigger = memory.prior_training(PriorConfig(**{**cfg.to_dict(), "block_size": 2 * block}), 2 * batch)
    assert 0 < est.total < bigger.total


@pytest.mark.parametrize("stage, what", [("prior", "prior training"), ("both", "tokenizer training"),
                                         ("tokenizer", "tokenizer training")])
def test_cli_train_refuses_what_will_not_fit_and_writes_nothing(long_zoo, cli, tiny_recipe, tmp_path, stage, what):
    zoo, _, _, _, root = long_zoo
    before = [a.id for a in zoo.list_artifacts()]
    ckpt = tmp_path / "prior.pt"
    result = cli("train", "--stage", stage, "--config", tiny_recipe(train={"memory_gb": 0.001}),
                 "--checkpoint", ckpt, "--registry", root / "registry.db")
    assert result.exit_code != 0 and what in result.output and "memory_gb" in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not ckpt.exists() and [a.id for a in zoo.list_artifacts()] == before


def test_cli_generate_refuses_sampling_that_will_not_fit(long_zoo, cli, tmp_path):
    _, _, _, _, root = long_zoo
    config = tmp_path / "gen.yaml"
    config.write_text(json.dumps({"memory_gb": 0.001}))
    result = cli("generate", "--arch", ARCH, "--dataset", "digits", "-n", "2", "--config", config,
                 "--registry", root / "registry.db")
    assert result.exit_code == 1 and "-n" in result.output and len(result.output.strip().splitlines()) == 1
