"""``query --out`` exports the best hit; an igpg-zoo safetensors export re-imports without --arch;
among records tied on similarity the better-measured one ranks first."""

from __future__ import annotations

import json

import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.zoo import open_zoo

ARCH = "mlp-i64-h16-o3"


def _add(zoo, seed: int, acc: float, task: str = "classify digits 3, 5 and 8"):
    torch.manual_seed(seed)
    weights = get_adapter(ARCH).build(ARCH).state_dict()
    meta = CheckpointMeta(arch=ARCH, task=task, dataset="digits[classes=3,5,8]",
                          metrics=(Metric("acc", acc, "digits[classes=3,5,8]:test"),))
    return zoo.add_weights(weights, meta).checkpoint


def test_ties_rank_by_accuracy_and_query_out_exports_the_best(cli, tmp_path):
    with open_zoo() as zoo:
        worse, better, other = _add(zoo, 0, 0.80), _add(zoo, 1, 0.95), _add(zoo, 2, 0.99, "predict iris species")
    r = cli("query", "digits 3, 5 and 8", "-k", "2", "--json", "--out", "best.safetensors")
    assert r.exit_code == 0, r.stderr
    assert [h["id"] for h in json.loads(r.stdout)] == [better.id, worse.id]
    assert (tmp_path / "best.safetensors").is_file() and other.id not in (better.id, worse.id)
    with open_zoo() as zoo:
        assert "export_safetensors" in zoo.get(better.id).extra


def test_export_reimports_without_arch(cli, tmp_path):
    with open_zoo() as zoo:
        record = _add(zoo, 0, 0.9)
    assert cli("export", str(record.id), "--format", "safetensors", "--out", "x.safetensors").exit_code == 0
    r = cli("add", "x.safetensors", "--task", "again", "--json")
    assert r.exit_code == 0, r.stderr
    added = json.loads(r.stdout)
    assert added["arch"] == ARCH and added["sha256"] == record.sha256


def test_query_out_with_no_hit_is_one_line(cli):
    r = cli("query", "anything", "--out", "x.onnx", "--format", "onnx", "--arch", "nothing-*")
    assert r.exit_code != 0 and len(r.stderr.strip().splitlines()) == 1


def test_arch_is_stored_in_its_canonical_spelling():
    weights = get_adapter(ARCH).build(ARCH).state_dict()
    with open_zoo() as zoo:
        record = zoo.add_weights(weights, CheckpointMeta(arch=ARCH + "-relu", dataset="digits")).checkpoint
        assert record.arch == ARCH
        assert [r.id for r in zoo.list(arch=[ARCH])] == [record.id]
