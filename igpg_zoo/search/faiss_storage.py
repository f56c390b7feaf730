"""A FAISS index's own storage read in bulk (its group labels and vectors, no per-vector calls), and
one OpenMP thread for a single query."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np


@contextmanager
def one_thread():
    """One query gains nothing from OpenMP; on a busy machine its barrier waits cost 10-250 ms."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def stored_labels(index) -> np.ndarray:
    """The label of each position in the storage of an ``IndexIDMap2``."""
    import faiss

    return faiss.vector_to_array(index.id_map).astype(np.int64)


def stored_vectors(index, dim: int) -> np.ndarray:
    """The vectors of an ``IndexIDMap2`` over a flat or HNSW index, in storage order: (ntotal, dim), a view."""
    import faiss

    inner = faiss.downcast_index(index.index)
    flat = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else inner
    return faiss.rev_swig_ptr(flat.get_xb(), index.ntotal * dim).reshape(-1, dim)
