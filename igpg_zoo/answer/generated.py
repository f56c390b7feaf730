"""Every call into the IGPG generator the answer makes, in one place.

``covered_archs`` says which architectures the latest trained generator learned; ``draw`` samples
``n`` models for one architecture conditioned on the user's fit part (never the held-out part),
with the generator's own novelty report (nearest member, exact copy). Scoring, replica handling
and the decision live elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from igpg_zoo.answer.sample import UserSample
from igpg_zoo.errors import NotFound


@dataclass
class Draw:
    arch: str
    weights: dict = field(repr=False)
    log_likelihood: float
    nearest: dict[str, Any]  # id, relative_distance, exact_copy_of, ... (the generator's novelty report)
    provenance: dict[str, Any]


def covered_archs(zoo, prior_id: int | None = None) -> list[str]:
    """The architectures the generator was trained on; empty when no generator is stored."""
    try:
        artifact = zoo.get_artifact(id=prior_id, kind="prior")
    except NotFound:
        return []
    return list(artifact.provenance.get("archs") or [])


def draw(zoo, arch: str, sample: UserSample | None, task: str | None, n: int, seed: int,
         prior_id: int | None = None, cache: dict | None = None) -> list[Draw]:
    """``n`` draws for ``arch`` (best first by the generator's own ranking), with their novelty."""
    from igpg_zoo.igpg.generate import Generator

    cache = cache if cache is not None else {}
    gen = cache.get("generator")
    if gen is None:
        gen = cache["generator"] = Generator.load(zoo, prior_id)
    emb = None
    if sample is not None:  # conditioned on the fit part; scoring (and batch norm) is the caller's
        from igpg_zoo.data.embedding import embed_dataset

        emb = cache.get(("embedding", sample.fingerprint))
        if emb is None:
            emb = cache[("embedding", sample.fingerprint)] = embed_dataset(sample.fit_dataset())
    results = gen.generate(arch, task=task, data=None, data_embedding=emb, n=n, seed=seed, head="generated",
                           dataset_name=sample.dataset.name if sample is not None else None, novel=False)
    return [Draw(arch, g.weights, float(g.log_likelihood), dict(g.neighbour or {}), dict(g.provenance))
            for g in results]
