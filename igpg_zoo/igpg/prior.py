"""The IGPG prior: a small GPT over tokenizer codes, conditioned by prefix embeddings.

Each sequence is ``[prefix | weight tokens]``. The prefix has one slot per condition, each
projected to the model width (method doc §5-6):

    task       sentence embedding of the task text                      (text_dim)
    data       dataset embedding (mean-pooled features + descriptor)    (data_dim)
    arch_text  sentence embedding of adapter.describe(arch)             (text_dim)
    arch_struct  structural features, adapter.structure(arch)           (struct_dim)
    window     which window of a long model this is (Algorithm 1)       (index < max_windows, a table sized
               at training time from the data; sampling refuses a window past it)
    quality    the member's standing in its group (``quality_levels`` > 0 only; curation/standings.py)

A missing condition (or one dropped in training, ``cond_dropout``) is replaced by a learned
"null" vector, so the same model samples with any subset of conditions. The loss covers
weight tokens only; ``mask`` marks padding in batches of mixed-length sequences.

Two decode paths: ``forward`` (a whole window, for training) and ``step`` (new tokens after a KV
cache, for sampling). ``prior_from_artifact`` rebuilds a stored prior without any training code.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from igpg_zoo.errors import GeneratorError

#: The prefix slots, in order. ``window`` is an index, the rest are vectors.
COND_VECTORS = ("task", "data", "arch_text", "arch_struct")


@dataclass
class PriorConfig:
    vocab_size: int = 512
    block_size: int = 256  # weight-token positions per window (the context, N_max); train: at most the longest model
    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.1  # at 50 epochs: fewer replays and better single samples than 0 (docs/igpg-prior.md)
    text_dim: int = 384
    data_dim: int = 0  # 0: no dataset condition
    struct_keys: list[str] = field(default_factory=list)  # adapter.structure() keys, in order
    max_windows: int = 64  # rows of the window table; train sets it to the most windows a training model needs
    window_context: int | None = None  # tokens of the previous window that start the next (Algorithm 1);
    # None: a quarter of the context
    cond_dropout: float = 0.1  # per-condition probability of using the null vector in training
    quality_levels: int = 0  # > 0: a prefix slot for the member's standing (level 0 = unknown, the null)

    def __post_init__(self) -> None:
        if self.window_context is None:
            self.window_context = min(max(1, self.block_size // 4), max(0, self.block_size - 1))
        bad = [f"{name} {value} ({rule})" for name, value, ok, rule in (
            ("n_layer", self.n_layer, self.n_layer >= 1, ">= 1"),
            ("n_head", self.n_head, self.n_head >= 1 and self.n_embd % self.n_head == 0, "divides n_embd"),
            ("block_size", self.block_size, self.block_size >= 1, ">= 1"),
            ("max_windows", self.max_windows, self.max_windows >= 1, ">= 1"),
            ("window_context", self.window_context, 0 <= self.window_context < self.block_size, "in 0..block_size-1"),
            ("dropout", self.dropout, 0 <= self.dropout < 1, "in [0, 1)"),
            ("cond_dropout", self.cond_dropout, 0 <= self.cond_dropout < 1, "in [0, 1)")) if not ok]
        if bad:
            raise GeneratorError(f"bad prior setting: {', '.join(bad)}")

    @property
    def struct_dim(self) -> int:
        return len(self.struct_keys)

    @property
    def n_prefix(self) -> int:
        return len(COND_VECTORS) + 1 + (self.quality_levels > 0)

    @property
    def stride(self) -> int:
        """New tokens per window after the first: windows start at multiples of this."""
        return self.block_size - self.window_context

    def to_dict(self) -> dict:
        """The config as saved in checkpoints and artifacts; ``quality_levels`` only when on, so configs
        saved before it existed still match (a resume compares them)."""
        d = asdict(self)
        if not d["quality_levels"]:
            del d["quality_levels"]
        return d


LEGACY_WINDOWS = 64  # the window table's fixed size before training sized it from the data


def window_rows(rows: int, dim: int, std: float = 1.0) -> torch.Tensor:
    """Initial window embeddings (rows, dim): drawn as a table of at least 64 rows (its old fixed size) and
    cut, so a prior whose models need at most 64 windows initialises exactly as it did before."""
    return torch.empty(max(rows, LEGACY_WINDOWS), dim).normal_(0.0, std)[:rows].clone()


# Inside the blocks, layers are applied as functions of their parameters, and submodules through
# ``.forward``: a decoding step of this small model does less arithmetic than nn.Module.__call__'s
# dispatch costs. Same operations, same numbers, so nothing registers hooks on the submodules.
def _linear(m: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, m.weight, m.bias)


def _norm(m: nn.LayerNorm, x: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(x, m.normalized_shape, m.weight, m.bias, m.eps)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = _linear(self.c_attn, x).view(B, T, 3, self.n_head, C // self.n_head).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hs)
        past = 0
        if cache is not None:  # write the new keys/values after the cached ones, attend over all
            past = cache.length
            k, v = cache.append(layer, k, v)  # (B, nh, past+T, hs)
        if past and T > 1:  # new queries sit at the end: causal over them, full view of the past
            mask = torch.ones(T, past + T, dtype=torch.bool, device=x.device).tril(diagonal=past)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            y = F.scaled_dot_product_attention(
                q, k, v, is_causal=T > 1, dropout_p=self.dropout if self.training else 0.0)
        y = _linear(self.c_proj, y.transpose(1, 2).reshape(B, T, C))  # (B, T, C)
        return F.dropout(y, self.dropout) if self.training else y


class KVCache:
    """Keys and values of every layer, preallocated for a whole window: (n_layer, B, nh, T_max, hs).

    Incremental decoding writes each step's keys/values in place (no growing concatenations);
    ``length`` is how many positions are filled, the same for every layer.
    """

    def __init__(self, cfg: PriorConfig, batch: int, device: torch.device | None = None,
                 dtype: torch.dtype = torch.float32):
        shape = (cfg.n_layer, batch, cfg.n_head, cfg.n_prefix + cfg.block_size, cfg.n_embd // cfg.n_head)
        self.k = torch.empty(shape, device=device, dtype=dtype).unbind(0)  # n_layer x (B, nh, T_max, hs)
        self.v = torch.empty(shape, device=device, dtype=dtype).unbind(0)
        self.capacity = shape[3]
        self.length = 0

    def append(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (B, nh, T, hs) keys/values of ``layer`` after the filled ones; return all of them."""
        T = k.size(2)
        if self.length + T > self.capacity:
            raise ValueError(f"KV cache holds {self.capacity} positions; {self.length + T} requested")
        keys, values = self.k[layer], self.v[layer]
        keys.narrow(2, self.length, T).copy_(k)
        values.narrow(2, self.length, T).copy_(v)
        return keys.narrow(2, 0, self.length + T), values.narrow(2, 0, self.length + T)


