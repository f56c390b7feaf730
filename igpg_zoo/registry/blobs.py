"""Content-addressed blobs: ``<root>/<sha256>.safetensors``, written atomically.

A blob's name is the sha256 of its bytes, so verifying it is hashing the file. Writes go to a
temporary file in the same folder, are fsynced, then renamed into place (and the folder fsynced),
so a reader never sees half a blob. Deciding whether a blob is still used is the caller's job.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from igpg_zoo.errors import IntegrityError, NotFound

if TYPE_CHECKING:
    import torch

SUFFIX = ".safetensors"
_CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (used by the blob store and the search index files)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some platforms cannot open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """The blob folder of one registry."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def path(self, sha256: str) -> Path:
        return self.root / f"{sha256}{SUFFIX}"

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def write(self, sha256: str, data: bytes, *, sync: bool = True) -> bool:
        """Store ``data`` under ``sha256``; False when an intact blob was already there.

        A blob that is there but corrupted is replaced (and True returned), so adding the weights
        again repairs it.
        """
        target = self.path(sha256)
        if self.verify(sha256):
            return False
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{sha256[:12]}-", suffix=".tmp", dir=self.root)
        try:
            os.fchmod(fd, _file_mode())  # mkstemp makes 0600; blobs are plain readable files
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                if sync:
                    os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        if sync:
            fsync_dir(self.root)
        return True

    def write_many(self, blobs: Iterable[tuple[str, bytes]]) -> list[str]:
        """Store several blobs with one flush to disk for all of them; returns the shas created."""
        pending: list[tuple[str, Path]] = []
        try:
            for sha, data in blobs:
                if any(s == sha for s, _ in pending) or self.verify(sha):
                    continue
                self.root.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix=f".{sha[:12]}-", suffix=".tmp", dir=self.root)
                pending.append((sha, Path(tmp)))
                os.fchmod(fd, _file_mode())
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            if pending:
                os.sync()  # one flush for the batch instead of one fsync per file
            for sha, tmp in pending:
                os.replace(tmp, self.path(sha))
        except BaseException:
            for _, tmp in pending:
                tmp.unlink(missing_ok=True)
            raise
        if pending:
            fsync_dir(self.root)
        return [sha for sha, _ in pending]

    def read(self, sha256: str, *, verify: bool = True) -> bytes:
        try:
            data = self.path(sha256).read_bytes()
        except FileNotFoundError:
            raise NotFound(f"blob {sha256} is missing from {self.root}; run 'igpg-zoo verify'") from None
        if verify and hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(
                f"blob {sha256} is corrupted (its content hash differs); run 'igpg-zoo verify' and re-add the weights"
            )
        return data

    def load(self, sha256: str) -> dict[str, torch.Tensor]:
        """The tensors of a blob, after checking its hash."""
        from safetensors.torch import load

        return load(self.read(sha256))

    def verify(self, sha256: str) -> bool:
        """Whether the blob exists and its content hashes to its name."""
        path = self.path(sha256)
        return path.is_file() and sha256_file(path) == sha256

    def delete(self, sha256: str) -> bool:
        try:
            self.path(sha256).unlink()
        except FileNotFoundError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        """The shas of every blob in the folder."""
        if not self.root.is_dir():
            return
        for path in self.root.glob(f"*{SUFFIX}"):
            yield path.name[: -len(SUFFIX)]

    def temporaries(self) -> list[Path]:
        """Leftover temporary files of interrupted writes."""
        return sorted(self.root.glob(".*.tmp")) if self.root.is_dir() else []
