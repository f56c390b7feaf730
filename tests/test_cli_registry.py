"""The registry commands through the real console entry point, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import save_file

from igpg_zoo.adapters import get_adapter

MLP = "mlp-i64-h32-o10"
CNN = "cnn-i1x8x8-c4k3-c8k3-h16-o10-bn"


def _save(path, arch=MLP, seed=0, fmt=None):
    torch.manual_seed(seed)
    sd = get_adapter(arch).build(arch).state_dict()
    if str(path).endswith(".safetensors"):
        save_file(sd, str(path))
    else:
        torch.save(fmt(sd) if fmt else sd, path)
    return path


def _as_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _nothing_written(cli, tmp_path):
    assert _as_json(cli("list", "--json")) == []
    blobs = tmp_path / "blobs"
    assert not blobs.exists() or list(blobs.iterdir()) == []


def _one_line_error(result, code=2):
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_add_list_show_query_remove_verify_reindex(cli, registry_url, tmp_path):
    _save(tmp_path / "digits-mlp.safetensors")
    _save(tmp_path / "fashion-cnn.pt", CNN, 1, fmt=lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}})
    r = cli("add", "digits-mlp.safetensors", "--arch", MLP, "--task", "image classification", "--dataset", "toy-digits",
            "--metric", "acc=0.93", "-m", "loss@toy-digits:test=0.2", "--tag", "demo", "--license", "MIT")
    assert r.exit_code == 0 and r.stdout.startswith("added #1 digits-mlp"), r.output
    again = cli("add", "digits-mlp.safetensors", "--arch", MLP, "--task", "image classification", "--dataset",
                "toy-digits", "--metric", "acc=0.93", "-m", "loss@toy-digits:test=0.2", "--tag", "demo",
                "--license", "MIT")
    assert again.exit_code == 0 and again.stdout.startswith("already registered #1"), again.output
    added = _as_json(cli("add", "fashion-cnn.pt", "--arch", CNN, "--task", "clothing recognition",
                         "--dataset", "fashion-mnist", "-m", "acc=0.81", "--json"))
    assert added["created"] and added["id"] == 2 and added["metrics"]["acc"]["dataset"] == "fashion-mnist"

    listed = _as_json(cli("list", "--json", "--sort", "acc"))
    assert [(d["id"], d["metrics"]["acc"]["value"]) for d in listed] == [(1, 0.93), (2, 0.81)]
    assert [d["id"] for d in _as_json(cli("list", "--json", "--where", "acc<0.9"))] == [2]
    both = cli("list", "--json", "--arch", MLP, "--arch", CNN, "--dataset", "toy-digits")
    assert [d["id"] for d in _as_json(both)] == [1]
    table = cli("list")
    assert table.exit_code == 0 and "digits-mlp" in table.stdout and "loss=0.2@toy-digits:test" in table.stdout

    assert cli("add", "digits-mlp.safetensors", "--arch", MLP, "--dataset", "toy-digits", "-m", "acc=0.5",
               "-m", "acc@toy-digits:test=0.4", "--name", "two-accs").exit_code == 0
    two = _as_json(cli("list", "--json", "--where", "acc<0.6", "--dataset", "toy-digits"))[0]
    assert two["metrics"] == {"acc": {"value": 0.5, "dataset": "toy-digits"},
                              "acc@toy-digits:test": {"value": 0.4, "dataset": "toy-digits:test"}}
    assert cli("remove", str(two["id"])).exit_code == 0

    shown = _as_json(cli("show", "1", "--json"))
    assert shown["tags"] == ["demo"] and shown["license"] == "MIT" and len(shown["sha256"]) == 64
    assert "metric   loss = 0.2 on toy-digits:test" in cli("show", "1").stdout

    hits = _as_json(cli("query", "clothing recognition on fashion-mnist", "-k", "2", "--json"))
    assert [h["id"] for h in hits] == [2, 1]
    assert {"id", "score", "name", "arch", "task", "dataset", "metrics"} <= set(hits[0])
    assert hits[0]["score"] >= hits[1]["score"]
    assert [h["id"] for h in _as_json(cli("query", "clothing", "--dataset", "toy-digits", "--json"))] == [1]
    assert [h["id"] for h in _as_json(cli("query", "clothing", "--where", "acc>=0.9", "--json"))] == [1]

    assert cli("verify").stdout.startswith("ok: 2 record(s)")
    assert cli("reindex").stdout.strip() == "search index rebuilt: 2 vector(s)"
    assert cli("remove", "1").stdout.strip() == "removed #1 digits-mlp"
    assert [d["id"] for d in _as_json(cli("list", "--json"))] == [2]
    assert "no checkpoint #1" in _one_line_error(cli("show", "1"), code=3)


def test_remove_keeps_a_shared_blob(cli, registry_url, tmp_path):
    _save(tmp_path / "m.safetensors")
    assert cli("add", "m.safetensors", "--arch", MLP, "--dataset", "a").exit_code == 0
    assert cli("add", "m.safetensors", "--arch", MLP, "--dataset", "b").exit_code == 0
    assert "blob kept" in cli("remove", "1").stdout
    assert cli("verify").exit_code == 0
    assert cli("remove", "2").exit_code == 0 and cli("verify").exit_code == 0


def test_verify_reports_a_corrupted_blob(cli, registry_url, tmp_path):
    _save(tmp_path / "m.safetensors")
    sha = _as_json(cli("add", "m.safetensors", "--arch", MLP, "--json"))["sha256"]
    blob = next((tmp_path / "blobs").glob(f"{sha}.safetensors"))
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    r = cli("verify")
    assert r.exit_code == 1 and f"blob {sha}" in r.stdout and "corrupted" in r.stdout
    as_json = cli("verify", "--json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["ok"] is False


def test_sidecar_and_meta_file(cli, registry_url, tmp_path):
    _save(tmp_path / "m.safetensors")
    (tmp_path / "m.safetensors.yaml").write_text(yaml.safe_dump(
        {"arch": MLP, "task": "digit recognition", "dataset": "toy-digits",
         "metrics": {"acc": 0.9, "f1": {"value": 0.8}},
         "tags": ["side"], "extra": {"epochs": 3}}))
    rec = _as_json(cli("add", "m.safetensors", "--tag", "flag", "-m", "acc=0.95", "--json"))
    assert rec["arch"] == MLP and rec["task"] == "digit recognition" and rec["extra"] == {"epochs": 3}
    assert rec["metrics"]["acc"]["value"] == 0.95 and rec["metrics"]["f1"]["value"] == 0.8  # flags win
    assert rec["tags"] == ["flag", "side"]
    (tmp_path / "other.yaml").write_text("dataset: other\nname: renamed\n")
    rec2 = _as_json(cli("add", "m.safetensors", "--meta", "other.yaml", "--json"))
    assert rec2["dataset"] == "other" and rec2["name"] == "renamed" and rec2["sha256"] == rec["sha256"]


@pytest.mark.parametrize("sidecar,match", [
    ({"arch": MLP, "metrics": {"acc": "high"}}, "metric 'acc' must be a finite number"),
    ({"arch": MLP, "tags": {"a": 1}}, "'tags' must be a list of text"),
    ({"arch": MLP, "dataset": 7}, "'dataset' must be text"),
    ({"arch": MLP, "parent_id": "one"}, "'parent_id' must be an integer"),
    ({"arch": MLP, "colour": "red"}, "unknown key(s) colour"),
    (["not", "a", "mapping"], "must be a mapping"),
])
def test_sidecar_with_wrong_types_is_one_line_error_and_writes_nothing(cli, tmp_path, sidecar, match):
    _save(tmp_path / "m.safetensors")
    (tmp_path / "m.safetensors.yaml").write_text(yaml.safe_dump(sidecar))
    line = _one_line_error(cli("add", "m.safetensors"))
    assert match in line and "m.safetensors.yaml" in line
    _nothing_written(cli, tmp_path)


def test_malicious_pickle_is_refused_and_never_runs(cli, registry_url, tmp_path):
    target = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(target),))

    torch.save({"fc.weight": torch.zeros(1), "hook": Evil()}, tmp_path / "evil.pt")
    line = _one_line_error(cli("add", "evil.pt", "--arch", MLP))
    assert "refused evil.pt" in line and "not executed" in line
    assert not target.exists()
    _nothing_written(cli, tmp_path)


@pytest.mark.parametrize("name,content,match", [
    ("trunc.safetensors", "half", "not a valid safetensors file"),
    ("trunc.pt", "half", "truncated"),
    ("model.ckpt", "full", "extension '.ckpt' is not accepted"),
    ("notes.txt", "full", "extension '.txt' is not accepted"),
])
def test_bad_files_are_one_line_errors_and_write_nothing(cli, tmp_path, name, content, match):
    src = _save(tmp_path / ("src.safetensors" if name.endswith("safetensors") else "src.pt"))
    data = src.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2] if content == "half" else data)
    line = _one_line_error(cli("add", name, "--arch", MLP))
    assert match in line
    _nothing_written(cli, tmp_path)


@pytest.mark.parametrize("args,match,code", [
    (["--arch", CNN], "weights do not fit architecture", 2),
    (["--arch", "resnet9000"], "no adapter supports architecture 'resnet9000'", 2),
    ([], "no architecture given", 2),
    (["--arch", MLP, "-m", "acc"], "NAME=VALUE", 2),
    (["--arch", MLP, "-m", "acc=high"], "'high' is not a number", 2),
])
def test_bad_flags_are_one_line_errors(cli, tmp_path, args, match, code):
    _save(tmp_path / "m.safetensors")
    assert match in _one_line_error(cli("add", "m.safetensors", *args), code=code)
    _nothing_written(cli, tmp_path)


@pytest.mark.parametrize("url,match", [
    ("foo://bar", "unknown database driver 'foo'"),
    ("postgresql+psycopg://nobody@127.0.0.1:1/none", "cannot open registry"),
    ("missing/dir/registry.db", "does not exist"),
])
def test_unknown_registry_url_is_one_line_error(cli, tmp_path, url, match):
    _save(tmp_path / "m.safetensors")
    before = sorted(p.name for p in tmp_path.iterdir())
    for args in (["add", "m.safetensors", "--arch", MLP], ["list"]):
        assert match in _one_line_error(cli(*args, "--registry", url))
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_manifest_import_reports_added_duplicates_refused(cli, registry_url, tmp_path):
    folder = tmp_path / "models"
    folder.mkdir()
    _save(folder / "a.safetensors", seed=1)
    _save(folder / "b.pt", seed=2)
    _save(folder / "c.safetensors", CNN, seed=3)
    (folder / "evil.pt").write_bytes(pickle.dumps(print, protocol=2))
    (folder / "zoo.yaml").write_text(yaml.safe_dump({
        "defaults": {"task": "image classification", "dataset": "toy-digits", "license": "MIT"},
        "models": [
            {"path": "a.safetensors", "arch": MLP, "metrics": {"acc": 0.9}},
            {"path": "b.pt", "arch": MLP, "metrics": {"acc": 0.8}},
            {"path": "a.safetensors", "arch": MLP, "metrics": {"acc": 0.9}},  # the same again
            {"path": "c.safetensors", "arch": MLP},  # wrong architecture
            {"path": "evil.pt", "arch": MLP},
            {"path": "missing.pt", "arch": MLP},
            {"path": "c.safetensors", "arch": CNN, "dataset": "fashion-mnist"},
        ]}))
    r = cli("add", "models", "--manifest", "models/zoo.yaml", "--tag", "batch1")
    assert r.exit_code == 1, r.output
    assert "3 added, 1 duplicate(s), 3 refused" in r.stdout
    assert "refused" in r.stdout and "weights do not fit" in r.stdout and "needs code to load" in r.stdout
    listed = _as_json(cli("list", "--json", "--tag", "batch1"))
    assert len(listed) == 3 and {d["license"] for d in listed} == {"MIT"}
    assert cli("verify").exit_code == 0
    again = cli("add", "models", "--manifest", "models/zoo.yaml", "--tag", "batch1", "--json")
    summary = json.loads(again.stdout)
    assert summary["added"] == [] and len(summary["duplicates"]) == 4 and len(summary["refused"]) == 3


def test_bad_manifest_is_one_line_error(cli, tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "zoo.yaml").write_text("models:\n  - {arch: x}\n")
    assert "needs 'path: FILE'" in _one_line_error(cli("add", "models", "--manifest", "zoo.yaml"))


def test_native_folder_is_added_through_its_adapter(cli, registry_url, tmp_path):
    adapter = get_adapter(MLP)
    torch.manual_seed(0)
    sd = adapter.build(MLP).state_dict()
    out = adapter.write_checkpoint(MLP, sd, tmp_path / "export", {"dataset": "toy-digits"})
    rec = _as_json(cli("add", str(out), "--dataset", "toy-digits", "--json"))
    assert rec["arch"] == MLP and rec["name"] == "export"
    assert "no adapter recognises folder" in _one_line_error(cli("add", str(tmp_path / "blobs")))


@pytest.mark.parametrize("args", [["--help"], ["list", "--json", "--where", "acc>0"]])
def test_help_and_list_do_not_import_heavy_modules(tmp_path, args):
    code = (
        "import sys\n"
        "from igpg_zoo.cli.app import main\n"
        f"sys.argv = ['igpg-zoo', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'sentence_transformers', 'faiss', 'transformers') if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    env = dict(os.environ, IGPG_ZOO_REGISTRY=str(tmp_path / "registry.db"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


@pytest.mark.parametrize("name, shown", [
    ("two\nlines", "two\\nlines"),
    ("tab\there", "tab\\there"),
    ("\x1b[31mred", "\\x1b[31mred"),
    ("bidi\u202eevil", "bidi\\u202eevil"),
    ("line\u2028break", "line\\u2028break"),
    ("café ok", "café ok"),  # printable text is left as it is
])
def test_names_with_control_characters_are_shown_escaped(cli, tmp_path, name, shown):
    _save(tmp_path / "w.safetensors")
    r = cli("add", "w.safetensors", "--arch", MLP, "--name", name, "--dataset", "toy", "--task", name)
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines()[0].startswith(f"added #1 {shown} [")
    table = cli("list").stdout.splitlines()
    assert len(table) == 2 and shown in table[1]  # one row, whatever the name holds
    assert cli("show", "1").stdout.splitlines()[1] == f"name     {shown}"
    assert not any(c in out for out in (table[1], cli("show", "1").stdout) for c in "\x1b\t\u202e\u2028")
    assert _as_json(cli("list", "--json"))[0]["name"] == name  # JSON keeps the exact text
    assert cli("remove", "1").stdout.splitlines() == [f"removed #1 {shown}"]
