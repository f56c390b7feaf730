"""Adapter costs per architecture: build time, the full contract test (incl. ONNX parity), native round trip.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/adapters.py [--repeat 3]

Writes bench/results/adapters.json. Times are medians over --repeat runs, after one warm-up run
(the first timm call pays the ~6 s timm import, reported separately as import_s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "adapters.json"))
    args = parser.parse_args()
    rows = []
    for arch in ARCHS:
        rows.append(measure(arch, args.repeat))
        r = rows[-1]
        print(f"{arch:55s} {r['n_params']:>10,} params  build {r['build_ms']:7.1f} ms  contract {r['contract_s']:6.2f} s"
              f"  native {r['native_round_trip_s']:5.2f} s  {r['onnx']}")
    import torch

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"command": "HF_HUB_OFFLINE=1 .venv/bin/python bench/adapters.py --repeat " + str(args.repeat),
            "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "note": "shared, loaded 2-core machine; compare rows, not absolute times",
            "load_avg": os.getloadavg()}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
