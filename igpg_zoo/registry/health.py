"""Registry health: what ``verify`` finds between database, blobs and search index, and what
``verify --repair`` can put right without the user's weights.

Repairs run under the blob lock (``Database.lock_blobs``), so they never race an add or a remove:
an orphan blob is deleted only if still no row uses it, and a blob that an interrupted remove moved
aside (``BlobStore.retire``) is put back when its row is still there (the remove rolled back).
Temporaries younger than ``STALE_TEMPORARY_S`` may belong to a write still running and are left.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

#: An open ``igpg_zoo.zoo.Zoo`` (its store, blobs and index); not imported here, the facade imports this module.
Zoo = Any

STALE_TEMPORARY_S = 600.0


def problems(zoo: Zoo) -> list[str]:
    """Every problem between database, blobs and index (empty when all is well); hashes every blob."""
    found: list[str] = []
    owners = zoo.store.blob_owners()
    on_disk = set(zoo.blobs) if (owners or zoo.blobs.root.is_dir()) else set()
    temporaries = zoo.blobs.temporaries()
    retired = {zoo.blobs.retired_sha(t): t for t in temporaries if zoo.blobs.retired_sha(t)}
    moved_aside = {sha: t for sha, t in retired.items() if sha in owners and sha not in on_disk}
    for sha, who in sorted(owners.items()):
        if sha in moved_aside:
            found.append(f"blob {sha} used by {', '.join(who)} was moved aside by an interrupted remove "
                         f"({moved_aside[sha].name}); run 'igpg-zoo verify --repair' to put it back")
        elif sha not in on_disk:
            found.append(f"blob {sha} used by {', '.join(who)} is missing; re-add the weights")
        elif not zoo.blobs.verify(sha):
            found.append(f"blob {sha} used by {', '.join(who)} is corrupted (its content hash differs); "
                         "re-add the weights")
    for sha in sorted(on_disk - set(owners)):
        found.append(f"blob {sha} is used by no record (orphan); run 'igpg-zoo verify --repair'")
    for tmp in temporaries:
        if tmp not in moved_aside.values():  # those were reported with their record above
            found.append(f"leftover temporary file {tmp} from an interrupted write; run 'igpg-zoo verify --repair'")
    unembedded = np.setdiff1d(zoo.store.ids(), zoo.store.embedded_ids())
    if len(unembedded):
        found.append(f"{len(unembedded)} record(s) have no stored vector (e.g. #{unembedded[0]}); "
                     "run 'igpg-zoo reindex --reembed'")
    return found + zoo.search.problems()


def repair(zoo: Zoo, stale_after_s: float = STALE_TEMPORARY_S) -> list[str]:
    """Put right what needs no weights from the user; returns what was done (``problems`` tells the rest)."""
    blobs, done = zoo.blobs, []
    if blobs.root.is_dir():
        cutoff = time.time() - stale_after_s
        temporaries = [t for t in blobs.temporaries() if _older(t, cutoff) or blobs.retired_sha(t)]
        retired = {blobs.retired_sha(t): t for t in temporaries if blobs.retired_sha(t)}
        orphans = set(blobs) - set(zoo.store.blob_owners())

        def settle(sha: str, in_use: bool) -> None:
            if sha in retired and in_use and not blobs.has(sha):
                blobs.restore(retired.pop(sha))
                done.append(f"put back blob {sha}, moved aside by an interrupted remove")
            elif sha in orphans and not in_use and blobs.delete(sha):
                done.append(f"deleted orphan blob {sha}")

        zoo.store.blob_usage(sorted(orphans | set(retired)), settle)
        for tmp in temporaries:
            if _older(tmp, cutoff) or (tmp in retired.values() and tmp.exists()):
                tmp.unlink(missing_ok=True)
                done.append(f"deleted leftover temporary {tmp.name}")
    if zoo.search.problems():
        done.append(f"rebuilt the search index ({zoo.reindex()} vector(s))")
    return done


def _older(path, cutoff: float) -> bool:
    """Whether ``path`` was last written before ``cutoff`` (False once a running write renamed it away)."""
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False
