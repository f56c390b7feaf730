"""The adapter contract test, shipped for plugin authors.

In a plugin's test suite::

    from igpg_zoo.testing import check_adapter

    def test_contract(tmp_path):
        report = check_adapter(MyAdapter(), "myfamily/tiny", tmp_path)
        assert not report.failed

``check_adapter`` raises :class:`ContractFailure` (an AssertionError, one line) at the first
broken promise and otherwise returns a report of the steps it ran and the ones it skipped (and why).
Steps: supports -> build (eval mode) -> param_layout matches the floating-point parameters ->
flatten/unflatten exact -> strict load (same outputs) -> validate_weights -> head_names ->
unit_groups (a random permutation keeps the outputs) -> describe/structure -> native folder round
trip (if "native" in export_formats) -> ONNX export with onnxruntime parity (if "onnx" in
export_formats).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from igpg_zoo.adapters.base import Adapter
from igpg_zoo.adapters.validation import validate_weights
from igpg_zoo.errors import CheckpointMismatch

if TYPE_CHECKING:
    import torch


class ContractFailure(AssertionError):
    """An adapter broke a promise of the contract (the message names the step)."""


@dataclass
class ContractReport:
    adapter: str
    arch: str
    steps: list[tuple[str, str, str]] = field(default_factory=list)  # (step, "ok" | "skipped", detail)

    @property
    def failed(self) -> bool:  # failures raise; kept so `assert not report.failed` reads naturally
        return any(state == "failed" for _, state, _ in self.steps)

    @property
    def skipped(self) -> list[str]:
        return [f"{step}: {detail}" for step, state, detail in self.steps if state == "skipped"]

    def ok(self, step: str, detail: str = "") -> None:
        self.steps.append((step, "ok", detail))

    def skip(self, step: str, detail: str) -> None:
        self.steps.append((step, "skipped", detail))


def _require(cond: bool, step: str, what: str, report: ContractReport) -> None:
    if not cond:
        raise ContractFailure(f"adapter '{report.adapter}', arch '{report.arch}', step {step}: {what}")


def check_adapter(adapter: Adapter, arch: str | None = None, tmp_path: Path | None = None,
                  atol: float = 1e-4) -> ContractReport:
    """Run the whole contract for ``arch`` (default: ``adapter.test_arch``); see the module doc."""
    arch = arch or adapter.test_arch
    report = ContractReport(getattr(adapter, "name", type(adapter).__name__), arch)
    with tempfile.TemporaryDirectory(prefix="igpg-zoo-contract-") as tmp:
        folder = Path(tmp_path) if tmp_path is not None else Path(tmp)
        _require(adapter.supports(arch), "supports", "supports(arch) is False for its own arch", report)
        module = _check_build(adapter, arch, report)
        weights = module.state_dict()
        _check_layout(adapter, arch, module, report)
        _check_vectorize(adapter, arch, weights, report)
        example = _example_or_none(adapter, arch, report)
        _check_strict_load(adapter, arch, module, example, report)
        _check_unit_groups(adapter, arch, module, example, atol, report)
        _check_describe(adapter, arch, report)
        if "native" in adapter.export_formats:
            _check_native(adapter, arch, weights, folder / "native", report)
        else:
            report.skip("native", "'native' not in export_formats")
        if "onnx" in adapter.export_formats:
            _check_onnx(module, example, folder / "model.onnx", atol, report)
        else:
            report.skip("onnx", "'onnx' not in export_formats")
    return report


def _check_build(adapter: Adapter, arch: str, report: ContractReport):
    from torch import nn

    module = adapter.build(arch)
    _require(isinstance(module, nn.Module), "build", f"returned {type(module).__name__}, not an nn.Module", report)
    _require(not module.training, "build", "the module is in train mode; build() must return module.eval()", report)
    report.ok("build", f"{sum(p.numel() for p in module.parameters())} parameters")
    return module


def _check_layout(adapter: Adapter, arch: str, module, report: ContractReport) -> None:
    layout = adapter.param_layout(arch)
    params = [(n, tuple(p.shape)) for n, p in module.named_parameters() if p.is_floating_point()]
    got = [(s.name, tuple(s.shape)) for s in layout]
    _require(len(got) > 0, "param_layout", "the layout is empty", report)
    _require(got == params, "param_layout",
             f"layout {got[:3]}... differs from named_parameters {params[:3]}...", report)
    heads = adapter.head_names(arch)
    names = {n for n, _ in got}
    _require(bool(heads) and set(heads) <= names, "head_names",
             f"head_names {heads} must be non-empty parameter names of the layout", report)
    report.ok("param_layout", f"{len(got)} tensors; head {heads}")


def _check_vectorize(adapter: Adapter, arch: str, weights: dict[str, torch.Tensor], report: ContractReport) -> None:
    import torch

    try:
        from igpg_zoo.igpg.vectorize import Layout, flatten, unflatten
    except ImportError as exc:  # the generator layer is optional in a partial install
        report.skip("flatten/unflatten", f"igpg_zoo.igpg.vectorize is not importable ({exc})")
        return
    layout = Layout(arch, tuple(adapter.param_layout(arch)))
    vec = flatten(weights, layout)  # (D,)
    back = unflatten(vec, layout)
    _require(vec.numel() == layout.numel, "flatten", f"vector has {vec.numel()} values, layout {layout.numel}", report)
    exact = all(torch.equal(back[s.name], weights[s.name].float()) for s in layout.specs)
    _require(exact and torch.equal(flatten(back, layout), vec), "unflatten", "flatten -> unflatten is not exact",
             report)
    report.ok("flatten/unflatten", f"{vec.numel()} values, exact")


def _example_or_none(adapter: Adapter, arch: str, report: ContractReport):
    from igpg_zoo.errors import ExportNotSupported

    try:
        return adapter.example_input(arch)
    except ExportNotSupported as exc:
        _require("onnx" not in adapter.export_formats, "example_input", f"'onnx' is exported but {exc}", report)
        report.skip("example_input", str(exc))
        return None


def _check_strict_load(adapter: Adapter, arch: str, module, example, report: ContractReport) -> None:
    import torch

    weights = module.state_dict()
    other = adapter.build(arch)
    other.load_state_dict(weights, strict=True)
    validate_weights(adapter, arch, weights)
    broken = dict(weights)
    dropped = next(iter(broken))
    del broken[dropped]
    try:
        validate_weights(adapter, arch, broken)
        raise ContractFailure(f"adapter '{report.adapter}': validate_weights accepted weights without '{dropped}'")
    except CheckpointMismatch as exc:
        _require(dropped in str(exc) and "\n" not in str(exc), "validate_weights",
                 f"the mismatch message must be one line naming '{dropped}': {exc}", report)
    if example is not None:
        with torch.no_grad():
            same = torch.equal(_first(module(example)), _first(other(example)))
        _require(same, "strict load", "a module loaded with the same state dict gives different outputs", report)
    report.ok("strict load", "same outputs" if example is not None else "keys and shapes")


def _check_unit_groups(adapter: Adapter, arch: str, module, example, atol: float, report: ContractReport) -> None:
    import torch

    groups = adapter.unit_groups(arch)
    if not groups:
        report.skip("unit_groups", "no permutable units declared (generators then train without alignment)")
        return
    names = set(module.state_dict())
    for g in groups:
        bad = [n for n in (*g.outputs, *g.inputs, *g.buffers) if n not in names]
        _require(not bad, "unit_groups", f"group names {bad} that are not in the state dict", report)
    if example is None:
        report.ok("unit_groups", f"{len(groups)} groups (no example input to check the function)")
        return
    gen = torch.Generator().manual_seed(0)
    shuffled = permute(module.state_dict(), groups, [torch.randperm(g.size, generator=gen) for g in groups])
    other = adapter.build(arch)
    other.load_state_dict(shuffled, strict=True)
    with torch.no_grad():
        diff = float((_first(module(example)) - _first(other(example))).abs().max())
    _require(diff <= atol, "unit_groups", f"permuting the declared units changed the outputs by {diff:.3g}", report)
    report.ok("unit_groups", f"{len(groups)} groups; a random permutation keeps the outputs ({diff:.1e})")


def permute(weights: dict, groups: list, perms: list) -> dict:
    """``weights`` with each unit group's permutation applied to every tensor it names (its outputs and
    buffers on axis 0, its inputs on axis 1): the same function when the groups are declared right."""
    out = dict(weights)
    for g, p in zip(groups, perms):
        for name in (*g.outputs, *g.buffers):
            out[name] = out[name].index_select(0, p)
        for name in g.inputs:
            out[name] = out[name].index_select(1, p)
    return out


def _first(out):
    while isinstance(out, (tuple, list)):
        out = out[0]
    return out


def _check_describe(adapter: Adapter, arch: str, report: ContractReport) -> None:
    text = adapter.describe(arch)
    _require(isinstance(text, str) and text.strip() != "", "describe", "describe() returned no text", report)
    feats = adapter.structure(arch)
    finite = isinstance(feats, dict) and all(isinstance(v, float) and math.isfinite(v) for v in feats.values())
    _require(finite and len(feats) > 0, "structure", "structure() must be a non-empty dict of finite floats", report)
    report.ok("describe/structure", f"{len(feats)} features")


def _check_native(adapter: Adapter, arch: str, weights, out: Path, report: ContractReport) -> None:
    import torch

    folder = adapter.write_checkpoint(arch, weights, out, {"dataset": "contract-test"})
    got = adapter.read_native(Path(folder))
    _require(got is not None, "native", f"read_native() did not recognise the folder write_checkpoint wrote ({folder})",
             report)
    got_arch, got_weights = got
    _require(set(got_weights) == set(weights), "native",
             f"keys differ after the round trip: {sorted(set(weights) ^ set(got_weights))[:3]}", report)
    same = all(torch.equal(got_weights[k], weights[k]) for k in weights)
    _require(same, "native", "tensors differ after the round trip", report)
    _require([(s.name, s.shape) for s in adapter.param_layout(got_arch)] ==
             [(s.name, s.shape) for s in adapter.param_layout(arch)], "native",
             f"read back arch '{got_arch}' has another layout", report)
    empty = out.parent / "not-native"
    empty.mkdir(exist_ok=True)
    _require(adapter.read_native(empty) is None, "native", "read_native() of an empty folder must be None", report)
    report.ok("native", f"round trip exact (arch read back: {got_arch})")


def _check_onnx(module, example, out: Path, atol: float, report: ContractReport) -> None:
    try:
        from igpg_zoo.export.onnx import to_onnx
    except ImportError as exc:  # the export layer is optional in a partial install
        report.skip("onnx", f"igpg_zoo.export.onnx is not importable ({exc})")
        return
    result = to_onnx(module, example, out, atol=atol)
    _require(result.max_abs_diff <= atol, "onnx", f"max|onnx - torch| = {result.max_abs_diff:.3g} > {atol}", report)
    report.ok("onnx", f"max|diff| {result.max_abs_diff:.2e}, opset {result.opset}")
