"""Train the chunk VQ-VAE tokenizer on the registry's checkpoints and store it as a versioned artifact.

Two phases: (1) encoder, quantizer and decoder together on the masked reconstruction loss;
(2) ``refine_steps`` decoder-only steps on the codes that the frozen encoder gives in eval mode,
i.e. exactly the tokens ``Tokenizer.encode`` will produce, so the decoder is fitted to what it will
actually see.
"""

from __future__ import annotations

import math
import time
from dataclasses import replace
from typing import Any, Iterable

import torch

from igpg_zoo.errors import GeneratorError, NotFound
from igpg_zoo.igpg.gainshape import KMEANS_ITERS, GainShapeCodec
from igpg_zoo.igpg.quantize import codebook_usage
from igpg_zoo.igpg.tokenizer import Tokenizer
from igpg_zoo.igpg.vectorize import Layout, Normalizer, chunk, flatten
from igpg_zoo.igpg.vqvae import ChunkVQVAE, TokenizerConfig, masked_mse


def build_chunks(items: list[tuple[dict[str, torch.Tensor], str]], cfg: TokenizerConfig
                 ) -> tuple[torch.Tensor, torch.Tensor, Normalizer]:
    """All models' normalised chunks X (N, K), masks M (N, K), and the normaliser fitted on them."""
    layouts = {arch: Layout.of(arch) for _, arch in items}
    vecs = [(flatten(w, layouts[arch]), layouts[arch]) for w, arch in items]
    normalizer = Normalizer(kind=cfg.norm).fit(vecs)
    xs, ms = zip(*(chunk(normalizer.normalize(v), lay, cfg.chunk_size, cfg.mode) for v, lay in vecs))
    return torch.cat(xs), torch.cat(ms), normalizer


def _bar(total: int, progress: bool, desc: str):
    from igpg_zoo.progress import Bar

    return Bar(desc, total=total, unit="steps", enabled=progress)


