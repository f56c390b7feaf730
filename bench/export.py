"""Export: time and parity per architecture family.

``python -m bench export`` exports each architecture to ONNX with the legacy (TorchScript) and the
dynamo exporter side by side (export seconds, max |onnxruntime - torch| over random batches of 1 and
3, file size), then to the adapter's native folder (timm / smallnet) and the single safetensors
file, each with its read-back parity. Random weights (seeded), BatchNorm statistics randomised so
they matter. Median of 3 runs (dynamo: 1), one untimed warm-up export per exporter first.
``--quick``: one run each, three families.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

TITLE = "Export"
COMMAND = "python -m bench export"
TOLERANCE = 1e-4

FAMILIES = [
    ("smallnet mlp", "mlp-i64-h32-o10"),
    ("smallnet cnn 2-D", "cnn-i1x8x8-c8k3-c16k3-o10"),
    ("smallnet cnn 1-D", "cnn-i1x40-c8k5-o10"),
    ("smallnet cnn bn", "cnn-i1x8x8-c8k3-o10-bn"),
    ("timm test_resnet", "timm/test_resnet?num_classes=10&in_chans=1&img_size=32"),
    ("timm test_vit", "timm/test_vit?num_classes=10&in_chans=1&img_size=32"),
    ("timm test_efficientnet", "timm/test_efficientnet?num_classes=10&in_chans=1&img_size=32"),
]
RESNET18 = ("timm resnet18 32x32", "timm/resnet18?num_classes=10&img_size=32")


def random_weights(arch: str) -> dict:
    import torch
    from torch import nn

    from igpg_zoo.adapters import get_adapter

    torch.manual_seed(0)
    module = get_adapter(arch).build(arch)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    return module.state_dict()


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size + sum(p.stat().st_size for p in path.parent.glob(path.name + ".data"))
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure(arch: str, fmt: str, repeat: int, exporter: str = "auto") -> dict:
    from igpg_zoo.export import export_weights

    weights = random_weights(arch)
    runs = []
    for i in range(repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / ("m.onnx" if fmt == "onnx" else f"out{i}")
            started = time.perf_counter()
            report = export_weights(arch, weights, fmt, out, exporter=exporter)
            total = time.perf_counter() - started
            runs.append((report, total, size_of(report.path)))
    report = runs[0][0]
    return {
        "format": fmt, "exporter": report.exporter, "opset": report.opset,
        "export_s": statistics.median(r.seconds for r, _, _ in runs),
        "total_s": statistics.median(t for _, t, _ in runs),  # build + export + check
        "max_abs_diff": max(r.max_abs_diff for r, _, _ in runs), "bytes": runs[0][2], "check": report.check,
    }


def warm_up() -> None:
    """One untimed export per exporter: the first dynamo call pays seconds of one-off set-up."""
    for exporter in ("legacy", "dynamo"):
        measure(FAMILIES[0][1], "onnx", 1, exporter)


def bench(families, repeat: int) -> list[dict]:
    from igpg_zoo.adapters import get_adapter

    warm_up()
    rows = []
    for family, arch in families:
        adapter = get_adapter(arch)
        n_params = sum(p.numel() for p in adapter.build(arch).parameters())
        native = "timm" if adapter.name == "timm" else "native"
        cases = [("onnx", "legacy", repeat), ("onnx", "dynamo", max(1, repeat // 2)),
                 (native, "auto", repeat), ("safetensors", "auto", repeat)]
        for fmt, exporter, n in cases:
            row = {"family": family, "arch": arch, "n_params": n_params, **measure(arch, fmt, n, exporter)}
            rows.append(row)
            print(f"{family:24s} {fmt:11s} {row['exporter'] or '':7s} export {row['export_s']:7.3f} s  "
                  f"total {row['total_s']:7.3f} s  max|diff| {row['max_abs_diff']:.2e}  {row['bytes']:>10,} B",
                  flush=True)
    return rows


def summary(data: dict) -> list[dict]:
    rows = data["rows"]
    onnx = [r for r in rows if r["format"] == "onnx"]
    files = [r for r in rows if r["format"] != "onnx"]
    legacy = {r["family"]: r["export_s"] for r in onnx if r["exporter"] == "legacy"}
    dynamo = {r["family"]: r["export_s"] for r in onnx if r["exporter"] == "dynamo"}
    ratios = [dynamo[f] / legacy[f] for f in legacy if f in dynamo and legacy[f] > 0]
    worst = max(r["max_abs_diff"] for r in onnx)
    return [{"measure": f"ONNX parity with onnxruntime, worst of {len(legacy)} families", "target": "≤ 1e-4",
             "value": f"{worst:.1e}", "met": worst <= TOLERANCE, "command": COMMAND},
            {"measure": "native folder / safetensors read-back parity, worst", "target": "≤ 1e-4",
             "value": f"{max(r['max_abs_diff'] for r in files):.1e}".replace("0.0e+00", "0"),
             "met": max(r["max_abs_diff"] for r in files) <= TOLERANCE, "command": COMMAND},
            {"measure": "ONNX export time, legacy exporter (the default) vs dynamo", "target": "–",
             "value": f"{min(ratios):.0f}–{max(ratios):.0f}× faster" if ratios else "–", "met": None, "command": COMMAND}]


def details(data: dict) -> str:
    rows = data["rows"]
    lines = ["| family | params | legacy s | dynamo s | ONNX max abs diff | native / safetensors diff | ONNX size |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for family in dict.fromkeys(r["family"] for r in rows):
        mine = [r for r in rows if r["family"] == family]
        by = {(r["format"], r["exporter"]): r for r in mine}
        legacy, dynamo = by.get(("onnx", "legacy")), by.get(("onnx", "dynamo"))
        onnx_diff = max(r["max_abs_diff"] for r in mine if r["format"] == "onnx")
        files_diff = max(r["max_abs_diff"] for r in mine if r["format"] != "onnx")
        lines.append(f"| {family} | {mine[0]['n_params']:,} | {legacy['export_s']:.2f} | "
                     f"{dynamo['export_s'] if dynamo else float('nan'):.1f} | {onnx_diff:.1e} | {files_diff:g} "
                     f"| {legacy['bytes'] / 1024:,.0f} KiB |")
    lines += ["", "The legacy TorchScript exporter is the default; dynamo is the automatic fallback. Parity: ONNX = "
              "max |onnxruntime − torch| over random batches of 1 and 3; folders / files = outputs of the module "
              "rebuilt from what was written."]
    return "\n".join(lines)


def run(quick: bool) -> dict:
    import torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    families = [FAMILIES[0], FAMILIES[3], FAMILIES[4]] if quick else FAMILIES + [RESNET18]
    rows = bench(families, 1 if quick else 3)
    data = {"rows": rows, "torch": torch.__version__}
    return {"summary": summary(data), "details": details(data), "data": data}
