"""Content-addressed blob folder."""

from __future__ import annotations

import hashlib
import stat

import pytest
import torch

from igpg_zoo.errors import IntegrityError, NotFound
from igpg_zoo.registry.blobs import BlobStore
from igpg_zoo.registry.checkpoint_io import canonical_bytes


def _blob(seed: float) -> tuple[str, bytes]:
    data = canonical_bytes({"w": torch.full((4,), seed)})
    return hashlib.sha256(data).hexdigest(), data


def test_write_is_idempotent_and_leaves_no_temporaries(tmp_path):
    blobs = BlobStore(tmp_path / "blobs")
    sha, data = _blob(1.0)
    assert blobs.write(sha, data) is True
    assert blobs.write(sha, data) is False
    assert list(blobs) == [sha] and blobs.temporaries() == []
    assert blobs.read(sha) == data and blobs.verify(sha)
    assert torch.equal(blobs.load(sha)["w"], torch.full((4,), 1.0))
    mode = stat.S_IMODE(blobs.path(sha).stat().st_mode)
    assert mode & stat.S_IRUSR and mode & stat.S_IWUSR


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    blobs = BlobStore(tmp_path / "blobs")
    sha, data = _blob(2.0)

    def boom(*_a):
        raise OSError("disk full")

    monkeypatch.setattr("igpg_zoo.registry.blobs.os.replace", boom)
    with pytest.raises(OSError):
        blobs.write(sha, data)
    assert list(blobs) == [] and blobs.temporaries() == []


def test_corruption_detected_on_verify_and_read(tmp_path):
    blobs = BlobStore(tmp_path)
    sha, data = _blob(3.0)
    blobs.write(sha, data)
    raw = bytearray(blobs.path(sha).read_bytes())
    raw[-1] ^= 0xFF
    blobs.path(sha).write_bytes(bytes(raw))
    assert not blobs.verify(sha)
    with pytest.raises(IntegrityError, match="corrupted"):
        blobs.read(sha)
    assert blobs.read(sha, verify=False) == bytes(raw)


def test_missing_blob_and_delete(tmp_path):
    blobs = BlobStore(tmp_path)
    sha, data = _blob(4.0)
    with pytest.raises(NotFound, match="missing"):
        blobs.read(sha)
    blobs.write(sha, data)
    assert blobs.delete(sha) is True and blobs.delete(sha) is False
    assert not blobs.has(sha)


def test_write_many_dedupes_and_skips_existing(tmp_path):
    blobs = BlobStore(tmp_path)
    a, b = _blob(5.0), _blob(6.0)
    blobs.write(*a)
    created = blobs.write_many([a, b, b])
    assert created == [b[0]]
    assert sorted(blobs) == sorted([a[0], b[0]]) and blobs.temporaries() == []
    assert all(blobs.verify(s) for s in blobs)


def test_writing_again_repairs_a_corrupted_blob(tmp_path):
    blobs = BlobStore(tmp_path)
    sha, data = _blob(7.0)
    blobs.write(sha, data)
    blobs.path(sha).write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert blobs.write(sha, data) is True and blobs.verify(sha)
    blobs.path(sha).write_bytes(b"broken")
    assert blobs.write_many([(sha, data)]) == [sha] and blobs.verify(sha)
