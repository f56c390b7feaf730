"""Safe checkpoint reading and canonical bytes."""

from __future__ import annotations

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from igpg_zoo.errors import CheckpointError, UnsafeCheckpoint
from igpg_zoo.registry.checkpoint_io import canonical_bytes, n_params, read_state_dict, sha256


def _weights() -> dict[str, torch.Tensor]:
    return {
        "fc.weight": torch.arange(6, dtype=torch.float32).reshape(2, 3),
        "fc.bias": torch.tensor([0.5, -0.5]),
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
        "mask": torch.tensor([True, False]),
        "half": torch.ones(3, dtype=torch.float16),
    }


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


class _Evil:
    """Unpickling this runs code that creates a file."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (os.mkdir, (self.target,))


@pytest.mark.parametrize("wrap", [
    lambda sd: sd,
    lambda sd: {"state_dict": sd, "epoch": 3},
    lambda sd: {"model": sd, "optimizer_steps": 10},
    lambda sd: {"state_dict": {f"module.{k}": v for k, v in sd.items()}},
    lambda sd: {f"_orig_mod.module.{k}": v for k, v in sd.items()},
])
@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin"])
def test_pickles_read_through_weights_only(tmp_path, wrap, suffix):
    path = tmp_path / f"m{suffix}"
    torch.save(wrap(_weights()), path)
    assert _same(read_state_dict(path), _weights())


def test_safetensors_read_and_prefixes_stripped(tmp_path):
    save_file({f"module.{k}": v for k, v in _weights().items()}, str(tmp_path / "m.safetensors"))
    got = read_state_dict(tmp_path / "m.safetensors")
    assert _same(got, _weights())
    assert got["bn.num_batches_tracked"].dtype == torch.int64  # non-floating tensors kept as they are


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("payload,error", [
    ("inside_dict", UnsafeCheckpoint),  # torch.save'd dict holding an object
    ("bare", UnsafeCheckpoint),  # a protocol-2 pickle of the object
    ("bare_protocol5", CheckpointError),  # the safe unpickler stops at the frame opcode first
])
def test_malicious_pickle_refused_and_never_executed(tmp_path, payload, error):
    target = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    if payload == "inside_dict":
        torch.save({"w": torch.zeros(2), "x": _Evil(str(target))}, path)
    else:
        path.write_bytes(pickle.dumps(_Evil(str(target)), protocol=2 if payload == "bare" else 5))
    with pytest.raises(error) as err:
        read_state_dict(path)
    assert not target.exists()
    assert "\n" not in str(err.value)
    if error is UnsafeCheckpoint:
        assert "needs code to load (it references posix.mkdir)" in str(err.value)


@pytest.mark.parametrize("name,make", [
    ("trunc.safetensors", lambda p, full: p.write_bytes(full[: len(full) // 2])),
    ("trunc.pt", lambda p, full: p.write_bytes(full[: len(full) // 2])),
    ("garbage.pt", lambda p, full: p.write_bytes(b"not a checkpoint at all " * 8)),
    ("garbage.safetensors", lambda p, full: p.write_bytes(b"\x00\x01garbage")),
    ("empty.pth", lambda p, full: p.write_bytes(b"")),
])
def test_truncated_or_garbage_is_one_line_checkpoint_error(tmp_path, name, make):
    source = tmp_path / ("src" + os.path.splitext(name)[1])
    if source.suffix == ".safetensors":
        save_file(_weights(), str(source))
    else:
        torch.save(_weights(), source)
    path = tmp_path / name
    make(path, source.read_bytes())
    with pytest.raises(CheckpointError) as err:
        read_state_dict(path)
    assert not isinstance(err.value, UnsafeCheckpoint)
    assert "\n" not in str(err.value) and name in str(err.value)


@pytest.mark.parametrize("name", ["model.ckpt", "model.txt", "model", "model.onnx"])
def test_wrong_extension_names_accepted_ones(tmp_path, name):
    (tmp_path / name).write_bytes(b"whatever")
    with pytest.raises(CheckpointError, match=r"\.safetensors, \.pt, \.pth, \.bin"):
        read_state_dict(tmp_path / name)


@pytest.mark.parametrize("content,match", [
    ({"epoch": 3}, "not a flat state dict"),
    ([torch.zeros(2)], "holds no state dict"),
    ({"a": {"b": torch.zeros(1)}}, "not a flat state dict"),
])
def test_not_a_state_dict(tmp_path, content, match):
    torch.save(content, tmp_path / "x.pt")
    with pytest.raises(CheckpointError, match=match):
        read_state_dict(tmp_path / "x.pt")


def test_canonical_bytes_ignore_order_device_layout_and_sharing():
    w = _weights()
    shuffled = dict(reversed(list(w.items())))
    shuffled["fc.weight"] = w["fc.weight"].t().contiguous().t()  # non-contiguous view, same values
    assert not shuffled["fc.weight"].is_contiguous()
    assert canonical_bytes(w) == canonical_bytes(shuffled)
    tied = {"a": w["fc.bias"], "b": w["fc.bias"]}  # shared storage is fine
    assert canonical_bytes(tied) == canonical_bytes({"a": w["fc.bias"].clone(), "b": w["fc.bias"].clone()})
    changed = dict(w, **{"fc.bias": torch.tensor([0.5, -0.25])})
    assert sha256(canonical_bytes(changed)) != sha256(canonical_bytes(w))


def test_n_params_counts_floating_tensors_only():
    assert n_params(_weights()) == 6 + 2 + 3
