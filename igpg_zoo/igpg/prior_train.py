"""Training the prior: AdamW + cosine schedule over (record, window) batches, DDP under torchrun,
resumable checkpoints, and registration as a generator artifact with its zoo snapshot.

``fit_prior`` is the loop on a TokenSet (no zoo; tests call it directly, also in 2 gloo
processes). ``train_prior`` is the front door: zoo -> records (task-disjoint hold-out) ->
tokens -> curation (igpg/curation, when the recipe asks) -> fit -> ``zoo.add_artifact("prior", ...)``
linked to its tokenizer, with the resolved recipe in its config.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch

from igpg_zoo.errors import ConfigError
from igpg_zoo.igpg import distributed, memory, prior_checkpoint
from igpg_zoo.igpg.prior import Prior, PriorConfig, artifact_name, prior_state
from igpg_zoo.igpg.prior_dataset import TokenSet
from igpg_zoo.igpg.recipe import PRIOR_KEYS, PriorTrainConfig, Recipe
from igpg_zoo.igpg.sampling import check_windows, n_windows

__all__ = ["FitResult", "PriorTrainConfig", "fit_prior", "resolve_steps", "train_prior"]


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
    check_windows(prior.cfg, max(len(t) for t in data.tokens), "the longest training model",
                  "build the prior with a larger max_windows or block_size")
    memory.check(memory.prior_training(prior.cfg, tcfg.batch_size), tcfg.memory_gb, device)
    tcfg = resolve_steps(tcfg, len(data), world)
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


def _data_dim(zoo, records) -> int:
    for r in records:
        emb = zoo.dataset_embedding(r.id)
        if emb is not None:
            return int(len(emb))
    return 0


def resolve_steps(tcfg: PriorTrainConfig, n_sequences: int, world: int = 1) -> PriorTrainConfig:
    """``tcfg`` with ``steps`` set from ``epochs`` (passes over the zoo's sequences) unless given: the
    same memorisation budget for a zoo of any size. The artifact records the resolved steps."""
    if tcfg.steps is not None:
        return tcfg
    return replace(tcfg, steps=max(1, math.ceil(tcfg.epochs * n_sequences / (tcfg.batch_size * max(1, world)))))


def _precheck(ckpt: Path, cfg: PriorConfig, tcfg: PriorTrainConfig, data: TokenSet, run: dict) -> None:
    """Refuse another run's checkpoint before the slow curation; what curation decides is compared
    when the checkpoint loads."""
    from igpg_zoo.igpg.curation import pending

    world = distributed.rank_world()[1]
    identity = prior_checkpoint.run_identity(tcfg, data.ids, world, **run)
    prior_checkpoint.precheck(ckpt, cfg.to_dict(), identity, resolve_steps(tcfg, len(data), world).steps,
                              pending=pending(tcfg))


def _set_up(tokenizer, records: list, data: TokenSet, tcfg: PriorTrainConfig, cfg: PriorConfig,
            resume_from: Path | None, progress) -> tuple[TokenSet, PriorTrainConfig, dict, dict]:
    """What the prior trains on: recombination skipped without finest codes; a checkpoint to resume
    from checked against the run; curation; the steps. Returns (data, tcfg, run identity extras, notes)."""
    notes, run = {}, {"tokenizer_id": tokenizer.artifact_id}
    if tcfg.recombine > 0 and not data.finest_stride:  # recorded as not done: the artifact's config says recombine 0
        tcfg = replace(tcfg, recombine=0.0, recombine_tol=None)
        notes["recombine_skipped"] = "the tokenizer has one code per chunk: no finest residual codes to recombine"
    if resume_from is not None and Path(resume_from).exists():
        _precheck(Path(resume_from), cfg, tcfg, data, run)
    if tcfg.quality or tcfg.recombine_tol is not None:
        from igpg_zoo.igpg.curation import curate

        curated = curate(tokenizer, records, data, tcfg, progress)
        data, run, notes = curated.data, {**run, **curated.run}, {**notes, **curated.notes}
    return data, resolve_steps(tcfg, len(data), distributed.rank_world()[1]), run, notes


def _prior_config(zoo, tokenizer, records: list, recipe: Recipe) -> PriorConfig:
    """The recipe's prior shape with what the zoo decides: vocabulary, conditions, the context (the longest
    model, at most ``PriorConfig.block_size``: longer ones are cut into windows) and the window table (the
    most windows a model needs)."""
    from igpg_zoo.igpg.conditioning import LEVELS, struct_keys_for

    archs = sorted({r.arch for r in records})
    longest = max(tokenizer.sequence_length(a) for a in archs)
    block = min(recipe.prior.get("block_size") or PriorConfig.block_size, longest)
    cfg = recipe.prior_config(block_size=block, vocab_size=tokenizer.vocab_size, struct_keys=struct_keys_for(archs),
                              data_dim=_data_dim(zoo, records), text_dim=int(zoo.embedder.dim),
                              quality_levels=LEVELS if recipe.train.quality else 0)
    need = n_windows(cfg, longest)
    if (recipe.prior.get("max_windows") or need) < need:
        raise ConfigError(f"prior.max_windows {recipe.prior['max_windows']} is too few: the longest model "
                          f"({longest:,} tokens) needs {need} windows of {block}; raise it or drop it from the recipe")
    return replace(cfg, max_windows=recipe.prior.get("max_windows") or need)


def check_memory(zoo, recipe: Recipe, holdout: list[str] = (), filters: dict | None = None, stage: str = "both",
                 device: str | None = None) -> None:
    """Refuse, before any stage trains, what will not fit in memory: the tokenizer stage on the selected
    records, and the prior (shaped by the recipe's tokenizer when that trains first, else by the latest)."""
    import torch

    from igpg_zoo.igpg.prior_dataset import select_records
    from igpg_zoo.igpg.tokenizer import Tokenizer, build_codec
    from igpg_zoo.igpg.vectorize import Layout, n_chunks

    records = select_records(zoo, list(holdout), **(filters or {}))
    layouts = {a: Layout.of(a) for a in {r.arch for r in records}}
    tcfg = recipe.tokenizer.resolved(max((lay.numel for lay in layouts.values()), default=0))  # the codec it will be
    if stage == "prior":
        tokenizer = Tokenizer.load(zoo)
    else:
        per_arch = {a: n_chunks(lay, tcfg.chunk_size, tcfg.mode) for a, lay in layouts.items()}
        chunks = sum(per_arch[r.arch] for r in records)
        memory.check(memory.tokenizer_training(sum(r.n_params for r in records), chunks, tcfg),
                     recipe.train.memory_gb, device)
        with torch.device("meta"):  # the shape the tokenizer will have: sequence lengths and vocabulary
            tokenizer = Tokenizer(build_codec(tcfg), None)
    if stage != "tokenizer":
        cfg = _prior_config(zoo, tokenizer, records, recipe)
        memory.check(memory.prior_training(cfg, recipe.train.batch_size), recipe.train.memory_gb, device)


def train_prior(zoo, recipe: Recipe | None = None, holdout: list[str] = (), filters: dict | None = None,
                tokenizer_id: int | None = None, ckpt: Path | None = None, resume: bool = False, progress=None,
                device: str | None = None, curation_progress=None):
    """Train a prior on the zoo's records (minus held-out tasks) with ``recipe`` (default: the
    ``default`` recipe) and register it; returns the Artifact (None on ranks other than 0 under torchrun).

    ``progress(step, loss)`` follows training, ``curation_progress(done, total)`` the scoring of members.
    """
    from igpg_zoo.igpg.conditioning import Conditioner
    from igpg_zoo.igpg.prior_dataset import build_token_set, select_records
    from igpg_zoo.igpg.tokenizer import Tokenizer

    recipe = recipe or Recipe()
    tokenizer = Tokenizer.load(zoo, tokenizer_id)
    records = select_records(zoo, list(holdout), **(filters or {}))
    cfg = _prior_config(zoo, tokenizer, records, recipe)
    if resume and ckpt is not None:
        cfg = prior_checkpoint.adopt_window_table(Path(ckpt), cfg)
    memory.check(memory.prior_training(cfg, recipe.train.batch_size), recipe.train.memory_gb, device)
    data = build_token_set(zoo, tokenizer, Conditioner(zoo.embedder, cfg.struct_keys, cfg.data_dim), records)
    data, tcfg, run, notes = _set_up(tokenizer, records, data, recipe.train, cfg, ckpt if resume else None,
                                     curation_progress)
    torch.manual_seed(tcfg.seed)
    prior = Prior(cfg)
    result = fit_prior(prior, data, tcfg, ckpt=ckpt, resume=resume, progress=progress, device=device, run=run)
    rank, world = distributed.rank_world()
    if rank != 0:
        return None
    config = {"prior": cfg.to_dict(), "tokenizer_id": tokenizer.artifact_id, "train": asdict(tcfg),
              "recipe": {**recipe.to_dict(), "prior": {k: getattr(cfg, k) for k in PRIOR_KEYS}, "train": asdict(tcfg)},
              "embedder": getattr(zoo.embedder, "name", "?")}
    provenance = {"snapshot": zoo.snapshot(data.ids), "holdout_tasks": list(holdout), "filters": filters or {},
                  "seed": tcfg.seed, "losses": result.losses, "seconds": result.seconds, "world_size": world,
                  "resumed_from": result.resumed_from, "archs": sorted({r.arch for r in records}),
                  "n_params": prior.n_params(), "device": str(torch.device(device or "cpu")), **notes}
    # a re-run of a training that finished (or resumed to the same end) registers its prior once
    return zoo.add_artifact("prior", artifact_name(cfg), prior_state(prior), config, provenance,
                            parent_id=tokenizer.artifact_id, reuse_newest=True)