class MLP(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)
        self.dropout = cfg.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = _linear(self.c_proj, F.gelu(_linear(self.c_fc, x)))
        return F.dropout(y, self.dropout) if self.training else y


class Block(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0) -> torch.Tensor:
        x = x + self.attn.forward(_norm(self.ln_1, x), cache, layer)
        return x + self.mlp.forward(_norm(self.ln_2, x))


class PrefixEncoder(nn.Module):
    """Conditions -> (B, n_prefix, C): one projected slot per condition, null when missing."""

    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        dims = {"task": cfg.text_dim, "data": cfg.data_dim, "arch_text": cfg.text_dim,
                "arch_struct": cfg.struct_dim}
        self.proj = nn.ModuleDict({
            name: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, cfg.n_embd)) for name, d in dims.items() if d > 0
        })
        self.null = nn.Parameter(torch.zeros(len(COND_VECTORS), cfg.n_embd))
        self.window = nn.Embedding(cfg.max_windows, cfg.n_embd, _weight=window_rows(cfg.max_windows, cfg.n_embd))
        self.window.is_window_table = True
        if cfg.quality_levels > 0:
            self.quality = nn.Embedding(cfg.quality_levels + 1, cfg.n_embd)  # row 0: unknown (the null)

    def forward(self, cond: dict, batch: int, device: torch.device) -> torch.Tensor:
        slots = []
        for i, name in enumerate(COND_VECTORS):
            null = self.null[i].expand(batch, -1)  # (B, C)
            vec = cond.get(name)
            if vec is None or name not in self.proj:
                slots.append(null)
                continue
            emb = self.proj[name](vec.to(device=device, dtype=null.dtype))  # (B, C)
            keep = torch.ones(batch, 1, device=device, dtype=torch.bool)
            if f"{name}_present" in cond:  # per-row availability
                keep = cond[f"{name}_present"].to(device).view(batch, 1).bool()
            if self.training and self.cfg.cond_dropout > 0:
                keep = keep & (torch.rand(batch, 1, device=device) >= self.cfg.cond_dropout)
            slots.append(torch.where(keep, emb, null))
        window = cond.get("window")
        if window is None:
            window = torch.zeros(batch, dtype=torch.long, device=device)
        slots.append(self.window(window.to(device)))  # past the table: an IndexError (sampling refuses first)
        if self.cfg.quality_levels > 0:
            slots.append(self.quality(self._quality_levels(cond, batch, device)))
        return torch.stack(slots, dim=1)  # (B, P, C)

    def _quality_levels(self, cond: dict, batch: int, device: torch.device) -> torch.Tensor:
        """(B,) levels in 0..quality_levels; 0 (unknown) when missing or dropped in training."""
        level = cond.get("quality")
        if level is None:
            return torch.zeros(batch, dtype=torch.long, device=device)
        level = torch.as_tensor(level, device=device).long().view(-1).expand(batch).clamp(0, self.cfg.quality_levels)
        if self.training and self.cfg.cond_dropout > 0:
            level = torch.where(torch.rand(batch, device=device) >= self.cfg.cond_dropout, level, 0)
        return level


