"""What an architecture's state dict looks like (names, shapes, which are floating point), kept on
disk so that adding a checkpoint of a known architecture validates it without torch.

The signature is read once from ``adapter.build(arch).state_dict()`` and cached under
``$IGPG_ZOO_CACHE/arch-signatures`` (else ``$XDG_CACHE_HOME/igpg-zoo``), keyed by the architecture
string and the adapter's code (class, and size and modification time of every file of its package),
so editing an adapter or upgrading a plugin rebuilds it. Weights that fit a signature are checked
like ``validate_weights`` does (same keys and shapes, floating point where the module is, finite);
weights that do not fit are handed to ``validate_weights`` itself for its one-line message.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

Signature = dict[str, tuple[tuple[int, ...], bool]]  # name -> (shape, floating point)


def _folder() -> Path:
    if os.environ.get("IGPG_ZOO_CACHE"):
        return Path(os.environ["IGPG_ZOO_CACHE"]).expanduser() / "arch-signatures"
    return Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "igpg-zoo" / "arch-signatures"


def _key(adapter, arch: str) -> str:
    cls = type(adapter)
    h = hashlib.sha256(f"{cls.__module__}.{cls.__qualname__}\n{arch}\n".encode())
    source = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if source:
        for path in sorted(Path(source).parent.glob("*.py")):
            st = path.stat()
            h.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:24]


def expected(adapter, arch: str) -> Signature:
    """The state-dict signature of ``arch``: from the cache, else built once (imports torch) and stored."""
    path = _folder() / f"{_key(adapter, arch)}.json"
    try:
        raw = json.loads(path.read_text())
        return {k: (tuple(shape), bool(floating)) for k, (shape, floating) in raw.items()}
    except (OSError, ValueError, TypeError):
        pass
    state = adapter.build(arch).state_dict()
    signature = {k: (tuple(v.shape), bool(v.is_floating_point())) for k, v in state.items()}
    _store(path, json.dumps({k: [list(s), f] for k, (s, f) in signature.items()}))
    return signature


def _store(path: Path, text: str) -> None:
    """Atomic write; a cache that cannot be written is simply not used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    except OSError:
        return
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError:
        Path(tmp).unlink(missing_ok=True)


def fits(signature: Signature, arrays: dict[str, np.ndarray]) -> bool:
    """Whether numpy ``arrays`` pass what ``validate_weights`` checks against this signature."""
    if set(arrays) != set(signature):
        return False
    for name, (shape, floating) in signature.items():
        value = arrays[name]
        if tuple(value.shape) != shape:
            return False
        is_float = np.issubdtype(value.dtype, np.floating)
        if floating and not is_float:
            return False
        if is_float and not np.isfinite(value).all():
            return False
    return True
