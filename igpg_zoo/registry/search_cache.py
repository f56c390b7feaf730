"""Keeps the FAISS index (a cache) in step with the vectors in the database.

The database is the truth. After a write the index is updated; if that fails, the write stands,
a warning says so and ``reindex`` repairs it. Before the first search of a session the index is
checked against the database ids and rebuilt, with a warning, when it is out of step.

Filtered searches keep the ids that pass each recent filter (``PassingIds``): a record's filtered
fields (architecture, dataset, task, kind, tags, metrics) never change once it is stored, so the
list stays right until this registry object adds, removes or rebuilds, which clears it. It is as
fresh as the index itself, which is checked against the database once per session.
"""

from __future__ import annotations

import warnings
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from igpg_zoo.registry.filters import Filters

if TYPE_CHECKING:
    from igpg_zoo.registry.store import CheckpointStore

OVERFETCH = 20  # a filtered search first takes this many times k of the best unfiltered hits
MIN_CANDIDATES = 200
# a filter whose ids are kept and that would pass fewer than NARROW x k of the candidates goes straight
# to the search within its ids (exact, its preparation kept by the index) instead of checking candidates
NARROW = 8
AMONG_CHUNK = 2000  # candidate ids per SQL check
PASSING_FILTERS = 32  # filters whose passing ids are kept ...
PASSING_IDS = 4_000_000  # ... up to this many ids in all (32 MB)


class PassingIds:
    """The ids passing recent filters, least recently used dropped first, and the filters seen once."""

    def __init__(self, max_filters: int = PASSING_FILTERS, max_ids: int = PASSING_IDS):
        self.max_filters, self.max_ids = max_filters, max_ids
        self._kept: OrderedDict[Filters, np.ndarray] = OrderedDict()
        self._seen: OrderedDict[Filters, None] = OrderedDict()

    def get(self, filters: Filters) -> np.ndarray | None:
        found = self._kept.get(filters)
        if found is not None:
            self._kept.move_to_end(filters)
        return found

    def seen_before(self, filters: Filters) -> bool:
        """Whether ``filters`` were asked for before (since the last clear); remembers them."""
        seen = filters in self._seen
        self._seen[filters] = None
        self._seen.move_to_end(filters)
        while len(self._seen) > 4 * self.max_filters:
            self._seen.popitem(last=False)
        return seen

    def put(self, filters: Filters, ids: np.ndarray) -> None:
        if len(ids) > self.max_ids:
            return
        self._kept[filters] = ids
        self._kept.move_to_end(filters)
        while len(self._kept) > self.max_filters or sum(len(v) for v in self._kept.values()) > self.max_ids:
            self._kept.popitem(last=False)

    def clear(self) -> None:
        self._kept.clear()
        self._seen.clear()


