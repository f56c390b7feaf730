"""Member standings as a condition of the prior (the recipe's ``train.quality``): the labels (scored decoded, on a
training sample, never the test split), the prefix slot that learns them, training, resume and sampling."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.conditioning import LOWER, TOP, UNKNOWN

ARCH = "mlp-i64-h8-o3"  # 547 parameters -> 20 tokens
TASK = "digits[classes=0,1,2]"
ALONE = "digits[classes=3,4,5]"  # one member: no group to stand in

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_token_zoo):
    """(zoo, tokenizer, records, TokenSet, weak id, alone id): 4 trained members of TASK and an untrained
    one, plus one untrained member of ALONE; a 2-stage residual tokenizer."""
    members = [(seed, TASK, True) for seed in range(4)] + [(4, TASK, False), (5, ALONE, False)]
    with tiny_token_zoo(tmp_path_factory.mktemp("quality"), ARCH, members) as (zoo, tokenizer, records, data, ids):
        yield zoo, tokenizer, records, data, ids[4], ids[5]


@pytest.mark.parametrize("keys, accs, levels", [
    (["a", "a", "a"], [0.9, 0.8, 0.7], [TOP, TOP, LOWER]),  # the median member is in the top half
    (["a", "a", "a", "a"], [0.6, 0.6, 0.6, 0.6], [TOP] * 4),  # ties at the median are all top
    (["a", "a", "b"], [0.9, 0.5, 0.1], [TOP, LOWER, UNKNOWN]),  # median of two is their mean; b is alone
    (["a", "a", "a"], [0.9, None, 0.2], [TOP, UNKNOWN, LOWER]),  # unscored: unknown; the scored two set the median
    (["a", "a"], [0.9, None], [UNKNOWN, UNKNOWN]),  # fewer than two scored: nothing to stand against
])
def test_standings(keys, accs, levels):
    from igpg_zoo.igpg.curation.standings import standings

    assert standings(keys, accs) == levels


@pytest.mark.parametrize("prior_levels, asked, level", [
    (0, None, None), (0, "any", None), (2, None, TOP), (2, "top", TOP), (2, "any", UNKNOWN)])
def test_the_level_generate_asks_for(prior_levels, asked, level):
    from igpg_zoo.igpg.conditioning import requested_level

    assert requested_level(prior_levels, asked) == level


@pytest.mark.parametrize("prior_levels, asked, phrase", [(0, "top", "not trained with member standings"),
                                                          (2, "best", "unknown quality 'best'")])
def test_a_level_that_cannot_be_asked_for_is_refused(prior_levels, asked, phrase):
    from igpg_zoo.igpg.conditioning import requested_level

    with pytest.raises(GeneratorError, match=phrase):
        requested_level(prior_levels, asked, prior_id=7)


def test_labels_are_standings_of_the_decoded_training_sample_scores(tiny, forbid_test_split):
    from igpg_zoo.igpg.curation.standings import labelled, member_accuracies, standings

    _, tokenizer, records, data, weak, alone = tiny
    accs = member_accuracies(tokenizer, records, data)
    forbid_test_split()
    out, stats = labelled(tokenizer, records, data)
    assert out.quality == standings([(r.task, r.dataset, r.arch) for r in records], accs)
    level = dict(zip(out.ids, out.quality))
    assert level[weak] == LOWER and level[alone] == UNKNOWN
    assert stats.top + stats.lower + stats.unknown == stats.records == len(records) and stats.top >= 3
    assert out.tokens is data.tokens and data.quality is None  # a labelled copy; the tokens are shared


def test_batches_carry_each_records_level(tiny):
    from dataclasses import replace

    from igpg_zoo.igpg.prior import PriorConfig

    _, tokenizer, records, data, weak, _ = tiny
    levels = [TOP, LOWER, TOP, LOWER, LOWER, UNKNOWN]
    marked = replace(data, quality=levels)
    cfg = PriorConfig(vocab_size=tokenizer.vocab_size, block_size=32, quality_levels=2)
    _, _, cond = marked.batch(cfg, [(5, 0), (0, 0), (1, 0)])
    assert cond["quality"].tolist() == [UNKNOWN, TOP, LOWER]
    assert "quality" not in data.batch(cfg, [(0, 0)])[2]


def test_standings_survive_the_swap_check(tiny):
    from igpg_zoo.igpg.curation.standings import labelled
    from igpg_zoo.igpg.curation.swaps import check_swaps

    _, tokenizer, records, data, _, _ = tiny
    out, _ = labelled(tokenizer, records, data)
    allowed, _ = check_swaps(tokenizer, records, out, 1.0, 8)
    checked = out.with_allowed(allowed)
    assert checked.quality == out.quality and checked.ids == out.ids


def _two_members_one_condition():
    """Two sequences under the same condition, told apart only by their standing."""
    from igpg_zoo.igpg.prior import PriorConfig
    from igpg_zoo.igpg.prior_dataset import TokenSet

    g = torch.Generator().manual_seed(0)
    cond = {"task": torch.randn(16, generator=g), "data": None, "arch_text": torch.ones(16), "arch_struct": None}
    tokens = [torch.randint(16, (24,), generator=g) for _ in range(2)]
    cfg = PriorConfig(vocab_size=16, block_size=32, n_layer=2, n_head=2, n_embd=64, text_dim=16,
                      window_context=8, cond_dropout=0.0, dropout=0.0, quality_levels=2)
    return cfg, TokenSet(tokens, [cond, cond], [0, 1], quality=[TOP, LOWER])


def test_the_prior_learns_the_standing_and_samples_each_member_on_request():
    from igpg_zoo.igpg.prior import Prior
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, fit_prior
    from igpg_zoo.igpg.sampling import SamplingSettings, sample_tokens

    cfg, data = _two_members_one_condition()
    torch.manual_seed(0)
    prior = Prior(cfg)
    fit_prior(prior, data, PriorTrainConfig(steps=150, batch_size=8, lr=3e-3, warmup=10, log_every=10))
    for level, tokens in ((TOP, data.tokens[0]), (LOWER, data.tokens[1])):
        greedy = SamplingSettings(temperature=0.0)  # two rows: the batched cache path
        out = sample_tokens(prior, dict(data.conds[0], quality=level), 24, n=2, settings=greedy)
        assert torch.equal(out[0], tokens) and torch.equal(out[1], tokens)
    prior.eval()
    task = data.conds[0]["task"].view(1, -1)
    logits = {q: prior(data.tokens[0].view(1, -1), {"task": task, "quality": q})[0]
              for q in (TOP, torch.tensor([TOP]), LOWER)}  # a plain int, as Generator.condition stores it
    assert torch.equal(logits[TOP], list(logits.values())[1]) and not torch.allclose(logits[TOP], logits[LOWER])


def test_a_config_without_the_slot_saves_as_before():
    from igpg_zoo.igpg.prior import PriorConfig

    assert "quality_levels" not in PriorConfig().to_dict()  # checkpoints from before the slot still resume
    assert PriorConfig(quality_levels=2).to_dict()["quality_levels"] == 2


def test_a_prior_without_the_slot_keeps_its_shape():
    from igpg_zoo.igpg.prior import Prior, PriorConfig

    old = {k: v for k, v in PriorConfig(vocab_size=16, block_size=8).to_dict().items() if k != "quality_levels"}
    prior = Prior(PriorConfig(**old))  # a config saved before the slot existed
    assert prior.cfg.n_prefix == 5 and not any(k.startswith("prefix.quality") for k in prior.state_dict())
    assert Prior(PriorConfig(**old, quality_levels=2)).cfg.n_prefix == 6


@pytest.mark.slow  # three tiny trainings and a generation: ~10 s quiet
def test_train_prior_records_the_standings_and_a_resume_must_match_them(tiny, tmp_path):
    from igpg_zoo.igpg.generate import GenerateRequest, Generator
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior
    from igpg_zoo.igpg.recipe import Recipe

    zoo, tokenizer, records, _, _, _ = tiny
    shape = {"n_layer": 1, "n_embd": 16, "n_head": 1}
    tcfg = PriorTrainConfig(steps=4, batch_size=4, warmup=1, quality=True)
    art = train_prior(zoo, Recipe(prior=shape, train=tcfg), tokenizer_id=tokenizer.artifact_id, ckpt=tmp_path / "p.pt")
    assert art.config["prior"]["quality_levels"] == 2 and art.config["train"]["quality"] is True
    assert art.provenance["quality"]["records"] == len(records) == len(art.provenance["snapshot"]["ids"])
    resumed = train_prior(zoo, Recipe(prior=shape, train=PriorTrainConfig(steps=6, batch_size=4, warmup=1, quality=True)),
                          tokenizer_id=tokenizer.artifact_id, ckpt=tmp_path / "p.pt", resume=True)
    assert resumed.provenance["resumed_from"] == 4
    with pytest.raises(GeneratorError, match="another prior config"):  # without the standing slot
        train_prior(zoo, Recipe(prior=shape, train=PriorTrainConfig(steps=6, batch_size=4, warmup=1)),
                    tokenizer_id=tokenizer.artifact_id, ckpt=tmp_path / "p.pt", resume=True)
    gen = Generator.load(zoo, art.id)
    for asked, said in ((None, "top"), ("any", "any")):
        (g,) = gen.generate(GenerateRequest(ARCH, task=TASK, n=1, seed=3, quality=asked))
        assert g.provenance["conditioning"]["quality"] == said


@pytest.mark.slow  # builds the tiny zoo, trains both stages, generates twice: ~25 s quiet
def test_the_cli_trains_with_standings_and_generates_from_either(cli, tiny_recipe, tmp_path):
    import json

    assert cli("zoo", "build", "--preset", "tiny").exit_code == 0
    result = cli("train", "--stage", "both", "--config", tiny_recipe(train={"quality": True}))
    assert result.exit_code == 0, result.output
    note = [line for line in result.stdout.splitlines() if line.startswith("note: member standings: ")]
    assert len(note) == 1 and " top half, " in note[0]
    from igpg_zoo.zoo import open_zoo

    with open_zoo() as zoo:
        record = zoo.list()[0]
    for asked in (None, "any", "best"):
        (tmp_path / "gen.yaml").write_text(f"quality: {asked}\n" if asked else "{}\n")
        args = ("generate", "--arch", record.arch, "--dataset", record.dataset, "-n", "1", "--config", tmp_path / "gen.yaml")
        if asked == "best":
            bad = cli(*args, "--registry", "elsewhere.db")
            lines = bad.output.strip().splitlines()
            assert bad.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: unknown quality 'best'")
            continue
        out = cli(*args, "--json")
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["provenance"]["conditioning"]["quality"] == (asked or "top")
    from pathlib import Path

    assert not Path("elsewhere.db").exists()
