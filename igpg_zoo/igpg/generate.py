"""Generation front door: condition -> tokens (windowed) -> state dict, with provenance and an
honest novelty report (nearest zoo member, exact token copies).

    gen = Generator.load(zoo)                       # latest prior + the tokenizer it was trained on
    results = gen.generate(arch, task="...", data=ds, n=5, seed=0)   # best first when data is given
    results[0].weights                              # loads strictly into get_adapter(arch).build(arch)

Head policy (``head``): ``"generated"`` keeps the sampled classifier; ``"reset"`` re-initialises
``adapter.head_names(arch)`` from the seed; ``"fit"`` (needs data) solves the classifier in closed
form (ridge regression of one-hot labels on the generated body's features over the training
sample). A generated head encodes the label mapping of the zoo task it imitates; on a new task
that mapping may be wrong (docs/igpg-prior.md measures all three).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.adapters.validation import data_mismatch
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.conditioning import Conditioner
from igpg_zoo.igpg.member_quality import requested_level
from igpg_zoo.igpg.novelty import NeighbourIndex
from igpg_zoo.igpg.prior import Prior
from igpg_zoo.igpg.prior_train import prior_from_artifact
from igpg_zoo.igpg.sampling import SamplingSettings, sample_tokens
from igpg_zoo.igpg.tokenizer import Tokenizer
from igpg_zoo.igpg.vectorize import recalibrate_batchnorm

HEADS = ("generated", "reset", "fit")
PROBE = 512  # samples used for choosing (best-of-n), BN recalibration and prediction agreement
NOVEL_ROUNDS = 8  # novel generation: rounds of n samples drawn at most while replacing replays
ROUND_SEED_STRIDE = 1_000_003  # round r of a draw samples with seed + r * stride (reproducible from provenance)
NOVEL_HEAT = 0.25  # round r samples at temperature T * min(1 + NOVEL_HEAT * r, NOVEL_MAX_HEAT)
NOVEL_MAX_HEAT = 1.5  # at 1.75 T mean accuracy fell 9-34 pp below 1.5 T on four full-zoo pairs
MAX_SAMPLES = 1000  # samples per call: each is decoded and scored; more is another call with another seed


def check_sample_count(n: int) -> None:
    """-n must lie in 1..MAX_SAMPLES (a huge n would try to allocate every sequence at once)."""
    if not 1 <= n <= MAX_SAMPLES:
        raise GeneratorError(f"-n must lie in 1..{MAX_SAMPLES:,}, got {n:,}; for more samples run generate again "
                             "with another --seed")


def round_settings(settings: SamplingSettings, r: int) -> SamplingSettings:
    """The sampling settings of novel round ``r``: the user's in round 0, then hotter, so a prior that
    replays a short model (8-12 tokens, one near-certain sequence) still yields new ones; capped."""
    heat = min(1.0 + NOVEL_HEAT * r, NOVEL_MAX_HEAT)
    return replace(settings, temperature=settings.temperature * heat)


@dataclass
class Generated:
    arch: str
    weights: dict[str, torch.Tensor]  # full state dict (buffers included)
    tokens: torch.Tensor  # (T,)
    provenance: dict
    val_accuracy: float | None = None  # on the data sample, when data was given
    log_likelihood: float | None = None  # of its tokens under the prior (nats; the data-free ranking)
    neighbour: dict = field(default_factory=dict)  # nearest zoo member: id, distance, agreement, exact_copy


def probe_split(data, n: int = PROBE, seed: int = 0):
    """A fixed sample of the training split (never the test split): (x, y) tensors."""
    x, y = data.x_train, data.y_train
    if len(y) > n:
        idx = np.random.default_rng(seed).choice(len(y), n, replace=False)
        x, y = x[idx], y[idx]
    return torch.tensor(np.asarray(x), dtype=torch.float32), torch.tensor(np.asarray(y), dtype=torch.long)


@torch.no_grad()
def check_data_fits(arch: str, x: torch.Tensor, y: torch.Tensor) -> None:
    """Refuse data the architecture cannot take (input shape) or label (more classes than outputs)."""
    if why := data_mismatch(get_adapter(arch), arch, tuple(x.shape[1:]), int(y.max()) + 1):
        raise GeneratorError(why)
    module = get_adapter(arch).build(arch).eval()
    try:
        logits = module(x[:2])  # (2, K)
    except RuntimeError:
        raise GeneratorError(f"the data's inputs (shape {tuple(x.shape[1:])}) do not fit '{arch}'; "
                             "pick an architecture whose input matches them") from None
    classes, outputs = int(y.max()) + 1, logits.shape[-1]
    if classes > outputs:
        raise GeneratorError(f"the data has labels up to {classes - 1} but '{arch}' has {outputs} outputs; "
                             f"pick an architecture ending in -o{classes}")


def build_loaded(arch: str, weights: dict[str, torch.Tensor], x=None) -> torch.nn.Module:
    """The adapter's module with ``weights`` loaded strictly; BN statistics re-estimated on ``x``."""
    module = get_adapter(arch).build(arch)
    module.load_state_dict(weights, strict=True)
    if x is not None and recalibrate_batchnorm(module, [x[i:i + 128] for i in range(0, len(x), 128)]):
        for name, t in module.state_dict().items():
            weights[name] = t.detach().clone()
    return module.eval()


