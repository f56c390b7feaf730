"""The Zoo facade: ``open_zoo()`` and the verbs of the registry. Orchestration only.

Write order for every add: validate and canonicalise, embed, write the blob (temp, fsync, rename),
commit the row, then update the search index. A failure before the commit removes a blob this call
created and no row uses; a failed index update leaves the database right (``reindex`` repairs).
Whether a blob is used is decided under the database's blob lock (``Database.lock_blobs``): an add
checks its blob is still there inside the transaction that inserts its row, and a remove moves an
unused blob aside inside the transaction that deletes its row, so concurrent adds and removes of the
same weights never leave a row without its blob.
A SQLite registry file is created on the first write; reading a missing one reads as empty.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.config import ZooConfig, resolve_config
from igpg_zoo.errors import ConfigError, IntegrityError, InvalidMetadata, ZooError
from igpg_zoo.records import AddResult, Checkpoint, CheckpointMeta, Hit
from igpg_zoo.registry.blobs import BlobStore
from igpg_zoo.registry.connections import Connections
from igpg_zoo.registry.filters import make_filters
from igpg_zoo.registry.metadata import require_json
from igpg_zoo.zoo_artifacts import ZooArtifacts

if TYPE_CHECKING:
    import numpy as np
    import torch

    from igpg_zoo.registry.answer_store import AnswerStore
    from igpg_zoo.registry.artifact_store import ArtifactStore
    from igpg_zoo.registry.ingest import Prepared
    from igpg_zoo.registry.search_cache import SearchCache
    from igpg_zoo.registry.sqlite_reads import SqliteReads
    from igpg_zoo.registry.store import CheckpointStore
    from igpg_zoo.search.embed import Embedder

PREPARE_CHUNK = 256  # checkpoints prepared (and embedded) together by add_many
BULK_BATCH = 64  # models per transaction of a folder import (one blob flush and one commit each)


class Zoo(ZooArtifacts):
    """A registry: database (truth), blob folder, and search index (cache)."""

    def __init__(self, config: ZooConfig, embedder: Embedder | str | None = None, light_reads: bool = False):
        """``light_reads``: on an existing SQLite file at the current schema, read records and vectors
        through ``sqlite3`` (``SqliteReads``) and open the SQLAlchemy database only when something
        needs it (a write, or a read those do not cover); for processes that mostly read once."""
        self.config = config
        self._embedder = embedder if not isinstance(embedder, str) else None
        self._embedder_spec = embedder if isinstance(embedder, str) else config.embedder
        self._blobs: BlobStore | None = None
        self._search: SearchCache | None = None
        self._query_dim: int | None = None  # set by the first query once embedder and index are checked
        self._connections = Connections(config, light_reads)

    @property
    def store(self) -> CheckpointStore:
        return self._connections.store("store")

    @property
    def artifacts(self) -> ArtifactStore:
        return self._connections.store("artifacts")

    @property
    def answers(self) -> AnswerStore:
        return self._connections.store("answers")

    @property
    def reads(self) -> CheckpointStore | SqliteReads:
        """Where records and vectors are read: ``SqliteReads`` when opened with light reads, else the store."""
        return self._connections.reads()

    @property
    def search(self) -> SearchCache:
        if self._search is None:
            from igpg_zoo.registry.search_cache import SearchCache

            self._search = SearchCache(self.reads, self.config.index_path, self.config.approx_threshold)
        return self._search

    @search.setter
    def search(self, cache: SearchCache) -> None:
        self._search = cache

    def _writable(self) -> None:
        self._connections.writable()

    @property
    def blobs(self) -> BlobStore:
        if self._blobs is None:
            self._blobs = BlobStore(self.config.blob_root, self.config.blob_owner)
        return self._blobs

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            from igpg_zoo.search.embed import get_embedder

            self._embedder = get_embedder(self._embedder_spec)
        return self._embedder

    def close(self) -> None:
        self._connections.close()

    def __enter__(self) -> Zoo:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- adding ------------------------------------------------------------------------------

    def add(self, path: str | Path, meta: CheckpointMeta) -> AddResult:
        """Read a checkpoint file (safe loaders only), validate it strictly against ``meta.arch``, add it."""
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.registry import metadata
        from igpg_zoo.registry.ingest import read_for_add

        meta = metadata.validate(meta)
        weights = read_for_add(get_adapter(meta.arch), Path(path))
        return self.add_weights(weights, meta)

    def add_weights(self, weights: dict[str, torch.Tensor], meta: CheckpointMeta) -> AddResult:
        """Add in-memory weights; the same weights with the same metadata return the existing record."""
        return self.add_many([(weights, meta)])[0]

    def add_many(self, items: Iterable[tuple[dict[str, torch.Tensor], CheckpointMeta]], *, batch: int = 1,
                 on_error: Callable[[int, ZooError], None] | None = None,
                 progress: Callable[[int], None] | None = None) -> list[AddResult]:
        """Add many checkpoints with batched embedding; one transaction per ``batch`` models (default 1).

        Args:
            batch: models per transaction; above 1 the blobs of a batch share one flush to disk.
            on_error: called with (position, error) for a refused item, which is skipped; without it
                the first error is raised after the items before it are added.
            progress: called with the number of items handled so far.
        """
        import numpy as np

        from igpg_zoo.registry.ingest import Ingest

        if batch < 1:
            raise InvalidMetadata(f"batch must be 1 or more, got {batch}")
        _ = self.blobs  # a server registry without a blob folder fails here, before any work
        self._writable()
        ingest = Ingest(self.store, lambda: self.embedder)
        results: list[AddResult] = []
        new_ids: list[int] = []
        new_vectors: list[np.ndarray] = []
        iterator, position = iter(items), 0
        failure: ZooError | None = None
        try:
            while failure is None and (chunk := list(islice(iterator, PREPARE_CHUNK))):
                prepared: list[tuple[int, Prepared]] = []
                for offset, (weights, meta) in enumerate(chunk):
                    try:
                        prepared.append((position + offset, ingest.prepare(weights, meta)))
                    except ZooError as err:
                        if on_error is None:
                            failure = err  # commit the items before it, then raise
                            break
                        on_error(position + offset, err)
                rows = ingest.embed([p for _, p in prepared])
                for start in range(0, len(prepared), batch):
                    group = list(zip(prepared[start:start + batch], rows[start:start + batch], strict=True))
                    for result, vector in self._commit(group, on_error):
                        results.append(result)
                        if result.created:
                            new_ids.append(result.checkpoint.id)
                            new_vectors.append(vector)
                position += len(chunk)
                if progress is not None:
                    progress(position)
        finally:
            if new_ids:
                self.search.after_add(np.asarray(new_ids, dtype=np.int64), np.stack(new_vectors))
        if failure is not None:
            raise failure
        return results

    def _commit(self, group, on_error) -> list[tuple[AddResult, np.ndarray]]:
        """Write the group's blobs, then its rows in one transaction; undo new blobs on failure."""
        created: list[str] = []
        preps = [prep for (_, prep), _ in group]
        try:
            if len(group) == 1:
                created = [preps[0].sha256] if self.blobs.write(preps[0].sha256, preps[0].data) else []
            else:
                created = self.blobs.write_many((prep.sha256, prep.data) for prep in preps)
            inserted = self.store.insert_many([new for _, new in group],
                                              in_lock=lambda: created.extend(self._rewrite_missing(preps)))
        except BaseException as err:
            self._drop_unused(created)
            if len(group) > 1 and on_error is not None and isinstance(err, ZooError):
                return [r for item in group for r in self._commit([item], on_error)]  # find the bad one
            if isinstance(err, ZooError) and on_error is not None:
                on_error(group[0][0][0], err)
                return []
            raise
        return [(AddResult(rec, made), new.text_vector) for (rec, made), (_, new) in zip(inserted, group, strict=True)]

    def _rewrite_missing(self, blobs) -> list[str]:
        """Under the blob lock: write again any blob (``.sha256``, ``.data``) a concurrent remove deleted
        after this add found it already stored; returns the shas written."""
        return [b.sha256 for b in blobs if not self.blobs.has(b.sha256) and self.blobs.write(b.sha256, b.data)]

    def _drop_unused(self, shas: Sequence[str]) -> None:
        if not shas:
            return
        try:
            self.store.release(list(dict.fromkeys(shas)), self.blobs.delete)
        except Exception:  # the database is unreachable: leave the blob, verify reports it
            pass

    # -- reading -----------------------------------------------------------------------------

    def get(self, checkpoint_id: int) -> Checkpoint:
        return self.reads.get(checkpoint_id)

    def get_many(self, ids: Iterable[int]) -> list[Checkpoint]:
        return self.reads.get_many(ids)

    def list(self, arch=(), dataset=(), task=(), kind=(), tags=(), where=(), sort: str | None = None,
             descending: bool = True, limit: int | None = None) -> list[Checkpoint]:
        """Records passing the filters (values of a field ORed, fields ANDed), sorted by a metric or column."""
        filters = make_filters(arch, dataset, task, kind, tags, where)
        return self.reads.list(filters, sort=sort, descending=descending, limit=limit)

    def query(self, text: str, k: int = 10, arch=(), dataset=(), task=(), where=(), kind=(), tags=()) -> list[Hit]:
        """The k records most similar to ``text`` among those passing the filters, best first."""
        import numpy as np

        filters = make_filters(arch, dataset, task, kind, tags, where)
        if k <= 0 or not text.strip():
            raise InvalidMetadata("query needs some text and k >= 1")
        if self._query_dim is None:  # first query of this session: check embedder and index once
            dim = self.reads.dim()
            if dim is None:
                return []
            others = sorted(set(self.reads.embedders()) - {self.embedder.name})
            if others:
                raise ConfigError(f"the registry's vectors come from embedder {', '.join(others)}, not "
                                  f"{self.embedder.name}; use that embedder (IGPG_ZOO_EMBEDDER) or run "
                                  "'igpg-zoo reindex --reembed'")
            self._query_dim = dim
        self.search.synced(self._query_dim)
        q = np.asarray(self.embedder.embed([text]), dtype=np.float32)[0]  # (dim,)
        found = self.search.search(q, k + _TIE_WINDOW, filters)
        records = self.reads.get_many([i for i, _ in found])
        hits = [Hit(rec, float(score)) for rec, (_, score) in zip(records, found, strict=True)]
        return sorted(hits, key=_rank_key)[:k]

    def load_weights(self, checkpoint_id: int) -> dict[str, torch.Tensor]:
        """The record's weights, read from its blob after checking the blob's hash."""
        return self.blobs.load(self.store.get(checkpoint_id).sha256)

    def text_embedding(self, checkpoint_id: int) -> np.ndarray:
        vector, _ = self.store.embedding(checkpoint_id)
        if vector is None:
            raise IntegrityError(
                f"checkpoint #{checkpoint_id} has no stored text vector; run 'igpg-zoo reindex --reembed'"
            )
        return vector

    def dataset_embedding(self, checkpoint_id: int) -> np.ndarray | None:
        return self.store.embedding(checkpoint_id)[1]

    def snapshot(self, ids: Iterable[int] | None = None) -> dict[str, Any]:
        """The ids (sorted) and the sha256 of their (id, sha256) pairs: what a generator was trained on."""
        pairs = self.store.id_sha_pairs(ids)
        digest = hashlib.sha256("\n".join(f"{i}:{sha}" for i, sha in pairs).encode()).hexdigest()
        return {"ids": [i for i, _ in pairs], "hash": digest}

    # -- changing ----------------------------------------------------------------------------

    def update_extra(self, checkpoint_id: int, **facts: Any) -> Checkpoint:
        """Merge facts (JSON values) into the record's ``extra``."""
        require_json(facts, "extra facts")
        self._writable()
        return self.store.update_extra(checkpoint_id, facts)

    def remove(self, checkpoint_id: int) -> Checkpoint:
        """Delete a record; its blob goes too unless another record or artifact uses it."""
        _ = self.blobs
        self.store.get(checkpoint_id)  # an unknown id is NotFound before a new registry file is created
        self._writable()
        retired: list[Path] = []
        try:
            record = self.store.remove(checkpoint_id, on_unused=lambda sha: retired.extend(
                [p for p in [self.blobs.retire(sha)] if p is not None]))
        except BaseException:
            for path in retired:  # the delete rolled back: the blob is used again
                self.blobs.restore(path)
            raise
        for path in retired:
            self.blobs.purge(path)
        self.search.after_remove(record.id)
        return record

    def verify(self) -> list[str]:
        """Every problem between database, blobs and index (empty when all is well); hashes every blob."""
        from igpg_zoo.registry.health import problems

        return problems(self)

    def repair(self) -> list[str]:
        """Put right what ``verify`` finds that needs no weights from the user (orphan blobs, leftover
        temporaries, a blob an interrupted remove moved aside, a stale index); returns what was done."""
        from igpg_zoo.registry.health import repair

        self._writable()
        return repair(self)

    def reindex(self, reembed: bool = False) -> int:
        """Rebuild the search index from the stored vectors (re-embed every text first if asked)."""
        if reembed:
            import numpy as np

            texts = self.store.texts()
            if texts:
                self._writable()
                vectors = np.asarray(self.embedder.embed([t for _, t in texts]), dtype=np.float32)
                fresh = {i: v for (i, _), v in zip(texts, vectors, strict=True)}
                self.store.set_text_vectors(self.embedder.name, fresh)
            self._query_dim = None
        dim = self.store.dim()
        if dim is None and not (self.config.index_path.exists()):
            return 0
        return self.search.rebuild(dim or self.embedder.dim)

    # -- answers (igpg_zoo.answer) -------------------------------------------------------------

    def answer(self, text: str | None = None, data=None, arch: Sequence[str] = (), **options: Any):
        """Which weights to start from: retrieve, draw, score on ``data``, decide, record (igpg_zoo.answer)."""
        from igpg_zoo.answer import answer

        return answer(self, text, data, tuple(arch), **options)

    def select(self, data, arch: Sequence[str] = (), **options: Any):
        """Stored members ranked as starts for ``data``, with static baselines (igpg_zoo.answer)."""
        from igpg_zoo.answer import select

        return select(self, data, tuple(arch), **options)


def open_zoo(registry: str | None = None, blobs: str | None = None, embedder: Embedder | str | None = None) -> Zoo:
    """Open the registry resolved from ``registry`` / ``IGPG_ZOO_REGISTRY`` / igpg-zoo.yaml / ./registry.db.

    Args:
        registry: SQLite file path or SQLAlchemy URL.
        blobs: blob folder (required for a server database unless configured).
        embedder: an Embedder instance, a spec string ("hash", a model path), or None for the configured one.
    """
    return Zoo(resolve_config(registry, blobs), embedder=embedder)


#: extra hits fetched so records tied on similarity (same task/dataset/arch text) rank by accuracy
_TIE_WINDOW = 20


def _rank_key(hit: Hit) -> tuple[float, float, int]:
    """Similarity first (to 4 decimals); among ties the checkpoint with the higher ``acc`` first."""
    acc = hit.checkpoint.metric("acc")
    return (-round(hit.score, 4), -(acc if acc is not None else float("-inf")), hit.checkpoint.id)
