"""Adapters: the cost of each architecture's full contract test (build, layout -> flatten ->
unflatten, strict load, native round trip, ONNX parity).

``python -m bench adapters`` times each architecture below (median of 3 runs after one warm-up run;
the first timm call pays the timm import, reported apart). ``--quick``: one run each, no resnet18.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

TITLE = "Adapters"
COMMAND = "python -m bench adapters"
ONNX_TOLERANCE = 1e-4
ARCHS = [
    "mlp-i13-h32-o3",
    "mlp-i1x28x28-h128-h64-o10-gelu",
    "cnn-i1x8x8-c16k3-c32k3-o10",
    "cnn-i1x28x28-c16k3-c32k3-o10-silu-bn",
    "cnn-i1x40-c8k5-c16k5-c32k3-o10",
    "cnn-i3x32x32-c16k3-c32k3-c64k3-h128-o100-gelu-bn",
    "timm/test_resnet?num_classes=10&in_chans=1&img_size=32",
    "timm/test_vit?num_classes=10&in_chans=1&img_size=32",
    "timm/test_efficientnet?num_classes=10&img_size=48",
    "timm/test_convnext?num_classes=10&in_chans=1&img_size=32",
    "timm/resnet18?num_classes=10&img_size=32",
]


def _median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def measure(arch: str, repeat: int) -> dict:
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.testing import check_adapter

    t = time.perf_counter()
    adapter = get_adapter(arch)
    import_s = time.perf_counter() - t
    module = adapter.build(arch)  # warm-up
    weights = module.state_dict()
    with tempfile.TemporaryDirectory() as tmp:
        report = check_adapter(adapter, arch, Path(tmp) / "warm")
        contract_s = _median_s(lambda: check_adapter(adapter, arch, Path(tempfile.mkdtemp(dir=tmp))), repeat)
        native_s = _median_s(lambda: adapter.read_native(
            adapter.write_checkpoint(arch, weights, Path(tempfile.mkdtemp(dir=tmp)), {})), repeat)
    steps = {step: detail for step, _, detail in report.steps}
    return {
        "arch": arch, "adapter": adapter.name, "n_params": sum(p.numel() for p in module.parameters()),
        "adapter_lookup_s": round(import_s, 3), "build_ms": round(1000 * _median_s(lambda: adapter.build(arch), repeat), 1),
        "contract_s": round(contract_s, 3), "native_round_trip_s": round(native_s, 3),
        "onnx": steps.get("onnx", ""), "skipped": report.skipped,
    }


def _onnx_diff(text: str) -> float | None:
    """The max abs diff in the contract test's ONNX detail ("... max abs diff 6.0e-08 ...")."""
    import re

    found = re.search(r"([0-9.]+e[-+][0-9]+)", text or "")
    return float(found.group(1)) if found else None


def _onnx_cell(row: dict) -> str:
    diff = _onnx_diff(row["onnx"])
    return f"{diff:.1e}" if diff is not None else (", ".join(row["skipped"]) or "–")


def summary(data: dict) -> list[dict]:
    rows = data["rows"]
    diffs = [d for d in (_onnx_diff(r["onnx"]) for r in rows) if d is not None]
    slowest = max(rows, key=lambda r: r["contract_s"])
    return [{"measure": f"ONNX parity, worst of {len(rows)} architectures (smallnet, timm)",
             "target": "≤ 1e-4", "value": f"{max(diffs):.1e}" if diffs else "–",
             "met": bool(diffs) and max(diffs) <= ONNX_TOLERANCE, "command": COMMAND},
            {"measure": "full contract test, slowest architecture", "target": "–",
             "value": f"{slowest['contract_s']:.1f} s ({slowest['arch'].split('?')[0]}, {slowest['n_params']:,} params)",
             "met": None, "command": COMMAND}]


def details(data: dict) -> str:
    rows = data["rows"]
    lines = ["| arch | params | build ms | contract s | native round trip s | ONNX max abs diff |", "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(f"| `{r['arch']}` | {r['n_params']:,} | {r['build_ms']} | {r['contract_s']:.2f} "
                     f"| {r['native_round_trip_s']:.2f} | {_onnx_cell(r)} |")
    return "\n".join(lines)


def run(quick: bool) -> dict:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    archs = [a for a in ARCHS if not (quick and "resnet18" in a)]
    rows = [measure(arch, 1 if quick else 3) for arch in archs]
    data = {"rows": rows}
    return {"summary": summary(data), "details": details(data), "data": data}
