"""The registry's measurements (bench/registry.py): bulk add rate, query latency and index recall.

What is timed:
- add: ``Zoo.add_many(items, batch=256)`` through the public facade with the hash embedder,
  growing one registry to each size; generating the synthetic weights is excluded (timed apart).
  ``add_weights`` (one record, one call) is timed at each size too. The real MiniLM add rate is
  measured on a smaller registry: embedding dominates it.
- query (a) ``VectorIndex.search`` only, (b) ``Zoo.query`` with the real MiniLM embedding the query
  text, (c) ``Zoo.query`` with the hash embedder. Single queries, one at a time, in-process;
  p50/p95 per round, median over rounds.
- recall@10 of the HNSW index vs exact search over the registry's stored vectors ("strict": the
  same ids; "ties": hits scoring at least the exact 10th score, since identical texts tie), and,
  index only, over distinct vectors: MiniLM vectors of record texts, hash vectors and a clustered proxy.
- The index stores each distinct vector once and is exact up to ``approx_threshold`` (50,000)
  distinct vectors, so the 100k registry (about 8k distinct texts) searches exactly; its HNSW
  recall is measured on an HNSW index built over the same vectors.
The scratch registries live under bench/scratch/registry/ (deleted at the start of each run).
"""

from __future__ import annotations

import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np

from bench import _registry_synthetic as syn

HERE = Path(__file__).resolve().parent
SCRATCH = HERE / "scratch" / "registry"
FILTERS = {  # Zoo.query keyword filters; each also gives the allowed ids for (a)
    "none": {},
    "dataset in (digits, iris)": {"dataset": ("digits", "iris")},
    "tag bench": {"tags": ("bench",)},
    "acc>=0.95": {"where": ("acc>=0.95",)},
}


# -- measuring -----------------------------------------------------------------------------------


def latency(fn, args: list, rounds: int) -> dict:
    """p50/p95 (ms) of single calls, per round; the median round figures are reported."""
    fn(args[0])  # warm
    per_round = []
    for _ in range(rounds):
        samples = []
        for a in args:
            t = time.perf_counter()
            fn(a)
            samples.append(time.perf_counter() - t)
        ms = np.asarray(samples) * 1e3
        per_round.append((float(np.percentile(ms, 50)), float(np.percentile(ms, 95))))
    p50s, p95s = zip(*per_round)
    return {"p50_ms": round(float(np.median(p50s)), 3), "p95_ms": round(float(np.median(p95s)), 3),
            "rounds": [[round(a, 3), round(b, 3)] for a, b in per_round], "calls_per_round": len(args)}


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def query_texts(records: list, n_derived: int, seed: int = 0) -> list[str]:
    """The hand-written queries plus queries made from random records' task and dataset."""
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(records), size=n_derived, replace=len(records) < n_derived)
    derived = [f"{records[i].task} on {records[i].dataset}" for i in picks]
    return syn.QUERIES + derived


# -- the registry through the Zoo facade ---------------------------------------------------------


def make_items(records: list, start: int, stop: int) -> list:
    from igpg_zoo.records import CheckpointMeta, Metric

    rng = np.random.default_rng(start)
    return [(syn.random_weights(r.arch, rng),
             CheckpointMeta(arch=r.arch, task=r.task, dataset=r.dataset, tags=r.tags, name=r.name,
                            metrics=tuple(Metric(k, v, r.dataset) for k, v in r.metrics.items())))
            for r in records[start:stop]]


def grow(zoo, records: list, start: int, stop: int, chunk: int = 5000, batch: int = 256) -> dict:
    """Add records[start:stop] with add_many in chunks; only the add_many calls are timed."""
    add_s = gen_s = 0.0
    for lo in range(start, stop, chunk):
        t = time.perf_counter()
        items = make_items(records, lo, min(stop, lo + chunk))
        gen_s += time.perf_counter() - t
        t = time.perf_counter()
        results = zoo.add_many(items, batch=batch)
        add_s += time.perf_counter() - t
        assert all(r.created for r in results), "synthetic records must all be new"
        print(f"  added {min(stop, lo + chunk)} / {stop}  ({(min(stop, lo + chunk) - start) / add_s:.0f}/s)", flush=True)
    n = stop - start
    return {"records": n, "batch": batch, "seconds": round(add_s, 2), "per_s": round(n / add_s, 1),
            "generate_seconds": round(gen_s, 2), "load": load()}


