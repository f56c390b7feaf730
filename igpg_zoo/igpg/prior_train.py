"""Training the prior: AdamW + cosine schedule over (record, window) batches, DDP under torchrun,
resumable checkpoints, and registration as a generator artifact with its zoo snapshot.

``fit_prior`` is the loop on a TokenSet (no zoo; tests call it directly, also in 2 gloo
processes). ``train_prior`` is the front door: zoo -> records (task-disjoint hold-out) ->
tokens -> fit -> ``zoo.add_artifact("prior", ...)`` linked to its tokenizer.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg import distributed, prior_checkpoint
from igpg_zoo.igpg.prior import Prior, PriorConfig
from igpg_zoo.igpg.prior_dataset import TokenSet


@dataclass
class PriorTrainConfig:
    steps: int = 800  # without dropout (BENCHMARKS.md): more replay the zoo, fewer ignore the condition
    batch_size: int = 16
    epochs: float | None = None  # when set, steps = ceil(epochs * sequences / (batch_size * processes))
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    recombine: float = 0.0  # finest codes per sequence swapped for a sibling's, on average (TokenSet.recombined)
    recombine_tol: float | None = None  # only swaps within this accuracy drop on a train sample (recombine_check)
    recombine_checks: int = 64  # swaps checked per record at most (a seeded subset; the rest are not used)
    member_floor: float | None = None  # leave out members this far below their group's median (member_floor)
    quality: bool = False  # condition on each member's standing in its group (member_quality)
    seed: int = 0
    ckpt_every: int = 100
    log_every: int = 25

    def __post_init__(self):
        if not (math.isfinite(self.recombine) and self.recombine >= 0):
            raise GeneratorError(f"recombine must be a finite number >= 0 (swaps per sequence), got {self.recombine}")
        if self.recombine_tol is not None:
            if not (math.isfinite(self.recombine_tol) and 0 <= self.recombine_tol <= 1):
                raise GeneratorError(f"recombine_tol must lie in [0, 1] (an accuracy drop), got {self.recombine_tol}")
            if not self.recombine:
                raise GeneratorError("recombine_tol checks recombined swaps; set recombine > 0 or drop it")
            if self.recombine_checks < 1:
                raise GeneratorError(f"recombine_checks must be >= 1, got {self.recombine_checks}")

        if self.member_floor is not None and not (math.isfinite(self.member_floor) and 0 <= self.member_floor <= 1):
            raise GeneratorError(f"member_floor must lie in [0, 1] (an accuracy gap), got {self.member_floor}")

    def lr_at(self, step: int) -> float:
        if step < self.warmup:
            return self.lr * (step + 1) / self.warmup
        frac = (step - self.warmup) / max(1, self.steps - self.warmup)
        return self.min_lr + 0.5 * (self.lr - self.min_lr) * (1 + math.cos(math.pi * min(1.0, frac)))


@dataclass
class FitResult:
    steps: int
    losses: list[float] = field(default_factory=list)  # mean loss per log interval
    seconds: float = 0.0
    resumed_from: int = 0


def _load_checkpoint(path: Path, prior: Prior, opt, gen, run: dict | None = None, steps: int | None = None,
                     rank: int = 0) -> int:
    """Restore a training checkpoint (``prior_checkpoint.load``)."""
    return prior_checkpoint.load(path, prior, opt, gen, run=run, steps=steps, rank=rank)


def _optimizer(prior: Prior, tcfg: PriorTrainConfig):
    decay = [p for n, p in prior.named_parameters() if p.dim() >= 2]
    rest = [p for n, p in prior.named_parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": tcfg.weight_decay},
                              {"params": rest, "weight_decay": 0.0}], lr=tcfg.lr, betas=(0.9, 0.95))


def fit_prior(prior: Prior, data: TokenSet, tcfg: PriorTrainConfig, ckpt: Path | None = None,
              resume: bool = False, progress=None, device: str | None = None, run: dict | None = None) -> FitResult:
    """Train ``prior`` on ``data`` for ``tcfg.steps`` steps (DDP when a process group exists).

    Every rank draws its own batches (seed + rank); every rank must get the same ``ckpt``, rank 0
    writes it (holding it against a second training) with every rank's random state. ``run`` adds
    to the run's identity (``prior_checkpoint.run_identity``) that ``resume`` checks. ``device``
    (e.g. "cuda") is where the steps run; batches are drawn on the CPU and moved there, and the
    prior is back on the CPU when this returns.
    """
    rank, world = distributed.rank_world()
    run = prior_checkpoint.run_identity(tcfg, data.ids, world, **(run or {}))
    with prior_checkpoint.writer_lock(Path(ckpt) if ckpt is not None and rank == 0 else None):
        return _fit(prior, data, tcfg, Path(ckpt) if ckpt is not None else None, resume, progress, device, run)


def _fit(prior: Prior, data: TokenSet, tcfg: PriorTrainConfig, ckpt: Path | None, resume: bool, progress,
         device: str | None, run: dict) -> FitResult:
    rank, world = distributed.rank_world()
    dev = torch.device(device or "cpu")
    torch.manual_seed(tcfg.seed + rank)  # condition dropout differs per rank; DDP broadcasts the init
    prior.to(dev)
    opt = _optimizer(prior, tcfg)
    gen = torch.Generator().manual_seed(tcfg.seed * 1000 + rank)
    start = 0
    if resume and ckpt is not None and ckpt.exists():
        start = _load_checkpoint(ckpt, prior, opt, gen, run=run, steps=tcfg.steps, rank=rank)
    model = prior
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        gpu = dev.index if dev.index is not None else torch.cuda.current_device() if dev.type == "cuda" else None
        model = DDP(prior, device_ids=[gpu] if gpu is not None else None)
    units = data.windows(prior.cfg)
    result = FitResult(steps=tcfg.steps, resumed_from=start)
    t0, acc, n_acc = time.perf_counter(), 0.0, 0
    prior.train()
    for step in range(start, tcfg.steps):
        loss = _step(model, prior, opt, data, units, tcfg, step, gen, dev)
        acc, n_acc = acc + loss, n_acc + 1
        if (step + 1) % tcfg.log_every == 0 or step + 1 == tcfg.steps:
            result.losses.append(acc / n_acc)
            acc, n_acc = 0.0, 0
        if progress is not None and rank == 0:
            progress(step + 1, loss)
        if ckpt is not None and ((step + 1) % tcfg.ckpt_every == 0 or step + 1 == tcfg.steps):
            ranks = distributed.gather_objects(prior_checkpoint.rng_states(gen, prior))
            if rank == 0:
                prior_checkpoint.save(ckpt, prior, opt, step + 1, tcfg, ranks, run)
    prior.eval().cpu()
    result.seconds = time.perf_counter() - t0
    return result


def _step(model, prior: Prior, opt, data: TokenSet, units, tcfg: PriorTrainConfig, step: int, gen, dev) -> float:
    """One optimiser step on a batch drawn with ``gen``; returns its loss."""
    for group in opt.param_groups:
        group["lr"] = tcfg.lr_at(step)
    picks = torch.randint(len(units), (tcfg.batch_size,), generator=gen).tolist()
    idx, mask, cond = data.batch(prior.cfg, [units[p] for p in picks], tcfg.recombine, gen)
    if dev.type != "cpu":
        idx, mask = idx.to(dev, non_blocking=True), mask.to(dev, non_blocking=True)
        cond = {k: v.to(dev, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in cond.items()}
    _, loss = model(idx, cond, targets=idx, mask=mask)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(prior.parameters(), tcfg.grad_clip)
    opt.step()
    return loss.item()


def artifact_name(cfg: PriorConfig) -> str:
    """The registry name of a prior artifact with this shape."""
    return f"prior-l{cfg.n_layer}-d{cfg.n_embd}-b{cfg.block_size}-v{cfg.vocab_size}"


def prior_state(prior: Prior) -> dict[str, torch.Tensor]:
    """The prior's tensors for the artifact blob (contiguous, CPU)."""
    return {k: v.detach().cpu().contiguous() for k, v in prior.state_dict().items()}


