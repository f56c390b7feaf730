"""``ServerState``: one open registry, kept warm between requests, shared by the routes.

The embedder and the search index load once (``warm``); a generator loads on the first generate and
stays. Searches and writes take one lock, so a query never sees the index half-updated. Several
workers (processes) each hold their own state: before a search, a worker whose index file changed on
disk (another worker wrote) opens a fresh index cache, which checks itself against the database.
"""

from __future__ import annotations

import hmac
import threading
from pathlib import Path
from typing import Any

from igpg_zoo.registry.search_cache import SearchCache
from igpg_zoo.server.settings import ServeConfig
from igpg_zoo.zoo import Zoo, open_zoo


def _stamp(path: Path) -> tuple:
    """What changes when a process saves the index: size and time of the index file and its id list."""
    out = []
    for p in (path, path.with_name(path.name + ".json")):
        try:
            st = p.stat()
            out.append((st.st_size, st.st_mtime_ns))
        except OSError:
            out.append(None)
    return tuple(out)


def _import_plotting() -> None:
    import matplotlib.figure  # noqa: F401
    import sklearn.decomposition  # noqa: F401


class ServerState:
    """The registry of one server process and what it keeps loaded."""

    def __init__(self, zoo: Zoo, token: str | None = None, config: ServeConfig | None = None):
        self.zoo = zoo
        self.config = config or ServeConfig()
        self._token = token or None
        self.lock = threading.RLock()
        self._index_stamp: tuple | None = None
        self._generators: dict[int | None, Any] = {}
        self.plot_cache: dict[tuple, bytes] = {}
        self._preloading: threading.Thread | None = None

    @classmethod
    def open(cls, registry: str | None = None, blobs: str | None = None, token: str | None = None,
             config: ServeConfig | None = None, embedder=None) -> ServerState:
        return cls(open_zoo(registry, blobs, embedder=embedder), token, config)

    @property
    def writable(self) -> bool:
        return self._token is not None

    def token_ok(self, given: str | None) -> bool:
        """Constant-time comparison with the server's token; always False without one."""
        if self._token is None or given is None:
            return False
        return hmac.compare_digest(given.encode("utf-8"), self._token.encode("utf-8"))

    def warm(self) -> None:
        """Load the embedder and the search index now rather than on the first request."""
        self.zoo.embedder.embed(["warm up"])
        dim = self.zoo.store.dim()
        with self.lock:
            if dim is not None:
                self.zoo.search.synced(dim)
            self._index_stamp = _stamp(self.zoo.config.index_path)

    def preload_charts(self) -> None:
        """Import the plotting libraries (seconds) in the background, once: called when the page is opened,
        so its charts come quicker; API-only use never pays for them."""
        if self._preloading is None:
            self._preloading = threading.Thread(target=_import_plotting, name="preload-charts", daemon=True)
            self._preloading.start()

    def fresh_index(self, force: bool = False) -> None:
        """Call under ``lock`` before a search: reopen the index when another process saved it (or ``force``:
        a search found a record another process removed before it saved the index)."""
        now = _stamp(self.zoo.config.index_path)
        if force or (self._index_stamp is not None and now != self._index_stamp):
            cfg = self.zoo.config
            self.zoo.search = SearchCache(self.zoo.store, cfg.index_path, cfg.approx_threshold)
        self._index_stamp = now

    def after_write(self) -> None:
        """Call under ``lock`` after this process changed the registry."""
        self._index_stamp = _stamp(self.zoo.config.index_path)
        self.plot_cache.clear()

    def generator(self, prior: int | None):
        """The generator of prior artifact ``prior`` (None: the latest), loaded once."""
        if prior not in self._generators:
            from igpg_zoo.igpg.generate import Generator

            self._generators[prior] = Generator.load(self.zoo, prior)
        return self._generators[prior]

    def close(self) -> None:
        self.zoo.close()
