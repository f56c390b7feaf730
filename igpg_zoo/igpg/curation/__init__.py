"""Training-data curation: what the prior is shown beyond the zoo's token sequences, decided by
scoring members on their datasets' training splits. One entry point, ``curate``; the core pipeline
(tokenizer -> prior -> sampling -> generate) never imports this package.

- ``train.quality``: each member's standing in its group, a condition of the prior (standings.py);
- ``train.recombine_tol``: recombination only with swaps that keep the member working (swaps.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from igpg_zoo.igpg.prior_dataset import TokenSet


@dataclass
class Curated:
    data: TokenSet
    run: dict = field(default_factory=dict)  # digests of what was decided: part of the run's identity
    notes: dict = field(default_factory=dict)  # what was done, for the artifact's provenance


def pending(tcfg) -> tuple[str, ...]:
    """The run-identity keys ``curate`` adds for ``tcfg``: unknown before it has run."""
    return (("quality_labels",) if tcfg.quality else ()) + (
        ("recombine_allowed",) if tcfg.recombine_tol is not None else ())


def curate(tokenizer, records: list, data: TokenSet, tcfg, progress=None) -> Curated:
    """``data`` labelled with member standings and restricted to checked swaps, as ``tcfg`` asks.
    ``progress(done, total)`` follows the scoring, record by record."""
    out = Curated(data)
    if tcfg.quality:
        from igpg_zoo.igpg.curation.standings import labelled, labels_digest

        out.data, quality = labelled(tokenizer, records, out.data, tcfg.seed, progress)
        out.run["quality_labels"] = labels_digest(out.data.quality)
        out.notes["quality"] = quality.to_dict()
    if tcfg.recombine_tol is not None and tcfg.recombine > 0:
        from igpg_zoo.igpg.curation.swaps import allowed_digest, check_swaps

        allowed, check = check_swaps(tokenizer, records, out.data, tcfg.recombine_tol, tcfg.recombine_checks,
                                     tcfg.seed, progress)
        out.run["recombine_allowed"] = allowed_digest(allowed)
        out.data = out.data.with_allowed(allowed)
        out.notes["recombine_check"] = check.to_dict()
    return out
