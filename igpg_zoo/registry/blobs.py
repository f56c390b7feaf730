"""Content-addressed blobs: ``<root>/<sha256>.safetensors``, written atomically.

A blob's name is the sha256 of its bytes, so verifying it is hashing the file. Writes go to a
temporary file in the same folder, are fsynced, then renamed into place (and the folder fsynced),
so a reader never sees half a blob. Deciding whether a blob is still used is the caller's job.

A folder belongs to one registry: ``.owner`` names it (written with the first blob). Whether a blob is
still used can only be answered by the registry that owns the folder, so another registry opening it
is refused before it could delete a blob the owner still needs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from igpg_zoo.errors import ConfigError, IntegrityError, NotFound

if TYPE_CHECKING:
    import torch

SUFFIX = ".safetensors"
OWNER = ".owner"
RETIRED = "-removed-"  # in the name of a blob a remove moved aside: .<sha256>-removed-<pid>.tmp
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
    """The blob folder of one registry (``owner``: who it belongs to; None skips the check)."""

    def __init__(self, root: Path, owner: str | None = None):
        self.root = Path(root)
        self.owner = owner
        self.check_owner()

    def check_owner(self) -> None:
        """Refuse a folder another registry owns, or a blob root that is not a folder."""
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"blob folder {self.root} is a file; pass --blobs with a folder (or a path to create)")
        if self.owner is None:
            return
        try:
            claimed = (self.root / OWNER).read_text().strip()
        except (FileNotFoundError, NotADirectoryError):
            return
        if claimed != self.owner:
            raise ConfigError(
                f"blob folder {self.root} belongs to registry {claimed!r}, not {self.owner!r}; give this registry "
                f"its own folder (--blobs DIR or IGPG_ZOO_BLOBS), or delete {self.root / OWNER} if the registry moved"
            )

    def _claim(self) -> None:
        """Create the folder and name its owner, once."""
        self.root.mkdir(parents=True, exist_ok=True)
        marker = self.root / OWNER
        if self.owner is not None and not marker.exists():
            tmp = self.root / f".owner-{os.getpid()}.tmp"
            tmp.write_text(self.owner + "\n")
            os.replace(tmp, marker)

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
        self._claim()
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
                self._claim()
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

    def retire(self, sha256: str) -> Path | None:
        """Move a blob aside, under a temporary name ``temporaries`` reports, while the transaction that
        stops using it commits; ``restore`` undoes that, ``purge`` finishes it. None: there was no blob."""
        retired = self.root / f".{sha256}{RETIRED}{os.getpid()}.tmp"
        try:
            os.replace(self.path(sha256), retired)
        except FileNotFoundError:
            return None
        return retired

    @staticmethod
    def retired_sha(path: Path) -> str | None:
        """The sha of a blob ``retire`` moved to ``path``; None for any other temporary file."""
        head, sep, _ = path.name.partition(RETIRED)
        return head[1:] if sep and head.startswith(".") else None

    def restore(self, retired: Path) -> None:
        """Put a retired blob back (its transaction rolled back)."""
        os.replace(retired, self.path(self.retired_sha(retired)))

    @staticmethod
    def purge(retired: Path) -> None:
        retired.unlink(missing_ok=True)

    def __iter__(self) -> Iterator[str]:
        """The shas of every blob in the folder."""
        if not self.root.is_dir():
            return
        for path in self.root.glob(f"*{SUFFIX}"):
            yield path.name[: -len(SUFFIX)]

    def temporaries(self) -> list[Path]:
        """Leftover temporary files of interrupted writes."""
        return sorted(self.root.glob(".*.tmp")) if self.root.is_dir() else []
