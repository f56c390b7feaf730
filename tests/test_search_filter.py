"""Filtered search through the Zoo's SearchCache equals exact filtered search, on real SQLite and FAISS.

Every path a filtered search can take is driven here: candidates checked in SQL (a filter's first
use), the filter's ids kept and checked in memory (later uses), the fallback within the allowed ids
(scored directly, an exact scan of HNSW's stored vectors, or an ID selector in FAISS), on an exact
and an HNSW index. The ground truth is numpy over the stored vectors, filtered in Python.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import igpg_zoo.search.index as index_mod
from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.registry.filters import make_filters
from igpg_zoo.registry.search_cache import PassingIds
from igpg_zoo.search.index import FLAT, HNSW
from igpg_zoo.zoo import open_zoo

ARCH = "mlp-i8-h4-o3"
N = 240
DATASETS = [f"set{i}" for i in range(12)]
TAGS = ["red", "green", "blue", "gold"]


def record(i: int) -> CheckpointMeta:
    """Records share a text in runs of 3 (one vector in the index for the three)."""
    config = i // 3
    tags = tuple(t for j, t in enumerate(TAGS) if (i * 7 + j) % (j + 2) == 0)
    return CheckpointMeta(arch=ARCH, task=f"task {config % 17}", dataset=DATASETS[config % len(DATASETS)],
                          tags=tags, name=f"r{i}", metrics=(Metric("acc", round((i * 37 % 101) / 100, 2), ""),))


def passes(meta: CheckpointMeta, kw: dict) -> bool:
    """The filter evaluated in Python, apart from the SQL under test."""
    acc = meta.metrics[0].value
    conditions = {"acc>=0.9": acc >= 0.9, "acc<0.2": acc < 0.2, "acc>=0.5": acc >= 0.5}
    return ((not kw.get("dataset") or meta.dataset in kw["dataset"])
            and (not kw.get("tags") or bool(set(meta.tags) & set(kw["tags"])))
            and all(conditions[c] for c in kw.get("where", ())))


FILTERS = {  # from narrow to broad
    "one dataset": {"dataset": ("set3",)},
    "one dataset, acc>=0.5": {"dataset": ("set3",), "where": ("acc>=0.5",)},
    "acc>=0.9 (scattered)": {"where": ("acc>=0.9",)},
    "tag gold": {"tags": ("gold",)},
    "two datasets or-ed": {"dataset": ("set1", "set2")},
    "tag red or blue": {"tags": ("red", "blue")},
    "acc<0.2 and tag red": {"where": ("acc<0.2",), "tags": ("red",)},
    "nothing passes": {"dataset": ("nowhere",)},
}
PATHS = {  # (index kind, BRUTE_FORCE_LIMIT, EXACT_SCAN_LIMIT, VECTORS_BYTES)
    "flat, scored directly": (FLAT, 4096, 65_536, 0),
    "flat, FAISS selector": (FLAT, 0, 0, 0),
    "hnsw, scored directly": (HNSW, 4096, 65_536, 0),
    "hnsw, kept vectors scored": (HNSW, 0, 65_536, 2**24),
    "hnsw, exact scan": (HNSW, 0, 65_536, 0),
    "hnsw, FAISS selector": (HNSW, 0, 0, 0),
}


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """One SQLite registry of N records, built once; each test opens it afresh."""
    folder = tmp_path_factory.mktemp("filtered")
    torch.manual_seed(0)
    base = get_adapter(ARCH).build(ARCH).state_dict()
    metas = [record(i) for i in range(N)]
    with open_zoo(str(folder / "registry.db"), blobs=str(folder / "blobs"), embedder="hash") as zoo:
        zoo.add_many([(base, m) for m in metas], batch=100)  # one shared blob, distinct records
        ids, vectors = zoo.store.vectors()
    return folder, metas, ids, vectors


def opened(registry, kind: str):
    folder, *_ = registry
    zoo = open_zoo(str(folder / "registry.db"), blobs=str(folder / "blobs"), embedder="hash")
    zoo.search.path = folder / f"{kind}.faiss"  # one index file per kind
    zoo.search.approx_threshold = 10**9 if kind == FLAT else 1
    return zoo


def exact(registry, q: np.ndarray, kw: dict) -> list[tuple[int, float]]:
    """Every record passing the filter as (id, score), best first, ties by id."""
    _, metas, ids, vectors = registry
    keep = [j for j, m in enumerate(metas) if passes(m, kw)]
    scores = vectors[keep] @ q
    return sorted(((int(ids[j]), float(s)) for j, s in zip(keep, scores)), key=lambda h: (-h[1], h[0]))


def assert_exact_top(got: list[tuple[int, float]], ranked: list[tuple[int, float]], k: int) -> None:
    """``got`` is the exact top k up to ties: k (or all) passing ids, each with its true score, best
    first, and every id scoring above the k-th score among them (ids whose scores tie within 1e-5, which
    records of different texts can, may come in either order)."""
    score = dict(ranked)
    assert len(got) == min(k, len(ranked)) and len({i for i, _ in got}) == len(got)
    assert all(i in score and abs(score[i] - s) <= 1e-5 for i, s in got)
    assert all(a[1] >= b[1] - 1e-5 for a, b in zip(got, got[1:]))
    if got:
        floor = ranked[len(got) - 1][1]
        assert {i for i, s in ranked if s > floor + 1e-5} <= {i for i, _ in got}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("label", list(FILTERS))
def test_filtered_search_equals_exact_filtered_search(registry, monkeypatch, path, label):
    kind, brute, scan, kept_vectors = PATHS[path]
    monkeypatch.setattr(index_mod, "BRUTE_FORCE_LIMIT", brute)
    monkeypatch.setattr(index_mod, "EXACT_SCAN_LIMIT", scan)
    monkeypatch.setattr(index_mod, "VECTORS_BYTES", kept_vectors)
    monkeypatch.setattr("igpg_zoo.registry.search_cache.MIN_CANDIDATES", 20)  # small: the fallback runs
    monkeypatch.setattr("igpg_zoo.registry.search_cache.OVERFETCH", 2)
    kw = FILTERS[label]
    filters = make_filters(dataset=kw.get("dataset", ()), tags=kw.get("tags", ()), where=kw.get("where", ()))
    with opened(registry, kind) as zoo:
        index = zoo.search.synced(zoo.store.dim())
        assert index.kind == kind
        queries = zoo.embedder.embed(["task 3 set3", "task 11 set1 mlp", "red gold blue", "task 5"])
        for q in queries:
            ranked = exact(registry, q, kw)
            for _use in ("first: candidates checked in SQL", "second: ids read and kept", "third: kept ids"):
                assert_exact_top(zoo.search.search(q, 7, filters), ranked, 7)
            zoo.search.passing.clear()


@pytest.mark.parametrize("kind", [FLAT, HNSW])
@pytest.mark.parametrize("label", ["one dataset", "tag red or blue"])
def test_a_kept_preparation_answers_as_a_fresh_one_and_is_dropped_when_the_index_changes(registry, kind, label):
    kw = FILTERS[label]
    filters = make_filters(dataset=kw.get("dataset", ()), tags=kw.get("tags", ()), where=kw.get("where", ()))
    with opened(registry, kind) as zoo:
        index = zoo.search.synced(zoo.store.dim())
        allowed = zoo.store.ids(filters)
        queries = zoo.embedder.embed(["task 3 set3", "red gold blue", "task 5"])
        for q in list(queries) * 2:  # the second round answers from the kept preparation
            assert index.search(q, 7, allowed, key=filters) == index.search(q, 7, allowed)
        gone = [i for i, _ in index.search(queries[0], 3, allowed)]
        index.remove(gone)  # in memory only: the file stays as the other tests expect
        after = index.search(queries[0], 7, allowed, key=filters)
        assert not {i for i, _ in after} & set(gone) and after == index.search(queries[0], 7, allowed)


@pytest.mark.parametrize("kind", [FLAT, HNSW])
def test_kept_ids_follow_this_registrys_adds_and_removes(registry, kind):
    """A record added after a filter's ids were kept is found by the next search; a removed one is not."""
    with opened(registry, kind) as zoo:
        filters = make_filters(dataset="set5")
        q = zoo.embedder.embed(["brand new record of set5"])[0]
        for _ in range(2):
            zoo.search.synced(zoo.store.dim())
            before = zoo.search.search(q, 5, filters)
        assert zoo.search.passing.get(filters) is not None
        base = zoo.load_weights(1)
        new = zoo.add_weights(base, CheckpointMeta(arch=ARCH, task="brand new record", dataset="set5",
                                                   name="fresh")).checkpoint
        try:
            after = [i for i, _ in zoo.search.search(q, 5, filters)]
            assert after[0] == new.id and new.id not in [i for i, _ in before]
        finally:
            zoo.remove(new.id)
        assert [i for i, _ in zoo.search.search(q, 5, filters)] == [i for i, _ in before]


