"""``export_weights``: write an architecture's weights in one of the export formats, and check it.

Formats (``FORMATS``):

- ``onnx``: one ``.onnx`` file through ``to_onnx`` (dynamic batch, checker, onnxruntime parity).
- ``native``: the adapter's own folder (``Adapter.write_checkpoint``), e.g. smallnet's
  self-describing folder that ``igpg-zoo add`` re-imports.
- ``timm``: the timm adapter's native folder (``model.safetensors`` + timm ``config.json``) that
  ``timm.create_model("local-dir:PATH", pretrained=True)`` loads; only for timm architectures.
- ``safetensors``: one file, the weights plus the arch in its metadata; every adapter.

Every format carries ``meta``: the folder's json, the file's string metadata, the ONNX model's
``metadata_props`` (``single_file.string_metadata``). Weights with a generator's provenance are
labelled ``kind: generated`` (``igpg_zoo.registry.labels``), so the label survives any format.

Every export is checked before it is put in place: ONNX against onnxruntime, folders and files by
reading them back (``Adapter.read_native`` / ``read_single_file``) and comparing the rebuilt
module's outputs with the original's. The figure is ``ExportReport.max_abs_diff``. Nothing is left
at ``out`` when a check fails.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.errors import CheckpointMismatch, ConfigError, ExportNotSupported, ExportParityError

if TYPE_CHECKING:
    import torch
    from torch import nn

    from igpg_zoo.adapters.base import Adapter
    from igpg_zoo.export.batchnorm import Calibration

FORMATS = ("onnx", "timm", "native", "safetensors")
FILE_SUFFIX = {"onnx": ".onnx", "safetensors": ".safetensors"}
DEFAULT_ATOL = 1e-4


@dataclass(frozen=True)
class ExportReport:
    format: str
    arch: str
    adapter: str
    path: Path  # the file (onnx, safetensors) or folder (native, timm) written
    seconds: float  # time to write the export (ONNX: the exporter alone)
    max_abs_diff: float  # parity figure: exported vs PyTorch outputs (see ``check``)
    atol: float
    check: str  # how max_abs_diff was measured
    opset: int | None = None  # onnx only
    exporter: str | None = None  # onnx only: "legacy" | "dynamo"
    batchnorm: dict[str, Any] | None = None  # statistics re-estimated before export (export.batchnorm)

    def summary(self) -> str:
        """One line for the CLI: where it went and the parity figure."""
        how = f"opset {self.opset}, {self.exporter} exporter, " if self.opset is not None else ""
        return (f"{self.format} -> {self.path} ({how}{self.seconds:.2f} s); parity max|diff| = "
                f"{self.max_abs_diff:.3g} <= atol {self.atol:g} ({self.check})")

    def facts(self) -> dict[str, Any]:
        """JSON-ready facts for a record's metadata and ``--json`` output."""
        facts = {"format": self.format, "max_abs_diff": self.max_abs_diff, "atol": self.atol,
                 "check": self.check, "seconds": round(self.seconds, 4)}
        if self.opset is not None:
            facts.update(opset=self.opset, exporter=self.exporter)
        if self.batchnorm is not None:
            facts["batchnorm"] = self.batchnorm
        return facts


def supported_formats(adapter: Adapter) -> tuple[str, ...]:
    """The export formats ``adapter`` supports, in ``FORMATS`` order."""
    own = set(adapter.export_formats) | {"safetensors"}
    if adapter.name == "timm" and "native" in own:
        own.add("timm")  # the timm adapter's native folder is the timm format
    return tuple(f for f in FORMATS if f in own)


