"""Generated weights keep their label: every export format carries kind and provenance, and
``igpg-zoo add`` of a labelled file or folder records it as generated again (never trained/imported).

The generated record is made by hand with a provenance shaped like ``Generator._provenance``, so no
prior is trained here (tests/test_export_generated.py runs the real generator end to end).
"""

from __future__ import annotations

import json

import onnx
import pytest
import torch
import yaml
from safetensors import safe_open

from igpg_zoo.adapters import get_adapter

ARCH = "mlp-i64-h32-o10"
TASK = "digits[classes=0,1,2]"
PROVENANCE = {
    "generator": {"prior_artifact_id": 7, "tokenizer_artifact_id": 3},
    "zoo_snapshot_hash": "f" * 64,
    "conditioning": {"task": "digit recognition", "dataset": TASK, "arch": ARCH, "missing": []},
    "seed": 11, "sample_round": 0, "sample_index": 2, "novel_only": True, "min_distance": None,
    "sampling": {"temperature": 1.0, "top_k": None, "top_p": 0.9, "min_p": None}, "temperature_used": 1.0,
    "head": "generated", "ranked_by": "prior likelihood",
}
OUT = {"onnx": "m.onnx", "safetensors": "m.safetensors", "native": "folder"}


def _weights(seed: int = 0) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return get_adapter(ARCH).build(ARCH).state_dict()


def _source_record(tmp_path, kind: str):
    """A record of ``kind`` in a registry of its own (tmp_path/src); generated ones carry PROVENANCE."""
    from igpg_zoo.records import CheckpointMeta, Metric
    from igpg_zoo.zoo import open_zoo

    extra = {"provenance": PROVENANCE, "generator_artifact_id": 7} if kind == "generated" else {}
    meta = CheckpointMeta(arch=ARCH, task="digit recognition", dataset=TASK, kind=kind, extra=extra,
                          metrics=(Metric("acc", 0.75, f"{TASK}:test"),), tags=("demo",))
    (tmp_path / "src").mkdir()
    with open_zoo(str(tmp_path / "src" / "registry.db"), embedder="hash") as zoo:
        return zoo.add_weights(_weights(), meta).checkpoint


def _label(path, fmt: str) -> tuple[str | None, dict | None]:
    """(kind, provenance) an exported file or folder states, read without igpg-zoo."""
    if fmt == "native":
        meta = json.loads((path / "igpg-zoo.json").read_text())["meta"]
        return meta.get("kind"), meta.get("provenance")
    if fmt == "onnx":
        strings = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    else:
        with safe_open(str(path), framework="pt") as f:
            strings = f.metadata()
    provenance = strings.get("provenance")
    return strings.get("kind"), json.loads(provenance) if provenance is not None else None


def _export(cli, tmp_path, record_id: int, fmt: str):
    out = tmp_path / OUT[fmt]
    result = cli("export", record_id, "--format", fmt, "--out", out, "--registry", tmp_path / "src" / "registry.db")
    assert result.exit_code == 0, result.output
    return out


def _add(cli, *args):
    result = cli("add", *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("fmt", ["onnx", "safetensors", "native"])
@pytest.mark.parametrize("kind, provenance", [("generated", PROVENANCE), ("trained", None)])
def test_every_export_format_states_kind_and_provenance(cli, tmp_path, fmt, kind, provenance):
    record = _source_record(tmp_path, kind)
    assert _label(_export(cli, tmp_path, record.id, fmt), fmt) == (kind, provenance)


@pytest.mark.parametrize("fmt", ["onnx", "safetensors", "native"])
def test_generate_out_labels_every_format(tmp_path, fmt):
    """``igpg-zoo generate --out`` passes only the provenance: the export adds kind generated."""
    from igpg_zoo.export import export_weights

    out = tmp_path / OUT[fmt]
    export_weights(ARCH, _weights(), fmt, out, meta={"provenance": PROVENANCE})
    assert _label(out, fmt) == ("generated", PROVENANCE)


def _generate_out(cli, tmp_path):
    from igpg_zoo.export import export_weights

    out = tmp_path / "gen.safetensors"
    export_weights(ARCH, _weights(), "safetensors", out, meta={"provenance": PROVENANCE})  # as generate --out
    return out, "digit recognition", TASK, []


def _exported(fmt: str):
    def make(cli, tmp_path):
        record = _source_record(tmp_path, "generated")
        return _export(cli, tmp_path, record.id, fmt), record.task, record.dataset, ["acc"]
    return make


@pytest.mark.parametrize("make", [_generate_out, _exported("safetensors"), _exported("native")],
                         ids=["generate-out", "export-safetensors", "export-native"])
def test_labelled_generated_weights_are_added_as_generated(cli, tmp_path, make):
    path, task, dataset, metrics = make(cli, tmp_path)
    added = _add(cli, path)
    assert added["kind"] == "generated" and "generated" in added["tags"]
    assert added["extra"]["provenance"] == PROVENANCE and added["extra"]["generator_artifact_id"] == 7
    assert (added["task"], added["dataset"], sorted(added["metrics"])) == (task, dataset, metrics)
    assert added["source"] == "igpg prior #7"
    assert _add(cli, path)["created"] is False  # the same label again: the same record


def test_flags_win_over_the_label_but_the_kind_and_provenance_stay(cli, tmp_path):
    path, *_ = _generate_out(cli, tmp_path)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump({"extra": {"provenance": {"forged": True}, "note": "x"}}))
    added = _add(cli, path, "--task", "my task", "--dataset", "iris", "--name", "mine", "--meta", "m.yaml")
    assert (added["task"], added["dataset"], added["name"], added["kind"]) == ("my task", "iris", "mine", "generated")
    assert added["extra"]["provenance"] == PROVENANCE and added["extra"]["note"] == "x"


@pytest.mark.parametrize("kind", ["trained", "imported", "finetuned"])
@pytest.mark.parametrize("where", ["sidecar", "meta", "manifest"])
def test_generated_weights_cannot_be_relabelled(cli, tmp_path, kind, where):
    path, *_ = _generate_out(cli, tmp_path)
    if where == "manifest":
        manifest = {"defaults": {"kind": kind}, "models": [{"path": path.name}]}
        (tmp_path / "zoo.yaml").write_text(yaml.safe_dump(manifest))
        result = cli("add", tmp_path, "--manifest", "zoo.yaml")
        assert result.exit_code == 1 and "1 refused" in result.stdout and "kind stays 'generated'" in result.stdout
    else:
        (tmp_path / "m.yaml").write_text(yaml.safe_dump({"kind": kind}))
        if where == "sidecar":
            (tmp_path / "m.yaml").rename(tmp_path / f"{path.name}.yaml")
        result = cli("add", path, *(["--meta", "m.yaml"] if where == "meta" else []))
        lines = result.stderr.strip().splitlines()
        assert result.exit_code == 2 and len(lines) == 1 and "kind stays 'generated'" in lines[0], result.output
    assert json.loads(cli("list", "--json").stdout) == []


@pytest.mark.parametrize("fmt", ["safetensors", "native"])
def test_trained_exports_re_import_as_before(cli, tmp_path, fmt):
    record = _source_record(tmp_path, "trained")
    added = _add(cli, _export(cli, tmp_path, record.id, fmt))
    assert (added["kind"], added["arch"], added["extra"], added["sha256"]) == ("imported", ARCH, {}, record.sha256)
