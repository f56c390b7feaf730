"""to_onnx on plain torch modules: dynamic batch, checker, onnxruntime parity, refusals."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from igpg_zoo.errors import ConfigError, ExportParityError
from igpg_zoo.export.onnx import PARITY_BATCHES, to_onnx


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def _cnn_bn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10))


def _cnn_1d() -> nn.Module:
    return nn.Sequential(nn.Conv1d(1, 4, 5), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 3))


class _Tuple(nn.Module):
    """A module returning (logits, features): the first output is compared."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(x), x


class _Noisy(nn.Module):
    """Adds a constant only in PyTorch eager mode: the ONNX graph cannot match."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        y = self.fc(x)
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return y
        return y + 1e-2


def _randomize_bn(module: nn.Module) -> None:
    """Non-trivial running statistics, so eval-mode BatchNorm is really tested."""
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)


# dynamo takes seconds per model (legacy: tens of ms), so one case covers it: a batch-1 example,
# which torch.export would otherwise freeze into the graph
CASES = [
    ("mlp", _mlp, (2, 1, 8, 8), "legacy"),
    ("cnn-bn", _cnn_bn, (2, 1, 8, 8), "legacy"),
    ("cnn-1d", _cnn_1d, (2, 1, 40), "legacy"),
    ("batch-1-example", _mlp, (1, 64), "legacy"),
    ("tuple-output", _Tuple, (4, 5), "legacy"),
    ("batch-1-bn", _cnn_bn, (1, 1, 8, 8), "dynamo"),
]


@pytest.mark.parametrize("name,make,shape,exporter", CASES, ids=[f"{c[0]}-{c[3]}" for c in CASES])
def test_export_matches_pytorch_at_every_batch_size(tmp_path, capfd, name, make, shape, exporter):
    torch.manual_seed(0)
    module = make()
    _randomize_bn(module)
    module.train()  # to_onnx must export the eval-mode graph and restore the mode
    out = tmp_path / "m.onnx"
    report = to_onnx(module, torch.randn(shape), out, exporter=exporter)
    assert module.training
    assert capfd.readouterr().out == ""  # the dynamo exporter's progress lines are swallowed
    assert report.exporter == exporter and report.path == out and out.is_file()
    assert report.max_abs_diff <= 1e-4 and report.batch_sizes == PARITY_BATCHES
    assert report.side_file is None and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    onnx.checker.check_model(str(out))
    assert report.opset == next(o.version for o in onnx.load(str(out)).opset_import if o.domain == "")

    # independent check: a batch size the parity check did not use
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.randn((5, *shape[1:]))
    module.eval()
    with torch.no_grad():
        expected = module(x)
    expected = expected[0] if isinstance(expected, tuple) else expected
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.abs(got - expected.numpy()).max() <= 1e-4


def test_auto_picks_the_fast_legacy_exporter(tmp_path):
    report = to_onnx(_mlp(), torch.randn(2, 64), tmp_path / "m.onnx")
    assert report.exporter == "legacy"


def test_opset_is_honoured(tmp_path):
    report = to_onnx(_mlp(), torch.randn(2, 64), tmp_path / "m.onnx", opset=17)
    assert report.opset == 17


def test_parity_failure_names_the_figure_and_writes_nothing(tmp_path):
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportParityError, match=r"max\|onnx - torch\| = 0\.01 > atol 0\.0001"):
        to_onnx(_Noisy(), torch.randn(2, 5), out)
    assert list(tmp_path.iterdir()) == []


def test_loose_tolerance_accepts_the_same_difference(tmp_path):
    report = to_onnx(_Noisy(), torch.randn(2, 5), tmp_path / "m.onnx", atol=0.05)
    assert report.max_abs_diff == pytest.approx(1e-2, rel=1e-3)


def test_unknown_exporter_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown ONNX exporter 'jit'"):
        to_onnx(_mlp(), torch.randn(2, 64), tmp_path / "m.onnx", exporter="jit")



def test_auto_falls_back_to_dynamo_when_legacy_cannot_trace(tmp_path, monkeypatch):
    from igpg_zoo.export import onnx as onnx_export

    def refuse(*_args, **_kwargs):
        raise RuntimeError("legacy exporter cannot trace this module")

    monkeypatch.setattr(onnx_export, "_export_legacy", refuse)
    report = to_onnx(nn.Linear(4, 2), torch.randn(2, 4), tmp_path / "m.onnx")
    assert report.exporter == "dynamo" and report.max_abs_diff <= 1e-4


def test_both_exporters_failing_is_one_line_naming_each(tmp_path, monkeypatch):
    from igpg_zoo.errors import ExportNotSupported
    from igpg_zoo.export import onnx as onnx_export

    def refuse(*_args, **_kwargs):
        raise RuntimeError("cannot trace\nsecond line")

    monkeypatch.setattr(onnx_export, "_export_legacy", refuse)
    monkeypatch.setattr(onnx_export, "_export_dynamo", refuse)
    with pytest.raises(ExportNotSupported, match="legacy: RuntimeError: cannot trace; dynamo: RuntimeError") as err:
        to_onnx(nn.Linear(4, 2), torch.randn(2, 4), tmp_path / "m.onnx")
    assert "\n" not in str(err.value) and list(tmp_path.iterdir()) == []