def single_adds(zoo, records: list, start: int, m: int) -> dict:
    """``add_weights`` one record per call: the latency of one interactive add at this size."""
    samples = []
    for weights, meta in make_items(records, start, start + m):
        t = time.perf_counter()
        zoo.add_weights(weights, meta)
        samples.append(time.perf_counter() - t)
    ms = np.asarray(samples) * 1e3
    return {"calls": m, "p50_ms": round(float(np.median(ms)), 1), "max_ms": round(float(ms.max()), 1)}


def query_latency(zoo, texts: list[str], rounds: int) -> dict:
    """(a) index search only and Zoo.query, per filter."""
    from igpg_zoo.registry.filters import make_filters

    index = zoo.search.synced(zoo.store.dim())
    qvecs = zoo.embedder.embed(texts)
    out = {"index_kind": index.kind, "records": len(index)}
    for label, kw in FILTERS.items():
        f = make_filters((), kw.get("dataset", ()), (), (), kw.get("tags", ()), kw.get("where", ()))
        allowed = None if f.empty else zoo.store.ids(f)
        out[label] = {
            "allowed": None if allowed is None else int(len(allowed)),
            "index_search": latency(lambda q: index.search(q, 10, allowed), list(qvecs), rounds),
            "zoo_query": latency(lambda t: zoo.query(t, k=10, **kw), texts, rounds),
        }
    return out


def embed_latency(embedder, texts: list[str], rounds: int) -> dict:
    return latency(lambda t: embedder.embed([t]), texts, rounds)


# -- recall of the approximate index -------------------------------------------------------------


def recall(approx, wanted: list, qvecs: np.ndarray, allowed=None, k: int = 10) -> dict:
    """``wanted``: the exact top-k per query."""
    strict, ties = [], []
    for q, want in zip(qvecs, wanted):
        got = approx.search(q, k, allowed)
        if not want:
            continue
        floor = want[-1][1] - 1e-5
        strict.append(len({i for i, _ in got} & {i for i, _ in want}) / len(want))
        ties.append(sum(s >= floor for _, s in got) / len(want))
    return {"strict": round(float(np.mean(strict)), 4), "ties": round(float(np.mean(ties)), 4), "queries": len(strict)}


def recall_bench(zoo, records: list, n_queries: int, rounds: int, sweep: tuple[int, ...]) -> dict:
    """HNSW vs exact on the registry's stored vectors, with and without a filter, and an efSearch sweep."""
    from igpg_zoo.registry.filters import make_filters
    from igpg_zoo.search.index import HNSW, VectorIndex

    ids, vectors = zoo.store.vectors()
    dim = vectors.shape[1]
    exact = VectorIndex(SCRATCH / "exact.faiss", dim, approx_threshold=10**12)
    exact.rebuild(ids, vectors)
    approx = zoo.search.synced(dim)
    built_s = None
    if approx.kind != HNSW:  # a registry below the threshold: build one to measure it
        approx = VectorIndex(SCRATCH / "approx.faiss", dim, approx_threshold=0)
        t = time.perf_counter()
        approx.rebuild(ids, vectors)
        built_s = round(time.perf_counter() - t, 2)
    texts = query_texts(records, n_queries - len(syn.QUERIES), seed=1)
    qvecs = zoo.embedder.embed(texts)
    allowed = zoo.store.ids(make_filters((), (), (), (), ("bench",), ()))
    wanted = [exact.search(q, 10) for q in qvecs]
    wanted_filtered = [exact.search(q, 10, allowed) for q in qvecs]
    out = {"records": len(ids), "distinct_vectors": int(approx._index.ntotal),
           "hnsw": {"M": approx.hnsw_m, "efConstruction": approx.ef_construction, "efSearch": approx.ef_search},
           "hnsw_build_seconds": built_s, "unfiltered": recall(approx, wanted, qvecs),
           "filtered tag bench": {**recall(approx, wanted_filtered, qvecs, allowed), "allowed": int(len(allowed))},
           "exact_search": latency(lambda q: exact.search(q, 10), list(qvecs[:100]), rounds), "ef_sweep": []}
    default_ef = approx.ef_search
    for ef in sweep:
        approx.ef_search = ef
        out["ef_sweep"].append({"efSearch": ef, **recall(approx, wanted, qvecs),
                                "search": latency(lambda q: approx.search(q, 10), list(qvecs), rounds)})
    approx.ef_search = default_ef
    return out


