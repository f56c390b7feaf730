"""Generation front door: condition -> tokens (windowed) -> weights, ranked, with provenance and an
honest novelty report (nearest zoo member, exact token copies).

    from igpg_zoo.igpg.generate import GenerateRequest, Generator, register_generated

    gen = Generator.load(zoo)                     # latest prior (or prior_id=N) + the tokenizer it was trained on
    request = GenerateRequest(arch, task="iris flowers", data=ds, n=5, seed=0)
    results = gen.generate(request)               # list[Generated], best first
    best = results[0]
    best.weights         # full state dict; loads strictly into get_adapter(arch).build(arch)
    best.val_accuracy    # on a sample of the data's training split (None without data)
    best.log_likelihood  # of its tokens under the prior (nats): the data-free ranking
    best.neighbour       # nearest zoo member: id, distance, relative_distance, exact_copy_of, ...
    best.provenance      # prior and tokenizer ids, condition, seed, sampling, head, batchnorm, ranking
    register_generated(zoo, best, request)        # a registry record of kind "generated"

With data, samples are ranked by accuracy on a training sample (best-of-n) and BatchNorm statistics
are re-estimated on it; without, by the prior's likelihood. ``drop_copies`` (on by default) replaces
samples that replay a zoo member token for token by further, hotter rounds of sampling.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg import memory
from igpg_zoo.igpg.conditioning import REQUESTS, Conditioner, requested_level
from igpg_zoo.igpg.heads import HEADS, fit_head, reset_head
from igpg_zoo.igpg.novelty import NeighbourIndex
from igpg_zoo.igpg.prior import Prior, prior_from_artifact
from igpg_zoo.igpg.probe import accuracy_on, build_loaded, check_data_fits, probe_split, split_accuracy
from igpg_zoo.igpg.sampling import SamplingSettings, check_windows, sample_tokens
from igpg_zoo.igpg.tokenizer import Tokenizer

COPY_ROUNDS = 8  # drop_copies: rounds of n samples drawn at most while replacing replays
ROUND_SEED_STRIDE = 1_000_003  # round r samples with seed + r * stride (reproducible from provenance)
HEAT = 0.25  # round r samples at temperature T * min(1 + HEAT * r, MAX_HEAT)
MAX_HEAT = 1.5  # hotter lost accuracy on every pair measured (docs/igpg-prior.md)
MAX_SAMPLES = 1000  # samples per call: each is decoded and scored; more is another call with another seed


@dataclass(frozen=True)
class GenerateRequest:
    """What to generate. Only ``arch`` is required; every default is the default recipe's."""

    arch: str
    task: str | None = None  # task text (the condition); None: missing
    data: object = None  # a Dataset (x_train, y_train, ...): ranks, re-estimates BatchNorm, fits a head
    data_embedding: object = None  # the dataset condition (igpg_zoo.data.embedding)
    dataset_name: str | None = None  # recorded in provenance
    n: int = 5  # samples, returned best first
    seed: int = 0
    sampling: SamplingSettings = field(default_factory=SamplingSettings)
    head: str = "generated"  # heads.HEADS
    drop_copies: bool = True  # replace exact token copies of zoo members by further samples
    quality: str | None = None  # a prior trained with standings: "top" (default) or "any"
    neighbours: bool = True  # report each sample's nearest zoo member
    memory_gb: float | None = None  # memory sampling may use (igpg/memory.py); None: what the machine has free

    def __post_init__(self):
        if not 1 <= self.n <= MAX_SAMPLES:
            raise GeneratorError(f"-n must lie in 1..{MAX_SAMPLES:,}, got {self.n:,}; for more samples generate "
                                 "again with another seed")
        if self.head not in HEADS:
            raise GeneratorError(f"unknown head policy '{self.head}'; use one of {', '.join(HEADS)}")
        if self.head == "fit" and self.data is None:
            raise GeneratorError("head 'fit' solves the classifier on your data: give a dataset or data file")
        if self.memory_gb is not None and not self.memory_gb > 0:
            raise GeneratorError(f"memory_gb must be > 0, got {self.memory_gb}")
        if self.quality is not None and self.quality not in REQUESTS:
            raise GeneratorError(f"unknown quality '{self.quality}'; use one of {', '.join(REQUESTS)}")


