"""Export time and parity figure per architecture family -> bench/results/export.{json,md}.

For each architecture: ONNX with the legacy (TorchScript) and the dynamo exporter side by side
(export seconds, max|onnxruntime - torch| over random batches of 1 and 3, file size), then the
adapter's native folder (timm / smallnet) and the single safetensors file, each with its read-back
parity. Random weights (seeded), BatchNorm statistics randomised so they matter.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/export_bench.py [--repeat 3] [--no-resnet18]

Times are wall-clock medians over --repeat runs on whatever machine runs this; compare the two
exporters within one run, not across machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch import nn  # noqa: E402

from igpg_zoo.adapters import get_adapter  # noqa: E402
from igpg_zoo.export import export_weights  # noqa: E402

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


def random_weights(arch: str) -> dict[str, torch.Tensor]:
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


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Export: time and parity per architecture family",
        "",
        f"`{meta['command']}` on {meta['machine']} ({meta['cpus']} CPUs, shared: 1-min load average "
        f"{meta['load_average_1min'][0]} before, {meta['load_average_1min'][1]} after), "
        f"torch {meta['torch']}, onnxruntime {meta['onnxruntime']}, {meta['date']}. Median of "
        f"{meta['repeat']} runs (dynamo: {max(1, meta['repeat'] // 2)}). `export s`: the exporter/writer alone; "
        "`total s`: build + load + export + checker + parity check. One untimed warm-up export per exporter first. Parity: ONNX = max|onnxruntime - torch| "
        "over random batches of 1 and 3; folders/files = outputs of the module rebuilt from what was written.",
        "",
        "| family | params | format | exporter | opset | export s | total s | max abs diff | size |",
        "|---|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['family']} | {r['n_params']:,} | {r['format']} | {r['exporter'] or '-'} | "
                     f"{r['opset'] or '-'} | {r['export_s']:.3f} | {r['total_s']:.3f} | {r['max_abs_diff']:.1e} | "
                     f"{r['bytes'] / 1024:,.0f} KiB |")
    legacy = {r["family"]: r["export_s"] for r in rows if r["exporter"] == "legacy"}
    dynamo = {r["family"]: r["export_s"] for r in rows if r["exporter"] == "dynamo"}
    ratios = [f"{f}: {dynamo[f] / legacy[f]:.0f}x" for f in legacy if f in dynamo and legacy[f] > 0]
    lines += ["", "dynamo / legacy export time, same run: " + ", ".join(ratios) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-resnet18", action="store_true", help="skip timm resnet18 (11 M params)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    families = FAMILIES + ([] if args.no_resnet18 else [RESNET18])
    load_before = os.getloadavg()[0]
    rows = bench(families, args.repeat)
    load_after = os.getloadavg()[0]

    import onnxruntime

    meta = {"command": "python bench/export_bench.py " + " ".join(sys.argv[1:]), "repeat": args.repeat,
            "machine": platform.machine() + " " + platform.processor(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_1min": [round(load_before, 1), round(load_after, 1)]}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    (args.out / "export.md").write_text(markdown(rows, meta))
    print(f"wrote {args.out / 'export.json'} and {args.out / 'export.md'}")


if __name__ == "__main__":
    main()