class SearchCache:
    """The VectorIndex of one registry, opened lazily."""

    def __init__(self, store: CheckpointStore, path: Path, approx_threshold: int):
        self.store = store
        self.path = Path(path)
        self.approx_threshold = approx_threshold
        self._index = None
        self._checked = False  # checked against the database in this session
        self.passing = PassingIds()

    def index(self, dim: int):
        from igpg_zoo.search.index import VectorIndex

        if self._index is None or self._index.dim != dim:
            self._index = VectorIndex(self.path, dim, self.approx_threshold)
            self._checked = False
            self.passing.clear()
        return self._index

    def synced(self, dim: int):
        """The index, checked against the database once per session and rebuilt when out of step."""
        index = self.index(dim)
        if not self._checked:
            with index.files.lock():  # not while another process replaces the files
                ids = self.store.embedded_ids()
                if not index.matches(ids):
                    files = self.path.exists() or self.path.with_name(self.path.name + ".json").exists()
                    if len(ids) and files and not _behind(index, ids):
                        warnings.warn(f"search index {self.path} is out of step with the database; rebuilding "
                                      f"it from the {len(ids)} stored vectors", stacklevel=4)
                    self.rebuild(dim)
                self._checked = True
        return index

    def search(self, q: np.ndarray, k: int, filters: Filters) -> list[tuple[int, float]]:
        """The k best (id, score) among records passing ``filters``; call ``synced`` first.

        The best unfiltered candidates (a few hundred ids) are checked against the filter; when
        fewer than k pass, the search runs within every id passing the filter. The first time a
        filter is seen the candidates are checked in SQL and its ids read only if needed; from the
        second time on, its ids are read once and kept, both steps run in memory, and a filter
        expected to pass fewer than ``NARROW`` x k of the candidates goes straight to the search within
        its ids, which the index prepares once per filter and keeps (search/allowed.py).
        """
        index = self._index
        if filters.empty:
            return index.search(q, k, None)
        allowed = self.passing.get(filters)
        if allowed is None and self.passing.seen_before(filters):
            allowed = self._passing_ids(filters)
        total = len(index)
        fetch = min(total, max(MIN_CANDIDATES, OVERFETCH * k))
        if allowed is not None and len(allowed) * fetch < NARROW * k * total:  # few candidates would pass
            return index.search(q, k, allowed, key=filters) if len(allowed) else []
        candidates = index.search(q, fetch, None)
        ids = np.asarray([i for i, _ in candidates], dtype=np.int64)
        if allowed is None:
            keep = np.isin(ids, self._select(filters, ids.tolist()))
        else:
            keep = np.isin(ids, allowed, assume_unique=True)
        hits = [h for h, kept in zip(candidates, keep, strict=True) if kept][:k]
        if len(hits) == k or fetch >= total:
            return hits
        if allowed is None:
            allowed = self._passing_ids(filters)
        return index.search(q, k, allowed, key=filters) if len(allowed) else []

    def _passing_ids(self, filters: Filters) -> np.ndarray:
        """Every id passing ``filters`` (sorted), kept for the next searches with the same filters."""
        ids = self._select(filters)
        self.passing.put(filters, ids)
        return ids

    def _select(self, filters: Filters, among: list[int] | None = None) -> np.ndarray:
        """The ids (sorted) passing ``filters``, only those ``among`` these if given: one plain SQL statement."""
        from sqlalchemy import select

        from igpg_zoo.registry.db import CheckpointRow
        from igpg_zoo.registry.filter_sql import where_filters

        chunks = [None] if among is None else [among[i:i + AMONG_CHUNK] for i in range(0, len(among), AMONG_CHUNK)]
        found: list[int] = []
        with self.store.db.session_scope() as session:
            connection = session.connection()
            for chunk in chunks:  # each chunk may appear once per subquery: stay far below SQLite's 32,766 variables
                stmt = where_filters(select(CheckpointRow.id), filters, chunk)  # no ORDER BY: sorted here, cheaper
                found += connection.execute(stmt).scalars().all()
        return np.sort(np.asarray(found, dtype=np.int64))

    def rebuild(self, dim: int | None = None) -> int:
        """Rebuild from the stored vectors and save; returns the number of vectors."""
        from igpg_zoo.search.index_files import IndexFiles

        with IndexFiles(self.path).lock():
            ids, vectors = self.store.vectors()
            dim = int(vectors.shape[1]) if len(ids) else dim
            if dim is None:
                return 0
            index = self.index(dim)
            self.passing.clear()
            index.rebuild(ids, vectors)
            index.save()
            self._checked = True
            return len(ids)

    def after_add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        self.passing.clear()
        self._guarded(lambda: self._add(np.asarray(ids, dtype=np.int64), vectors))

    def _add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Add this process's new records to the files, read again under their lock: other processes'
        adds committed meanwhile are theirs to add; ids the database does not know mean a rebuild."""
        index = self.index(int(vectors.shape[1]))
        with index.files.lock():
            index.refresh()
            if index.valid and np.isin(index.ids(), self.store.embedded_ids()).all():
                new = ~np.isin(ids, index.ids())
                if new.any():
                    index.add(ids[new], np.asarray(vectors)[new])
                    index.save()
            else:
                self.rebuild()
            self._checked = True

    def after_remove(self, checkpoint_id: int) -> None:
        self.passing.clear()
        self._guarded(lambda: self._remove(int(checkpoint_id)))

    def _remove(self, checkpoint_id: int) -> None:
        dim = self.store.dim() or (self._index.dim if self._index is not None else None)
        if dim is None:  # the registry holds no vectors any more
            if self._index is not None and self._index.matches([checkpoint_id]):
                with self._index.files.lock():
                    self._index.remove([checkpoint_id])
                    self._index.save()
            return
        index = self.index(dim)
        with index.files.lock():
            index.refresh()
            if index.valid and np.isin(index.ids(), np.union1d(self.store.embedded_ids(), [checkpoint_id])).all():
                if checkpoint_id in index.ids():
                    index.remove([checkpoint_id])
                    index.save()
            else:
                self.rebuild()
            self._checked = True

    def _guarded(self, update) -> None:
        try:
            update()
        except Exception as err:  # the database is right; the cache can be rebuilt
            self._index, self._checked = None, False
            warnings.warn(f"search index {self.path} was not updated ({type(err).__name__}: {err}); "
                          "the database is right, run 'igpg-zoo reindex'", stacklevel=4)

    def problems(self) -> list[str]:
        """What is wrong between the database vectors and the index file (for ``verify``)."""
        ids = self.store.embedded_ids()
        dim = self.store.dim()
        if dim is None:
            return []
        from igpg_zoo.search.index import VectorIndex

        index = VectorIndex(self.path, dim, self.approx_threshold)
        if index.matches(ids):
            return []
        if not self.path.exists():
            return [f"search index {self.path} is missing; run 'igpg-zoo reindex'"]
        have = index.ids()
        extra, missing = np.setdiff1d(have, ids), np.setdiff1d(ids, have)
        return [f"search index {self.path} is out of step with the database ({len(missing)} record(s) missing "
                f"from it, {len(extra)} unknown id(s) in it); run 'igpg-zoo reindex'"]


def _behind(index, ids: np.ndarray) -> bool:
    """Whether the index only lacks records newer than all it holds: what another process's add looks
    like between its commit and its index update, so rebuilding needs no warning."""
    if not index.valid:
        return False
    have = index.ids()
    missing = np.setdiff1d(ids, have)
    return bool(np.isin(have, ids).all()) and (len(have) == 0 or int(missing.min()) > int(have.max()))