@dataclass
class Generated:
    arch: str
    weights: dict[str, torch.Tensor]  # full state dict (buffers included)
    tokens: torch.Tensor  # (T,)
    provenance: dict
    val_accuracy: float | None = None  # on the data sample, when data was given
    log_likelihood: float | None = None  # of its tokens under the prior (nats; the data-free ranking)
    neighbour: dict = field(default_factory=dict)  # nearest zoo member: id, distance, agreement, exact_copy_of


def round_settings(settings: SamplingSettings, r: int) -> SamplingSettings:
    """The sampling settings of round ``r``: the request's in round 0, then hotter, so a prior that
    replays a short model (one near-certain sequence) still yields new ones; capped."""
    return replace(settings, temperature=settings.temperature * min(1.0 + HEAT * r, MAX_HEAT))


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
            ids = self.artifact.provenance.get("snapshot", {}).get("ids") if self.artifact is not None else None
            self._neighbours[arch] = NeighbourIndex.build(self.zoo, self.tokenizer, arch, ids)
        return self._neighbours[arch]

    def condition(self, arch: str, task: str | None, data_embedding=None, quality: str | None = None) -> dict:
        """The prior's condition; for a prior trained with member standings, the standing asked for."""
        cond = self.conditioner.condition(arch, task, data_embedding)
        level = requested_level(self.prior.cfg.quality_levels, quality, self.artifact.id if self.artifact else None)
        if level is not None:
            cond["quality"] = level
        return cond

    def arch_in_training(self, arch: str) -> bool | None:
        """Whether the prior was trained on members of ``arch`` (None: its artifact does not say)."""
        archs = self.artifact.provenance.get("archs") if self.artifact is not None else None
        return None if archs is None else arch in archs

    def sample(self, arch: str, cond: dict, n: int, settings: SamplingSettings, seed: int
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """n raw token sequences (n, T) for ``arch`` and their log-likelihoods under the prior (n,)."""
        return sample_tokens(self.prior, cond, self.tokenizer.sequence_length(arch), n=n, settings=settings,
                             seed=seed, with_logprob=True)

    def draw(self, req: GenerateRequest, cond: dict) -> list[tuple[torch.Tensor, float, int, int]]:
        """Up to ``req.n`` samples as (tokens (T,), log-likelihood, round, index in round).

        With ``drop_copies``, exact token copies of zoo members are dropped and further rounds of ``n`` are drawn
        (round r: seed ``seed + r * ROUND_SEED_STRIDE``, ``round_settings``) until ``n`` remain or
        ``COPY_ROUNDS`` are spent; fewer than ``n`` may come back, none is an error.
        """
        if req.drop_copies and self.zoo is None:
            raise GeneratorError("dropping copies compares samples with the zoo: open a registry")
        kept, replays = [], 0
        for r in range(COPY_ROUNDS if req.drop_copies else 1):
            tokens, logp = self.sample(req.arch, cond, req.n, round_settings(req.sampling, r),
                                       req.seed + r * ROUND_SEED_STRIDE)
            for i in range(req.n):
                if req.drop_copies and self.neighbours(req.arch).exact_copy_of(tokens[i]) is not None:
                    replays += 1
                    continue
                kept.append((tokens[i], float(logp[i]), r, i))
            if len(kept) >= req.n:
                break
        if not kept:
            raise GeneratorError(f"all {replays} samples were exact copies of zoo members: at these settings the "
                                 "prior replays its zoo; raise the temperature, retrieve with `igpg-zoo query`, or "
                                 "allow copies (drop_copies: false in the --config file)")
        return kept[:req.n]

    def check_request(self, req: GenerateRequest) -> None:
        """Refuse, before any sampling, a model longer than the prior's window table or a request whose
        sampling would not fit in memory."""
        length, tcfg = self.tokenizer.sequence_length(req.arch), self.tokenizer.config
        check_windows(self.prior.cfg, length, f"'{req.arch}'",
                      "train a prior on a zoo holding models this long (igpg-zoo train)")
        memory.check(memory.prior_sampling(self.prior.cfg, req.n, length,
                                           length // tcfg.tokens_per_chunk * tcfg.chunk_size), req.memory_gb)

    def generate(self, req: GenerateRequest) -> list[Generated]:
        """``req.n`` models for one condition, best first (see the module docstring)."""
        self.check_request(req)
        x, y = probe_split(req.data) if req.data is not None else (None, None)
        if x is not None:
            check_data_fits(req.arch, x, y)
        cond = self.condition(req.arch, req.task, req.data_embedding, req.quality)
        out = [self._finish(req, cond, tokens, logp, rnd, i, x, y)
               for tokens, logp, rnd, i in self.draw(req, cond)]
        out.sort(key=(lambda g: (-g.val_accuracy, -g.log_likelihood)) if x is not None
                 else (lambda g: -g.log_likelihood))
        return out

    def _finish(self, req: GenerateRequest, cond: dict, tokens, logp: float, rnd: int, i: int, x, y) -> Generated:
        """One sample decoded, its head set, scored and compared with the zoo."""
        weights = self.tokenizer.decode(tokens, req.arch)
        if req.head == "reset":
            weights = reset_head(weights, req.arch, req.seed + rnd * ROUND_SEED_STRIDE + i)
        module = build_loaded(req.arch, weights, x)
        if req.head == "fit":
            fit_head(module, req.arch, x, y)
            weights = {k: v.detach().clone() for k, v in module.state_dict().items()}
        g = Generated(req.arch, weights, tokens, self._provenance(req, cond, rnd, i, x), log_likelihood=logp)
        if x is not None:
            g.val_accuracy = accuracy_on(module, x, y)
        if req.neighbours and self.zoo is not None:
            g.neighbour = self.neighbours(req.arch).nearest(weights, tokens, module, x)
        return g

    def _provenance(self, req: GenerateRequest, cond: dict, rnd: int, i: int, x) -> dict:
        art = self.artifact
        has_bn = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                     for m in get_adapter(req.arch).build(req.arch).modules())
        return {
            "generator": {"prior_artifact_id": art.id if art else None,
                          "tokenizer_artifact_id": self.tokenizer.artifact_id,
                          "recipe": (art.config.get("recipe") or {}).get("name") if art else None},
            "zoo_snapshot_hash": (art.provenance.get("snapshot", {}).get("hash") if art else None),
            "conditioning": {"task": req.task, "dataset": req.dataset_name, "arch": req.arch,
                             "arch_description": get_adapter(req.arch).describe(req.arch),
                             "arch_in_training": self.arch_in_training(req.arch),
                             "quality": (req.quality or "top") if self.prior.cfg.quality_levels else None,
                             "missing": sorted(k for k in ("task", "data", "arch_text", "arch_struct")
                                               if cond.get(k) is None)},
            "seed": req.seed, "sample_round": rnd, "sample_index": i,
            "drop_copies": req.drop_copies,
            "sampling": req.sampling.to_dict(), "temperature_used": round_settings(req.sampling, rnd).temperature,
            "head": req.head,
            "batchnorm": (None if not has_bn else f"re-estimated on {len(x)} training samples" if x is not None
                          else "fresh defaults (no data to re-estimate on)"),
            "ranked_by": "validation accuracy" if x is not None else "prior likelihood",
        }


def register_generated(zoo, g: Generated, req: GenerateRequest):
    """Add ``g`` to the registry as kind "generated"; provenance and novelty go into ``extra``. With data,
    its test-split accuracy is measured and stored (metric ``acc``) beside ``val_acc``."""
    from igpg_zoo.records import CheckpointMeta, Metric

    data, name = req.data, req.dataset_name or (req.data.name if req.data is not None else "")
    metrics = []
    if data is not None:
        metrics.append(Metric("acc", split_accuracy(g.arch, g.weights, data, "test"), f"{name}:test"))
    if g.val_accuracy is not None:
        metrics.append(Metric("val_acc", g.val_accuracy, f"{name}:train-sample"))
    emb = (tuple(float(v) for v in np.asarray(req.data_embedding).ravel())
           if req.data_embedding is not None else None)
    gen = g.provenance["generator"]
    meta = CheckpointMeta(
        arch=g.arch, task=req.task or "", dataset=name or "", metrics=tuple(metrics), kind="generated",
        tags=("generated",), source=f"igpg prior #{gen['prior_artifact_id']}",
        extra={"provenance": g.provenance, "nearest": g.neighbour,
               "generator_artifact_id": gen["prior_artifact_id"]},
        dataset_embedding=emb)
    return zoo.add_weights(g.weights, meta)
