"""A filter's allowed ids prepared for the vector index, and the few recent ones kept.

A filtered search needs, besides the query, what the allowed ids mean inside the index: which live
rows they are (a mask), which groups (distinct vectors) hold at least one of them, and either those
groups' vectors side by side (scored with one matrix-vector product) or a bitmap of their positions
in FAISS's storage (for a scan that scores only them). Building that costs more than the search
itself once a filter passes thousands of records, so the index keeps it for the last few filters,
keyed by the filter, until the index changes (``VectorIndex._forget`` clears it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np

KEPT_FILTERS = 8  # prepared filters kept per index ...
KEPT_BYTES = 64 * 2**20  # ... up to this many bytes of vectors, masks and bitmaps in all
VECTORS_BYTES = 16 * 2**20  # a kept filter holds its groups' vectors up to this size (else a bitmap scan)


@dataclass
class Allowed:
    """The allowed ids of one search, in the index's terms."""

    mask: np.ndarray  # (live rows,) bool: the row's id is allowed
    labels: np.ndarray  # groups holding an allowed id, ascending
    vectors: np.ndarray | None = None  # (len(labels), dim) the groups' vectors, when gathered
    bitmap: np.ndarray | None = None  # packed bits over FAISS storage positions, when built

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.mask, self.labels, self.vectors, self.bitmap) if a is not None)


def prepare(rows: np.ndarray, n_rows: int, groups: np.ndarray) -> Allowed | None:
    """``rows``: the live rows of the allowed ids; ``groups``: the group of every live row."""
    if len(rows) == 0:
        return None
    mask = np.zeros(n_rows, dtype=bool)
    mask[rows] = True
    present = np.zeros(int(groups.max()) + 1, dtype=bool)
    present[groups[rows]] = True
    return Allowed(mask, np.flatnonzero(present).astype(np.int64))


class KeptFilters:
    """Prepared ``Allowed`` of recent filters, least recently used dropped first."""

    def __init__(self, max_filters: int = KEPT_FILTERS, max_bytes: int = KEPT_BYTES):
        self.max_filters, self.max_bytes = max_filters, max_bytes
        self._kept: OrderedDict[Hashable, Allowed | None] = OrderedDict()

    def get(self, key: Hashable):
        """The kept entry (an ``Allowed``, or None for a filter that allows nothing) or ``KeyError``."""
        found = self._kept[key]
        self._kept.move_to_end(key)
        return found

    def put(self, key: Hashable, allowed: Allowed | None) -> None:
        self._kept[key] = allowed
        self._kept.move_to_end(key)
        while len(self._kept) > self.max_filters or self.nbytes > self.max_bytes:
            self._kept.popitem(last=False)

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self._kept.values() if a is not None)

    def clear(self) -> None:
        self._kept.clear()


def best(labels: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best-scoring labels (and any tied with the k-th), best first, ties in label order."""
    pick = np.arange(len(scores))
    if len(scores) > k:
        pick = np.flatnonzero(scores >= np.partition(scores, len(scores) - k)[len(scores) - k])
    pick = pick[np.argsort(-scores[pick], kind="stable")]
    return labels[pick], scores[pick]
