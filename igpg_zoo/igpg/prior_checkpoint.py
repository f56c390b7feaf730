"""Resumable checkpoints of prior training (``--checkpoint`` / ``--resume``).

A checkpoint holds the model, the optimiser, the step, the prior config, the training config, the
run's identity (records trained on, tokenizer, seed, batch, schedule, world size) and every rank's
random state, so ``--resume`` continues the same run bit-exactly and refuses a file another run
wrote. One training at a time writes a checkpoint file (an advisory lock beside it, released when
the process ends, however it ends). Read with ``weights_only=True`` only.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path

import torch

from igpg_zoo.errors import GeneratorError

CHECKPOINT_KEYS = {"model", "optim", "step", "config", "rng", "torch_rng"}
RUN_KEYS = ("seed", "batch_size", "lr", "min_lr", "warmup", "weight_decay", "grad_clip")


def run_identity(tcfg, record_ids, world: int, **extra) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint (``--steps`` may grow)."""
    recombine = getattr(tcfg, "recombine", 0.0)  # named only when on: checkpoints from before it resume with 0
    tol = getattr(tcfg, "recombine_tol", None)
    checked = {"recombine_tol": tol, "recombine_checks": tcfg.recombine_checks} if tol is not None else {}
    return {**{k: getattr(tcfg, k) for k in RUN_KEYS}, **({"recombine": recombine} if recombine else {}), **checked,
            "records": sorted(int(i) for i in record_ids), "world_size": int(world), **extra}


def rng_states(gen: torch.Generator, prior) -> dict:
    """This process's random states: the batch generator, torch's CPU generator, the GPU's when used."""
    w = prior.lm_head.weight
    return {"rng": gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(w.device) if w.is_cuda else None}


def save(path: Path, prior, opt, step: int, tcfg, ranks: list[dict], run: dict) -> None:
    """Write the checkpoint atomically; ``ranks``: ``rng_states`` of every rank, rank 0 first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    own = ranks[0]
    cuda = {"cuda_rng": own["cuda_rng"]} if own["cuda_rng"] is not None else {}
    torch.save({"model": prior.state_dict(), "optim": opt.state_dict(), "step": step,
                "config": prior.cfg.to_dict(), "train": asdict(tcfg), "rng": own["rng"],
                "torch_rng": own["torch_rng"], **cuda, "ranks": ranks, "run": run}, tmp)
    tmp.replace(path)


def _read(path: Path) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file, or one needing code to unpickle: both refused
        raise GeneratorError(f"cannot resume from {path}: not a prior training checkpoint "
                             f"({type(exc).__name__}); delete it or pass another --checkpoint") from None
    if not isinstance(state, dict) or not CHECKPOINT_KEYS <= state.keys():
        raise GeneratorError(f"cannot resume from {path}: not a prior training checkpoint; "
                             "delete it or pass another --checkpoint")
    return state


def _check_run(path: Path, state: dict, cfg: dict, run: dict | None, steps: int | None) -> None:
    if state["config"] != cfg:
        raise GeneratorError(
            f"checkpoint {path} was made with another prior config; delete it or start without --resume")
    saved = state.get("run")
    if run is not None and saved is not None and saved != run:
        keys = sorted(k for k in run.keys() | saved.keys() if run.get(k) != saved.get(k))
        raise GeneratorError(f"checkpoint {path} belongs to another run (different {', '.join(keys)}: other "
                             "records, hold-out, filters or options); resume with the options it was started "
                             "with, pass another --checkpoint, or start without --resume")
    if steps is not None and int(state["step"]) > steps:
        raise GeneratorError(f"checkpoint {path} is already at step {int(state['step'])}, past the {steps} asked "
                             f"for; ask for at least {int(state['step'])} steps or start without --resume")


def adopt_window_table(path: Path, cfg):
    """``cfg`` with the window table of the checkpoint at ``path`` when that is all they differ in and it is
    large enough: checkpoints written before the table was sized from the data (64 rows) still resume."""
    if not path.exists():
        return cfg
    saved = _read(path)["config"]
    rows = saved.get("max_windows") if isinstance(saved, dict) else None
    if isinstance(rows, int) and rows >= cfg.max_windows and {**saved, "max_windows": cfg.max_windows} == cfg.to_dict():
        return replace(cfg, max_windows=rows)
    return cfg


def precheck(path: Path, cfg: dict, run: dict, steps: int | None, pending: tuple[str, ...] = ()) -> None:
    """Refuse a checkpoint another run wrote before slow set-up work; ``pending``: run keys not known yet
    (compared later, by ``load``)."""
    state = _read(path)
    saved = state.get("run")
    if saved is not None:
        state = {**state, "run": {k: v for k, v in saved.items() if k not in pending}}
    _check_run(path, state, cfg, {k: v for k, v in run.items() if k not in pending}, steps)


def load(path: Path, prior, opt, gen: torch.Generator, run: dict | None = None, steps: int | None = None,
         rank: int = 0) -> int:
    """Restore ``prior``, ``opt`` and this rank's random states from ``path``; returns the step."""
    state = _read(path)
    _check_run(path, state, prior.cfg.to_dict(), run, steps)
    prior.load_state_dict(state["model"])
    opt.load_state_dict(state["optim"])
    ranks = state.get("ranks") or [{"rng": state["rng"], "torch_rng": state["torch_rng"],
                                    "cuda_rng": state.get("cuda_rng")}]
    own = ranks[rank] if rank < len(ranks) else ranks[0]  # an old single-state checkpoint: rank 0's
    gen.set_state(own["rng"])
    torch.set_rng_state(own["torch_rng"])  # condition dropout and dropout draw from it (on the CPU)
    if own.get("cuda_rng") is not None and prior.lm_head.weight.is_cuda:  # ... or from the GPU's generator
        torch.cuda.set_rng_state(own["cuda_rng"], prior.lm_head.weight.device)
    return int(state["step"])


@contextmanager
def writer_lock(path: Path | None):
    """Hold ``path`` for writing: a second training on the same checkpoint is a one-line error."""
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GeneratorError(f"another training is writing checkpoint {path}; wait for it to finish or "
                                 "pass another --checkpoint") from None
        yield
    finally:
        os.close(fd)