@pytest.mark.parametrize("sizes, max_filters, max_ids, kept", [
    ([3, 3, 3], 2, 100, [1, 2]),  # at most two filters: the oldest goes
    ([40, 40, 40], 8, 100, [1, 2]),  # at most 100 ids: the oldest goes
    ([150], 8, 100, []),  # larger than the whole budget: not kept at all
])
def test_kept_ids_are_bounded(sizes, max_filters, max_ids, kept):
    passing = PassingIds(max_filters, max_ids)
    filters = [make_filters(dataset=f"d{i}") for i in range(len(sizes))]
    for f, n in zip(filters, sizes):
        passing.put(f, np.arange(n, dtype=np.int64))
    assert [i for i, f in enumerate(filters) if passing.get(f) is not None] == kept



@pytest.mark.parametrize("chunk", [7, 2000])
def test_candidates_are_checked_in_chunks_with_the_same_result(registry, monkeypatch, chunk):
    """A large k checks many candidates in SQL: in chunks, so no statement passes SQLite's variable limit."""
    monkeypatch.setattr("igpg_zoo.registry.search_cache.AMONG_CHUNK", chunk)
    kw = {"tags": ("red", "blue"), "where": ("acc>=0.5",)}
    filters = make_filters(tags=kw["tags"], where=kw["where"])
    with opened(registry, FLAT) as zoo:
        zoo.search.synced(zoo.store.dim())
        q = zoo.embedder.embed(["task 4 set4"])[0]
        ranked = exact(registry, q, kw)
        assert_exact_top(zoo.search.search(q, 25, filters), ranked, 25)


@pytest.mark.parametrize("drop, warned", [("newest", False), ("oldest", True)])
def test_an_index_merely_behind_the_database_is_rebuilt_without_a_warning(registry, tmp_path, drop, warned):
    """Another process's add shows as an index lacking only newer records: rebuilt silently. Anything
    else (an older record missing) is rebuilt with the warning."""
    with opened(registry, FLAT) as zoo:
        zoo.search.path = tmp_path / "behind.faiss"
        index = zoo.search.synced(zoo.store.dim())
        ids = index.ids()
        index.remove([int(ids[-1] if drop == "newest" else ids[0])])
        index.save()
    with opened(registry, FLAT) as zoo, warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        zoo.search.path = tmp_path / "behind.faiss"
        assert len(zoo.search.synced(zoo.store.dim())) == N
    assert any("out of step" in str(w.message) for w in shown) == warned
