"""Produce the ONNX file of a local sentence-transformers model, once, from its own weights.

The graph is the model's transformer followed by sentence-transformers' mean pooling and L2
normalisation, so onnxruntime returns the same unit vectors as ``SentenceTransformer.encode(...,
normalize_embeddings=True)``. It starts after the token lookup: its first input is the tokens'
rows of the word-embedding table (``word_table``), which the caller looks up itself. This is the only place that imports torch and transformers for text
embedding; it runs the first time a model is used, and the file is then read from the cache.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

from igpg_zoo.errors import ConfigError

INPUTS = ("inputs_embeds", "attention_mask", "token_type_ids")
OUTPUT = "embedding"
OPSET = 17


def export_onnx(model_path: Path) -> bytes:
    """The serialised ONNX model (transformer + mean pooling + normalisation) of ``model_path``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        model = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot load the text model in {model_path}: {exc}; point 'embedder' at a local "
                          "sentence-transformers model folder") from None

    class MeanPooled(torch.nn.Module):
        def __init__(self, encoder):
            super().__init__()
            self.encoder = encoder

        def forward(self, inputs_embeds, attention_mask, token_type_ids):
            tokens = self.encoder(inputs_embeds=inputs_embeds, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).last_hidden_state  # (B, L, D)
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)  # (B, L, 1)
            summed = (tokens * mask).sum(1)  # (B, D)
            mean = summed / torch.clamp(mask.sum(1), min=1e-9)
            return torch.nn.functional.normalize(mean, p=2, dim=1)

    hidden = int(model.config.hidden_size)
    example = (torch.zeros(2, 5, hidden), torch.ones(2, 5, dtype=torch.long), torch.zeros(2, 5, dtype=torch.long))
    axes = {name: {0: "batch", 1: "tokens"} for name in INPUTS} | {OUTPUT: {0: "batch"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(MeanPooled(model), example, buffer, input_names=list(INPUTS), output_names=[OUTPUT],
                          dynamic_axes=axes, opset_version=OPSET, do_constant_folding=True, dynamo=False)
    return buffer.getvalue()