@torch.no_grad()
def accuracy_on(module: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((module(x).argmax(1) == y).float().mean())


def reset_head(weights: dict[str, torch.Tensor], arch: str, seed: int) -> dict[str, torch.Tensor]:
    """``weights`` with the classifier (adapter.head_names) replaced by a fresh seeded init."""
    torch.manual_seed(seed)
    fresh = get_adapter(arch).build(arch).state_dict()
    out = dict(weights)
    for name in get_adapter(arch).head_names(arch):
        out[name] = fresh[name].clone()
    return out


@torch.no_grad()
def fit_head(module: torch.nn.Module, arch: str, x: torch.Tensor, y: torch.Tensor, ridge: float = 1e-2) -> None:
    """Set the classifier of ``module`` to the ridge solution on its own penultimate features of ``x``."""
    names = get_adapter(arch).head_names(arch)
    head = module.get_submodule(names[0].rsplit(".", 1)[0])
    if not isinstance(head, torch.nn.Linear):
        raise GeneratorError(f"head '{names[0]}' of '{arch}' is not a linear layer; use --head reset")
    feats = []
    handle = head.register_forward_hook(lambda m, inp, out: feats.append(inp[0].flatten(1)))
    try:
        module(x)
    finally:
        handle.remove()
    F = torch.cat([feats[0], torch.ones(len(x), 1)], dim=1).double()  # (N, D+1)
    Y = torch.nn.functional.one_hot(y.clamp(max=head.out_features - 1), head.out_features).double()  # (N, K)
    A = F.T @ F + ridge * len(x) * torch.eye(F.size(1), dtype=F.dtype)
    W = torch.linalg.solve(A, F.T @ Y)  # (D+1, K)
    head.weight.copy_(W[:-1].T.float())
    if head.bias is not None:
        head.bias.copy_(W[-1].float())


class Generator:
    def __init__(self, zoo, prior: Prior, tokenizer: Tokenizer, prior_artifact=None):
        self.zoo, self.prior, self.tokenizer = zoo, prior, tokenizer
        self.artifact = prior_artifact
        cfg = prior.cfg
        self.conditioner = Conditioner(zoo.embedder if zoo is not None else None, cfg.struct_keys, cfg.data_dim)
        self._neighbours: dict[str, NeighbourIndex] = {}

    @classmethod
    def load(cls, zoo, prior_id: int | None = None) -> Generator:
        """The prior artifact ``prior_id`` (latest when None) and the tokenizer it was trained on."""
        artifact = zoo.get_artifact(id=prior_id, kind="prior")
        prior = prior_from_artifact(zoo, artifact)
        trained_with = artifact.config.get("embedder")
        if trained_with and getattr(zoo.embedder, "name", trained_with) != trained_with:
            raise GeneratorError(f"prior #{artifact.id} was trained with text embedder '{trained_with}' but this "
                                 f"registry uses '{zoo.embedder.name}'; set the embedder back or retrain the prior")
        tokenizer = Tokenizer.load(zoo, artifact.config.get("tokenizer_id"))
        if tokenizer.vocab_size != prior.cfg.vocab_size:
            raise GeneratorError(f"prior #{artifact.id} expects {prior.cfg.vocab_size} codes but tokenizer "
                                 f"#{tokenizer.artifact_id} has {tokenizer.vocab_size}; retrain the prior")
        return cls(zoo, prior, tokenizer, artifact)

    def neighbours(self, arch: str) -> NeighbourIndex:
        if arch not in self._neighbours:
            ids = None
            if self.artifact is not None:
                ids = self.artifact.provenance.get("snapshot", {}).get("ids")
            self._neighbours[arch] = NeighbourIndex.build(self.zoo, self.tokenizer, arch, ids)
        return self._neighbours[arch]

    def condition(self, arch: str, task: str | None, data_embedding=None, quality: str | None = None) -> dict:
        """The prior's condition; for a prior trained with member standings, the standing asked for
        (``quality``: "top", the default, or "any"; member_quality.REQUESTS)."""
        cond = self.conditioner.condition(arch, task, data_embedding)
        level = requested_level(self.prior.cfg.quality_levels, quality, self.artifact.id if self.artifact else None)
        if level is not None:
            cond["quality"] = level
        return cond

    def quality_asked(self, quality: str | None) -> str | None:
        """What ``condition`` asks of this prior: None when it has no standing slot."""
        return (quality or "top") if self.prior.cfg.quality_levels else None

    def sample(self, arch: str, cond: dict, n: int, settings: SamplingSettings, seed: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """n raw token sequences (n, T) for ``arch`` and their log-likelihoods under the prior (n,)."""
        length = self.tokenizer.sequence_length(arch)
        return sample_tokens(self.prior, cond, length, n=n, settings=settings, seed=seed, with_logprob=True)

    def arch_in_training(self, arch: str) -> bool | None:
        """Whether the prior was trained on members of ``arch`` (None: its artifact does not say)."""
        archs = self.artifact.provenance.get("archs") if self.artifact is not None else None
        return None if archs is None else arch in archs

    def is_replay(self, arch: str, tokens: torch.Tensor, min_distance: float = 0.0) -> bool:
        """An exact token copy of a zoo member, or (``min_distance`` > 0) decoded parameters closer to one
        than ``min_distance`` of its norm."""
        nb = self.neighbours(arch)
        if nb.exact_copy_of(tokens) is not None:
            return True
        return min_distance > 0 and nb.relative_distance(self.tokenizer.decode_params(tokens, arch)) < min_distance

    def draw(self, arch: str, cond: dict, n: int, settings: SamplingSettings, seed: int, novel: bool = False,
             min_distance: float = 0.0, max_rounds: int = NOVEL_ROUNDS) -> list[tuple[torch.Tensor, float, int, int]]:
        """Up to ``n`` samples as (tokens (T,), log-likelihood, round, index in round).

        ``novel``: replays (``is_replay``) are dropped and further rounds of ``n`` are drawn (round r
        uses seed ``seed + r * ROUND_SEED_STRIDE`` and ``round_settings(settings, r)``: hotter) until
        ``n`` remain or ``max_rounds`` are spent; fewer than ``n`` may come back, none is an error.
        """
        if novel and self.zoo is None:
            raise GeneratorError("novel generation compares samples with the zoo: open a registry")
        kept: list[tuple[torch.Tensor, float, int, int]] = []
        replays = 0
        for r in range(max_rounds if novel else 1):
            tokens, logp = self.sample(arch, cond, n, round_settings(settings, r), seed + r * ROUND_SEED_STRIDE)
            for i in range(n):
                if novel and self.is_replay(arch, tokens[i], min_distance):
                    replays += 1
                    continue
                kept.append((tokens[i], float(logp[i]), r, i))
            if len(kept) >= n:
                break
        if not kept:
            near = f" or within {min_distance:g} of their norm" if min_distance > 0 else ""
            raise GeneratorError(f"all {replays} samples were exact copies of zoo members{near}: at these settings the "
                                 "prior replays its zoo; raise --temperature, lower --min-distance, retrieve with "
                                 "`igpg-zoo query`, or pass --allow-copies")
        return kept[:n]

    def generate(self, arch: str, task: str | None = None, data=None, data_embedding=None, n: int = 1,
                 settings: SamplingSettings = SamplingSettings(), seed: int = 0, head: str = "generated",
                 dataset_name: str | None = None, novelty: bool = True, novel: bool = False,
                 min_distance: float = 0.0, quality: str | None = None) -> list[Generated]:
        """``n`` models for one condition, best first: with ``data`` ranked by accuracy on a training
        sample (best-of-n), otherwise by the prior's own likelihood of their tokens (the sample the
        prior is surest of). ``novel`` drops replays of zoo members: exact token copies, and samples
        nearer to a member than ``min_distance`` of its norm (see ``draw``). ``quality``: the member
        standing asked of a prior trained with ``--quality`` (``condition``)."""
        if head not in HEADS:
            raise GeneratorError(f"unknown head policy '{head}'; use one of {', '.join(HEADS)}")
        check_sample_count(n)
        if head == "fit" and data is None:
            raise GeneratorError("--head fit solves the classifier on your data: give --dataset or --data")
        if min_distance < 0:
            raise GeneratorError(f"min_distance must be >= 0, got {min_distance}")
        x, y = probe_split(data) if data is not None else (None, None)
        if x is not None:
            check_data_fits(arch, x, y)
        cond = self.condition(arch, task, data_embedding, quality)
        out = []
        for tokens, logp, rnd, i in self.draw(arch, cond, n, settings, seed, novel, min_distance):
            weights = self.tokenizer.decode(tokens, arch)
            if head == "reset":
                weights = reset_head(weights, arch, seed + rnd * ROUND_SEED_STRIDE + i)
            module = build_loaded(arch, weights, x)
            if head == "fit":
                fit_head(module, arch, x, y)
                weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
            g = Generated(arch, weights, tokens, self._provenance(arch, task, dataset_name, settings, seed,
                                                                  (rnd, i), head, cond, x is not None,
                                                                  min_distance if novel else None, quality))
            g.log_likelihood = logp
            if x is not None:
                g.val_accuracy = accuracy_on(module, x, y)
            if novelty and self.zoo is not None:
                g.neighbour = self.neighbours(arch).nearest(weights, tokens, module, x)
            out.append(g)
        out.sort(key=(lambda g: (-g.val_accuracy, -g.log_likelihood)) if data is not None
                 else (lambda g: -g.log_likelihood))
        return out

    def _provenance(self, arch, task, dataset_name, settings, seed, where, head, cond, x_given, novel_min,
                    quality=None) -> dict:
        art = self.artifact
        return {
            "generator": {"prior_artifact_id": art.id if art else None,
                          "tokenizer_artifact_id": self.tokenizer.artifact_id},
            "zoo_snapshot_hash": (art.provenance.get("snapshot", {}).get("hash") if art else None),
            "conditioning": {"task": task, "dataset": dataset_name, "arch": arch,
                             "arch_description": get_adapter(arch).describe(arch),
                             "arch_in_training": self.arch_in_training(arch),
                             "quality": self.quality_asked(quality),
                             "missing": sorted(k for k in ("task", "data", "arch_text", "arch_struct")
                                               if cond.get(k) is None)},
            "seed": seed, "sample_round": where[0], "sample_index": where[1],
            "novel_only": novel_min is not None, "min_distance": novel_min,
            "sampling": settings.to_dict(), "temperature_used": round_settings(settings, where[0]).temperature,
            "head": head,
            "ranked_by": "validation accuracy" if x_given else "prior likelihood",
        }


def test_accuracy(g: Generated, data) -> float:
    """Accuracy of a generated model on the test split of ``data``."""
    module = build_loaded(g.arch, dict(g.weights))
    x = torch.tensor(np.asarray(data.x_test), dtype=torch.float32)
    return accuracy_on(module, x, torch.tensor(np.asarray(data.y_test), dtype=torch.long))


def register_generated(zoo, g: Generated, task: str | None, dataset: str | None, data=None, data_embedding=None):
    """Add ``g`` to the registry as kind "generated"; provenance and novelty go into ``extra``."""
    from igpg_zoo.records import CheckpointMeta, Metric

    metrics = []
    if data is not None:
        metrics.append(Metric("acc", test_accuracy(g, data), f"{dataset or data.name}:test"))
    if g.val_accuracy is not None:
        metrics.append(Metric("val_acc", g.val_accuracy, f"{dataset or (data.name if data else '')}:train-sample"))
    emb = tuple(float(v) for v in np.asarray(data_embedding).ravel()) if data_embedding is not None else None
    gen = g.provenance["generator"]
    meta = CheckpointMeta(
        arch=g.arch, task=task or "", dataset=dataset or "", metrics=tuple(metrics), kind="generated",
        tags=("generated",), source=f"igpg prior #{gen['prior_artifact_id']}",
        extra={"provenance": g.provenance, "nearest": g.neighbour,
               "generator_artifact_id": gen["prior_artifact_id"]},
        dataset_embedding=emb)
    return zoo.add_weights(g.weights, meta)
