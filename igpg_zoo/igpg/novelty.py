"""Is a generated model new, or a replay of a zoo member? Nearest neighbour in weight space,
token overlap (exact copies), and prediction agreement on a probe set.

Distances are over the generated parameters in layout order (buffers excluded), so BN
statistics re-estimated on data do not count as novelty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.igpg.vectorize import Layout, flatten


@dataclass
class NeighbourIndex:
    arch: str
    layout: Layout
    ids: list[int]
    params: torch.Tensor  # (N, P) flat parameters of the zoo members of this arch
    tokens: torch.Tensor  # (N, T) their token sequences
    zoo: object = None

    @classmethod
    def build(cls, zoo, tokenizer, arch: str, ids: list[int] | None = None) -> NeighbourIndex:
        """Every non-generated zoo member of ``arch`` (restricted to ``ids`` when given)."""
        records = [r for r in zoo.list(arch=(arch,)) if r.kind != "generated"]
        if ids is not None:
            wanted = set(ids)
            records = [r for r in records if r.id in wanted] or records
        layout = Layout.of(arch)
        params, tokens = [], []
        for r in records:
            w = zoo.load_weights(r.id)
            params.append(flatten(w, layout))
            tokens.append(tokenizer.encode(w, arch))
        P, T = layout.numel, tokenizer.sequence_length(arch)
        return cls(arch, layout, [r.id for r in records],
                   torch.stack(params) if params else torch.zeros(0, P),
                   torch.stack(tokens) if tokens else torch.zeros(0, T, dtype=torch.long), zoo)

    def __len__(self) -> int:
        return len(self.ids)

    def exact_copy_of(self, tokens: torch.Tensor) -> int | None:
        """The id of a member whose token sequence equals ``tokens``, or None."""
        if not len(self):
            return None
        same = (self.tokens == tokens.view(1, -1)).all(dim=1).nonzero()
        return self.ids[int(same[0])] if len(same) else None

    def nearest(self, weights: dict, tokens: torch.Tensor, module=None, x=None) -> dict:
        """The nearest member: id, L2 distance, distance relative to its norm, the largest share of
        identical tokens with any member, exact-copy id, and prediction agreement on ``x``."""
        if not len(self):
            return {}
        v = flatten(weights, self.layout)
        d = torch.cdist(v.view(1, -1), self.params).flatten()  # (N,)
        i = int(d.argmin())
        share = (self.tokens == tokens.view(1, -1)).float().mean(dim=1)  # (N,)
        out = {"id": self.ids[i], "distance": float(d[i]),
               "relative_distance": float(d[i] / self.params[i].norm().clamp(min=1e-12)),
               "max_token_overlap": float(share.max()), "exact_copy_of": self.exact_copy_of(tokens)}
        if module is not None and x is not None and self.zoo is not None:
            member = get_adapter(self.arch).build(self.arch)
            member.load_state_dict(self.zoo.load_weights(self.ids[i]), strict=True)
            with torch.no_grad():  # the share of x on which both predict the same class
                same = module(x).argmax(1) == member.eval()(x).argmax(1)
            out["prediction_agreement"] = float(same.float().mean())
        return out