def prior_from_artifact(zoo, artifact) -> Prior:
    """Rebuild a prior from a registry artifact: PriorConfig(**config['prior']) + its tensors."""
    if artifact.kind != "prior":
        raise GeneratorError(f"artifact {artifact.id} is a {artifact.kind}, not a prior; pick a prior artifact "
                             "(see 'igpg-zoo artifacts')")
    if "prior" not in artifact.config:
        raise GeneratorError(f"prior artifact {artifact.id} holds no prior config (not made by 'igpg-zoo train'); "
                             "pick another (see 'igpg-zoo artifacts') or retrain")
    prior = Prior(PriorConfig(**artifact.config["prior"]))
    prior.load_state_dict(zoo.load_artifact(artifact))
    return prior.eval()


def _quality_levels(tcfg: PriorTrainConfig) -> int:
    from igpg_zoo.igpg.member_quality import LEVELS

    return LEVELS if tcfg.quality else 0


def _data_dim(zoo, records) -> int:
    for r in records:
        emb = zoo.dataset_embedding(r.id)
        if emb is not None:
            return int(len(emb))
    return 0


def resolve_steps(tcfg: PriorTrainConfig, n_sequences: int, world: int = 1) -> PriorTrainConfig:
    """``tcfg`` with ``steps`` set from ``epochs`` (passes over the zoo's sequences) when given: the
    same memorisation budget for a zoo of any size. The artifact records the resolved steps."""
    if tcfg.epochs is None:
        return tcfg
    if tcfg.epochs <= 0:
        raise GeneratorError(f"epochs must be > 0, got {tcfg.epochs}")
    steps = max(1, math.ceil(tcfg.epochs * n_sequences / (tcfg.batch_size * max(1, world))))
    return replace(tcfg, steps=steps)


