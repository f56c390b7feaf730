"""End to end on a tiny real zoo: tokenizer -> prior (windowed: context shorter than a model)
-> generate -> strict load, provenance, novelty, registration; and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

ARCH = "mlp-i64-h8-o3"  # 547 parameters -> 10 chunks of 64 (layer by layer) -> 20 tokens
TASKS = ("digits[classes=0,1,2]", "digits[classes=3,4,5]")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A registry with 6 trained models, a tokenizer and a prior whose context (8) < 20 tokens."""
    root = tmp_path_factory.mktemp("gen")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
        mp.setenv("IGPG_ZOO_CACHE", str(root / "cache"))
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        torch.set_num_threads(1)
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.data import load_dataset
        from igpg_zoo.data.embedding import dataset_embedding_for
        from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior
        from igpg_zoo.igpg.recipe import Recipe
        from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
        from igpg_zoo.igpg.vqvae import TokenizerConfig
        from igpg_zoo.records import CheckpointMeta, Metric
        from igpg_zoo.zoo import open_zoo
        from igpg_zoo.zoobuild.trainer import accuracy, fit, init_module

        zoo = open_zoo(str(root / "registry.db"), embedder="hash")
        items = []
        for task in TASKS:
            ds = load_dataset(task)
            for seed in range(3):
                m = fit(init_module(get_adapter(ARCH).build(ARCH), seed), ds.x_train, ds.y_train, epochs=2, seed=seed)
                w = {k: v.detach().clone() for k, v in m.state_dict().items()}
                acc = accuracy(m, ds.x_test, ds.y_test)
                zoo.add_weights(w, CheckpointMeta(arch=ARCH, task=task, dataset=task, kind="trained",
                                                  metrics=(Metric("acc", acc, task + ":test"),),
                                                  dataset_embedding=tuple(dataset_embedding_for(task).tolist())))
                items.append((w, ARCH))
        tok, _ = fit_tokenizer(items, TokenizerConfig(chunk_size=64, tokens_per_chunk=2, codebook_size=16,
                                                      hidden=(32,), code_dim=8, steps=60,
                                                      refine_steps=0, batch_size=32), seed=0, progress=False)
        tensors, config = tok.state()
        tok_art = zoo.add_artifact("tokenizer", "tiny", tensors, config, {"snapshot": zoo.snapshot()})
        recipe = Recipe(prior={"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 8, "window_context": 3},
                        train=PriorTrainConfig(steps=30, batch_size=8, warmup=5))
        prior_art = train_prior(zoo, recipe, holdout=[TASKS[1]])
        yield zoo, tok_art, prior_art, root
        zoo.close()


def test_prior_artifact_records_snapshot_holdout_and_tokenizer(trained):
    zoo, tok_art, prior_art, _ = trained
    assert prior_art.parent_id == tok_art.id and prior_art.config["tokenizer_id"] == tok_art.id
    assert prior_art.provenance["holdout_tasks"] == [TASKS[1]]
    trained_on = {zoo.get(i).task for i in prior_art.provenance["snapshot"]["ids"]}
    assert trained_on == {TASKS[0]}  # task-disjoint: the held-out task never reached training
    assert prior_art.config["prior"]["block_size"] == 8  # shorter than the 20-token model: windowed
    assert prior_art.config["prior"]["max_windows"] == 4  # the window table: the windows a 20-token model needs
    assert prior_art.config["recipe"]["name"] == "default" and prior_art.config["recipe"]["prior"]["n_layer"] == 1
    assert prior_art.config["recipe"]["train"]["steps"] == 30 and prior_art.config["recipe"]["prior"]["dropout"] == 0.1


def test_generated_state_dict_loads_strictly_with_provenance_and_novelty(trained):
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.data.embedding import dataset_embedding_for
    from igpg_zoo.igpg.generate import GenerateRequest, Generator
    from igpg_zoo.igpg.sampling import SamplingSettings

    zoo, tok_art, prior_art, _ = trained
    gen = Generator.load(zoo)
    ds = load_dataset(TASKS[0])
    results = gen.generate(GenerateRequest(ARCH, task=TASKS[0], data=ds, data_embedding=dataset_embedding_for(TASKS[0]),
                                           n=3, sampling=SamplingSettings(temperature=1.0), seed=5))
    assert len(results) == 3
    assert [r.val_accuracy for r in results] == sorted((r.val_accuracy for r in results), reverse=True)
    for r in results:
        module = get_adapter(ARCH).build(ARCH)
        module.load_state_dict(r.weights, strict=True)
        assert r.tokens.shape == (20,)  # layer mode, K=64, L=2: hidden 520 values -> 9 chunks, head 27 -> 1
        p = r.provenance
        assert p["generator"] == {"prior_artifact_id": prior_art.id, "tokenizer_artifact_id": tok_art.id,
                                  "recipe": "default"}
        assert p["batchnorm"] is None and p["drop_copies"] is True  # an MLP has no BatchNorm to re-estimate
        assert p["zoo_snapshot_hash"] == prior_art.provenance["snapshot"]["hash"] and p["seed"] == 5
        assert p["conditioning"]["arch_in_training"] is True
        assert set(r.neighbour) >= {"id", "distance", "exact_copy_of", "prediction_agreement"}
        assert 0.0 <= r.neighbour["prediction_agreement"] <= 1.0


def test_exact_copy_is_detected(trained):
    from igpg_zoo.igpg.generate import Generator
    from igpg_zoo.igpg.tokenizer import Tokenizer

    zoo, *_ = trained
    gen = Generator.load(zoo)
    member = zoo.list(task=(TASKS[0],))[0]
    tokens = Tokenizer.load(zoo).encode(zoo.load_weights(member.id), ARCH)
    weights = gen.tokenizer.decode(tokens, ARCH)
    nb = gen.neighbours(ARCH).nearest(weights, tokens)
    assert nb["exact_copy_of"] is not None and nb["max_token_overlap"] == 1.0


def _index_holding(gen, tokens: torch.Tensor):
    """The generator's neighbour index for ARCH with ``tokens`` (n, T) added as zoo members."""
    from dataclasses import replace

    nb = gen.neighbours(ARCH)
    extra = torch.zeros(len(tokens), nb.params.shape[1])
    gen._neighbours[ARCH] = replace(nb, ids=nb.ids + [-1 - i for i in range(len(tokens))],
                                    params=torch.cat([nb.params, extra]), tokens=torch.cat([nb.tokens, tokens]))


@pytest.mark.parametrize("members, expect_round0", [(0, 4), (2, 2), (4, 0)])
def test_dropping_copies_replaces_them_with_later_rounds(trained, members, expect_round0):
    from igpg_zoo.igpg.generate import GenerateRequest, Generator
    from igpg_zoo.igpg.sampling import SamplingSettings

    zoo, *_ = trained
    gen = Generator.load(zoo)
    s = SamplingSettings(temperature=1.5)
    cond = gen.condition(ARCH, TASKS[0])
    raw, _ = gen.sample(ARCH, cond, 4, s, seed=3)
    _index_holding(gen, raw[:members])  # the first `members` raw samples now count as zoo copies
    drawn = gen.draw(GenerateRequest(ARCH, n=4, sampling=s, seed=3), cond)
    assert len(drawn) == 4 and sum(r == 0 for _, _, r, _ in drawn) == expect_round0
    for tokens, _, r, i in drawn:
        assert gen.neighbours(ARCH).exact_copy_of(tokens) is None
        if r == 0:
            assert torch.equal(tokens, raw[i])  # round 0 is the raw draw, copies removed
    plain = gen.draw(GenerateRequest(ARCH, n=4, sampling=s, seed=3, drop_copies=False), cond)  # every raw sample
    assert [torch.equal(t, raw[i]) for t, _, _, i in plain] == [True] * 4


@pytest.mark.parametrize("temperature, r, expect", [(1.0, 0, 1.0), (1.0, 1, 1.25), (0.8, 2, 1.2), (1.0, 2, 1.5),
                                                     (1.0, 7, 1.5), (0.0, 3, 0.0)])
def test_replacement_rounds_sample_hotter_up_to_a_cap(temperature, r, expect):
    from igpg_zoo.igpg.generate import round_settings
    from igpg_zoo.igpg.sampling import SamplingSettings

    s = SamplingSettings(temperature=temperature, top_p=0.9)
    hot = round_settings(s, r)
    assert hot.temperature == pytest.approx(expect) and hot.top_p == 0.9


def test_replacement_rounds_record_the_temperature_they_used(trained):
    from igpg_zoo.igpg.generate import GenerateRequest, Generator
    from igpg_zoo.igpg.sampling import SamplingSettings

    zoo, *_ = trained
    gen = Generator.load(zoo)
    s = SamplingSettings(temperature=1.0)
    raw, _ = gen.sample(ARCH, gen.condition(ARCH, TASKS[0]), 2, s, seed=5)
    _index_holding(gen, raw)  # round 0 yields only copies: both results come from hotter rounds
    out = gen.generate(GenerateRequest(ARCH, task=TASKS[0], n=2, sampling=s, seed=5))
    for g in out:
        r = g.provenance["sample_round"]
        assert r >= 1 and g.provenance["temperature_used"] == pytest.approx(min(1 + 0.25 * r, 1.5))
        assert g.provenance["sampling"]["temperature"] == 1.0  # what the user asked for
        resampled, _ = gen.sample(ARCH, gen.condition(ARCH, TASKS[0]), 2,
                                  SamplingSettings(temperature=g.provenance["temperature_used"]), 5 + r * 1_000_003)
        assert torch.equal(resampled[g.provenance["sample_index"]], g.tokens)  # provenance reproduces it


def test_dropping_copies_refuses_a_prior_that_only_replays(trained):
    from igpg_zoo.errors import GeneratorError
    from igpg_zoo.igpg.generate import GenerateRequest, Generator
    from igpg_zoo.igpg.sampling import SamplingSettings

    zoo, *_ = trained
    gen = Generator.load(zoo)
    greedy = SamplingSettings(temperature=0.0)  # every round draws the same sequence
    raw, _ = gen.sample(ARCH, gen.condition(ARCH, TASKS[0]), 1, greedy, seed=0)
    _index_holding(gen, raw)
    with pytest.raises(GeneratorError, match="exact copies of zoo members"):
        gen.generate(GenerateRequest(ARCH, task=TASKS[0], n=2, sampling=greedy))
    g = gen.generate(GenerateRequest(ARCH, task=TASKS[0], n=1, sampling=greedy, drop_copies=False))[0]
    assert g.neighbour["exact_copy_of"] is not None and g.provenance["drop_copies"] is False  # returned, labelled


def test_head_reset_replaces_only_the_classifier(trained):
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.igpg.generate import GenerateRequest, Generator
    from igpg_zoo.igpg.sampling import SamplingSettings

    zoo, *_ = trained
    gen = Generator.load(zoo)
    s = SamplingSettings(temperature=0.0)
    req = GenerateRequest(ARCH, task=TASKS[0], n=1, sampling=s, drop_copies=False, neighbours=False)
    kept = gen.generate(req)[0].weights
    reset = gen.generate(replace(req, head="reset"))[0].weights
    heads = set(get_adapter(ARCH).head_names(ARCH))
    for name in kept:
        assert torch.equal(kept[name], reset[name]) is (name not in heads)


def test_cli_generate_writes_and_registers(trained, cli):
    zoo, _, prior_art, root = trained
    out = root / "gen.safetensors"
    result = cli("generate", "--arch", ARCH, "--dataset", TASKS[1], "-n", "2", "--out", out, "--register",
                 "--json", "--registry", root / "registry.db")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert out.exists() and report["provenance"]["conditioning"]["dataset"] == TASKS[1]
    rec = zoo.get(report["registered_id"])
    assert rec.kind == "generated" and rec.extra["generator_artifact_id"] == prior_art.id
    assert rec.metric("acc") is not None and "nearest" in rec.extra


@pytest.mark.parametrize("config, novel_only, exit_code", [("", True, 0), ("drop_copies: false", False, 0),
                                                            ("quality: best", None, 1)])
def test_cli_generate_copy_filter(trained, cli, config, novel_only, exit_code):
    zoo, _, _, root = trained
    (root / "gen.yaml").write_text(config + "\n")
    result = cli("generate", "--arch", ARCH, "--dataset", TASKS[0], "-n", "2", "--json", "--config", root / "gen.yaml",
                 "--registry", root / "registry.db")
    assert result.exit_code == exit_code, result.output
    if exit_code:
        assert "quality" in result.output and len(result.output.strip().splitlines()) == 1
        return
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["provenance"]["drop_copies"] is novel_only
    if novel_only:
        assert all(r["exact_copy_of"] is None for r in report["results"])


def test_cli_generate_says_when_the_prior_never_saw_the_architecture_and_when_weights_were_registered(trained, cli):
    _, _, _, root = trained
    unseen = "mlp-i64-h9-o3"  # a width the prior never trained on (22 tokens: within its 4 windows)
    args = ("generate", "--arch", unseen, "--dataset", TASKS[0], "-n", "1", "--registry", root / "registry.db")
    first = cli(*args, "--json")
    assert first.exit_code == 0, first.output
    assert json.loads(first.output.strip().splitlines()[-1])["provenance"]["conditioning"]["arch_in_training"] is False
    text = cli(*args, "--register")
    assert text.exit_code == 0 and f"never trained on {unseen}" in text.output
    assert "registered before" not in text.output
    again = cli(*args, "--register")  # same seed, same weights: the record that exists
    assert again.exit_code == 0 and "registered before" in again.output


@pytest.mark.parametrize("extra, words", [
    ((), "window"),  # 28 tokens need 5 windows of 8: past the 4 the prior trained on
    (("--out", "model.safetensors"), "window"),  # refused before anything is written
])
def test_cli_generate_refuses_a_model_longer_than_the_window_table(trained, cli, tmp_path, extra, words):
    _, _, _, root = trained
    result = cli("generate", "--arch", "mlp-i64-h12-o3", "--dataset", TASKS[0], "-n", "1",
                 "--registry", root / "registry.db", *[str(tmp_path / e) if e.endswith(".safetensors") else e
                                                      for e in extra])
    assert result.exit_code == 1 and words in result.output and len(result.output.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.safetensors"))


def test_cli_generate_needs_exactly_one_data_source(cli):
    result = cli("generate", "--arch", ARCH)
    assert result.exit_code == 2 and "--dataset" in result.output


def test_head_fit_solves_the_classifier_on_the_data(trained):
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.igpg.generate import GenerateRequest, Generator
    from igpg_zoo.igpg.probe import accuracy_on, probe_split
    from igpg_zoo.zoobuild.trainer import init_module

    zoo, *_ = trained
    gen = Generator.load(zoo)
    ds = load_dataset(TASKS[1])  # held out of the prior
    g = gen.generate(GenerateRequest(ARCH, task=TASKS[1], data=ds, n=1, head="fit", neighbours=False))[0]
    module = get_adapter(ARCH).build(ARCH)
    module.load_state_dict(g.weights, strict=True)
    x, y = probe_split(ds)
    assert accuracy_on(module.eval(), x, y) == pytest.approx(g.val_accuracy)
    # a random body with a solved head also beats chance: the head fit itself works
    rand = init_module(get_adapter(ARCH).build(ARCH), 0).eval()
    from igpg_zoo.igpg.heads import fit_head

    fit_head(rand, ARCH, x, y)
    assert accuracy_on(rand, x, y) > 0.5


def test_head_fit_needs_data():
    from igpg_zoo.errors import GeneratorError
    from igpg_zoo.igpg.generate import GenerateRequest

    with pytest.raises(GeneratorError, match="head 'fit'"):
        GenerateRequest(ARCH, task=TASKS[0], head="fit")