def _main_phase(model: ChunkVQVAE, X: torch.Tensor, M: torch.Tensor, cfg: TokenizerConfig, steps: int,
                gen: torch.Generator, progress: bool) -> dict[str, float]:
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(steps, 1))))
    parts: dict[str, float] = {}
    model.train()
    with _bar(steps, progress, "tokenizer") as bar:
        for step in range(steps):
            idx = torch.randint(0, X.shape[0], (min(cfg.batch_size, X.shape[0]),), generator=gen)
            loss, _, parts = model(X[idx], M[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            if step % 50 == 0:
                bar.note(f"recon {parts['recon']:.4f}")
    model.eval()
    return parts


def _refine_decoder(model: ChunkVQVAE, X: torch.Tensor, M: torch.Tensor, cfg: TokenizerConfig, steps: int,
                    gen: torch.Generator, progress: bool) -> None:
    """Fit the decoder alone to the eval-mode codes of every chunk (the codebooks decide encoding, so
    they stay fixed)."""
    with torch.no_grad():
        indices = model.encode(X)[1]  # (N, L), fixed: exactly what encode() will give
    opt = torch.optim.Adam(model.decoder_parameters(), lr=cfg.refine_lr)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / max(steps, 1))))
    model.decoder.train()
    with _bar(steps, progress, "decoder refine") as bar:
        for _ in range(steps):
            idx = torch.randint(0, X.shape[0], (min(cfg.batch_size, X.shape[0]),), generator=gen)
            loss = masked_mse(X[idx], model.decode_indices(indices[idx]), M[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
    model.eval()


@torch.no_grad()
def evaluate(model: ChunkVQVAE | GainShapeCodec, X: torch.Tensor, M: torch.Tensor) -> dict[str, float]:
    """Eval-mode reconstruction error (normalised units, and relative to the chunks' energy) and codebook
    usage over all chunks."""
    model.eval()
    _, indices, _ = model.encode(X)
    recon = masked_mse(X, model.decode_indices(indices), M)
    relative = recon / masked_mse(X, torch.zeros_like(X), M).clamp(min=1e-30)
    return {"recon_mse": float(recon), "relative_mse": float(relative),
            **codebook_usage(indices, model.cfg.codebook_size)}


def fit_tokenizer(items: list[tuple[dict[str, torch.Tensor], str]], cfg: TokenizerConfig, seed: int = 0,
                  steps: int | None = None, progress: bool = True, device: str | None = None
                  ) -> tuple[Tokenizer, dict[str, Any]]:
    """Train a tokenizer on in-memory (weights, arch) pairs; returns it (on the CPU) and its training report.

    ``steps`` overrides ``cfg.steps`` and scales ``cfg.refine_steps`` by the same factor. ``device``
    (e.g. "cuda") is where the training runs; batches are drawn on the CPU with the same seeded
    generator wherever it runs.
    """
    if not items:
        raise GeneratorError("no checkpoints to train the tokenizer on; add or build a zoo first")
    cfg = cfg.resolved(max(Layout.of(arch).numel for arch in {a for _, a in items}))
    if cfg.codec == "gainshape":
        return _fit_gainshape(items, cfg, seed)
    if steps is not None:  # a budget override scales both phases, keeping their ratio
        refine = round(cfg.refine_steps * int(steps) / max(cfg.steps, 1))
        cfg = replace(cfg, steps=int(steps), refine_steps=refine)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    X, M, normalizer = build_chunks(items, cfg)
    dev = torch.device(device or "cpu")
    X, M = X.to(dev), M.to(dev)
    model = ChunkVQVAE(cfg).to(dev)
    last = _main_phase(model, X, M, cfg, cfg.steps, gen, progress)
    before = evaluate(model, X, M)
    if cfg.refine_steps > 0:
        _refine_decoder(model, X, M, cfg, cfg.refine_steps, gen, progress)
    report = {"n_models": len(items), "n_chunks": int(X.shape[0]), "steps": cfg.steps, "refine_steps": cfg.refine_steps,
              "train_seconds": round(time.perf_counter() - t0, 2), "last_batch": last,
              "recon_mse_before_refine": before["recon_mse"], **evaluate(model, X, M), "device": str(dev),
              "revived_codes": model.quantizer.revived}
    return Tokenizer(model.cpu(), normalizer), report


def _fit_gainshape(items: list, cfg: TokenizerConfig, seed: int) -> tuple[Tokenizer, dict[str, Any]]:
    """The gain-shape codec: k-means codebooks, no gradient steps (the stored config says 0 steps)."""
    cfg = replace(cfg, steps=0, refine_steps=0)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    X, M, normalizer = build_chunks(items, cfg)
    model = GainShapeCodec(cfg)
    model.fit(X, gen)
    report = {"n_models": len(items), "n_chunks": int(X.shape[0]), "codec": "gainshape", "steps": 0,
              "refine_steps": 0, "kmeans_iters": KMEANS_ITERS, "train_seconds": round(time.perf_counter() - t0, 2),
              **evaluate(model, X, M), "device": "cpu"}
    return Tokenizer(model, normalizer), report


def artifact_name(c: TokenizerConfig) -> str:
    """The registry name of a tokenizer artifact with this config."""
    if c.codec == "gainshape":
        return f"tokenizer-gainshape-k{c.chunk_size}-d{c.sub_dim}-l{c.tokens_per_chunk}-v{c.codebook_size}"
    return f"tokenizer-rvq-k{c.chunk_size}-l{c.tokens_per_chunk}-v{c.codebook_size}"


def _load_items(zoo: Any, ids: Iterable[int] | None) -> tuple[list[int], list[tuple[dict, str]]]:
    records = zoo.get_many(list(ids)) if ids is not None else zoo.list()
    if not records:
        raise NotFound("the registry holds no checkpoints to train the tokenizer on; build a zoo "
                       "('igpg-zoo zoo build --preset demo') or add checkpoints")
    return [r.id for r in records], [(zoo.load_weights(r.id), r.arch) for r in records]


def train_tokenizer(zoo: Any, cfg: TokenizerConfig, ids: list[int] | None = None, seed: int = 0,
                    steps: int | None = None, progress: bool = True, device: str | None = None,
                    recipe: dict | None = None):
    """Train on the registry's checkpoints (all, or ``ids``) and store the result; returns the Artifact.

    The artifact's provenance names the exact zoo snapshot (record ids + content hash) and the seed;
    its config holds ``recipe`` (the resolved training recipe) when given.
    """
    used_ids, items = _load_items(zoo, ids)
    tok, report = fit_tokenizer(items, cfg, seed=seed, steps=steps, progress=progress, device=device)
    tensors, config = tok.state()
    if recipe is not None:  # its tokenizer section as it ran ("auto" decided)
        config["recipe"] = {**recipe, "tokenizer": tok.config.to_dict()} if "tokenizer" in recipe else recipe
    provenance = {"snapshot": zoo.snapshot(used_ids), "seed": seed, "report": report,
                  "archs": sorted({arch for _, arch in items})}
    # a re-run after an interruption trains the same tensors: it registers nothing new, so a resumed
    # prior (whose checkpoint names this tokenizer) still belongs to the same run
    return zoo.add_artifact("tokenizer", artifact_name(tok.config), tensors, config, provenance, reuse_newest=True)
