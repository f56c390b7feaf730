"""The markdown table of bench/registry_bench.py's result file (bench/results/registry.md)."""

from __future__ import annotations


def table(out: dict, timed: str, filters) -> str:
    """The markdown summary of a result file; ``timed`` says what was timed, ``filters`` names the query filters."""
    lines = [f"# Registry benchmark\n\n`{out['command']}`, {out['started_utc']}; load average (1/5/15 min) at start "
             f"{out['load_at_start']}, at end {out.get('load_at_end')}, on {out['machine']['cpus']} CPUs shared with "
             "other jobs: timings are noisy. Synthetic records: 10 runs (own metrics, tags, weights) per "
             "configuration (task, dataset, arch).", "", timed, "",
             "| records | index | add_many rec/s (hash) | add_weights 1 call p50 ms | filter | (a) index search p50/p95 ms "
             "| (c) Zoo.query hash p50/p95 ms |", "|---|---|---|---|---|---|---|"]
    rows = [(size, e["add_many"]["per_s"], e["add_weights_one_call"]["p50_ms"], e["query_hash"])
            for size, e in out["sizes"].items()]
    rows += [(f"{q['size']} (rerun {i + 1})", "", "", q) for i, q in enumerate(out.get("requery", []))]
    for size, add_rate, one_add, q in rows:
        for label in [f for f in filters if f in q]:
            a, c = q[label]["index_search"], q[label]["zoo_query"]
            lines.append(f"| {size} | {q['index_kind']} | {add_rate} | {one_add} "
                         f"| {label} ({q[label]['allowed'] or 'all'}) | {a['p50_ms']} / {a['p95_ms']} | {c['p50_ms']} / {c['p95_ms']} |")
    if "minilm" in out:
        m = out["minilm"]
        q = m["query_minilm"]
        lines += ["", f"MiniLM registry of {m['add_many']['records']} records ({m['distinct_texts']} distinct texts): "
                  f"add_many {m['add_many']['per_s']} rec/s; one query text embedded p50/p95 "
                  f"{m['embed_minilm_single']['p50_ms']} / {m['embed_minilm_single']['p95_ms']} ms (hash embedder: "
                  f"{out['embed_hash_single']['p50_ms']} / {out['embed_hash_single']['p95_ms']} ms).", "",
                  "| filter | (a) index search p50/p95 ms | (b) Zoo.query MiniLM p50/p95 ms |", "|---|---|---|"]
        for label in [f for f in filters if f in q]:
            a, b = q[label]["index_search"], q[label]["zoo_query"]
            lines.append(f"| {label} | {a['p50_ms']} / {a['p95_ms']} | {b['p50_ms']} / {b['p95_ms']} |")
    r = out.get("recall")
    if r:
        lines += ["", f"Recall@10, HNSW (M={r['hnsw']['M']}, efConstruction={r['hnsw']['efConstruction']}) vs exact, "
                  f"{r['records']} stored vectors ({r['distinct_vectors']} distinct), {r['unfiltered']['queries']} queries; "
                  f"exact search p50 {r['exact_search']['p50_ms']} ms. Unfiltered at the default efSearch="
                  f"{r['hnsw']['efSearch']}: strict {r['unfiltered']['strict']}, tie-aware {r['unfiltered']['ties']}; "
                  f"filtered (tag bench, {r['filtered tag bench']['allowed']} ids): strict {r['filtered tag bench']['strict']}, "
                  f"tie-aware {r['filtered tag bench']['ties']}.", "",
                  "| efSearch | recall strict | recall tie-aware | search p50/p95 ms |", "|---|---|---|---|"]
        for s in r["ef_sweep"]:
            lines.append(f"| {s['efSearch']} | {s['strict']} | {s['ties']} | {s['search']['p50_ms']} / {s['search']['p95_ms']} |")
    if out.get("distinct_recall"):
        lines += ["", "HNSW recall@10 vs exact on distinct vectors (index only; hash: synthetic record texts with one run "
                  "per configuration, queried with 200 query texts; clustered: 2,000 centres + noise):", "",
                  "| vectors | n | M | efSearch | build s | recall@10 | search p50/p95 ms |", "|---|---|---|---|---|---|---|"]
        for s in out["distinct_recall"]:
            lines.append(f"| {s['vectors']} | {s['n']} | {s['M']} | {s['efSearch']} | {s['build_seconds']} | {s['strict']} "
                         f"| {s['search']['p50_ms']} / {s['search']['p95_ms']} |")
    return "\n".join(lines) + "\n"