def _checked(tokenizer, records, data: TokenSet, tcfg: PriorTrainConfig, run: dict, progress):
    """``data`` with swaps restricted to the checked ones, and the check's counts; the run's identity
    gains a digest of what was kept."""
    from igpg_zoo.igpg.recombine_check import allowed_digest, check_swaps

    allowed, check = check_swaps(tokenizer, records, data, tcfg.recombine_tol, tcfg.recombine_checks, tcfg.seed,
                                 progress)
    run["recombine_allowed"] = allowed_digest(allowed)
    return data.with_allowed(allowed), check


def _precheck(ckpt: Path, cfg: PriorConfig, tcfg: PriorTrainConfig, data: TokenSet, run: dict) -> None:
    """Refuse another run's checkpoint before the slow set-up (the member floor, the members' standings, the
    recombination check); what they decide (records, labels, swaps kept, hence the steps) is compared when it
    loads."""
    if tcfg.member_floor is None and tcfg.recombine_tol is None and not tcfg.quality:
        return
    pending = (("records",) if tcfg.member_floor is not None else ()) + (
        ("recombine_allowed",) if tcfg.recombine_tol is not None else ()) + (
        ("quality_labels",) if tcfg.quality else ())
    steps = tcfg.steps if tcfg.epochs is None else (  # with --epochs, the steps follow the records the floor keeps
        None if tcfg.member_floor is not None else resolve_steps(tcfg, len(data), distributed.rank_world()[1]).steps)
    identity = prior_checkpoint.run_identity(tcfg, data.ids, distributed.rank_world()[1], **run)
    prior_checkpoint.precheck(ckpt, cfg.to_dict(), identity, steps, pending=pending)


