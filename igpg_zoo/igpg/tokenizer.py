"""The tokenizer front door: a state dict <-> a sequence of codebook tokens, for any adapter architecture.

    tok = Tokenizer.load(zoo)                      # latest "tokenizer" artifact (or artifact_id=N)
    tokens = tok.encode(weights, arch)             # LongTensor (T,), deterministic
    weights = tok.decode(tokens, arch)             # full state dict, loads strictly into build(arch)

The artifact is self-contained: its config holds the ``TokenizerConfig`` and the fitted
``Normalizer``; its tensors are the VQ-VAE's state dict. Decoded buffers (BatchNorm running
statistics) are the adapter's fresh defaults: re-estimate them on data (``export.batchnorm.reestimate``)
before evaluating a BN model.
"""

from __future__ import annotations

from typing import Any

import torch

from igpg_zoo.errors import GeneratorError
from igpg_zoo.igpg.gainshape import GainShapeCodec
from igpg_zoo.igpg.vectorize import Layout, Normalizer, chunk, complete_state_dict, flatten, n_chunks, unchunk, unflatten
from igpg_zoo.igpg.vqvae import ChunkVQVAE, TokenizerConfig

PREFIX = "vqvae."
BUFFER_POLICY = "fresh-defaults"  # decoded BN buffers: running_mean 0, running_var 1 (recalibrate on data)


def build_codec(cfg: TokenizerConfig) -> ChunkVQVAE | GainShapeCodec:
    """The untrained codec of a resolved config ("auto" is decided at training time)."""
    if cfg.codec == "auto":
        raise GeneratorError("tokenizer config has codec 'auto', decided only when training; retrain the tokenizer")
    return GainShapeCodec(cfg) if cfg.codec == "gainshape" else ChunkVQVAE(cfg)


class Tokenizer:
    def __init__(self, model: ChunkVQVAE | GainShapeCodec, normalizer: Normalizer, artifact_id: int | None = None):
        self.model = model.eval()
        self.normalizer = normalizer
        self.artifact_id = artifact_id
        self._layouts: dict[str, Layout] = {}

    # -- persistence ---------------------------------------------------------------------------

    @classmethod
    def load(cls, zoo: Any, artifact_id: int | None = None) -> Tokenizer:
        """The tokenizer stored as artifact ``artifact_id`` (the latest "tokenizer" when None)."""
        artifact = zoo.get_artifact(id=artifact_id, kind="tokenizer")
        if artifact.kind != "tokenizer":
            raise GeneratorError(f"artifact {artifact.id} is a '{artifact.kind}', not a tokenizer; "
                                 "list them with 'igpg-zoo artifacts'")
        return cls.from_state(zoo.load_artifact(artifact), artifact.config, artifact.id)

    @classmethod
    def from_state(cls, tensors: dict[str, torch.Tensor], config: dict, artifact_id: int | None = None) -> Tokenizer:
        try:
            cfg = TokenizerConfig.from_dict(dict(config["tokenizer"]))
            normalizer = Normalizer.from_dict(config["normalizer"])
        except (KeyError, TypeError, ValueError) as exc:
            raise GeneratorError(f"tokenizer artifact config is malformed ({exc}); retrain the tokenizer") from None
        model = build_codec(cfg)
        state = {k[len(PREFIX):]: v for k, v in tensors.items() if k.startswith(PREFIX)}
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise GeneratorError(f"tokenizer tensors do not fit its config ({str(exc).splitlines()[0]}); "
                                 "retrain the tokenizer") from None
        return cls(model, normalizer, artifact_id)

    def state(self) -> tuple[dict[str, torch.Tensor], dict]:
        """(tensors, config) to store as an artifact; ``from_state`` inverts it."""
        tensors = {PREFIX + k: v.detach().clone().contiguous() for k, v in self.model.state_dict().items()}
        config = {"tokenizer": self.config.to_dict(), "normalizer": self.normalizer.to_dict(),
                  "buffers": BUFFER_POLICY, "vocab_size": self.vocab_size}
        return tensors, config

    # -- the API -------------------------------------------------------------------------------

    @property
    def config(self) -> TokenizerConfig:
        return self.model.cfg

    @property
    def vocab_size(self) -> int:
        return self.config.codebook_size

    def layout(self, arch: str) -> Layout:
        if arch not in self._layouts:
            self._layouts[arch] = Layout.of(arch)
        return self._layouts[arch]

    def sequence_length(self, arch: str) -> int:
        """Tokens per model of ``arch``."""
        return n_chunks(self.layout(arch), self.config.chunk_size, self.config.mode) * self.model.chunk_tokens

    def chunks(self, weights: dict[str, torch.Tensor], arch: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised, padded chunks (n, K) and their mask (n, K) for one model."""
        layout = self.layout(arch)
        return chunk(self.normalizer.normalize(flatten(weights, layout)), layout, self.config.chunk_size,
                     self.config.mode)

    @torch.no_grad()
    def encode(self, weights: dict[str, torch.Tensor], arch: str) -> torch.LongTensor:
        """Tokens (T,) of a model; deterministic (eval mode: nearest codes, no noise)."""
        self.model.eval()
        x, _ = self.chunks(weights, arch)
        _, indices, _ = self.model.encode(x)  # (n, L)
        return indices.reshape(-1).long()

    @torch.no_grad()
    def decode_params(self, tokens: torch.Tensor, arch: str) -> dict[str, torch.Tensor]:
        """The generated parameters only (no buffers)."""
        self.model.eval()
        tokens = torch.as_tensor(tokens).long().reshape(-1)
        T = self.sequence_length(arch)
        if tokens.numel() != T:
            raise GeneratorError(f"'{arch}' needs {T} tokens, got {tokens.numel()}")
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) >= self.vocab_size):
            raise GeneratorError(f"token ids must lie in [0, {self.vocab_size}); got {int(tokens.min())}.."
                                 f"{int(tokens.max())}")
        layout = self.layout(arch)
        x_hat = self.model.decode_indices(tokens.view(-1, self.model.chunk_tokens))  # (n, K)
        return unflatten(self.normalizer.denormalize(unchunk(x_hat, layout, self.config.mode)), layout)

    def decode(self, tokens: torch.Tensor, arch: str) -> dict[str, torch.Tensor]:
        """A full state dict for ``arch``: decoded parameters + fresh-default buffers."""
        return complete_state_dict(self.decode_params(tokens, arch), arch)

    def round_trip(self, weights: dict[str, torch.Tensor], arch: str) -> dict[str, torch.Tensor]:
        """decode(encode(weights)) with the original buffers kept (what a stored model would lose)."""
        out = {k: v.clone() for k, v in weights.items()}
        out.update(self.decode_params(self.encode(weights, arch), arch))
        return out

