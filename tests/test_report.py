"""``igpg-zoo report``: one self-contained HTML file with the zoo map and charts; bad input writes nothing."""

from __future__ import annotations

import base64
import json
import re

import pytest
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import Checkpoint, CheckpointMeta, Metric
from igpg_zoo.report import views
from igpg_zoo.zoo import open_zoo

MLP = "mlp-i4-h8-o3"
IMAGES = re.compile(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"')


def _add(zoo, seed: int, task: str, kind: str = "trained", acc: float = 0.9, **extra):
    torch.manual_seed(seed)
    meta = CheckpointMeta(arch=MLP, task=task, dataset="iris", kind=kind, metrics=(Metric("acc", acc, "iris"),),
                          extra=extra)
    return zoo.add_weights(get_adapter(MLP).build(MLP).state_dict(), meta).checkpoint


@pytest.fixture
def zoo_with_generated(tmp_path):
    with open_zoo(str(tmp_path / "registry.db")) as zoo:
        first = _add(zoo, 0, "iris flower species classification")
        _add(zoo, 1, "iris flower species classification", acc=0.95)
        _add(zoo, 2, "wine <script>alert(1)</script> classification", acc=0.7)
        _add(zoo, 3, "iris flower species classification", kind="generated", acc=0.93,
             nearest={"id": first.id, "distance": 1.0, "relative_distance": 0.12, "exact_copy_of": None})
    return tmp_path


def test_report_is_one_self_contained_file(cli, zoo_with_generated):
    result = cli("report", "--out", "zoo.html", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["records"] == 4
    text = (zoo_with_generated / "zoo.html").read_text()
    svgs = [base64.b64decode(m).decode() for m in IMAGES.findall(text)]
    assert len(svgs) == 4 and all("<svg" in s for s in svgs)
    assert "Zoo map: 4 records" in svgs[0] and "Novelty of 1 generated record(s); 0 exact copies" in svgs[2]
    assert "no fine-tuned record has recorded a curve yet" in svgs[3]
    assert "<script>" not in text and "&lt;script&gt;" in text  # registry text is escaped
    assert not re.search(r'(src|href)="(https?:)?//', text)  # nothing fetched from elsewhere


@pytest.mark.parametrize("args,words", [
    (("--out", "zoo.html"), "exists; pass --overwrite"),
    (("--out", "missing/zoo.html"), "does not exist"),
    (("--out", "."), "is a folder"),
])
def test_bad_out_is_one_line_and_writes_nothing(cli, zoo_with_generated, args, words):
    (zoo_with_generated / "zoo.html").write_text("keep me")
    result = cli("report", *args)
    assert result.exit_code == 2 and words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert (zoo_with_generated / "zoo.html").read_text() == "keep me"
    assert not (zoo_with_generated / "missing").exists()


def test_an_empty_registry_reports_without_charts_to_draw(cli, tmp_path):
    result = cli("report", "--out", "empty.html")
    assert result.exit_code == 0, result.output
    svgs = [base64.b64decode(m).decode() for m in IMAGES.findall((tmp_path / "empty.html").read_text())]
    assert "nothing to map yet" in svgs[0] and "no generated record" in svgs[1]


def _record(**extra) -> Checkpoint:
    return Checkpoint(id=7, name="ft", arch=MLP, task="t", dataset="iris", n_params=1, metrics=(), tags=(),
                      license="", source="", created_at="", sha256="0" * 64, size_bytes=1, kind="finetuned",
                      extra=extra)


@pytest.mark.parametrize("extra,want", [
    ({"finetune": {"curve": {"steps": [0, 8, 16], "val_acc": [0.3, 0.7, 0.9], "loss": [None, 1.2, 0.4]}}},
     ([0.0, 8.0, 16.0], [0.3, 0.7, 0.9], "val_acc")),  # as igpg-zoo finetune records it
    ({"curve": [0.5, 0.7, 0.9]}, ([1, 2, 3], [0.5, 0.7, 0.9], "value")),
    ({"curve": [{"epoch": 1, "val_acc": 0.6}, {"epoch": 3, "val_acc": 0.8}]}, ([1.0, 3.0], [0.6, 0.8], "val_acc")),
    ({"finetune": {"curve": [{"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.0}]}}, ([10.0, 20.0], [2.0, 1.0], "loss")),
    ({"curve": [0.5]}, None),  # one point is no curve
    ({"curve": [{"epoch": 1}, {"epoch": 2}]}, None),  # no values
    ({"curve": "0.5,0.7"}, None),
    ({"finetune": {"curve": {"steps": [0, 8], "val_acc": [0.3, None]}}}, None),
    ({}, None),
])
def test_finetune_curves_are_read_where_recorded(extra, want):
    curve = views._curve(_record(**extra))
    assert (None if curve is None else (curve.x, curve.y, curve.label)) == want
