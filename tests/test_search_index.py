"""VectorIndex on real FAISS: search with allowed ids, add/remove/rebuild, exact <-> HNSW, persistence."""

import json
import subprocess
import sys

import numpy as np
import pytest

import igpg_zoo.search.index as index_mod
from igpg_zoo.errors import IntegrityError
from igpg_zoo.search.index import FLAT, HNSW, VectorIndex

DIM = 16
N = 300
FILES = ["r.faiss", "r.faiss.ids.npy", "r.faiss.json"]


def unit(rng, n, dim=DIM):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture()
def data():
    rng = np.random.default_rng(7)
    ids = np.arange(10, 10 + 3 * N, 3, dtype=np.int64)  # not positions: sparse ids
    return ids, unit(rng, N), unit(rng, 5)


def exact(ids, vectors, q, k, allowed=None):
    scores = vectors @ q
    keep = np.ones(len(ids), bool) if allowed is None else np.isin(ids, allowed)
    order = sorted(np.flatnonzero(keep), key=lambda i: (-scores[i], ids[i]))[:k]
    return [int(ids[i]) for i in order], [float(scores[i]) for i in order]


def built(tmp_path, ids, vectors, kind):
    distinct = len(np.unique(vectors, axis=0))
    threshold = distinct if kind == FLAT else distinct // 2
    idx = VectorIndex(tmp_path / "r.faiss", DIM, threshold)
    idx.rebuild(ids, vectors)
    assert idx.kind == kind
    return idx


ALLOWED_CASES = {
    "none": lambda ids: None,
    "every third": lambda ids: ids[::3],
    "three": lambda ids: ids[[4, 40, 200]],
    "with unknown ids": lambda ids: np.concatenate([ids[:20], [10**9, -5]]),
    "empty": lambda ids: np.zeros(0, np.int64),
    "only unknown": lambda ids: np.array([10**9]),
}


@pytest.mark.parametrize("kind", [FLAT, HNSW])
@pytest.mark.parametrize("case", list(ALLOWED_CASES))
@pytest.mark.parametrize("brute_limit", [4096, 0])  # 0: the allowed ids go to FAISS as an IDSelectorBatch
def test_search_matches_numpy_ground_truth(tmp_path, data, monkeypatch, kind, case, brute_limit):
    monkeypatch.setattr(index_mod, "BRUTE_FORCE_LIMIT", brute_limit)
    ids, vectors, queries = data
    idx = built(tmp_path, ids, vectors, kind)
    allowed = ALLOWED_CASES[case](ids)
    for q in queries:
        hits = idx.search(q, 10, allowed=allowed)
        want_ids, want_scores = exact(ids, vectors, q, 10, allowed)
        assert [h[0] for h in hits] == want_ids
        np.testing.assert_allclose([h[1] for h in hits], want_scores, atol=1e-5)


@pytest.mark.parametrize("kind", [FLAT, HNSW])
def test_fewer_hits_than_k_when_fewer_exist(tmp_path, data, kind):
    ids, vectors, queries = data
    idx = built(tmp_path, ids, vectors, kind)
    assert len(idx.search(queries[0], N + 50)) == N
    assert len(idx.search(queries[0], 5, allowed=ids[:2])) == 2
    assert idx.search(queries[0], 0) == []
    hits = idx.search(queries[0], N)
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)


@pytest.mark.parametrize("n, kind", [(0, FLAT), (1, FLAT), (100, FLAT), (101, HNSW)])
def test_kind_switches_strictly_above_the_threshold(tmp_path, data, n, kind):
    ids, vectors, _ = data
    idx = VectorIndex(tmp_path / "r.faiss", DIM, approx_threshold=100)
    idx.rebuild(ids[:n], vectors[:n])
    assert idx.kind == kind and len(idx) == n


def test_the_threshold_counts_distinct_vectors_not_records(tmp_path, data):
    ids, vectors, _ = data
    idx = VectorIndex(tmp_path / "r.faiss", DIM, approx_threshold=100)
    idx.rebuild(ids, np.repeat(vectors[:100], 3, axis=0))  # 300 records, 100 vectors
    assert idx.kind == FLAT and len(idx) == N
    idx.add([10**6], vectors[200:201])  # the 101st vector
    assert idx.kind == HNSW


def test_add_across_the_threshold_goes_approximate_and_remove_goes_back(tmp_path, data):
    ids, vectors, queries = data
    idx = VectorIndex(tmp_path / "r.faiss", DIM, approx_threshold=100)
    idx.rebuild(ids[:90], vectors[:90])
    idx.add(ids[90:100], vectors[90:100])
    assert idx.kind == FLAT
    idx.add(ids[100:], vectors[100:])
    assert idx.kind == HNSW and np.array_equal(idx.ids(), ids)
    assert [h[0] for h in idx.search(queries[0], 5)] == exact(ids, vectors, queries[0], 5)[0]
    idx.remove(ids[:199])
    assert idx.kind == HNSW and len(idx) == 101
    idx.remove(ids[199:200])
    assert idx.kind == FLAT and np.array_equal(idx.ids(), ids[200:])
    assert [h[0] for h in idx.search(queries[0], 5)] == exact(ids[200:], vectors[200:], queries[0], 5)[0]


