"""The prior on synthetic token sequences: overfit + exact regeneration, windows, conditions, cache."""

from __future__ import annotations

import pytest
import torch

from igpg_zoo.igpg.prior import Prior, PriorConfig
from igpg_zoo.igpg.prior_dataset import TokenSet, is_held_out
from igpg_zoo.igpg.prior_train import PriorTrainConfig, fit_prior
from igpg_zoo.igpg.sampling import SamplingSettings, n_windows, pick, sample_tokens, window_bounds

TEXT = 16  # small "text" vectors keep the tests fast


def _cfg(**kw) -> PriorConfig:
    base = dict(vocab_size=16, block_size=32, n_layer=2, n_head=2, n_embd=64, text_dim=TEXT, data_dim=4,
                struct_keys=["depth", "width"], window_context=8, cond_dropout=0.0, dropout=0.0)
    base.update(kw)
    return PriorConfig(**base)


def _token_set(n: int, length: int, vocab: int, seed: int = 0) -> TokenSet:
    g = torch.Generator().manual_seed(seed)
    tokens = [torch.randint(vocab, (length,), generator=g) for _ in range(n)]
    conds = [{"task": torch.randn(TEXT, generator=g), "data": torch.randn(4, generator=g),
              "arch_text": torch.ones(TEXT), "arch_struct": torch.tensor([1.0, 2.0])} for _ in range(n)]
    return TokenSet(tokens, conds, list(range(n)))


def _fit(cfg: PriorConfig, data: TokenSet, steps: int) -> Prior:
    prior = Prior(cfg)
    fit_prior(prior, data, PriorTrainConfig(steps=steps, batch_size=8, lr=3e-3, warmup=10, log_every=10))
    return prior


GREEDY = SamplingSettings(temperature=0.0)


class Recomputing:
    """The no-cache baseline decoder: every step runs the whole window through ``Prior.forward``."""

    def __init__(self, prior: Prior, cond: dict, context: torch.Tensor):
        self.prior, self.cond, self.seq = prior, cond, context
        self.logits = self._next()

    def _next(self) -> torch.Tensor:
        idx = torch.cat([self.seq, torch.zeros(self.seq.size(0), 1, dtype=torch.long)], dim=1)  # (B, t+1)
        return self.prior(idx, self.cond)[0][:, -1]  # (B, V): the logits after the t fed tokens

    def feed(self, tok: torch.Tensor) -> None:
        self.seq = torch.cat([self.seq, tok.view(-1, 1)], dim=1)
        self.logits = self._next()


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def overfit():
    data = _token_set(4, 24, 16)
    return _fit(_cfg(), data, 150), data


def test_overfits_and_regenerates_exactly_at_temperature_zero(overfit):
    prior, data = overfit
    for tokens, cond in zip(data.tokens, data.conds):
        out = sample_tokens(prior, cond, len(tokens), settings=GREEDY)
        assert torch.equal(out[0], tokens)


def test_conditions_change_the_output(overfit):
    prior, data = overfit
    a = sample_tokens(prior, data.conds[0], 24, settings=GREEDY)[0]
    b = sample_tokens(prior, data.conds[1], 24, settings=GREEDY)[0]
    assert (a != b).float().mean() > 0.5


def test_missing_conditions_still_sample(overfit):
    prior, data = overfit
    cond = dict(data.conds[0], task=None, data=None)
    out = sample_tokens(prior, cond, 24, n=3, settings=SamplingSettings(temperature=1.0), seed=1)
    assert out.shape == (3, 24) and int(out.max()) < 16


def test_kv_cache_matches_recomputation(overfit):
    prior, data = overfit
    s = SamplingSettings(temperature=1.0, top_k=8)
    cached = sample_tokens(prior, data.conds[2], 24, n=2, settings=s, seed=7)
    plain = sample_tokens(prior, data.conds[2], 24, n=2, settings=s, seed=7, decoder=Recomputing)
    assert torch.equal(cached, plain)


