"""The member floor on a tiny real zoo: which members the prior learns from (scored decoded, on a training
sample, never the test split), and that training, its provenance and a resume follow the floor."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.errors import GeneratorError

ARCH = "mlp-i64-h8-o3"  # 547 parameters -> 20 tokens
TASK = "digits[classes=0,1,2]"
ALONE = "digits[classes=3,4,5]"  # one untrained member: a group of one is never floored

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_token_zoo):
    """(zoo, tokenizer, records, TokenSet, weak id): 4 trained members of TASK and an untrained one, plus
    one untrained member of ALONE; a 2-stage residual tokenizer."""
    members = [(seed, TASK, True) for seed in range(4)] + [(4, TASK, False), (5, ALONE, False)]
    with tiny_token_zoo(tmp_path_factory.mktemp("floor"), ARCH, members) as (zoo, tokenizer, records, data, ids):
        yield zoo, tokenizer, records, data, ids[4]


@pytest.mark.parametrize("keys, accs, tol, keep", [
    (["a", "a", "a"], [0.9, 0.8, 0.7], 0.05, [True, True, False]),  # median 0.8: 0.7 is 0.1 below
    (["a", "a", "a"], [0.9, 0.8, 0.75], 0.05, [True, True, True]),  # exactly tol below stays
    (["a", "a", "a"], [0.9, 0.8, 0.7], 0.1, [True, True, True]),
    (["a", "a", "b"], [0.9, 0.5, 0.1], 0.05, [True, False, True]),  # median of two is their mean; b is alone
    (["a", "a", "a"], [0.9, None, 0.2], 0.05, [True, True, False]),  # unscored stays, the scored two set the median
    (["a", "a"], [0.9, None], 0.0, [True, True]),  # fewer than two scored: nothing to compare with
    (["a", "a", "a", "a"], [0.6, 0.6, 0.6, 0.6], 0.0, [True, True, True, True]),
])
def test_floor_keep(keys, accs, tol, keep):
    from igpg_zoo.igpg.member_floor import floor_keep

    assert floor_keep(keys, accs, tol) == keep


def test_scores_are_decoded_accuracies_on_the_training_sample(tiny, probe_accuracy):
    from igpg_zoo.igpg.member_floor import member_accuracies

    _, tokenizer, records, data, _ = tiny
    accs = member_accuracies(tokenizer, records, data)
    assert accs == pytest.approx([probe_accuracy(tokenizer, t, ARCH, r.task) for t, r in zip(data.tokens, records)])


def test_the_weak_member_is_left_out_and_siblings_are_among_the_kept(tiny):
    from igpg_zoo.igpg.member_floor import floored

    _, tokenizer, records, data, weak = tiny
    kept, subset, stats = floored(tokenizer, records, data, tol=0.05)
    assert [d["id"] for d in stats.dropped] == [weak] and stats.records == len(records) == len(kept) + 1
    assert stats.dropped[0]["median"] - stats.dropped[0]["accuracy"] > 0.05
    assert [r.id for r in kept] == list(subset.ids) == [i for i in data.ids if i != weak]
    for i, r in enumerate(kept):  # siblings: the other kept members of the same task
        assert sorted(subset.ids[j] for j in subset.siblings[i]) == sorted(
            k.id for k in kept if k.task == r.task and k.id != r.id)
        assert torch.equal(subset.tokens[i], data.tokens[data.ids.index(r.id)])


def test_a_record_whose_dataset_does_not_load_is_kept_unscored(tiny):
    from dataclasses import replace

    from igpg_zoo.igpg.member_floor import floored

    _, tokenizer, records, data, weak = tiny
    broken = [replace(r, dataset="no_such_dataset") if r.id == weak else r for r in records]
    kept, _, stats = floored(tokenizer, broken, data, tol=0.05)
    assert len(kept) == len(records) and stats.dropped == [] and stats.records_without_data == 1


def test_the_floor_never_reads_the_test_split(tiny, forbid_test_split):
    from igpg_zoo.igpg.member_floor import member_accuracies

    _, tokenizer, records, data, _ = tiny
    expected = member_accuracies(tokenizer, records, data)
    forbid_test_split()
    assert member_accuracies(tokenizer, records, data) == expected


def _scores_on_rank(tokenizer, records, data) -> list:
    from igpg_zoo.igpg.member_floor import member_accuracies

    return member_accuracies(tokenizer, records, data)


@pytest.mark.slow  # two spawned interpreters import torch: ~15 s quiet
def test_two_gloo_ranks_share_the_scoring_and_agree_with_one_process(tiny, on_two_gloo_ranks):
    zoo, tokenizer, records, data, _ = tiny
    ranks = on_two_gloo_ranks(zoo, tokenizer, _scores_on_rank)
    assert ranks[0] == ranks[1] == pytest.approx(_scores_on_rank(tokenizer, records, data))


def test_train_prior_learns_from_the_kept_and_a_resume_must_match_the_floor(tiny, tmp_path):
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior

    zoo, tokenizer, records, _, weak = tiny
    shape = {"n_layer": 1, "n_embd": 16, "n_head": 1}
    art = train_prior(zoo, shape, PriorTrainConfig(steps=4, batch_size=4, warmup=1, member_floor=0.05),
                      tokenizer_id=tokenizer.artifact_id, ckpt=tmp_path / "p.pt")
    floor = art.provenance["member_floor"]
    assert floor["tol"] == 0.05 and [d["id"] for d in floor["dropped"]] == [weak]
    assert art.provenance["snapshot"] == zoo.snapshot([r.id for r in records if r.id != weak])
    assert art.config["train"]["member_floor"] == 0.05
    resumed = train_prior(zoo, shape, PriorTrainConfig(steps=6, batch_size=4, warmup=1, member_floor=0.05),
                          tokenizer_id=tokenizer.artifact_id, ckpt=tmp_path / "p.pt", resume=True)
    assert resumed.provenance["resumed_from"] == 4
    scored = []
    with pytest.raises(GeneratorError, match="another run"):  # another floor: refused before any scoring
        train_prior(zoo, shape, PriorTrainConfig(steps=6, batch_size=4, warmup=1, member_floor=0.5),
                    tokenizer_id=tokenizer.artifact_id, ckpt=tmp_path / "p.pt", resume=True,
                    floor_progress=lambda done, total: scored.append(done))
    assert scored == []
    for other, filters in ((None, None), (0.05, {"task": [TASK]})):  # no floor; the same floor on other records
        with pytest.raises(GeneratorError, match="another run"):
            train_prior(zoo, shape, PriorTrainConfig(steps=6, batch_size=4, warmup=1, member_floor=other),
                        filters=filters, tokenizer_id=tokenizer.artifact_id, ckpt=tmp_path / "p.pt", resume=True)


def test_epochs_count_the_kept_sequences_and_the_check_swaps_among_the_kept(tiny, tmp_path):
    import math

    from igpg_zoo.igpg.member_floor import floored
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior
    from igpg_zoo.igpg.recombine_check import candidate_swaps

    zoo, tokenizer, records, data, _ = tiny
    art = train_prior(zoo, {"n_layer": 1, "n_embd": 16, "n_head": 1},
                      PriorTrainConfig(epochs=4, batch_size=4, warmup=1, member_floor=0.05, recombine=2.0,
                                       recombine_tol=1.0, recombine_checks=1000),
                      tokenizer_id=tokenizer.artifact_id, ckpt=tmp_path / "p.pt")
    _, subset, _ = floored(tokenizer, records, data, tol=0.05)
    assert art.config["train"]["steps"] == math.ceil(4 * len(subset) / 4) < math.ceil(4 * len(data) / 4)
    offered = sum(len(candidate_swaps(subset, i)) for i in range(len(subset)))
    assert offered < sum(len(candidate_swaps(data, i)) for i in range(len(data)))  # the weak member offered some
    assert art.provenance["recombine_check"]["candidates"] == offered


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), float("inf")])
def test_the_library_refuses_a_bad_floor(value):
    from igpg_zoo.igpg.prior_train import PriorTrainConfig

    with pytest.raises(GeneratorError, match="member_floor must lie in"):
        PriorTrainConfig(member_floor=value)


@pytest.mark.parametrize("value", ["-0.1", "1.5", "nan"])
def test_the_cli_refuses_a_bad_floor(value, tmp_path, cli):
    result = cli("train", "--stage", "prior", "--member-floor", value, "--registry", tmp_path / "r.db")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --member-floor must lie in [0, 1]")
    assert not (tmp_path / "r.db").exists()