@pytest.mark.parametrize("kind", [FLAT, HNSW])
def test_removed_ids_never_come_back_even_after_reload(tmp_path, data, kind):
    ids, vectors, queries = data
    idx = built(tmp_path, ids, vectors, kind)
    gone = ids[:10]
    idx.remove(np.concatenate([gone, [10**9]]))  # unknown ids are ignored
    idx.save()
    again = VectorIndex(tmp_path / "r.faiss", DIM, idx.approx_threshold)
    assert again.matches(ids[10:]) and not again.matches(ids)
    for q in (vectors[0], vectors[5], *queries):  # the removed vectors themselves as queries
        for allowed in (None, ids[:40], ids):
            hits = again.search(q, 20, allowed=allowed)
            assert not np.isin([h[0] for h in hits], gone).any()
            assert [h[0] for h in hits] == exact(ids[10:], vectors[10:], q, 20, allowed)[0]


def test_hnsw_tombstones_compact_and_a_reused_id_gets_its_new_vector(tmp_path, data):
    ids, vectors, queries = data
    idx = built(tmp_path, ids, vectors, HNSW)
    idx.remove(ids[:5])
    assert idx._index.ntotal == N and len(idx._dead) == 5
    idx.add(ids[:1], queries[:1])  # id reused with another vector: the old one must not come back
    assert idx.search(queries[0], 1)[0][0] == ids[0]
    assert idx.search(vectors[0], 1)[0][0] != ids[0]
    idx.add(ids[1:2], vectors[1:2])  # a tombstoned vector used again is live again
    assert idx._index.ntotal == N + 1 and len(idx._dead) == 4
    assert idx.search(vectors[1], 1) == [(ids[1], pytest.approx(1.0, abs=1e-5))]
    idx.remove(ids[2:100])  # over a quarter tombstoned: compacted
    assert idx._index.ntotal == len(idx) == N - 98 and len(idx._dead) == 0


@pytest.mark.parametrize("kind", [FLAT, HNSW])
def test_records_sharing_a_vector_are_stored_once_and_all_returned(tmp_path, data, kind):
    ids, vectors, queries = data
    shared = np.repeat(vectors[:30], 10, axis=0)  # 30 texts, 10 runs each
    idx = built(tmp_path, ids, shared, kind)
    assert idx._index.ntotal == 30 and len(idx) == N
    q = vectors[3]
    hits = idx.search(q, 25)
    assert [h[0] for h in hits[:10]] == list(ids[30:40])  # the tie, in ascending id order
    assert [h[0] for h in hits] == exact(ids, shared, q, 25)[0]
    assert [h[0] for h in idx.search(q, 4)] == list(ids[30:34])
    allowed = ids[[31, 35, 200, 201]]
    assert [h[0] for h in idx.search(q, 3, allowed=allowed)] == [ids[31], ids[35], exact(ids[200:202], shared[200:202], q, 1)[0][0]]
    idx.remove(ids[30:39])  # one run of the group left: the vector stays
    assert idx._index.ntotal == 30 and idx.search(q, 1)[0][0] == ids[39]
    idx.remove(ids[39:40])  # none left: the vector goes (HNSW: tombstone)
    assert ids[39] not in [h[0] for h in idx.search(q, N)]
    assert idx._index.ntotal - len(idx._dead) == 29
    idx.save()
    again = VectorIndex(tmp_path / "r.faiss", DIM, idx.approx_threshold)
    assert again.matches(np.setdiff1d(ids, ids[30:40]))
    assert again.search(q, 5) == idx.search(q, 5)


@pytest.mark.parametrize("bad", [
    lambda ids, v: (ids[:3], v[:2]),  # count mismatch
    lambda ids, v: (ids[:3], v[:3, :8]),  # wrong dim
    lambda ids, v: (np.array([1, 1]), v[:2]),  # duplicate ids
])
def test_bad_vectors_are_refused_and_change_nothing(tmp_path, data, bad):
    ids, vectors, _ = data
    idx = built(tmp_path, ids[:50], vectors[:50], FLAT)
    new_ids, new_vectors = bad(ids[100:], vectors[100:])
    for op in (idx.add, idx.rebuild):
        with pytest.raises(ValueError):
            op(new_ids, new_vectors)
    assert np.array_equal(idx.ids(), ids[:50])