def clustered_vectors(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Distinct unit vectors around 2,000 centres: a proxy for sentence embeddings."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2000, dim)).astype(np.float32)
    x = centres[rng.integers(2000, size=n)] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def distinct_hash_vectors(n: int, dim: int) -> np.ndarray:
    """Hash-embedder vectors of n synthetic records with one run per configuration (all distinct texts
    but a few collisions), as the Zoo would store them."""
    from igpg_zoo.adapters.smallnet_grammar import describe, parse
    from igpg_zoo.registry.ingest import record_text
    from igpg_zoo.search.embed import HashEmbedder

    texts = [record_text(r.task, r.dataset, describe(parse(r.arch))) for r in syn.records(n, seed=7, runs=1)]
    return HashEmbedder(dim).embed(texts)


def distinct_recall(name: str, base: np.ndarray, queries: np.ndarray, sweep: tuple[int, ...], ms: tuple[int, ...]) -> list[dict]:
    """HNSW recall@10 vs exact on distinct vectors at full size (the registry's own are mostly duplicates)."""
    from igpg_zoo.search.index import VectorIndex

    ids, dim = np.arange(1, len(base) + 1), base.shape[1]
    exact = VectorIndex(SCRATCH / f"{name}-exact.faiss", dim, 10**12)
    exact.rebuild(ids, base)
    wanted = [exact.search(q, 10) for q in queries]
    rows = []
    for m in ms:
        approx = VectorIndex(SCRATCH / f"{name}-hnsw{m}.faiss", dim, 0, hnsw_m=m)
        t = time.perf_counter()
        approx.rebuild(ids, base)
        build = round(time.perf_counter() - t, 1)
        for ef in sweep:
            approx.ef_search = ef
            rows.append({"vectors": name, "n": int(approx._index.ntotal), "M": m, "efSearch": ef,
                         "build_seconds": build, **recall(approx, wanted, queries),
                         "search": latency(lambda q: approx.search(q, 10), list(queries[:100]), 3)})
            print(f"  {name} M={m} ef={ef}: {rows[-1]['strict']}", flush=True)
    return rows


# -- the run -------------------------------------------------------------------------------------


def warm_datasets(embedder) -> float:
    """Compute (or load from the cache) the dataset embeddings of the real datasets used: a one-off
    cost per dataset and embedder that would otherwise land in the first add's timing."""
    from igpg_zoo.data.embedding import dataset_embedding_for

    t = time.perf_counter()
    for name, *_ in syn._DATASETS:
        dataset_embedding_for(name, text_embedder=embedder)
    return round(time.perf_counter() - t, 2)


def machine() -> dict:
    import faiss
    import sqlalchemy

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "faiss": faiss.__version__,
            "sqlalchemy": sqlalchemy.__version__, "numpy": np.__version__, "platform": platform.platform()}


def record_texts(n: int, seed: int) -> list[str]:
    """The distinct texts of n synthetic records with one run per configuration."""
    from igpg_zoo.adapters.smallnet_grammar import describe, parse
    from igpg_zoo.registry.ingest import record_text

    return sorted({record_text(r.task, r.dataset, describe(parse(r.arch))) for r in syn.records(n, seed=seed, runs=1)})


