"""The chunk VQ-VAE: a chunk of K normalised weights -> L tokens from a codebook of V codes -> K weights.

IGPG's tokenizer is a 2-D conv VQGAN over 12,288-float chunks reshaped to 3x64x64. Our zoos hold
0.1-5k-parameter models, so a chunk is 32-128 floats: an MLP over the chunk sees every value at once
(a flat weight vector has no spatial locality for convolutions to exploit) and trains in
milliseconds per step on 2 CPU cores. A chunk's code vector is quantized by L residual stages (the
first coarse, the last finest), so a model of n chunks is a sequence of n * L tokens (chunk by chunk).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

import torch
from torch import nn

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.quantize import ResidualQuantizer

ANY = object()
#: Removed options and the value that meant what the code does now (ANY: options of a removed
#: quantizer, any value); a stored config with another value is refused.
RETIRED = {"rvq_stacked": False, "scale_weighting": 0.0, "sensitivity": 0.0, "sensitivity_cap": 100.0,
           "align": False, "encode_search": 0, "search_candidates": ANY, "quantizer": "rvq",
           "kl_weight": ANY, "tau_start": ANY, "tau_end": ANY, "anchor": False, "direct_codes": True}
ADDED = {"codec": "vqvae", "sub_dim": 8, "mode": "layer", "norm": "global"}  # what configs before them meant
CODECS = ("auto", "vqvae", "gainshape")
#: "auto" picks the gain-shape codec (gainshape.py) when the zoo's largest model has this many parameters
#: or more, with these settings; below it the chunk VQ-VAE (docs/igpg-tokenizer.md, section 7)
GAINSHAPE_FROM = 20_000
GAINSHAPE = {"chunk_size": 64, "tokens_per_chunk": 4, "sub_dim": 8, "mode": "tensor", "norm": "none"}


@dataclass
class TokenizerConfig:
    codec: str = "auto"  # "vqvae" (this module) | "gainshape" (gainshape.py) | "auto": by model size
    chunk_size: int = 128  # K: floats per chunk
    tokens_per_chunk: int = 4  # L: residual stages
    mode: str = "layer"  # chunks never cross a "layer" (vqvae) or a "tensor" (gainshape)
    norm: str = "global"  # "global": one (mean, std) over the zoo; "none" (gainshape codes each chunk's gain)
    sub_dim: int = 8  # gainshape: floats per shape sub-vector
    code_dim: int = 128
    codebook_size: int = 1024  # V, the prior's vocabulary
    hidden: tuple[int, ...] = (1024, 1024)
    ema_decay: float = 0.99
    commitment: float = 0.25
    steps: int = 3000
    batch_size: int = 256
    lr: float = 3e-3
    refine_steps: int = 30000  # decoder-only steps on frozen codes
    refine_lr: float = 3e-3
    extra: dict = field(default_factory=dict)  # free-form notes carried into the artifact

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        for name in ("chunk_size", "tokens_per_chunk", "code_dim", "codebook_size", "batch_size", "sub_dim"):
            if int(getattr(self, name)) < 1:
                raise GeneratorError(f"TokenizerConfig.{name} must be >= 1, got {getattr(self, name)}")
        for name, allowed in (("codec", CODECS), ("mode", ("layer", "tensor")), ("norm", ("global", "none"))):
            if getattr(self, name) not in allowed:
                raise GeneratorError(f"unknown tokenizer {name} '{getattr(self, name)}'; use one of "
                                     f"{', '.join(allowed)}")

    def resolved(self, largest: int) -> TokenizerConfig:
        """This config with "auto" decided for a zoo whose largest model has ``largest`` parameters; for the
        gain-shape codec, the ``GAINSHAPE`` settings a recipe left at their defaults."""
        if self.codec != "auto":
            return self
        if largest < GAINSHAPE_FROM:
            return replace(self, codec="vqvae")
        default = TokenizerConfig()
        return replace(self, codec="gainshape", **{k: v for k, v in GAINSHAPE.items()
                                                   if getattr(self, k) == getattr(default, k)})

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> TokenizerConfig:
        known = {f.name for f in fields(cls)}
        d = ADDED | {k: v for k, v in d.items()
                     if not (k in RETIRED and RETIRED[k] in (ANY, v))}  # options since removed, set as the code does now
        unknown = sorted(set(d) - known)
        if unknown:
            raise GeneratorError(f"tokenizer config has keys {unknown} this igpg-zoo does not know (an option "
                                 "removed since, or one of a newer igpg-zoo); retrain the tokenizer")
        return cls(**d)


def mlp(sizes: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def masked_mse(x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the real (unpadded) positions only: padding never enters the loss."""
    m = mask.to(x.dtype)
    return ((x_hat - x) * m).pow(2).sum() / m.sum().clamp(min=1)


class ChunkVQVAE(nn.Module):
    def __init__(self, cfg: TokenizerConfig):
        super().__init__()
        self.cfg = cfg
        L, D = cfg.tokens_per_chunk, cfg.code_dim
        self.encoder = mlp([cfg.chunk_size, *cfg.hidden, D])  # one code vector per chunk, quantized L stages deep
        self.decoder = mlp([D, *reversed(cfg.hidden), cfg.chunk_size])
        self.quantizer = ResidualQuantizer(D, cfg.codebook_size, L, decay=cfg.ema_decay, commitment=cfg.commitment)
        # token (stage l, code v) -> a K-vector added to the output, zero at the start
        self.direct = nn.Embedding(L * cfg.codebook_size, cfg.chunk_size)
        nn.init.zeros_(self.direct.weight)

    @property
    def chunk_tokens(self) -> int:
        return self.cfg.tokens_per_chunk

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Chunks (N, K) -> (z_q (N, D): what the decoder reads, indices (N, L), quantizer loss)."""
        return self.quantizer(self.encoder(x))

    def direct_term(self, indices: torch.Tensor) -> torch.Tensor:
        """Sum over a chunk's L tokens of their direct output vectors: (N, L) -> (N, K)."""
        offsets = torch.arange(indices.shape[1], device=indices.device) * self.cfg.codebook_size  # (L,)
        return self.direct(indices + offsets).sum(1)

    def decoder_parameters(self) -> list[nn.Parameter]:
        """What the refine phase fits: the decoder MLP and the direct vectors."""
        return list(self.decoder.parameters()) + list(self.direct.parameters())

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Tokens (N, L) -> chunks (N, K)."""
        return self.decoder(self.quantizer.lookup(indices)) + self.direct_term(indices)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Returns (loss, indices, parts): masked reconstruction + quantizer loss.

        Padded positions are zeroed on the way in and masked on the way out, so whatever they hold
        changes neither the loss nor any gradient.
        """
        x = x * mask.to(x.dtype)
        z_q, indices, q_loss = self.encode(x)
        recon = masked_mse(x, self.decoder(z_q) + self.direct_term(indices), mask)
        return recon + q_loss, indices, {"recon": float(recon.detach()), "q": float(q_loss.detach())}