def test_adding_an_indexed_id_is_an_integrity_error(tmp_path, data):
    ids, vectors, _ = data
    idx = built(tmp_path, ids[:50], vectors[:50], FLAT)
    with pytest.raises(IntegrityError, match="reindex"):
        idx.add(ids[49:51], vectors[49:51])
    assert np.array_equal(idx.ids(), ids[:50])


# -- persistence ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [FLAT, HNSW])
def test_save_and_reopen_round_trips(tmp_path, data, kind):
    ids, vectors, queries = data
    idx = built(tmp_path, ids, vectors, kind)
    idx.save()
    meta = json.loads((tmp_path / "r.faiss.json").read_text())
    assert meta["dim"] == DIM and meta["kind"] == kind and meta["count"] == N and meta["format"] == 2
    again = VectorIndex(tmp_path / "r.faiss", DIM, idx.approx_threshold)
    assert again.valid and again.matches(ids[::-1]) and again.kind == kind
    assert again.search(queries[1], 7) == idx.search(queries[1], 7)
    assert sorted(p.name for p in tmp_path.iterdir()) == FILES  # no temp files


def test_a_failed_save_leaves_the_previous_files_intact(tmp_path, data, monkeypatch):
    import faiss

    ids, vectors, _ = data
    idx = built(tmp_path, ids[:50], vectors[:50], FLAT)
    idx.save()
    before = (tmp_path / "r.faiss").read_bytes()
    idx.add(ids[50:], vectors[50:])

    def half_write(index, path):
        open(path, "wb").write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", half_write)
    with pytest.raises(RuntimeError):
        idx.save()
    assert (tmp_path / "r.faiss").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == FILES
    assert VectorIndex(tmp_path / "r.faiss", DIM, 1000).matches(ids[:50])


CORRUPTIONS = {
    "missing index": lambda p: p.unlink(),
    "missing sidecar": lambda p: p.with_name("r.faiss.json").unlink(),
    "garbage index": lambda p: p.write_bytes(b"not a faiss index"),
    "truncated index": lambda p: p.write_bytes(p.read_bytes()[:100]),
    "missing id table": lambda p: p.with_name("r.faiss.ids.npy").unlink(),
    "tampered id table": lambda p: p.with_name("r.faiss.ids.npy").write_bytes(
        p.with_name("r.faiss.ids.npy").read_bytes()[:-8] + bytes(8)),
    "garbage sidecar": lambda p: p.with_name("r.faiss.json").write_text("{nope"),
    "stale sidecar count": lambda p: p.with_name("r.faiss.json").write_text(
        json.dumps({**json.loads(p.with_name("r.faiss.json").read_text()), "count": 3})),
    "future format": lambda p: p.with_name("r.faiss.json").write_text(
        json.dumps({**json.loads(p.with_name("r.faiss.json").read_text()), "format": 99})),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupt_or_missing_files_do_not_match_and_rebuild_recovers(tmp_path, data, case):
    ids, vectors, queries = data
    built(tmp_path, ids, vectors, FLAT).save()
    CORRUPTIONS[case](tmp_path / "r.faiss")
    idx = VectorIndex(tmp_path / "r.faiss", DIM, N + 10)
    assert not idx.matches(ids) and not idx.valid
    with pytest.raises(IntegrityError, match="reindex"):
        idx.search(queries[0], 3)
    idx.rebuild(ids, vectors)
    idx.save()
    assert VectorIndex(tmp_path / "r.faiss", DIM, N + 10).matches(ids)


def test_another_dimension_does_not_match(tmp_path, data):
    ids, vectors, _ = data
    built(tmp_path, ids, vectors, FLAT).save()
    assert not VectorIndex(tmp_path / "r.faiss", DIM * 2, N + 10).matches(ids)


def test_opening_is_lazy_and_does_not_import_faiss(tmp_path):
    code = (f"import sys; from igpg_zoo.search.index import VectorIndex; "
            f"VectorIndex({str(tmp_path / 'x.faiss')!r}, 8, 10); print('faiss' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", [FLAT, HNSW])
def test_search_leaves_the_openmp_thread_count_as_it_was(tmp_path, data, kind):
    import faiss

    ids, vectors, queries = data
    idx = built(tmp_path, ids, vectors, kind)
    before = faiss.omp_get_max_threads()
    idx.search(queries[0], 5)
    assert faiss.omp_get_max_threads() == before


@pytest.mark.parametrize("scale", [1, 10**9])  # dense ids use a lookup table, sparse ones a binary search
def test_filtered_search_with_dense_and_sparse_ids(tmp_path, data, scale):
    ids, vectors, queries = data
    ids = ids * scale
    idx = built(tmp_path, ids, vectors, FLAT)
    allowed = np.concatenate([ids[::7], [-3, 5, ids[-1] + 1]])
    for q in queries:
        assert [h[0] for h in idx.search(q, 10, allowed)] == exact(ids, vectors, q, 10, allowed)[0]
