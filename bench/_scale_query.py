"""Query latency, recall and the filtered-query comparison of bench/scale.py.

- latency: ``Zoo.query(text, k=10)`` with the hash embedder, one call at a time, in-process; a
  filter's first use (candidates checked in SQL, its ids read when needed) is timed apart from its
  later uses (its ids kept in memory).
- recall@10: ``SearchCache.search`` (what ``Zoo.query`` ranks) against an exact index over the same
  stored vectors, with and without the filter; "strict" counts the same ids, "ties" the hits scoring
  at least the exact 10th score (records of one configuration share a text, so ties are common).
- previous: the filtered search of commit 50e5313 (candidates filtered in SQL with uncorrelated
  subqueries, then every passing id read in the ORM on each query), replayed on the same registry
  and interleaved call by call with the current one, so both see the same machine load.
"""

from __future__ import annotations

import time
import types

import numpy as np

from igpg_zoo.registry.filters import make_filters


def percentiles(samples_s: list[float]) -> dict:
    ms = np.asarray(samples_s) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "calls": len(ms)}


def timed(fn, args: list) -> list[float]:
    out = []
    for a in args:
        t = time.perf_counter()
        fn(a)
        out.append(time.perf_counter() - t)
    return out


def query_latency(zoo, texts: list[str], filters: dict[str, dict], rounds: int = 2) -> dict:
    """p50/p99 of Zoo.query per filter; a filter's first use timed apart."""
    out = {}
    zoo.query(texts[0], k=10)  # warm: the first query of a session checks the index against the database
    for label, kw in filters.items():
        zoo.search.passing.clear()
        first = timed(lambda t: zoo.query(t, k=10, **kw), texts[:1])[0]
        later = timed(lambda t: zoo.query(t, k=10, **kw), texts * rounds)
        passing = None if not kw else int(len(zoo.store.ids(make_filters(**kw))))
        out[label] = {"passing": passing, "first_use_ms": round(first * 1e3, 1), **percentiles(later)}
    return out


def _tie_recall(got, want) -> tuple[float, float]:
    floor = want[-1][1] - 1e-5
    strict = len({i for i, _ in got} & {i for i, _ in want}) / len(want)
    return strict, sum(s >= floor for _, s in got) / len(want)


def recall(zoo, qvecs: np.ndarray, filters: dict[str, dict], scratch) -> dict:
    """Recall@10 of the registry's search (approximate above the threshold) against exact search."""
    from igpg_zoo.search.index import VectorIndex

    ids, vectors = zoo.store.vectors()
    exact = VectorIndex(scratch / "exact.faiss", vectors.shape[1], approx_threshold=10**12)
    exact.rebuild(ids, vectors)
    del vectors
    out = {}
    for label, kw in filters.items():
        f = make_filters(**kw)
        allowed = None if f.empty else zoo.store.ids(f)
        strict, ties = [], []
        for q in qvecs:
            want = exact.search(q, 10, allowed)
            if want:
                s, t = _tie_recall(zoo.search.search(q, 10, f), want)
                strict.append(s)
                ties.append(t)
        out[label] = {"strict": round(float(np.mean(strict)), 4), "ties": round(float(np.mean(ties)), 4),
                      "queries": len(strict)}
    return out


def previous_search(self, q, k, filters):
    """SearchCache.search as of commit 50e5313, for the comparison."""
    index = self._index
    if filters.empty:
        return index.search(q, k, None)
    total = len(index)
    fetch = min(total, max(200, 20 * k))
    candidates = index.search(q, fetch, None)
    passing = set(self.store.ids(filters, among=[i for i, _ in candidates]).tolist())
    hits = [h for h in candidates if h[0] in passing][:k]
    if len(hits) == k or fetch >= total:
        return hits
    allowed = self.store.ids(filters)
    return index.search(q, k, allowed) if len(allowed) else []


def before_after(zoo, texts: list[str], filters: dict[str, dict], rounds: int = 2) -> dict:
    """Zoo.query with the previous and the current filtered search, call by call on the same registry."""
    current = zoo.search.search
    previous = types.MethodType(previous_search, zoo.search)
    out = {}
    for label, kw in filters.items():
        samples = {"previous": [], "current": []}
        zoo.search.passing.clear()
        for n, text in enumerate(texts * rounds):
            order = ("previous", "current") if n % 2 else ("current", "previous")
            for name in order:
                zoo.search.search = previous if name == "previous" else current
                try:
                    samples[name] += timed(lambda t: zoo.query(t, k=10, **kw), [text])
                finally:
                    zoo.search.search = current
        same = all(
            [h.checkpoint.id for h in zoo.query(t, k=10, **kw)] == [h.checkpoint.id for h in _with(zoo, previous, t, kw)]
            for t in texts)
        passing = int(len(zoo.store.ids(make_filters(**kw))))
        prev, cur = percentiles(samples["previous"]), percentiles(samples["current"])
        out[label] = {"passing": passing, "previous": prev, "current": cur, "same_hits": same,
                      "speedup_p50": round(prev["p50_ms"] / cur["p50_ms"], 1)}
    del zoo.search.search  # back to the class's method
    return out


def _with(zoo, search, text, kw):
    saved = zoo.search.search
    zoo.search.search = search
    try:
        return zoo.query(text, k=10, **kw)
    finally:
        zoo.search.search = saved