def _set_up(tokenizer, records: list, data: TokenSet, tcfg: PriorTrainConfig, cfg: PriorConfig,
            resume_from: Path | None, floor_progress, check_progress) -> tuple[TokenSet, PriorTrainConfig, dict, dict]:
    """What the prior trains on, in order: recombination skipped without finest codes; a checkpoint to
    resume from checked against the run; the member floor; the members' standings (``quality``); the
    steps from the kept sequences; the recombination check. Returns (data, tcfg, the run's identity extras, provenance notes)."""
    notes, run = {}, {"tokenizer_id": tokenizer.artifact_id}
    if tcfg.recombine > 0 and not data.finest_stride:  # recorded as not done: the artifact's config says recombine 0
        tcfg = replace(tcfg, recombine=0.0, recombine_tol=None)
        notes["recombine_skipped"] = ("the tokenizer has no finest residual codes (rvq with >= 2 stages per chunk) "
                                      "to recombine")
    if resume_from is not None and Path(resume_from).exists():
        _precheck(Path(resume_from), cfg, tcfg, data, run)
    if tcfg.member_floor is not None:
        from igpg_zoo.igpg.member_floor import floored

        records, data, floor = floored(tokenizer, records, data, tcfg.member_floor, tcfg.seed, floor_progress)
        notes["member_floor"] = floor.to_dict()
    if tcfg.quality:
        from igpg_zoo.igpg.member_quality import labelled, labels_digest

        data, quality = labelled(tokenizer, records, data, tcfg.seed, floor_progress)
        run["quality_labels"] = labels_digest(data.quality)
        notes["quality"] = quality.to_dict()
    tcfg = resolve_steps(tcfg, len(data), distributed.rank_world()[1])
    if tcfg.recombine_tol is not None:
        data, check = _checked(tokenizer, records, data, tcfg, run, check_progress)
        notes["recombine_check"] = check.to_dict()
    return data, tcfg, run, notes


def train_prior(zoo, pcfg: dict | None = None, tcfg: PriorTrainConfig = PriorTrainConfig(),
                holdout: list[str] = (), filters: dict | None = None, tokenizer_id: int | None = None,
                ckpt: Path | None = None, resume: bool = False, progress=None, device: str | None = None,
                check_progress=None, floor_progress=None):
    """Train a prior on the zoo's records (minus held-out tasks) and register it; returns the Artifact
    (None on ranks other than 0 under torchrun).

    ``pcfg`` overrides PriorConfig fields (n_layer, n_embd, block_size, ...); vocab_size,
    struct_keys and data_dim come from the tokenizer and the zoo. ``check_progress(done, total)``
    follows the recombination check (``tcfg.recombine_tol``) record by record, ``floor_progress`` the
    scoring of members for ``tcfg.member_floor`` and ``tcfg.quality``.
    """
    from igpg_zoo.igpg.conditioning import Conditioner, struct_keys_for
    from igpg_zoo.igpg.prior_dataset import build_token_set, select_records
    from igpg_zoo.igpg.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(zoo, tokenizer_id)
    records = select_records(zoo, list(holdout), **(filters or {}))
    archs = sorted({r.arch for r in records})
    overrides = dict(pcfg or {})
    longest = max(tokenizer.sequence_length(a) for a in archs)
    block = min(int(overrides.pop("block_size", longest)), longest)
    cfg = PriorConfig(**{"window_context": max(1, block // 4), **overrides, "block_size": block,
                         "vocab_size": tokenizer.vocab_size, "struct_keys": struct_keys_for(archs),
                         "data_dim": _data_dim(zoo, records), "text_dim": int(zoo.embedder.dim),
                         "quality_levels": _quality_levels(tcfg)})
    conditioner = Conditioner(zoo.embedder, cfg.struct_keys, cfg.data_dim)
    data = build_token_set(zoo, tokenizer, conditioner, records)
    data, tcfg, run, notes = _set_up(tokenizer, records, data, tcfg, cfg, ckpt if resume else None, floor_progress,
                                     check_progress)
    torch.manual_seed(tcfg.seed)
    prior = Prior(cfg)
    result = fit_prior(prior, data, tcfg, ckpt=ckpt, resume=resume, progress=progress, device=device, run=run)
    rank, world = distributed.rank_world()
    if rank != 0:
        return None
    config = {"prior": cfg.to_dict(), "tokenizer_id": tokenizer.artifact_id, "train": asdict(tcfg),
              "embedder": getattr(zoo.embedder, "name", "?")}
    provenance = {"snapshot": zoo.snapshot(data.ids), "holdout_tasks": list(holdout), "filters": filters or {},
                  "seed": tcfg.seed, "losses": result.losses, "seconds": result.seconds, "world_size": world,
                  "resumed_from": result.resumed_from, "archs": archs, "n_params": prior.n_params(),
                  "device": str(torch.device(device or "cpu")),
                  **notes}
    return zoo.add_artifact("prior", artifact_name(cfg), prior_state(prior), config, provenance, parent_id=tokenizer.artifact_id)