def check_supported(adapter: Adapter, arch: str, fmt: str) -> None:
    """Raise unless ``adapter`` can export ``arch`` to ``fmt`` (one line naming the alternatives)."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    formats = supported_formats(adapter)
    if fmt not in formats:
        raise ExportNotSupported(
            f"adapter '{adapter.name}' (architecture '{arch}') cannot export to '{fmt}'; "
            f"formats it supports: {', '.join(formats)}"
        )


def export_weights(arch: str, weights: dict[str, torch.Tensor], fmt: str, out: Path,
                   meta: dict[str, Any] | None = None, atol: float = DEFAULT_ATOL, *,
                   exporter: str = "auto", overwrite: bool = False,
                   calibration: Calibration | None = None) -> ExportReport:
    """Write ``weights`` of ``arch`` to ``out`` in format ``fmt`` and check the result.

    ``out``: for onnx / safetensors a file (a path without that suffix is taken as a folder and
    gets ``model.onnx`` / ``model.safetensors``); for native / timm a folder that must not exist
    or be empty; an existing file is only replaced with ``overwrite``. ``meta`` (JSON-ready) goes into the folder or file (``kind: generated`` is added
    when it holds a generator's provenance). With ``calibration`` (``export.batchnorm``), BatchNorm
    statistics are re-estimated on its inputs first and the facts recorded in the provenance
    (``provenance["batchnorm"]``) and ``ExportReport.batchnorm``. Raises ExportNotSupported,
    CheckpointMismatch (weights do not fit ``arch``) or ExportParityError (figure > ``atol``).
    """
    from igpg_zoo.adapters import get_adapter

    _check_atol(atol)
    adapter = get_adapter(arch)
    check_supported(adapter, arch, fmt)
    target = check_out(fmt, out, overwrite)  # before any work: --out can be written
    module = _module_with(adapter, arch, weights)
    meta = _labelled({"arch": arch, **(meta or {})})
    weights, meta, bn_facts = _calibrate(module, weights, meta, calibration)
    if fmt == "onnx":
        report = _export_onnx(adapter, arch, module, target, meta, atol, exporter, overwrite)
    elif fmt == "safetensors":
        report = _export_single_file(adapter, arch, module, weights, target, meta, atol, overwrite)
    else:
        report = _export_folder(adapter, arch, module, weights, fmt, target, meta, atol)
    return replace(report, batchnorm=bn_facts) if bn_facts else report


def _calibrate(module: nn.Module, weights: dict, meta: dict, calibration: Calibration | None):
    """Re-estimate ``module``'s BatchNorm statistics on ``calibration`` (when given and it has any):
    ``(weights, meta, facts)`` with the facts in ``meta["provenance"]["batchnorm"]``."""
    if calibration is None:
        return weights, meta, None
    from igpg_zoo.export.batchnorm import calibrated

    done = calibrated(module, calibration)
    if done is None:
        return weights, meta, None
    weights, facts = done
    provenance = {**(meta.get("provenance") or {}), "batchnorm": facts}
    return weights, {**meta, "provenance": provenance}, facts


def check_out(fmt: str, out: Path, overwrite: bool = False) -> Path:
    """The path a ``fmt`` export to ``out`` writes; ConfigError (one line) when it cannot be written
    (``staging.check_target``). Callers with work to do first (``generate --out``) check early."""
    from igpg_zoo.export.staging import check_target

    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format '{fmt}'; choose one of {', '.join(FORMATS)}")
    target = _file_target(Path(out), fmt) if fmt in FILE_SUFFIX else Path(out)
    check_target(target, folder=fmt not in FILE_SUFFIX, overwrite=overwrite)
    return target


# -- one function per format --------------------------------------------------------------------


def _export_onnx(adapter: Adapter, arch: str, module: nn.Module, out: Path, meta: dict, atol: float,
                 exporter: str, overwrite: bool) -> ExportReport:
    from igpg_zoo.export.onnx import to_onnx
    from igpg_zoo.export.parity import PARITY_BATCHES
    from igpg_zoo.export.single_file import string_metadata

    example = adapter.example_input(arch)  # raises ExportNotSupported when the adapter has none
    report = to_onnx(module, example, out, atol, exporter=exporter, metadata=string_metadata(arch, meta),
                     overwrite=overwrite)
    check = f"onnxruntime vs torch, random batches of {'/'.join(map(str, PARITY_BATCHES))}"
    return ExportReport("onnx", arch, adapter.name, report.path, report.seconds, report.max_abs_diff,
                        atol, check, report.opset, report.exporter)


def _export_single_file(adapter: Adapter, arch: str, module: nn.Module, weights: dict, out: Path,
                        meta: dict, atol: float, overwrite: bool) -> ExportReport:
    from igpg_zoo.export.single_file import read_single_file, write_single_file
    from igpg_zoo.export.staging import staged

    with staged(out, overwrite=overwrite) as tmp:  # published onto ``out`` only when the check passed
        started = time.perf_counter()
        write_single_file(arch, weights, tmp, meta)
        seconds = time.perf_counter() - started
        arch_back, weights_back, _ = read_single_file(tmp)
        diff, check = _roundtrip_diff(adapter, arch, module, arch_back, weights_back, atol)
    return ExportReport("safetensors", arch, adapter.name, out, seconds, diff, atol, check)


def _export_folder(adapter: Adapter, arch: str, module: nn.Module, weights: dict, fmt: str, out: Path,
                   meta: dict, atol: float) -> ExportReport:
    from igpg_zoo.export.staging import staged

    with staged(out, folder=True) as tmp:  # published onto ``out`` only when the check passed
        started = time.perf_counter()
        adapter.write_checkpoint(arch, weights, tmp, meta)
        seconds = time.perf_counter() - started
        back = adapter.read_native(tmp)
        if back is None:
            raise ExportNotSupported(
                f"adapter '{adapter.name}' wrote a folder its own read_native does not recognise; "
                "report this to the adapter's author and use --format safetensors meanwhile"
            )
        diff, check = _roundtrip_diff(adapter, arch, module, back[0], back[1], atol)
    return ExportReport(fmt, arch, adapter.name, out, seconds, diff, atol, check)


# -- helpers ------------------------------------------------------------------------------------


def _labelled(meta: dict[str, Any]) -> dict[str, Any]:
    """``meta``, with ``kind: generated`` when it holds a generator's provenance but names no kind."""
    from igpg_zoo.registry.labels import GENERATED, is_generated

    return {**meta, "kind": GENERATED} if "kind" not in meta and is_generated(meta) else meta


def _check_atol(atol: float) -> None:
    if not (isinstance(atol, (int, float)) and 0 <= atol < float("inf")):
        raise ConfigError(f"--atol must be a finite number >= 0 (the largest accepted output difference), got {atol}")


def _file_target(out: Path, fmt: str) -> Path:
    suffix = FILE_SUFFIX[fmt]
    return out if out.suffix == suffix else out / f"model{suffix}"


def _module_with(adapter: Adapter, arch: str, weights: dict[str, torch.Tensor],
                 like: nn.Module | None = None) -> nn.Module:
    """``adapter.build(arch)`` (or a copy of ``like``) with ``weights`` loaded strictly, in eval mode.

    Building can cost more than the export (timm's ViT init: ~0.5 s), so a module of the same arch
    is copied rather than built again; the one-line key report is only computed on a mismatch.
    """
    import copy

    module = copy.deepcopy(like) if like is not None else adapter.build(arch)
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        from igpg_zoo.adapters.validation import validate_weights

        validate_weights(adapter, arch, weights)  # raises CheckpointMismatch naming the keys
        first = str(exc).strip().splitlines()[0][:300]
        raise CheckpointMismatch(f"weights do not load into '{arch}': {first}; check the checkpoint") from None
    return module.eval()


def _roundtrip_diff(adapter: Adapter, arch: str, module: nn.Module, arch_back: str,
                    weights_back: dict[str, torch.Tensor], atol: float) -> tuple[float, str]:
    """max|outputs of the re-read module - original outputs|; raises ExportParityError > atol."""
    same = adapter.canonical_arch(arch_back) == adapter.canonical_arch(arch)
    rebuilt = _module_with(adapter, arch_back, weights_back, like=module if same else None)
    try:
        example = adapter.example_input(arch)
    except ExportNotSupported:  # no example input: compare the tensors themselves
        ref = module.state_dict()
        diff = max((float((ref[k].double() - weights_back[k].double()).abs().max()) for k in ref
                    if ref[k].numel()), default=0.0)
        check = "re-read tensors vs original"
    else:
        from igpg_zoo.export.parity import PARITY_BATCHES, torch_parity

        diff = torch_parity(module, rebuilt, example)
        check = f"re-read module vs original, random batches of {'/'.join(map(str, PARITY_BATCHES))}"
    if not diff <= atol:
        raise ExportParityError(
            f"the exported {adapter.name} checkpoint, read back, differs from the original: max|diff| = "
            f"{diff:.3g} > atol {atol:g}; nothing was written. Report this to the adapter's author"
        )
    return diff, check
