"""Peak-memory estimates of the generator's training and sampling, checked before anything large is allocated.

An estimate counts what dominates: the prior's parameters (with gradients and AdamW's two moments in
training), the activations a batch of windows keeps for the backward pass (attention scores grow with
the square of the context), the logits, and for sampling the KV cache of the samples drawn together.
``check`` compares it with the memory free on the device (``MemAvailable`` of /proc/meminfo, or the
GPU's free memory) or with an explicit limit (``memory_gb`` in the training recipe or the generate
config) and refuses in one line naming the fix. Where the free memory cannot be read, nothing is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from igpg_zoo.errors import GeneratorError

GIB = 2 ** 30
FLOAT = 4
#: floats kept per token per layer for the backward pass (residual, norms, q/k/v, attention output,
#: projections, the 4x MLP twice, dropout masks, their gradients), attention-sized arrays per head per
#: layer (scores, probabilities, dropout mask, their product) and torch's own working memory: fitted to
#: the peak resident memory of training steps on the CPU (contexts 128-1,024, batches 8-64), rounded up
ACT_PER_TOKEN, ACT_PER_SCORE, WORKING = 40, 4, 256 * 2 ** 20


@dataclass(frozen=True)
class Estimate:
    what: str  # "prior training", "sampling", ...
    parts: dict[str, int]  # bytes per part
    fix: str  # what to change when it does not fit

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def _gib(n: float) -> str:
    return f"{n / GIB:.2f} GiB" if n < 100 * GIB else f"{n / GIB:,.0f} GiB"


def prior_params(cfg) -> int:
    """Parameters of a prior of ``cfg``, counted on the meta device (nothing allocated, no random draws)."""
    import torch

    from igpg_zoo.igpg.prior import Prior

    with torch.device("meta"):
        return Prior(cfg).n_params()


def prior_training(cfg, batch: int) -> Estimate:
    """One training step of a prior of ``cfg`` on ``batch`` windows (float32)."""
    P, S, T = prior_params(cfg), cfg.n_prefix + cfg.block_size, cfg.block_size
    return Estimate("prior training", {
        "working memory": WORKING,
        "parameters, gradients and AdamW state": 4 * P * FLOAT,
        "activations": batch * S * cfg.n_layer * (ACT_PER_TOKEN * cfg.n_embd + ACT_PER_SCORE * cfg.n_head * S) * FLOAT,
        "logits": 3 * batch * T * cfg.vocab_size * FLOAT,
    }, "lower prior.block_size or train.batch_size in the recipe (--config FILE.yaml), or set train.memory_gb there "
       "if the estimate is wrong")


def prior_sampling(cfg, n: int, length: int, model_params: int = 0) -> Estimate:
    """Sampling ``n`` sequences of ``length`` tokens together (KV cache over a window), then decoding one
    model of ``model_params`` parameters at a time."""
    P, S = prior_params(cfg), cfg.n_prefix + cfg.block_size
    context = cfg.n_prefix + cfg.window_context  # fed at once at the start of a window
    return Estimate("sampling", {
        "working memory": WORKING,
        "prior": P * FLOAT,
        "KV cache": 2 * cfg.n_layer * n * S * cfg.n_embd * FLOAT,
        "window start": n * context * (ACT_PER_TOKEN * cfg.n_embd + ACT_PER_SCORE * cfg.n_head * S) * FLOAT,
        "logits and tokens": 4 * n * cfg.vocab_size * FLOAT + 2 * n * length * 8,
        "decoded model": 4 * model_params * FLOAT,
    }, "ask for fewer samples (-n) per call, or set memory_gb in the generate --config if the estimate is wrong")


def tokenizer_training(n_params: int, n_chunks: int, cfg) -> Estimate:
    """The tokenizer stage on models of ``n_params`` parameters in all, cut into ``n_chunks`` chunks (``cfg``:
    its TokenizerConfig): the weights as loaded, flattened and normalised, the chunks and their masks, the
    VQ-VAE with Adam's state, a batch."""
    import torch

    from igpg_zoo.igpg.vqvae import ChunkVQVAE

    with torch.device("meta"):
        P = sum(p.numel() for p in ChunkVQVAE(cfg).parameters())
    return Estimate("tokenizer training", {
        "working memory": WORKING,
        "zoo weights": 4 * n_params * FLOAT,
        "chunks": 2 * n_chunks * cfg.chunk_size * (FLOAT + 1),
        "tokenizer and Adam state": 4 * P * FLOAT,
        "batch": 8 * cfg.batch_size * (sum(cfg.hidden) + cfg.chunk_size + cfg.code_dim) * FLOAT,
    }, "train on fewer records (--only, --holdout-task) or set train.memory_gb in the recipe if the estimate is wrong")


def available(device: str | None = None) -> int | None:
    """Bytes free for a new allocation on ``device`` (None or "cpu": MemAvailable; "cuda[:N]": the GPU's
    free memory); None when it cannot be read."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check(est: Estimate, limit_gb: float | None = None, device: str | None = None) -> Estimate:
    """``est`` when it fits ``limit_gb`` (None: the memory free on ``device``), else a one-line refusal."""
    limit = limit_gb * GIB if limit_gb is not None else available(device)
    if limit is not None and est.total > limit:
        big = max((k for k in est.parts if k != "working memory"), key=est.parts.get)
        where = f"the {limit_gb:g} GiB limit set" if limit_gb is not None else f"the {_gib(limit)} free"
        raise GeneratorError(f"{est.what} would need about {_gib(est.total)} (most of it {big}, "
                             f"{_gib(est.parts[big])}), more than {where}; {est.fix}")
    return est
