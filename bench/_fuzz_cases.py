"""Hostile inputs for the fuzz campaign: hypothesis strategies, one per kind of input.

Shared by the fast property tests (tests/test_fuzz_inputs.py) and the full campaign (``python -m
bench fuzz``); bench/_fuzz_oracle.py runs each input through the CLI and judges the outcome.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
from functools import lru_cache
from pathlib import Path

from hypothesis import strategies as st

MLP = "mlp-i4-h8-o3"
CNN = "cnn-i1x8x8-c4k3-o4"


# -- checkpoint files -----------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _state_dict(arch: str = MLP) -> dict:
    import torch

    from igpg_zoo.adapters import get_adapter

    torch.manual_seed(0)
    return {k: v.detach().clone() for k, v in get_adapter(arch).build(arch).state_dict().items()}


def _safetensors_bytes(sd: dict) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in sd.items()})


def _torch_bytes(obj) -> bytes:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


@lru_cache(maxsize=None)
def good_checkpoint(suffix: str) -> bytes:
    sd = _state_dict()
    return _safetensors_bytes(sd) if suffix == ".safetensors" else _torch_bytes(sd)


SUFFIXES = st.sampled_from([".safetensors", ".pt", ".pth", ".bin"])
DTYPES = ["float16", "bfloat16", "float64", "int8", "uint8", "int32", "int64", "bool", "complex64"]
# a finite or hostile float (json and yaml both carry these)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30))


@st.composite
def truncated(draw):
    suffix = draw(SUFFIXES)
    data = good_checkpoint(suffix)
    return suffix, data[: draw(st.integers(0, len(data) - 1))]


@st.composite
def bit_flipped(draw):
    suffix = draw(SUFFIXES)
    data = bytearray(good_checkpoint(suffix))
    for bit in draw(st.lists(st.integers(0, len(data) * 8 - 1), min_size=1, max_size=8)):
        data[bit // 8] ^= 1 << (bit % 8)
    return suffix, bytes(data)


@st.composite
def wrong_dtypes(draw):
    import torch

    suffix = draw(SUFFIXES)
    dtype = getattr(torch, draw(st.sampled_from(DTYPES if suffix != ".safetensors" else DTYPES[:-1])))
    names = draw(st.sets(st.sampled_from(sorted(_state_dict())), min_size=1))
    sd = {k: (v.to(dtype) if k in names else v) for k, v in _state_dict().items()}
    return suffix, _safetensors_bytes(sd) if suffix == ".safetensors" else _torch_bytes(sd)


@st.composite
def huge_safetensors_header(draw):
    """A safetensors header declaring huge (or negative, or inconsistent) shapes and offsets."""
    big = st.integers(-2, 2**63 - 1)
    names = draw(st.lists(st.sampled_from([*sorted(_state_dict()), "x", ""]), min_size=1, max_size=4))
    header = {n: {"dtype": draw(st.sampled_from(["F32", "F16", "I64", "BOOL", "U8", "F64", "XYZ"])),
                  "shape": draw(st.lists(big, max_size=4)),
                  "data_offsets": [draw(big), draw(big)]} for n in names}
    raw = json.dumps(header).encode()
    length = draw(st.one_of(st.just(len(raw)), big.map(lambda v: v & (2**64 - 1))))
    return ".safetensors", struct.pack("<Q", length) + raw + draw(st.binary(max_size=64))


@st.composite
def huge_pt_view(draw):
    """A tensor of huge declared shape over a one-element storage (stride 0), saved by torch."""
    import torch

    shape = draw(st.lists(st.integers(1, 2**31), min_size=1, max_size=3))
    try:
        t = torch.zeros(1).expand(*shape)
    except (RuntimeError, ValueError):
        t = torch.zeros(1)
    name = draw(st.sampled_from(sorted(_state_dict())))
    sd = dict(_state_dict()) if draw(st.booleans()) else {}
    sd[name] = t
    return draw(st.sampled_from([".pt", ".pth", ".bin"])), _torch_bytes(sd)


def _json_like():
    return st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8)),
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
        max_leaves=8)


@st.composite
def containers(draw):
    """Non-tensor objects and nested containers a weights-only load accepts (dicts, lists, tuples)."""
    import torch

    leaf = st.one_of(_json_like(), st.just(torch.zeros(2)), st.just(torch.zeros(8, 4)))
    obj = draw(st.recursive(leaf, lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.tuples(inner, inner),
        st.dictionaries(st.sampled_from(["state_dict", "model", "module.fc", "a", "0"]), inner, max_size=3)),
        max_leaves=6))
    return draw(st.sampled_from([".pt", ".pth", ".bin"])), _torch_bytes(obj)


PICKLE_PAYLOADS = [
    b"cos\nsystem\n(S'true'\ntR.",  # protocol 0 GLOBAL + REDUCE
    pickle.dumps(Path("x")),  # a class instance
    b"\x80\x04\x95" + b"\x00" * 8 + b".",  # an empty frame
    b"(lp0\n.",  # an unterminated list
]


@st.composite
def raw_pickles(draw):
    return draw(st.sampled_from([".pt", ".bin"])), draw(st.one_of(st.sampled_from(PICKLE_PAYLOADS), st.binary(max_size=64)))


CHECKPOINTS = st.one_of(truncated(), bit_flipped(), wrong_dtypes(), huge_safetensors_header(), huge_pt_view(),
                        containers(), raw_pickles())


# -- YAML sidecars and manifests ---------------------------------------------------------------------

FIELDS = ["arch", "task", "dataset", "metrics", "tags", "license", "source", "name", "kind", "extra", "parent",
          "path", "description"]
SCALARS = st.one_of(st.none(), st.booleans(), FLOATS, st.text(max_size=20),
                    st.sampled_from([MLP, "mlp-i4-h8", "../x", "iris", "", "acc", "nan", "1e999", "~"]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(st.sampled_from(FIELDS + ["acc", "@"]), st.text(max_size=5)),
                                                inner, max_size=3)), max_leaves=10)
RAW_YAML = st.one_of(
    st.text(max_size=60),
    st.sampled_from(["!!python/object/apply:os.system ['true']", "a: &x [*x]", "{", "- - - -", "arch: !!binary AAAA",
                     "? [a]\n: b", "metrics: {acc: .nan}", "%YAML 9.9\n---\na: 1", "\t- a", "a: b: c",
                     "extra: {when: 2024-01-01}", "extra: {b: !!binary AAAA}", "extra: !!set {a}", "1: a\nb: c",
                     "tags: [2024-01-01]", "name: 2024-01-01", "metrics: {acc: 2024-01-01}", "extra: {1: x}",
                     "extra: {a: .inf}", "parent_id: 99999999999999999999", "models: [{path: m.pt, arch: 1}]",
                     "extra: {x: &a [1], y: *a}", "metrics: [{name: acc, value: '0.5'}]"]),
    st.binary(max_size=40))


def _yaml_text(value) -> str:
    import yaml

    return yaml.safe_dump(value, allow_unicode=True)


@st.composite
def sidecars(draw):
    """YAML metadata for one checkpoint: structured mappings of hostile values, or raw hostile text."""
    if draw(st.booleans()):
        return draw(RAW_YAML)
    fields = draw(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=5))
    return _yaml_text(fields)


PATHS = st.one_of(st.sampled_from(["m.safetensors", "m.pt", "./m.safetensors", "../m.safetensors", "/etc/hostname",
                                   "missing.pt", "sub", "", ".", "m.safetensors/x", "M.SAFETENSORS"]),
                  st.text(max_size=12))


@st.composite
def manifests(draw):
    """A manifest for a folder holding m.safetensors and m.pt (and a subfolder ``sub``)."""
    if draw(st.integers(0, 4)) == 0:
        return draw(RAW_YAML)
    entry = st.fixed_dictionaries({"path": PATHS}, optional={k: VALUES for k in FIELDS if k != "path"})
    models = draw(st.lists(st.one_of(entry, VALUES), max_size=4))
    doc = draw(st.sampled_from(["models", "list", "defaults"]))
    if doc == "list":
        return _yaml_text(models)
    out = {"models": models}
    if doc == "defaults":
        out["defaults"] = draw(st.one_of(st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3), VALUES))
    return _yaml_text(out)


# -- --where / --metric, architecture strings, CLI arguments ------------------------------------------

_NAME = st.one_of(st.sampled_from(["acc", "loss", "val_acc", "a.b", "x-y", "_", "acc@iris", "", "1acc", "é"]),
                  st.text(max_size=6))
_OP = st.sampled_from([">=", "<=", ">", "<", "=", "==", "!=", "=>", "<>", "", "~"])
_NUM = st.one_of(FLOATS.map(str), st.sampled_from(["nan", "inf", "-inf", "1e999", "0x10", "1_0", "", "abc", "--1",
                                                   "1e-400", "+.5", "١"]), st.text(max_size=6))


@st.composite
def conditions(draw):
    """A metric condition (``--where``) or a metric (``--metric``): near the grammar, or off it."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.text(max_size=30))
    ds = draw(st.one_of(st.just(""), st.text(max_size=6).map(lambda t: "@" + t)))
    return f"{draw(_NAME)}{ds}{draw(st.sampled_from(['', ' ']))}{draw(_OP)}{draw(_NUM)}"


