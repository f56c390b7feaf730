"""ONNX export with a dynamic batch axis, ``onnx.checker`` and an onnxruntime parity check.

Exporter choice (measured side by side, torch 2.14.1, `python -m bench export`, docs/export.md):
the dynamo exporter was 5-11x slower than the legacy TorchScript exporter (``dynamo=False``) on
timm models and 29-87x on the small networks; both pass the checker and agree with PyTorch
to ~1e-7. So ``exporter="auto"`` uses the legacy exporter and falls back to dynamo when the
legacy one cannot trace a module (or is gone from a future torch). Either way the result is one
self-contained ``.onnx`` file: dynamo runs with ``external_data=False``; a model too big for one
protobuf (> ~1.8 GiB of weights) gets the dynamo exporter's side file ``<name>.onnx.data``.
The exporters' stdout chatter and warnings are swallowed; errors are not.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import onnx
import torch
from torch import nn

from igpg_zoo.errors import ConfigError, ExportNotSupported, ExportParityError, ZooError
from igpg_zoo.export.parity import PARITY_BATCHES, batches, first_output, max_abs_diff
from igpg_zoo.export.staging import staged

EXPORTERS = ("auto", "legacy", "dynamo")
SINGLE_FILE_LIMIT = int(1.8 * 2**30)  # protobuf caps a file at 2 GiB


@dataclass(frozen=True)
class OnnxReport:
    path: Path
    opset: int
    max_abs_diff: float  # over every parity batch, vs the PyTorch module in eval mode
    seconds: float  # export time only (the parity check is ``parity_seconds``)
    exporter: str  # "legacy" | "dynamo"
    parity_seconds: float = 0.0
    batch_sizes: tuple[int, ...] = PARITY_BATCHES
    side_file: Path | None = None  # <name>.onnx.data for models over the single-file limit


def to_onnx(module: nn.Module, example: torch.Tensor, out: Path, atol: float = 1e-4,
            opset: int | None = None, *, exporter: str = "auto",
            metadata: dict[str, str] | None = None, overwrite: bool = False) -> OnnxReport:
    """Export ``module`` (in eval mode) to ``out`` and check it against PyTorch in onnxruntime.

    ``example`` is one input batch; its non-batch shape and dtype define the graph input, the
    batch axis is dynamic. ``metadata`` (text keys and values) becomes the model's
    ``metadata_props``. Raises ExportParityError when max|onnx - torch| > atol; ``out`` is
    only written when the export, the checker and the parity check all pass; an existing ``out``
    is only replaced with ``overwrite``.
    """
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown ONNX exporter '{exporter}'; choose one of {', '.join(EXPORTERS)}")
    out = Path(out)
    was_training = module.training
    module.eval()
    try:
        example = _batch_of_two(example)
        with staged(out, overwrite=overwrite) as tmp_path:  # published onto ``out`` only when every check passed
            started = time.perf_counter()
            used = _export(module, example, tmp_path, opset, exporter)
            seconds = time.perf_counter() - started
            if metadata:
                _set_metadata(tmp_path, metadata)
            onnx.checker.check_model(str(tmp_path))  # path form: works with a side file too
            got_opset = _opset(tmp_path)
            started = time.perf_counter()
            diff = parity(module, example, tmp_path)
            parity_seconds = time.perf_counter() - started
            if not diff <= atol:  # also catches NaN
                raise ExportParityError(
                    f"ONNX parity check failed: max|onnx - torch| = {diff:.3g} > atol {atol:g} "
                    f"({used} exporter, opset {got_opset}); nothing was written. Pass a larger --atol "
                    "if the difference is acceptable, or try --exporter dynamo/legacy"
                )
            side = out.with_name(out.name + ".data") if tmp_path.with_name(tmp_path.name + ".data").exists() else None
    finally:
        module.train(was_training)
    return OnnxReport(out, got_opset, diff, seconds, used, parity_seconds, PARITY_BATCHES, side)


def parity(module: nn.Module, example: torch.Tensor, path: Path) -> float:
    """max|onnxruntime(path) - module| over the parity batches drawn like ``example``."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    worst = 0.0
    for x in batches(example):  # (batch, *example.shape[1:])
        with torch.no_grad():
            expected = first_output(module(x))
        got = session.run(None, {name: x.numpy()})[0]
        worst = max(worst, max_abs_diff(got, expected, f"ONNX at batch {x.shape[0]}"))
    return worst


# -- helpers ------------------------------------------------------------------------------------


def _export(module: nn.Module, example: torch.Tensor, path: Path, opset: int | None, exporter: str) -> str:
    """Run the chosen exporter quietly; returns the one that succeeded."""
    big = _weight_bytes(module) > SINGLE_FILE_LIMIT
    order = {"auto": ("dynamo",) if big else ("legacy", "dynamo"),
             "legacy": ("legacy",), "dynamo": ("dynamo",)}[exporter]
    failures = []
    for name in order:
        try:
            with _quiet():
                if name == "legacy":
                    _export_legacy(module, example, path, opset)
                else:
                    _export_dynamo(module, example, path, opset, external_data=big)
            return name
        except Exception as exc:  # exporters raise many types; report each on one line
            failures.append(f"{name}: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:300]}")
            for leftover in (path, path.with_name(path.name + ".data")):
                leftover.unlink(missing_ok=True)
    raise ExportNotSupported(f"ONNX export failed ({'; '.join(failures)}); the module needs changes to be traceable")


def _export_legacy(module: nn.Module, example: torch.Tensor, path: Path, opset: int | None) -> None:
    kwargs = {"opset_version": opset} if opset else {}
    torch.onnx.export(module, (example,), str(path), dynamo=False, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                      **kwargs)


def _export_dynamo(module: nn.Module, example: torch.Tensor, path: Path, opset: int | None,
                   external_data: bool) -> None:
    kwargs = {"opset_version": opset} if opset else {}
    batch = torch.export.Dim("batch")
    torch.onnx.export(module, (example,), str(path), dynamo=True, input_names=["input"],
                      output_names=["output"], dynamic_shapes=({0: batch},),
                      external_data=external_data, **kwargs)


@contextlib.contextmanager
def _quiet():
    """Swallow the exporters' stdout lines and warnings (DeprecationWarning, TracerWarning)."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        yield


def _batch_of_two(example: torch.Tensor) -> torch.Tensor:
    """torch.export specialises a size-1 axis to a constant, so trace with a batch of >= 2."""
    if example.dim() == 0:
        raise ZooError("the example input needs a batch axis (shape (B, ...)); got a scalar")
    if example.shape[0] >= 2:
        return example
    return torch.cat([example[:1], example[:1]], dim=0)


def _weight_bytes(module: nn.Module) -> int:
    tensors = list(module.parameters()) + list(module.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def _set_metadata(path: Path, metadata: dict[str, str]) -> None:
    """Replace the model's ``metadata_props`` with ``metadata``; a side file's tensors stay where they are."""
    model = onnx.load(str(path), load_external_data=False)
    del model.metadata_props[:]
    for key, value in sorted(metadata.items()):
        model.metadata_props.add(key=str(key), value=str(value))
    onnx.save(model, str(path))


def _opset(path: Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
