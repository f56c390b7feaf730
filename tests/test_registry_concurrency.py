"""Several processes on one SQLite registry: writers take turns, and a refused write is one line."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import CheckpointMeta
from igpg_zoo.zoo import open_zoo

MLP = "mlp-i4-h8-o3"


def _weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return get_adapter(MLP).build(MLP).state_dict()


def _write_while_locked(path, hold_s: float) -> threading.Thread:
    """Another writer: takes the write lock, changes a row, commits after ``hold_s``."""
    ready = threading.Event()

    def writer():
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN IMMEDIATE")
        con.execute("UPDATE checkpoints SET name = name || '!' WHERE id = 1")
        ready.set()
        time.sleep(hold_s)
        con.execute("COMMIT")
        con.close()

    thread = threading.Thread(target=writer)
    thread.start()
    ready.wait()
    return thread


@pytest.mark.parametrize("write", ["add", "remove", "update_extra"])
def test_a_write_waits_for_another_writer_instead_of_failing(tmp_path, write):
    # a deferred transaction that read first fails at once ("database is locked") when another
    # writer commits in between; writes take the lock up front and wait their turn instead
    with open_zoo() as zoo:
        first = zoo.add_weights(_weights(0), CheckpointMeta(arch=MLP, dataset="iris")).checkpoint
        second = zoo.add_weights(_weights(1), CheckpointMeta(arch=MLP, dataset="wine")).checkpoint
        other = _write_while_locked(tmp_path / "registry.db", 0.5)
        try:
            if write == "add":
                assert zoo.add_weights(_weights(2), CheckpointMeta(arch=MLP, dataset="x")).created
            elif write == "remove":
                assert zoo.remove(second.id).id == second.id
            else:
                assert zoo.update_extra(second.id, note="kept").extra == {"note": "kept"}
        finally:
            other.join()
        assert zoo.get(first.id).name.endswith("!") and zoo.verify() == []


def _without_root_bypass() -> list[str]:
    """A command prefix under which file modes bind this user: none for an ordinary user; for root,
    ``setpriv`` dropping the capabilities that override file modes (the same user, so the
    interpreter and the checkout stay readable wherever they live), or a skip where it cannot."""
    if os.geteuid() != 0:
        return []
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner", "--"]
    probe = Path(tempfile.mkdtemp(prefix="igpg-zoo-ro-probe-"))
    try:
        target = probe / "f"
        target.write_text("")
        target.chmod(0o444)
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: root writes read-only files")
        tried = subprocess.run([*prefix, sys.executable, "-c", f"open({str(target)!r}, 'a')"], capture_output=True)
        if tried.returncode == 0:
            pytest.skip("running as root and cannot drop the capability to write read-only files")
    finally:
        shutil.rmtree(probe, ignore_errors=True)
    return prefix


def test_a_read_only_registry_lists_and_refuses_writes_in_one_line(tmp_path, monkeypatch):
    # read-only by file modes; the CLI runs as a process those modes bind (see _without_root_bypass)
    as_bound = _without_root_bypass()
    folder = tmp_path / "ro"
    folder.mkdir()
    monkeypatch.setenv("IGPG_ZOO_REGISTRY", str(folder / "registry.db"))
    save_file(_weights(1), str(folder / "m.safetensors"))
    with open_zoo() as zoo:
        zoo.add_weights(_weights(1), CheckpointMeta(arch=MLP, dataset="iris"))
    for path in folder.rglob("*"):  # the folder itself stays writable: readers create the WAL files
        path.chmod(0o555 if path.is_dir() else 0o444)
    env = {**os.environ, "HOME": str(tmp_path), "IGPG_ZOO_CACHE": str(tmp_path / "cache")}

    def run(*args):
        return subprocess.run([*as_bound, sys.executable, "-m", "igpg_zoo", *args], capture_output=True,
                              text=True, env=env, cwd=folder)

    try:
        listed = run("list")
        assert listed.returncode == 0 and "#1" in listed.stdout, listed.stderr
        # the weights' blob is there already, so only the database refuses
        for args in (("remove", "1"), ("add", "m.safetensors", "--arch", MLP, "--dataset", "wine")):
            refused = run(*args)
            lines = refused.stderr.strip().splitlines()
            assert refused.returncode == 2 and len(lines) == 1 and "read-only" in lines[0], refused.stderr
        assert "#1" in run("list").stdout and "wine" not in run("list").stdout
    finally:
        for path in folder.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)  # pytest removes its tmp tree afterwards


# -- blob use: an add and a remove of the same weights, interleaved at the worst moment ---------------

def test_an_add_that_found_its_blob_keeps_it_when_a_remove_deletes_it_meanwhile(registry_url, monkeypatch):
    # process B finds the blob of weights W already stored (by A's record) and skips writing it; before B
    # inserts its row, A's record is removed and, used by no row, its blob deleted: B's insert must
    # write the blob again inside its transaction instead of committing a row without weights
    w = _weights(0)
    with open_zoo() as a, open_zoo() as b:
        first = a.add_weights(w, CheckpointMeta(arch=MLP, dataset="iris")).checkpoint
        insert = b.store.insert_many

        def remove_first_then_insert(items, in_lock=None):
            a.remove(first.id)
            assert not b.blobs.has(first.sha256)  # the race window: B's blob is gone
            return insert(items, in_lock=in_lock)

        monkeypatch.setattr(b.store, "insert_many", remove_first_then_insert)
        second = b.add_weights(w, CheckpointMeta(arch=MLP, dataset="wine")).checkpoint
        assert second.sha256 == first.sha256 and b.blobs.verify(second.sha256)
        assert b.load_weights(second.id).keys() == w.keys()
        assert [r.id for r in b.list()] == [second.id] and b.verify() == []


def test_a_remove_that_fails_to_commit_puts_the_blob_back(registry_url, monkeypatch):
    with open_zoo() as zoo:
        rec = zoo.add_weights(_weights(0), CheckpointMeta(arch=MLP, dataset="iris")).checkpoint
        remove = zoo.store.remove

        def fail_after_the_blob_moved(checkpoint_id, on_unused=None):
            def move_then_fail(sha):
                on_unused(sha)
                assert not zoo.blobs.has(sha)
                raise RuntimeError("the database went away before the commit")
            return remove(checkpoint_id, on_unused=move_then_fail)

        monkeypatch.setattr(zoo.store, "remove", fail_after_the_blob_moved)
        with pytest.raises(RuntimeError):
            zoo.remove(rec.id)
        monkeypatch.undo()
        assert zoo.get(rec.id) == rec and zoo.blobs.verify(rec.sha256)
        assert zoo.verify() == []  # no retired copy left behind either


def test_releasing_a_failed_adds_blobs_keeps_those_a_row_uses(registry_url):
    with open_zoo() as zoo:
        rec = zoo.add_weights(_weights(0), CheckpointMeta(arch=MLP, dataset="iris")).checkpoint
        unused = "0" * 64
        zoo.blobs.write(unused, b"orphan")
        zoo.store.release([rec.sha256, unused], zoo.blobs.delete)
        assert zoo.blobs.verify(rec.sha256) and not zoo.blobs.has(unused)