class Prior(nn.Module):
    def __init__(self, cfg: PriorConfig):
        super().__init__()
        self.cfg = cfg
        self.prefix = PrefixEncoder(cfg)
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.n_prefix + cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList([Block(cfg) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual projections
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding) and getattr(m, "is_window_table", False):
            with torch.no_grad():
                m.weight.copy_(window_rows(m.num_embeddings, m.embedding_dim, std=0.02))
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _embed(self, idx: torch.Tensor, start: int) -> torch.Tensor:
        return F.embedding(idx, self.wte.weight) + self.wpe.weight[start:start + idx.size(1)]  # (B, T, C) + (T, C)

    def forward(self, idx: torch.Tensor, cond: dict, targets: torch.Tensor | None = None,
                mask: torch.Tensor | None = None):
        """idx (B, T) weight tokens of one window; targets (B, T) the same tokens (the model
        predicts token t from the prefix and tokens < t). mask (B, T): 1 where a target counts.

        Returns (logits (B, T, V), loss or None).
        """
        B, T = idx.shape
        if T > self.cfg.block_size:
            raise ValueError(f"window of {T} tokens exceeds the prior's block_size {self.cfg.block_size}")
        P = self.cfg.n_prefix
        prefix = self.prefix(cond, B, idx.device) + self.wpe.weight[:P]  # (B, P, C)
        x = torch.cat([prefix, self._embed(idx[:, :-1], P)], dim=1)  # (B, P+T-1, C)
        x = self.drop(x)
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x[:, P - 1:]))  # (B, T, V): position P-1+t predicts token t
        loss = None
        if targets is not None:
            ce = F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="none")
            if mask is None:
                loss = ce.mean()
            else:
                m = mask.reshape(-1).to(ce.dtype)
                loss = (ce * m).sum() / m.sum().clamp(min=1)
        return logits, loss

    # -- incremental decoding (KV cache) ----------------------------------------------------

    def new_cache(self, batch: int) -> KVCache:
        p = self.lm_head.weight
        return KVCache(self.cfg, batch, p.device, p.dtype)

    def step(self, cond: dict | None, idx: torch.Tensor, cache: KVCache, start: int) -> torch.Tensor:
        """Feed new tokens at window position ``start`` (0 = the prefix is fed with them when
        ``cond`` is given) and return the logits of the next token, (B, V)."""
        B = idx.size(0)
        parts = []
        P = self.cfg.n_prefix
        if cond is not None:
            parts.append(self.prefix(cond, B, idx.device) + self.wpe.weight[:P])
        if idx.size(1):
            parts.append(self._embed(idx, P + start))
        x = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]
        for layer, block in enumerate(self.h):
            x = block.forward(x, cache, layer)
        cache.length += x.size(1)
        return _linear(self.lm_head, _norm(self.ln_f, x[:, -1]))  # (B, V)


# -- artifacts -----------------------------------------------------------------------------------


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
