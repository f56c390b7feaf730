"""The search index on disk: three files written atomically, and read back only when they vouch for
each other.

- ``<path>``: the FAISS index (``IndexIDMap2`` labelled by group);
- ``<path>.ids.npy``: the id table, a (2, n) int64 array of checkpoint ids and their groups;
- ``<path>.json``: the sidecar, written last: format version, dim, kind, counts, tombstoned groups
  and the table's SHA-256.

Each file goes through a temporary file, fsync and rename (then the directory is fsynced), so a crash
leaves either the old file or the new one. A reader that finds the set missing, unreadable or
inconsistent gets None, and the Zoo rebuilds the index from the vectors in the database.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from igpg_zoo.registry.blobs import fsync_dir

FORMAT_VERSION = 2
FLAT, HNSW = "flat", "hnsw"
_GUARD = threading.RLock()  # one thread of a process in the files' lock at a time
_HELD: dict[str, int] = {}  # index path -> depth of the lock this process holds


@dataclass
class IndexFiles:
    path: Path

    @property
    def sidecar(self) -> Path:
        return self.path.with_name(self.path.name + ".json")

    @property
    def table(self) -> Path:
        return self.path.with_name(self.path.name + ".ids.npy")

    @property
    def lockfile(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def stamp(self) -> tuple[int, int, int] | None:
        """What changes when the sidecar (written last) is replaced: compared to know the files changed."""
        try:
            st = self.sidecar.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    @contextmanager
    def lock(self):
        """Held while a process reads the files or reads, changes and writes them: exclusive across
        processes (flock on ``<path>.lock``), re-entrant within one; without a lock where the folder
        is read-only (nobody writes the index from here)."""
        key = str(self.path)
        with _GUARD:
            if _HELD.get(key):
                _HELD[key] += 1
                try:
                    yield
                finally:
                    _HELD[key] -= 1
                return
            fd = self._open_lockfile()
            try:
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
                _HELD[key] = 1
                try:
                    yield
                finally:
                    _HELD.pop(key, None)
            finally:
                if fd is not None:
                    os.close(fd)  # releases the flock

    def _open_lockfile(self) -> int | None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.lockfile, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            try:
                return os.open(self.lockfile, os.O_RDONLY)
            except OSError:
                return None

    def read(self, dim: int):
        """(index, kind, ids, groups, dead) with ids sorted, or None when the files do not vouch for each other."""
        import faiss

        try:
            meta = json.loads(self.sidecar.read_text())
            raw = self.table.read_bytes()
            if meta.get("format") != FORMAT_VERSION or meta.get("table_sha256") != hashlib.sha256(raw).hexdigest():
                return None
            table = np.load(io.BytesIO(raw), allow_pickle=False)
            index = faiss.read_index(str(self.path))
            dead = np.sort(np.asarray(meta.get("tombstones", []), dtype=np.int64))
            labels = np.sort(faiss.vector_to_array(index.id_map).astype(np.int64))
            ok = (meta.get("dim") == dim == index.d and meta.get("kind") in (FLAT, HNSW)
                  and isinstance(index, faiss.IndexIDMap2) and table.shape == (2, meta.get("count"))
                  and np.array_equal(labels, np.union1d(table[1], dead)))
        except (OSError, ValueError, TypeError, AttributeError, RuntimeError):
            return None  # missing or unreadable
        if not ok:
            return None
        order = np.argsort(table[0], kind="stable")
        return index, meta["kind"], table[0][order], table[1][order], dead

    def write(self, index, kind: str, ids: np.ndarray, groups: np.ndarray, dead: np.ndarray, dim: int,
              hnsw: dict | None) -> None:
        """The index and the id table, then the sidecar that vouches for both, each atomically."""
        import faiss

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._temporary(self.path) as tmp:
            faiss.write_index(index, str(tmp))
            _fsync_replace(tmp, self.path)
        with self._temporary(self.table) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.stack([ids, groups]), allow_pickle=False)  # (2, n)
            _fsync_replace(tmp, self.table)
        meta = {"format": FORMAT_VERSION, "dim": dim, "kind": kind, "count": len(ids),
                "vectors": int(index.ntotal), "table_sha256": hashlib.sha256(self.table.read_bytes()).hexdigest(),
                "hnsw": hnsw, "tombstones": dead.tolist()}
        with self._temporary(self.sidecar) as tmp:
            tmp.write_text(json.dumps(meta))
            _fsync_replace(tmp, self.sidecar)

    @staticmethod
    @contextmanager
    def _temporary(final: Path):
        tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
        try:
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)


def _fsync_replace(tmp: Path, final: Path) -> None:
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, final)
    fsync_dir(final.parent)
