"""HNSW recall@10 vs exact on distinct vectors: the parameter grid behind igpg_zoo/search/index.py.

    .venv/bin/python bench/registry_recall.py [--quick]

Three kinds of vectors, all distinct (the registry index stores each distinct vector once):
- "minilm": the real all-MiniLM-L6-v2 vectors of synthetic record texts (one run per configuration),
  queried with MiniLM query texts; its size is limited by CPU embedding time;
- "hash": the hash embedder's vectors of the same kind of texts, at the full size (a hard case:
  hashed n-grams are close to random directions);
- "clustered": unit vectors around 2,000 centres plus noise, a proxy for sentence embeddings.
Writes bench/results/registry-recall.json and .md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import registry_bench as rb  # noqa: E402
import registry_synthetic as syn  # noqa: E402


def record_texts(n: int, seed: int) -> list[str]:
    from igpg_zoo.adapters.smallnet_grammar import describe, parse
    from igpg_zoo.registry.ingest import record_text

    return sorted({record_text(r.task, r.dataset, describe(parse(r.arch))) for r in syn.records(n, seed=seed, runs=1)})


def grid(name: str, base: np.ndarray, queries: np.ndarray, params: list[tuple[int, int]], sweep: tuple[int, ...]) -> list:
    from igpg_zoo.search.index import VectorIndex

    ids, dim = np.arange(1, len(base) + 1), base.shape[1]
    exact = VectorIndex(rb.SCRATCH / f"{name}-exact.faiss", dim, 10**12)
    exact.rebuild(ids, base)
    wanted = [exact.search(q, 10) for q in queries]
    exact_ms = rb.latency(lambda q: exact.search(q, 10), list(queries[:100]), 3)
    rows = []
    for m, efc in params:
        approx = VectorIndex(rb.SCRATCH / f"{name}-{m}-{efc}.faiss", dim, 0, hnsw_m=m, ef_construction=efc)
        t = time.perf_counter()
        approx.rebuild(ids, base)
        build = round(time.perf_counter() - t, 1)
        for ef in sweep:
            approx.ef_search = ef
            rows.append({"vectors": name, "n": int(approx._index.ntotal), "M": m, "efConstruction": efc, "efSearch": ef,
                         "build_seconds": build, **rb.recall(approx, wanted, queries), "exact_search": exact_ms,
                         "search": rb.latency(lambda q: approx.search(q, 10), list(queries[:100]), 3), "load": rb.load()})
            print(f"{name} n={len(base)} M={m} efC={efc} ef={ef}: {rows[-1]['strict']} "
                  f"({rows[-1]['search']['p50_ms']} ms)", flush=True)
    return rows


def duplicates(n: int, copies: int, sweep: tuple[int, ...]) -> list:
    """Raw FAISS HNSW over ``copies`` identical copies of n clustered vectors vs over the n alone:
    why VectorIndex stores each distinct vector once. Recall is tie-aware (copies tie)."""
    import faiss

    x = rb.clustered_vectors(n + 200, 384, seed=3)
    base, queries = x[:n], x[n:]
    exact = faiss.IndexFlatIP(384)
    exact.add(np.repeat(base, copies, axis=0))
    floor = exact.search(queries, 10)[0][:, 9:10] - 1e-5  # (q, 1) the 10th exact score
    rows = []
    for name, data, per_hit in (("duplicated", np.repeat(base, copies, axis=0), 1), ("distinct", base, copies)):
        hnsw = faiss.IndexHNSWFlat(384, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efConstruction = 64
        t = time.perf_counter()
        hnsw.add(data)
        build = round(time.perf_counter() - t, 1)
        for ef in sweep:
            hnsw.hnsw.efSearch = ef
            scores = hnsw.search(queries, 10)[0]
            ties = np.minimum((scores >= floor).sum(1) * per_hit, 10) / 10
            rows.append({"vectors": f"duplicates: {name}", "n": int(hnsw.ntotal), "M": 32, "efConstruction": 64,
                         "efSearch": ef, "build_seconds": build, "strict": round(float(ties.mean()), 4),
                         "search": {"p50_ms": None, "p95_ms": None}, "exact_search": {"p50_ms": None}})
            print(rows[-1], flush=True)
    return rows


def table(out: dict) -> str:
    lines = ["# HNSW recall@10 on distinct vectors", "", f"`{out['command']}`, {out['started_utc']}, load {out['load']} "
             "on a shared 2-CPU machine. Exact = IndexFlatIP over the same vectors.", "",
             "| vectors | n | M | efConstruction | build s | efSearch | recall@10 (duplicates: tie-aware) | HNSW p50/p95 ms "
             "| exact p50 ms |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in out["rows"]:
        lines.append(f"| {r['vectors']} | {r['n']} | {r['M']} | {r['efConstruction']} | {r['build_seconds']} | {r['efSearch']} "
                     f"| {r['strict']} | {r['search']['p50_ms']} / {r['search']['p95_ms']} | {r['exact_search']['p50_ms']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--minilm", type=int, default=None, help="records whose texts MiniLM embeds (default 6000)")
    ap.add_argument("--out", default=str(rb.RESULTS / "registry-recall.json"))
    ap.add_argument("--duplicates", action="store_true",
                    help="only add the duplicated-vs-distinct HNSW rows to an existing result file")
    args = ap.parse_args()
    if args.duplicates:
        out = json.loads(Path(args.out).read_text())
        out["rows"] += duplicates(1_000 if args.quick else 10_000, 10, (32, 64, 128, 256))
        rb._save(out, args.out)
        Path(args.out).with_suffix(".md").write_text(table(out))
        return
    from igpg_zoo.search.embed import HashEmbedder, get_embedder

    rb.SCRATCH.mkdir(parents=True, exist_ok=True)
    n_big, n_minilm = (5_000, 500) if args.quick else (100_000, args.minilm or 6_000)
    out = {"command": " ".join(["python", *sys.argv]), "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "load": rb.load(), "rows": []}
    queries = rb.query_texts(syn.records(2000, seed=9, runs=1), 200 - len(syn.QUERIES), seed=2)
    sweep = (64, 128, 256, 512)
    minilm = get_embedder(None)
    out["rows"] += grid("minilm", minilm.embed(record_texts(n_minilm, 11)), minilm.embed(queries), [(32, 64)], sweep)
    rb._save(out, args.out)
    hashed = HashEmbedder()
    out["rows"] += grid("hash", hashed.embed(record_texts(n_big, 7)), hashed.embed(queries),
                        [(32, 64), (32, 200), (64, 200)], sweep)
    rb._save(out, args.out)
    x = rb.clustered_vectors(n_big + 200, 384)
    out["rows"] += grid("clustered", x[:n_big], x[n_big:], [(32, 64)], (32, 64, 128))
    rb._save(out, args.out)
    Path(args.out).with_suffix(".md").write_text(table(out))
    print(table(out))


if __name__ == "__main__":
    main()
