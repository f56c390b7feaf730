"""``igpg-zoo finetune`` through the console entry point: JSON and the side-by-side table, and bad
input as one line with a non-zero exit and nothing written."""

from __future__ import annotations

import json
import pickle
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.usefixtures("torch_one_thread")

ARCH = "mlp-i64-h16-o5"


@pytest.fixture(scope="module")
def _built(tmp_path_factory):
    """A registry with one MLP trained one epoch on 5 digit classes, and a 3-class user .npz."""
    root = tmp_path_factory.mktemp("ftcli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
        mp.setenv("IGPG_ZOO_CACHE", str(root / "cache"))
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.data import load_dataset
        from igpg_zoo.records import CheckpointMeta
        from igpg_zoo.zoo import open_zoo
        from igpg_zoo.zoobuild.trainer import fit, init_module

        ds = load_dataset("digits[classes=0-4][n=200]")
        m = fit(init_module(get_adapter(ARCH).build(ARCH), 0), ds.x_train, ds.y_train, epochs=1)
        (root / "zoo").mkdir()
        with open_zoo(str(root / "zoo" / "registry.db"), embedder="hash") as zoo:
            zoo.add_weights({k: v.detach().clone() for k, v in m.state_dict().items()},
                            CheckpointMeta(arch=ARCH, task=ds.info.description, dataset=ds.name, kind="trained"))
        user = load_dataset("digits[classes=1,2,6][n=150]")
        np.savez(root / "user.npz", x=np.asarray(user.x_train)[:, 0], y=np.asarray(user.y_train))
    return root


@pytest.fixture
def one_zoo(_built, tmp_path, monkeypatch):
    """A private copy of the registry (commands may write to it) in the working folder."""
    shutil.copytree(_built / "zoo", tmp_path / "zoo")
    shutil.copy(_built / "user.npz", tmp_path / "user.npz")
    monkeypatch.setenv("IGPG_ZOO_REGISTRY", str(tmp_path / "zoo" / "registry.db"))
    return tmp_path


def _ids(cli) -> list[int]:
    return [r["id"] for r in json.loads(cli("list", "--json").stdout)]


def test_json_names_every_run_and_the_registered_record(cli, one_zoo):
    result = cli("finetune", "1", "--data", "user.npz", "--epochs", "1", "--compare", "random", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [r["label"] for r in out["runs"]] == ["record", "random"]
    assert out["registered_id"] == 2 and _ids(cli) == [2, 1]
    assert set(out["comparison"]["starts"]["random"]) >= {"steps_to_target", "at", "final", "speedup"}
    shown = json.loads(cli("show", "2", "--json").stdout)
    assert shown["kind"] == "finetuned" and shown["parent_id"] == 1


def test_compare_prints_one_table_row_per_start(cli, one_zoo, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # one line per row
    result = cli("finetune", "1", "--data", "user.npz", "--epochs", "1", "--compare", "random,retrieved",
                 "--no-register")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [r.split("│")[1].strip() for r in rows] == ["record", "random", "retrieved"]
    assert _ids(cli) == [1]


def _write(path, kind: str) -> str:
    rng = np.random.default_rng(0)
    x8 = rng.random((40, 8, 8))
    y = np.arange(40) % 4
    if kind == "wrong-shape":
        np.savez(path / "bad.npz", x=rng.random((40, 5)), y=y)
    elif kind == "one-class":
        np.savez(path / "bad.npz", x=x8, y=np.zeros(40))
    elif kind == "empty":
        np.savez(path / "bad.npz", x=np.zeros((0, 8, 8)), y=np.zeros(0))
    elif kind == "not-an-array-file":
        (path / "bad.npz").write_text("label,x\n1,2\n")
    elif kind == "pickle-inside":
        np.savez(path / "bad.npz", x=np.array([pickle.dumps(1)] * 40, dtype=object), y=y)
    elif kind == "nan-labels":
        np.savez(path / "bad.npz", x=x8, y=np.where(y == 0, np.nan, y))
    elif kind == "class-of-one":
        np.savez(path / "bad.npz", x=x8, y=np.r_[np.zeros(39), 1])
    return "bad.npz"


@pytest.mark.parametrize("kind,code,words", [
    ("wrong-shape", 2, "does not take the data's inputs"),
    ("one-class", 2, "at least 2 classes"),
    ("empty", 2, "at least 2 classes"),
    ("not-an-array-file", 2, "not an .npz archive"),
    ("pickle-inside", 2, "Python objects, which is not read"),
    ("nan-labels", 2, "NaN label"),
    ("class-of-one", 2, "one sample"),
])
def test_bad_data_is_one_line_and_writes_nothing(cli, one_zoo, kind, code, words):
    result = cli("finetune", "1", "--data", _write(one_zoo, kind), "--epochs", "1")
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
    assert _ids(cli) == [1]


@pytest.mark.parametrize("args,code,words", [
    (("finetune", "1", "--generated", "--data", "user.npz"), 2, "at most one start"),
    (("finetune", "1", "--query", "digits", "--data", "user.npz"), 2, "at most one start"),
    (("finetune", "1"), 2, "--data PATH"),
    (("finetune", "99", "--data", "user.npz"), 3, "no checkpoint"),
    (("finetune", "1", "--data", "missing.npz"), 2, "no such file"),
    (("finetune", "1", "--data", "user.npz", "--compare", "random,best"), 2, "--compare takes"),
    (("finetune", "1", "--data", "user.npz", "--lr", "0"), 2, "--lr must be > 0"),
    (("finetune", "1", "--data", "user.npz", "--val-fraction", "0.9"), 2, "--val-fraction"),
    (("finetune", "1", "--data", "user.npz", "--arch", ARCH), 2, "--arch chooses"),
    (("finetune", "--generated", "--data", "user.npz", "--arch", ARCH), 1, "no trained generator"),
])
def test_bad_flags_are_one_line_and_write_nothing(cli, one_zoo, args, code, words):
    result = cli(*args)
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and words in lines[0], result.stderr
    assert _ids(cli) == [1]
