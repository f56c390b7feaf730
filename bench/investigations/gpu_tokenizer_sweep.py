"""Tokenizer sweep runs (bench/tokenizer_sweep.py) trained and measured on a GPU machine.

The GPU machine has torch and scikit-learn but not the registry's database packages, so:

    HF_HUB_OFFLINE=1 .venv/bin/python bench/gpu_tokenizer_sweep.py pack     # here: demo zoo -> bench/scratch/gpusweep
    python3 bench/gpu_tokenizer_sweep.py run OUT NAME JSON SEED [NAME JSON SEED ...]  # there: one process per run
    .venv/bin/python bench/gpu_tokenizer_sweep.py import DIR                # here: rows + summaries -> the sweep

``pack`` writes every demo-zoo checkpoint (weights, architecture, dataset) and the mnist1d array
cache; the test splits are rebuilt there from the same sources. ``run`` starts one process per run
on the GPU at once (each is bound by kernel launches, not by the GPU), each training
TokenizerConfig() + JSON with the seed and measuring every model's round trip exactly as
``tokenizer_sweep.py run`` does (originals evaluated there too). ``import`` adds the rows to
bench/results/tokenizer-sweep.json with the machine named.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
PACK = HERE / "scratch" / "gpusweep"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))  # a source checkout on the GPU machine

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402


def pack() -> None:
    from igpg_zoo.data.dataset import cache_dir
    from igpg_zoo.zoo import open_zoo
    from tokenizer_sweep import REGISTRY

    weights, meta = {}, []
    with open_zoo(REGISTRY) as zoo:
        for r in zoo.list():
            weights.update({f"{r.id}/{k}": v.float().clone() for k, v in zoo.load_weights(r.id).items()})
            meta.append({"id": r.id, "arch": r.arch, "dataset": r.dataset})
    (PACK / "cache").mkdir(parents=True, exist_ok=True)
    for f in Path(cache_dir()).glob("mnist1d-*.npz"):
        shutil.copy(f, PACK / "cache" / f.name)
    save_file(weights, str(PACK / "weights.safetensors"))
    (PACK / "meta.json").write_text(json.dumps(meta))
    print(f"packed {len(meta)} models into {PACK}")


def one(out: Path, name: str, overrides: dict, seed: int) -> None:
    from tokenizer_bench import Evaluator
    from tokenizer_sweep import train_and_measure

    torch.set_num_threads(1)
    os.environ["IGPG_ZOO_CACHE"] = str(PACK / "cache")  # the packed mnist1d arrays
    flat = load_file(str(PACK / "weights.safetensors"))
    ev = Evaluator()
    models = []
    for m in json.loads((PACK / "meta.json").read_text()):
        w = {k.split("/", 1)[1]: v for k, v in flat.items() if k.startswith(f"{m['id']}/")}
        models.append({**m, "weights": w, "acc": ev.acc(w, m["arch"], m["dataset"])})
    device = os.environ.get("SWEEP_DEVICE", "cuda")  # cpu: a smoke test of this script
    _, summary, rows = train_and_measure(models, ev, overrides, seed, device=device)
    where = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU"
    summary["machine"] = f"{where}, torch {torch.__version__}"
    (out / f"{name}.json").write_text(json.dumps({"summary": summary, "rows": rows}))
    print(name, {k: v for k, v in summary.items() if k not in ("config",)}, flush=True)


def run(out: Path, specs: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    jobs = [subprocess.Popen([sys.executable, __file__, "one", str(out), name, js, seed])
            for name, js, seed in zip(specs[::3], specs[1::3], specs[2::3])]
    sys.exit(max(j.wait() for j in jobs))


def import_runs(src: Path) -> None:
    from tokenizer_sweep import record

    for f in sorted(src.glob("*.json")):
        data = json.loads(f.read_text())
        record(f.stem, data["summary"], data["rows"])


if __name__ == "__main__":
    cmd, args = (sys.argv[1], sys.argv[2:]) if len(sys.argv) > 1 else ("", [])
    if cmd == "pack":
        pack()
    elif cmd == "run":
        run(Path(args[0]), args[1:])
    elif cmd == "one":
        one(Path(args[0]), args[1], json.loads(args[2]), int(args[3]))
    elif cmd == "import":
        import_runs(Path(args[0]))
    else:
        sys.exit(__doc__)
