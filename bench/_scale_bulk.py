"""Loading and querying a large synthetic registry (bench/scale.py).

Records come from bench/_registry_synthetic.py (10 runs per configuration); records of one
architecture share one small weights blob, so a million records need a few hundred blob files.

Two add paths, both timed:
- ``add_public``: ``Zoo.add_many(batch=256)``, the public bulk add (validation, canonical
  safetensors bytes and hash per record, embedding, blob, one transaction per batch, index update);
- ``add_bulk``: the rest of the records, prepared once per architecture by the same ``Ingest`` and
  then per record only the metadata (validated, identity, text, vector), inserted through
  ``CheckpointStore.insert_many`` (the transaction ``add_many`` commits: blob lock, identity
  uniqueness, metric, tag and vector rows) in batches of ``BULK_BATCH``; the index is built once
  at the end (``Zoo.reindex``) instead of being updated per batch.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import replace

import numpy as np

from bench import _registry_synthetic as syn

BULK_BATCH = 5000
ADD_BATCH = 256


def meta_of(r):
    from igpg_zoo.records import CheckpointMeta, Metric

    return CheckpointMeta(arch=r.arch, task=r.task, dataset=r.dataset, tags=r.tags, name=r.name,
                          metrics=tuple(Metric(k, v, r.dataset) for k, v in r.metrics.items()))


class SharedWeights:
    """One random weights dict per architecture (the same object each time it is asked for)."""

    def __init__(self, seed: int = 0):
        self.rng, self.by_arch = np.random.default_rng(seed), {}

    def __call__(self, arch: str):
        if arch not in self.by_arch:
            self.by_arch[arch] = syn.random_weights(arch, self.rng)
        return self.by_arch[arch]


def add_public(zoo, records, start: int, stop: int, weights: SharedWeights) -> dict:
    """``Zoo.add_many`` over records[start:stop]; returns the rate."""
    items = [(weights(r.arch), meta_of(r)) for r in records[start:stop]]
    t = time.perf_counter()
    results = zoo.add_many(items, batch=ADD_BATCH)
    seconds = time.perf_counter() - t
    assert all(r.created for r in results), "synthetic records must all be new"
    n = stop - start
    return {"records": n, "batch": ADD_BATCH, "seconds": round(seconds, 2), "per_s": round(n / seconds, 1)}


class BulkLoader:
    """Prepared rows for records of known architectures, inserted by ``CheckpointStore.insert_many``."""

    def __init__(self, zoo, weights: SharedWeights):
        from igpg_zoo.registry.ingest import Ingest

        self.zoo, self.weights = zoo, weights
        self.ingest = Ingest(zoo.store, lambda: zoo.embedder)
        self.templates = {}  # arch -> Prepared of a first record: weights validated, blob bytes and hash
        self.descriptions = {}  # arch -> the adapter's description (the end of the record text)
        self.datasets = {}  # dataset name -> dataset vector (or None)

    def _prepared(self, r):
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.registry import metadata
        from igpg_zoo.registry.ingest import _dataset_vector, record_text

        if r.arch not in self.templates:
            self.templates[r.arch] = first = self.ingest.prepare(self.weights(r.arch), meta_of(r))
            self.zoo.blobs.write(first.sha256, first.data)
            self.descriptions[r.arch] = get_adapter(first.meta.arch).describe(first.meta.arch)
        template = self.templates[r.arch]
        meta = replace(metadata.validate(meta_of(r)), arch=template.meta.arch)
        if r.dataset not in self.datasets:
            self.datasets[r.dataset] = _dataset_vector(r.dataset, self.zoo.embedder)
        text = record_text(meta.task, meta.dataset, self.descriptions[r.arch])
        return replace(template, meta=meta, identity=metadata.identity(template.sha256, meta), text=text,
                       text_sha=hashlib.sha256(text.encode()).hexdigest(), dataset_vector=self.datasets[r.dataset])

    def load(self, records, start: int, stop: int, progress=None) -> dict:
        self.zoo._writable()
        t, inserted = time.perf_counter(), 0
        for lo in range(start, stop, BULK_BATCH):
            rows = self.ingest.embed([self._prepared(r) for r in records[lo:min(stop, lo + BULK_BATCH)]])
            done = self.zoo.store.insert_many(rows)
            assert all(created for _, created in done), "synthetic records must all be new"
            inserted += len(done)
            if progress:
                progress(lo + len(done), inserted / (time.perf_counter() - t))
        seconds = time.perf_counter() - t
        return {"records": inserted, "batch": BULK_BATCH, "seconds": round(seconds, 1),
                "per_s": round(inserted / max(seconds, 1e-9), 1)}


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