def distinct(quick: bool, hash_embedder, minilm) -> list[dict]:
    """HNSW recall@10 vs exact on distinct vectors: real MiniLM vectors of record texts, the hash
    embedder's (a hard case: close to random directions) and clustered unit vectors (a proxy)."""
    n_distinct, n_minilm = (5_000, 500) if quick else (100_000, 6_000)
    print(f"recall on {n_distinct} distinct vectors", flush=True)
    texts_q = query_texts(syn.records(2000, seed=9, runs=1), 200 - len(syn.QUERIES), seed=2)
    rows = distinct_recall("minilm", minilm.embed(record_texts(n_minilm, 11)), minilm.embed(texts_q), (256,), (32,))
    rows += distinct_recall("hash", distinct_hash_vectors(n_distinct, 384), hash_embedder.embed(texts_q), (256,), (32,))
    x = clustered_vectors(n_distinct + 200, 384)
    return rows + distinct_recall("clustered", x[:n_distinct], x[n_distinct:], (256,), (32,))


def measure(quick: bool, rounds: int = 3, n_queries: int = 48, recall_queries: int = 200) -> dict:
    from igpg_zoo.search.embed import HashEmbedder, get_embedder
    from igpg_zoo.zoo import open_zoo

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    sizes = [2000] if quick else [10_000, 100_000]
    n_minilm = 200 if quick else 1000
    shutil.rmtree(SCRATCH, ignore_errors=True)
    SCRATCH.mkdir(parents=True)
    os.environ.setdefault("IGPG_ZOO_CACHE", str(HERE / "scratch" / "cache"))
    records = syn.records(max(sizes) + 10 * len(sizes) + 10)
    texts = query_texts(records[: sizes[0]], n_queries - len(syn.QUERIES))
    out = {"machine": machine(),
           "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "load_at_start": load(),
           "queries": len(texts), "rounds": rounds, "runs_per_config": 10, "sizes": {}}
    hash_embedder = HashEmbedder()
    out["dataset_warmup_seconds_hash"] = warm_datasets(hash_embedder)
    (SCRATCH / "hash").mkdir()
    zoo = open_zoo(registry=str(SCRATCH / "hash" / "registry.db"), embedder=hash_embedder)
    done = 0
    for size in sizes:
        print(f"hash registry -> {size} records", flush=True)
        entry = {"add_many": grow(zoo, records, done, size)}
        entry["query_hash"] = query_latency(zoo, texts, rounds)  # (a) and (c)
        entry["add_weights_one_call"] = single_adds(zoo, records, size, 5)
        entry["load_after"] = load()
        out["sizes"][str(size)] = entry
        done = size + 5
    print("recall", flush=True)
    out["recall"] = recall_bench(zoo, records, recall_queries, rounds, (16, 32, 64, 128, 256))
    out["embed_hash_single"] = embed_latency(hash_embedder, texts, rounds)
    zoo.close()

    print(f"MiniLM registry -> {n_minilm} records", flush=True)
    minilm = get_embedder(None)
    t = time.perf_counter()
    minilm.embed(["warm-up"])  # import sentence-transformers and load the model: once per process
    out["minilm_import_and_load_seconds"] = round(time.perf_counter() - t, 2)
    out["dataset_warmup_seconds_minilm"] = warm_datasets(minilm)
    (SCRATCH / "minilm").mkdir()
    mzoo = open_zoo(registry=str(SCRATCH / "minilm" / "registry.db"), embedder=minilm)
    out["minilm"] = {"add_many": grow(mzoo, records, 0, n_minilm, chunk=n_minilm),
                     "distinct_texts": len({(r.task, r.dataset, r.arch) for r in records[:n_minilm]}),
                     "query_minilm": query_latency(mzoo, texts, rounds),  # (a) and (b)
                     "embed_minilm_single": embed_latency(minilm, texts, rounds)}
    mzoo.close()
    out["distinct_recall"] = distinct(quick, hash_embedder, minilm)
    out["load_at_end"] = load()
    out["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return out
