"""Adding a .safetensors file reads it as numpy arrays and checks it against the architecture's cached
state-dict signature: same bytes and sha as the torch path, the same one-line refusals, and no
torch import once the architecture is known."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from igpg_zoo.errors import CheckpointMismatch
from igpg_zoo.records import CheckpointMeta
from igpg_zoo.registry import arch_signatures
from igpg_zoo.registry.checkpoint_io import canonical_bytes, n_params
from igpg_zoo.zoo import open_zoo

MLP = "mlp-i16-h8-o4"


def _arrays(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = {"fc1.weight": (8, 16), "fc1.bias": (8,), "head.weight": (4, 8), "head.bias": (4,)}
    return {k: rng.standard_normal(s).astype(np.float32) for k, s in shapes.items()}


@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.float64, np.int64, np.uint8, np.bool_])
def test_numpy_and_torch_give_the_same_canonical_bytes(dtype):
    arrays = {"b": (np.arange(12).reshape(3, 4) % 3).astype(dtype), "a": np.ones(2, dtype=np.float32)}
    tensors = {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    assert canonical_bytes(arrays) == canonical_bytes(tensors)
    assert n_params(arrays) == n_params(tensors)


def test_a_file_added_by_numpy_equals_the_same_weights_added_by_torch(tmp_path):
    arrays = _arrays()
    save_file(arrays, str(tmp_path / "m.safetensors"))
    meta = CheckpointMeta(arch=MLP, dataset="toy")
    with open_zoo() as zoo:
        from_file = zoo.add(tmp_path / "m.safetensors", meta)
        from_torch = zoo.add_weights({k: torch.from_numpy(v) for k, v in arrays.items()}, meta)
    assert from_file.created and not from_torch.created  # the same identity: one record
    assert from_torch.checkpoint.sha256 == from_file.checkpoint.sha256


def _broken(kind: str) -> dict[str, np.ndarray]:
    arrays = _arrays()
    if kind == "nan":
        arrays["fc1.weight"][0, 0] = np.nan
    elif kind == "integer":
        arrays["head.bias"] = np.zeros(4, dtype=np.int32)
    elif kind == "shape":
        arrays["head.weight"] = np.zeros((5, 8), dtype=np.float32)
    elif kind == "extra key":
        arrays["extra.weight"] = np.zeros(3, dtype=np.float32)
    elif kind == "missing key":
        del arrays["fc1.bias"]
    return arrays


@pytest.mark.parametrize("kind", ["nan", "integer", "shape", "extra key", "missing key"])
def test_refusals_read_as_on_the_torch_path(tmp_path, kind):
    arrays = _broken(kind)
    save_file(arrays, str(tmp_path / "m.safetensors"))
    meta = CheckpointMeta(arch=MLP, dataset="toy")
    with open_zoo() as zoo:
        with pytest.raises(CheckpointMismatch) as by_file:
            zoo.add(tmp_path / "m.safetensors", meta)
        with pytest.raises(CheckpointMismatch) as by_torch:
            zoo.add_weights({k: torch.from_numpy(v) for k, v in arrays.items()}, meta)
        assert zoo.store.count() == 0
    assert str(by_file.value) == str(by_torch.value) and "\n" not in str(by_file.value)


def test_signature_is_cached_per_architecture(tmp_path, monkeypatch):
    from igpg_zoo.adapters import get_adapter

    monkeypatch.setenv("IGPG_ZOO_CACHE", str(tmp_path / "cache"))
    adapter = get_adapter(MLP)
    first = arch_signatures.expected(adapter, MLP)
    assert first == {"fc1.weight": ((8, 16), True), "fc1.bias": ((8,), True),
                     "head.weight": ((4, 8), True), "head.bias": ((4,), True)}
    assert [p.name for p in arch_signatures._folder().iterdir()] == [f"{arch_signatures._key(adapter, MLP)}.json"]
    assert arch_signatures.expected(adapter, MLP) == first
    assert arch_signatures._key(adapter, MLP) != arch_signatures._key(adapter, "mlp-i16-h8-o3")


ADD_AND_REPORT = """
import json, sys
from igpg_zoo.cli.app import main
sys.argv = ["igpg-zoo", "add", sys.argv[1], "--arch", sys.argv[2], "--dataset", "toy"]
try:
    main()
except SystemExit as exit:
    if exit.code:
        raise
print("IMPORTED " + json.dumps(sorted(m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules)))
"""


def test_adding_a_file_of_a_known_architecture_imports_no_torch(tmp_path):
    """The first file of an architecture builds its signature (torch); the next one needs none."""
    for i in range(2):
        save_file(_arrays(i), str(tmp_path / f"m{i}.safetensors"))
    env = {**os.environ}
    seen = []
    for i in range(2):
        done = subprocess.run([sys.executable, "-c", ADD_AND_REPORT, str(tmp_path / f"m{i}.safetensors"), MLP],
                              capture_output=True, text=True, env=env, timeout=300)
        assert done.returncode == 0, done.stderr
        seen.append(json.loads(done.stdout.rpartition("IMPORTED ")[2]))
    assert seen[1] == []