def test_sample_log_likelihood_is_the_priors_own_teacher_forced_one(overfit):
    prior, data = overfit
    s = SamplingSettings(temperature=1.5, top_k=8)  # the score ignores the sampling settings
    tokens, logp = sample_tokens(prior, data.conds[1], 24, n=3, settings=s, seed=2, with_logprob=True)
    plain, plain_logp = sample_tokens(prior, data.conds[1], 24, n=3, settings=s, seed=2, with_logprob=True,
                                      decoder=Recomputing)
    assert torch.equal(tokens, plain) and torch.allclose(logp, plain_logp, atol=1e-4)
    cond = {k: v.view(1, -1).expand(3, -1) for k, v in data.conds[1].items()}
    cond["window"] = torch.zeros(3, dtype=torch.long)
    with torch.no_grad():
        logits, _ = prior(tokens, cond)
    forced = logits.log_softmax(-1).gather(2, tokens.unsqueeze(2)).squeeze(2).sum(1)  # (3,)
    assert torch.allclose(logp, forced, atol=1e-3)
    _, train_logp = sample_tokens(prior, data.conds[1], 24, n=1, settings=GREEDY, with_logprob=True)
    noise = torch.randint(0, prior.cfg.vocab_size, (1, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        noise_logits, _ = prior(noise, {k: v[:1] for k, v in cond.items()})
    noise_logp = noise_logits.log_softmax(-1).gather(2, noise.unsqueeze(2)).sum()
    assert float(train_logp[0]) > float(noise_logp) + 10  # the memorised sequence is far likelier than noise


@pytest.mark.parametrize("settings, support", [
    (SamplingSettings(), {0, 1, 2, 3}),
    (SamplingSettings(top_k=2), {0, 1}),
    (SamplingSettings(top_p=0.7), {0, 1}),  # 0.5 + 0.25 reaches 0.7; token 2 starts past it
    (SamplingSettings(min_p=0.3), {0, 1, 2}),  # floor 0.15
    (SamplingSettings(min_p=0.5), {0, 1}),  # floor 0.25
    (SamplingSettings(min_p=0.6), {0}),
    (SamplingSettings(temperature=0.0), {0}),
])
def test_truncation_keeps_exactly_the_tokens_it_should(settings, support):
    probs = torch.tensor([0.5, 0.25, 0.15, 0.1])
    logits = probs.log().expand(4000, -1)  # (B, V): one row per draw
    drawn = pick(logits, settings, torch.Generator().manual_seed(0))
    assert set(drawn.tolist()) == support


@pytest.mark.parametrize("kwargs", [{"temperature": -1}, {"top_k": 0}, {"top_p": 0}, {"top_p": 1.5},
                                    {"min_p": 1.0}, {"min_p": -0.1}])
def test_bad_sampling_settings_are_refused_in_one_line(kwargs):
    from igpg_zoo.errors import GeneratorError

    with pytest.raises(GeneratorError, match="bad sampling setting") as err:
        SamplingSettings(**kwargs)
    assert "\n" not in str(err.value)


def test_seed_makes_sampling_reproducible(overfit):
    prior, data = overfit
    s = SamplingSettings(temperature=1.0, top_p=0.9)
    assert torch.equal(sample_tokens(prior, data.conds[0], 24, n=2, settings=s, seed=3),
                       sample_tokens(prior, data.conds[0], 24, n=2, settings=s, seed=3))


@pytest.mark.parametrize("length, expected", [(10, 1), (32, 1), (33, 2), (56, 2), (57, 3), (100, 4)])
def test_window_count(length, expected):
    cfg = _cfg()  # block 32, context 8 -> stride 24
    assert n_windows(cfg, length) == expected
    start, end = window_bounds(cfg, expected - 1, length)
    assert end == length and start < length


def test_windowed_generation_reproduces_a_sequence_longer_than_the_context():
    cfg = _cfg(block_size=16, window_context=4)  # stride 12
    data = _token_set(2, 40, 16, seed=1)  # 3 windows each
    assert n_windows(cfg, 40) == 3
    prior = _fit(cfg, data, 200)
    for tokens, cond in zip(data.tokens, data.conds):
        assert torch.equal(sample_tokens(prior, cond, 40, settings=GREEDY)[0], tokens)


def test_window_longer_than_block_is_refused():
    prior = Prior(_cfg(block_size=8, window_context=2))
    with pytest.raises(ValueError, match="block_size"):
        prior(torch.zeros(1, 9, dtype=torch.long), {})


def test_loss_ignores_masked_positions():
    prior = Prior(_cfg())
    idx = torch.randint(16, (2, 32))
    mask = torch.ones(2, 32)
    mask[:, 20:] = 0
    _, loss_a = prior(idx, {}, targets=idx, mask=mask)
    idx2 = idx.clone()
    idx2[:, 21:] = (idx2[:, 21:] + 1) % 16  # change only masked targets (and inputs after them)
    _, loss_b = prior(idx2, {}, targets=idx2, mask=mask)
    assert torch.allclose(loss_a, loss_b)


@pytest.mark.parametrize("task, holdout, expected", [
    ("digits 3 vs 5", ["digits 3 vs 5"], True),
    ("Digits 3 vs 5", ["digits 3 vs 5"], True),
    ("digits 3 vs 5", ["digits 2*"], False),
    ("digits 2 vs 7", ["digits 2*"], True),
    ("fashion", [], False),
    ("digits[classes=3,5,8][n=120]", ["digits[classes=3,5,8]*"], True),
    ("digits[classes=3,5,8]", ["digits[classes=2,5,8]"], False),
    ("digits[classes=5]", ["digits[classes=3,5,8]"], False),
])
def test_holdout_matching(task, holdout, expected):
    assert is_held_out(task, holdout) is expected


@pytest.mark.parametrize("epochs, n, batch, world, steps", [(50, 100, 16, 1, 313), (2, 100, 16, 1, 13),
                                                            (2, 100, 16, 2, 7), (0.01, 10, 16, 1, 1)])
def test_epochs_set_the_step_count_from_the_zoo_size(epochs, n, batch, world, steps):
    from igpg_zoo.igpg.prior_train import PriorTrainConfig, resolve_steps

    assert resolve_steps(PriorTrainConfig(epochs=epochs, batch_size=batch), n, world).steps == steps


def test_epochs_must_be_positive():
    from igpg_zoo.errors import ConfigError
    from igpg_zoo.igpg.prior_train import PriorTrainConfig

    with pytest.raises(ConfigError, match="epochs"):
        PriorTrainConfig(epochs=0)


@pytest.mark.parametrize("split", [
    (24,),           # the whole window in one call (prefix + every token)
    (1,) * 24,       # one token per step, as sampling does
    (5, 1, 7, 11),   # several tokens after a filled cache: the masked path
])
def test_cached_steps_give_the_full_forward_logits(overfit, split):
    prior, data = overfit
    prior.eval()
    tokens, cond = data.tokens[0].view(1, -1), {k: v.view(1, -1) for k, v in data.conds[0].items()}
    with torch.no_grad():
        full, _ = prior(torch.cat([tokens, tokens[:, :1]], dim=1), cond)  # (1, 25, V): logits for positions 0..24
        cache, start, got = prior.new_cache(1), 0, []
        for i, size in enumerate(split):
            got.append(prior.step(cond if i == 0 else None, tokens[:, start:start + size], cache, start))  # (1, V)
            start += size
    ends = [sum(split[:i + 1]) for i in range(len(split))]  # logits of the token after each call
    assert cache.length == prior.cfg.n_prefix + 24
    for end, logits in zip(ends, got):
        torch.testing.assert_close(logits[0], full[0, end], rtol=1e-4, atol=1e-5)


def test_the_kv_cache_refuses_more_positions_than_it_holds(overfit):
    prior, _ = overfit
    cache = prior.new_cache(2)
    shape = (2, prior.cfg.n_head, prior.cfg.n_prefix + prior.cfg.block_size + 1, prior.cfg.n_embd // prior.cfg.n_head)
    with pytest.raises(ValueError, match="KV cache holds"):
        cache.append(0, torch.zeros(shape), torch.zeros(shape))
