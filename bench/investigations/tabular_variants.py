"""`full` zoo variants that differ only in the three tabular families (iris, wine, breast cancer):
does a wider tabular MLP, or more independent runs of it, stop the generator replaying them?

On the `full` benchmark nearly every exact token copy comes from the tabular pairs (4 independent
runs x their last 3 epochs of a 131-530-parameter MLP, 8-20 tokens). A variant copies the benchmark
registry (bench/scratch/generator-full), removes its tabular members when their width changes, and
trains the variant's tabular runs into the copy (seconds; every other member is the same record):

    HF_HUB_OFFLINE=1 .venv/bin/python bench/tabular_variants.py build tab64x4       # -> bench/scratch/generator-full-tab64x4
    HF_HUB_OFFLINE=1 .venv/bin/python bench/gpu_train.py pack bench/scratch/generator-full-tab64x4/registry.db bench/scratch/gpupack-tab64x4
    python3 bench/gpu_train.py train OUT --pack bench/scratch/gpupack-tab64x4 --epochs 50,80   # on the GPU machine
    HF_HUB_OFFLINE=1 .venv/bin/python bench/gpu_train.py register OUT bench/scratch/generator-full-tab64x4/registry.db
    HF_HUB_OFFLINE=1 .venv/bin/python bench/tabular_variants.py bench tab64x4 --artifacts TOK,PRIOR --temperature 1.0 --top-p 0.9 --tag TAG --phases seen,swap,heldout,variants

``bench`` runs bench/generator_bench.py on the variant (its preset patched in, results
bench/results/generator-full-VARIANT-TAG.md).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
TABULAR = {"iris": "mlp-i4-h{h}-o{{k}}", "wine": "mlp-i13-h{h}-o{{k}}", "breast_cancer": "mlp-i30-h{h}-o{{k}}"}
CLASSES = {"iris": 3, "wine": 3, "breast_cancer": 2}
VARIANTS = {  # name -> (hidden width, independent runs); the preset's own: (16, 4)
    "tab16x16": (16, 16),
    "tab64x8": (64, 8),
    "tab64x4": (64, 4),
}


def patch(name: str) -> None:
    """Make the `full` preset the variant, for this process."""
    from igpg_zoo.zoobuild import presets

    h, runs = VARIANTS[name]
    fams = tuple(replace(f, archs=(TABULAR[f.base_task].format(h=h),),
                         independent=tuple(presets.Variant(100 + i) for i in range(runs)))
                 if f.base_task in TABULAR else f for f in presets.FULL.families)
    presets.FULL = replace(presets.FULL, families=fams)
    presets.PRESETS["full"] = presets.FULL


def build(name: str) -> None:
    from igpg_zoo.zoo import open_zoo
    from igpg_zoo.zoobuild.build import build_zoo

    src, dst = HERE / "scratch" / "generator-full", HERE / "scratch" / f"generator-full-{name}"
    if not dst.exists():
        dst.mkdir(parents=True)
        shutil.copy2(src / "registry.db", dst / "registry.db")
        shutil.copytree(src / "blobs", dst / "blobs")
    patch(name)
    h = VARIANTS[name][0]
    with open_zoo(str(dst / "registry.db")) as zoo:
        for r in zoo.list(dataset=tuple(TABULAR)):
            if r.kind != "generated" and r.arch != TABULAR[r.dataset].format(h=h).replace("{k}", str(CLASSES[r.dataset])):
                zoo.remove(r.id)
        t0 = time.perf_counter()
        report = build_zoo(zoo, "full", seed=0)
        print(f"{name}: trained {report.trained} runs, skipped {report.skipped}, {time.perf_counter() - t0:.0f} s, "
              f"{len(zoo.list())} records")


def bench(name: str, args: list[str]) -> None:
    patch(name)
    sys.path.insert(0, str(HERE))
    import generator_bench

    sys.argv = ["bench/generator_bench.py", "--zoo", "full", "--stem", f"generator-full-{name}", *args]
    generator_bench.main()


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "build":
        build(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "bench":
        bench(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)