_LAYER = st.one_of(
    st.builds(lambda c, k: f"c{c}k{k}", st.integers(-1, 5000), st.integers(-1, 99)),
    st.builds(lambda w: f"h{w}", st.one_of(st.integers(-1, 64), st.integers(10**5, 10**12))),
    st.sampled_from(["bn", "relu", "tanh", "gelu", "pool", "p", "x", "", "h", "c4", "k3"]),
    st.text(max_size=4))
_INPUT = st.one_of(
    st.lists(st.integers(-1, 10**6), min_size=1, max_size=4).map(lambda s: "i" + "x".join(map(str, s))),
    st.sampled_from(["i", "ix", "i4x", "i1x8x8", "i0"]))


@st.composite
def arch_strings(draw):
    """Architecture strings near the smallnet grammar (huge widths, zero sizes, unknown tokens) and off it."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.one_of(st.text(max_size=24), st.sampled_from(["timm/", "timm/resnet18", "/", "mlp", "-", "cnn-"])))
    family = draw(st.sampled_from(["mlp", "cnn", "cnn1d", "MLP", "rnn", ""]))
    parts = [family, draw(_INPUT), *draw(st.lists(_LAYER, max_size=4))]
    if draw(st.booleans()):
        parts.append(f"o{draw(st.one_of(st.integers(-1, 20), st.integers(10**6, 10**12)))}")
    return "-".join(parts)


COMMANDS = ["add", "list", "show", "query", "remove", "verify", "reindex", "adapters", "datasets", "tokenize",
            "export", "artifacts", "version", "generate", "zoo", "train", "nope"]
OPTIONS = ["--arch", "--dataset", "--task", "--kind", "--tag", "--where", "--sort", "--asc", "--limit", "--json",
           "--metric", "-m", "--meta", "--manifest", "--name", "--registry", "--blobs", "--repair", "--help", "-n",
           "--data", "--label", "--format", "--out", "--k", "--seed", "--epochs", "--bogus", "--", "-"]
_ARG = st.one_of(st.sampled_from(OPTIONS), st.sampled_from(["1", "0", "-1", "99999999999999999999", "m.safetensors",
                                                            "iris", MLP, "acc>=0.5", "*", "nan", "", " ", "\x00x"]),
                 st.text(max_size=10))
# commands that never run long work from these arguments (train, zoo and generate are given no more
# than a bad argument: they fail at their first check)
SAFE_COMMANDS = ["add", "list", "show", "query", "remove", "verify", "reindex", "adapters", "datasets", "export",
                 "artifacts", "version", "nope"]


@st.composite
def argv(draw):
    command = draw(st.sampled_from(SAFE_COMMANDS))
    return [command, *draw(st.lists(_ARG, max_size=5))]


# -- --data files ---------------------------------------------------------------------------------------

_DATA_DTYPES = st.sampled_from(["float32", "float64", "uint8", "int64", "bool", "complex64", "U3", "S2", "float16", "O"])


@st.composite
def data_files(draw):
    """(suffix, bytes) of a user data file: npz of odd arrays, csv text, or bytes dressed as either."""
    import numpy as np

    kind = draw(st.sampled_from(["npz", "npz", "csv", "raw"]))
    if kind == "raw":
        return draw(st.sampled_from([".npz", ".csv"])), draw(st.binary(max_size=80))
    if kind == "csv":
        cell = st.one_of(st.text(max_size=4), FLOATS.map(str), st.sampled_from(["label", "", '"', ",", "\r"]))
        rows = draw(st.lists(st.lists(cell, min_size=0, max_size=4), max_size=8))
        return ".csv", "\n".join(",".join(r) for r in rows).encode("utf-8", "surrogatepass")
    arrays = {}
    for name in draw(st.sets(st.sampled_from(["x", "y", "x_test", "y_test", "z"]), max_size=5)):
        shape = tuple(draw(st.lists(st.integers(0, 9), max_size=4)))
        dtype = np.dtype(draw(_DATA_DTYPES))
        arrays[name] = np.zeros(shape, dtype=dtype) if draw(st.booleans()) else \
            np.asarray(np.random.default_rng(draw(st.integers(0, 99))).integers(0, 5, shape)).astype(dtype)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    data = buf.getvalue()
    if draw(st.integers(0, 3)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return ".npz", data
