"""The prior's condition for a (task, dataset, architecture): ``task`` and ``arch_text`` (sentence
embeddings of the task text and of ``adapter.describe(arch)``), ``data`` (the dataset embedding),
``arch_struct`` (``adapter.structure(arch)`` over ``PriorConfig.struct_keys``, signed-log scaled) and,
for a prior trained with member standings (curation/standings.py), ``quality``: the standing asked for.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.errors import GeneratorError

UNKNOWN, LOWER, TOP = 0, 1, 2  # member standings; UNKNOWN is the null level
LEVELS = 2  # PriorConfig.quality_levels of a prior trained with standings
#: What generation may ask for: the level conditioned on.
REQUESTS = {"top": TOP, "any": UNKNOWN}


def requested_level(prior_levels: int, quality: str | None, prior_id=None) -> int | None:
    """The standing to condition on: None for a prior without standings, else the request's (default "top")."""
    if quality is not None and quality not in REQUESTS:
        raise GeneratorError(f"unknown quality '{quality}'; use one of {', '.join(REQUESTS)}")
    if prior_levels == 0:
        if quality not in (None, "any"):
            raise GeneratorError(f"prior #{prior_id} was not trained with member standings, so it cannot be asked "
                                 f"for '{quality}' members; drop quality or retrain with 'igpg-zoo train --recipe best'")
        return None
    return REQUESTS[quality or "top"]


def struct_vector(features: dict[str, float], keys: list[str]) -> torch.Tensor:
    """Structural features -> (len(keys),) float32, signed log1p."""
    vals = [float(features.get(k, 0.0)) for k in keys]
    return torch.tensor([math.copysign(math.log1p(abs(v)), v) for v in vals], dtype=torch.float32)


def struct_keys_for(archs: list[str]) -> list[str]:
    """The union of structure keys over the architectures, sorted (the prior's struct_keys)."""
    keys: set[str] = set()
    for arch in archs:
        keys.update(get_adapter(arch).structure(arch))
    return sorted(keys)


class Conditioner:
    """Builds condition dicts; caches text embeddings and per-architecture vectors."""

    def __init__(self, embedder, struct_keys: list[str], data_dim: int):
        self.embedder = embedder
        self.struct_keys = list(struct_keys)
        self.data_dim = data_dim
        self._text: dict[str, torch.Tensor] = {}
        self._arch: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    def text(self, texts: list[str]) -> list[torch.Tensor]:
        missing = sorted({t for t in texts if t not in self._text})
        if missing:
            vecs = np.asarray(self.embedder.embed(missing), dtype=np.float32)
            for t, v in zip(missing, vecs):
                self._text[t] = torch.from_numpy(v.copy())
        return [self._text[t] for t in texts]

    def arch(self, arch: str) -> tuple[torch.Tensor, torch.Tensor]:
        if arch not in self._arch:
            adapter = get_adapter(arch)
            (desc,) = self.text([adapter.describe(arch)])
            self._arch[arch] = (desc, struct_vector(adapter.structure(arch), self.struct_keys))
        return self._arch[arch]

    def data(self, embedding) -> torch.Tensor | None:
        if embedding is None or self.data_dim == 0:
            return None
        vec = torch.as_tensor(np.asarray(embedding, dtype=np.float32)).flatten()
        if vec.numel() != self.data_dim:  # another encoder: treat as missing rather than guess
            return None
        return vec

    def condition(self, arch: str, task: str | None, data_embedding=None) -> dict:
        """One unbatched condition: {task, data, arch_text, arch_struct}; None = missing."""
        desc, struct = self.arch(arch)
        task_vec = self.text([task])[0] if task else None
        return {"task": task_vec, "data": self.data(data_embedding), "arch_text": desc,
                "arch_struct": struct if self.struct_keys else None}


def collate(conds: list[dict], cfg_struct_dim: int, data_dim: int, text_dim: int) -> dict:
    """A batch of unbatched conditions -> batched tensors with ``*_present`` masks."""
    dims = {"task": text_dim, "data": data_dim, "arch_text": text_dim, "arch_struct": cfg_struct_dim}
    out: dict = {}
    for name, d in dims.items():
        if d == 0:
            continue
        present = torch.tensor([c.get(name) is not None for c in conds])
        rows = [c[name] if c.get(name) is not None else torch.zeros(d) for c in conds]
        out[name] = torch.stack(rows)  # (B, d)
        out[f"{name}_present"] = present
    return out
