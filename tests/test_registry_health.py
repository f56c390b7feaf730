"""verify --repair: what it puts right (orphans, old temporaries, a blob an interrupted remove moved
aside, a stale index), what it leaves (young temporaries, missing weights), on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import time

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import CheckpointMeta
from igpg_zoo.zoo import open_zoo

MLP = "mlp-i4-h8-o3"
OLD = time.time() - 3600  # an hour: no write still running owns such a temporary


def _add(zoo, seed: int):
    torch.manual_seed(seed)
    return zoo.add_weights(get_adapter(MLP).build(MLP).state_dict(), CheckpointMeta(arch=MLP, dataset=f"d{seed}")).checkpoint


def _orphan(zoo, rec):
    zoo.blobs.write("ab" * 32, b"orphan")
    return "deleted orphan blob"


def _old_temporary(zoo, rec):
    tmp = zoo.blobs.root / ".abcdef123456-x.tmp"
    tmp.write_bytes(b"half")
    os.utime(tmp, (OLD, OLD))
    return "deleted leftover temporary"


def _interrupted_remove(zoo, rec):  # killed between moving the blob aside and the commit: the row stays
    zoo.blobs.retire(rec.sha256)
    assert any("moved aside by an interrupted remove" in p for p in zoo.verify())
    return "put back blob"


def _remove_killed_after_commit(zoo, rec):  # the row went, its retired blob stayed
    other = _add(zoo, 99)
    retired = zoo.blobs.retire(other.sha256)
    zoo.store.remove(other.id)
    assert retired.exists()
    return "deleted leftover temporary"


def _stale_index(zoo, rec):
    zoo.search.index(zoo.embedder.dim).remove([rec.id])
    zoo.search.index(zoo.embedder.dim).save()
    return "rebuilt the search index"


@pytest.mark.parametrize("damage", [_orphan, _old_temporary, _interrupted_remove, _remove_killed_after_commit,
                                    _stale_index])
def test_repair_puts_right_what_needs_no_weights(registry_url, damage):
    with open_zoo() as zoo:
        rec = _add(zoo, 0)
        expect = damage(zoo, rec)
        assert zoo.verify() != []
        done = zoo.repair()
        assert any(expect in action for action in done), done
        assert zoo.verify() == [] and zoo.load_weights(rec.id).keys()


def test_repair_leaves_young_temporaries_and_missing_weights(registry_url):
    with open_zoo() as zoo:
        rec = _add(zoo, 0)
        young = zoo.blobs.root / ".abcdef123456-y.tmp"  # may belong to a write still running
        young.write_bytes(b"in flight")
        zoo.blobs.delete(rec.sha256)  # the user's weights are gone: only re-adding them helps
        assert zoo.repair() == []
        problems = zoo.verify()
        assert young.exists() and any("leftover temporary" in p for p in problems)
        assert any("is missing; re-add the weights" in p for p in problems)


@pytest.mark.parametrize("missing, code, line", [(False, 0, "repaired: deleted orphan blob"),
                                                 (True, 1, "is missing; re-add the weights")])
def test_cli_verify_repair_reports_what_it_did_and_what_is_left(registry_url, cli, missing, code, line):
    with open_zoo() as zoo:
        rec = _add(zoo, 0)
        zoo.blobs.write("ab" * 32, b"orphan")
        if missing:
            zoo.blobs.delete(rec.sha256)
    result = cli("verify", "--repair")
    assert result.exit_code == code and line in result.output, result.output
