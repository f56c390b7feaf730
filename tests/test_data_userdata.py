"""User data loaders: .npz, .csv and image folders; bad input is a one-line DatasetError."""

from __future__ import annotations

import numpy as np
import pytest

from igpg_zoo.data.userdata import load_user_data
from igpg_zoo.errors import DatasetError

RNG = np.random.default_rng(0)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _csv(path, text):
    path.write_text(text)
    return path


def _images(root, sizes=((5, 6), (5, 6)), per_class=4, mode="L"):
    from PIL import Image

    for c, size in zip(("cat", "dog"), sizes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            Image.fromarray(RNG.integers(0, 256, shape, dtype=np.uint8), mode).save(root / c / f"{i}.png")
    return root


def _good_cases(tmp):
    ten = np.repeat(np.arange(2), 10)
    return {
        "npz images (N,H,W) raw 0..16": (
            _npz(tmp / "a.npz", x=RNG.integers(0, 17, (20, 8, 8)), y=ten), "image", (1, 8, 8), 2),
        "npz tabular with string labels": (
            _npz(tmp / "b.npz", x=RNG.normal(size=(30, 5)), y=np.array(["a", "b", "c"] * 10)), "tabular", (5,), 3),
        "npz sequences with explicit test": (
            _npz(tmp / "c.npz", x=RNG.normal(size=(20, 1, 40)), y=ten, x_test=RNG.normal(size=(6, 1, 40)),
                 y_test=np.array([0, 1] * 3)), "sequence", (1, 40), 2),
        "npz channels-last uint8": (
            _npz(tmp / "d.npz", x=RNG.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8), y=ten), "image", (3, 6, 6), 2),
        "csv": (
            _csv(tmp / "e.csv", "f1,label,f2\n" + "".join(f"{i},{'ab'[i % 2]},{i * 2}\n" for i in range(10))),
            "tabular", (2,), 2),
        "image folder grey": (_images(tmp / "imgs"), "image", (1, 6, 5), 2),
        "image folder rgb, mixed sizes resized": (
            _images(tmp / "rgb", sizes=((5, 6), (7, 3)), mode="RGB"), "image", (3, 6, 5), 2),
    }


def test_good_inputs(tmp_path):
    for label, (path, modality, shape, k) in _good_cases(tmp_path).items():
        ds = load_user_data(path)
        assert (ds.info.modality, ds.info.input_shape, ds.info.n_classes) == (modality, shape, k), label
        assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64, label
        assert len(ds.y_train) and len(ds.y_test), label
        if modality == "image":
            assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0, label
        assert ds.info.source == "user" and "user data" in ds.info.description, label


@pytest.mark.parametrize("text", [
    "f1,label\n1,a\n2,b\n3,a\n4,b\n\n\n",  # blank lines at the end
    "\ufefflabel,f1\na,1\nb,2\na,3\nb,4\n",  # a spreadsheet's byte-order mark before the label column
])
def test_csv_quirks_spreadsheets_write_are_read(tmp_path, text):
    path = tmp_path / "sheet.csv"
    path.write_text(text, encoding="utf-8")
    ds = load_user_data(path)
    assert (ds.info.input_shape, ds.class_names, len(ds.y_train) + len(ds.y_test)) == ((1,), ("a", "b"), 4)


def test_split_is_deterministic_by_seed(tmp_path):
    path = _npz(tmp_path / "s.npz", x=RNG.normal(size=(40, 3)), y=np.repeat(np.arange(4), 10))
    a, b, c = load_user_data(path, seed=1), load_user_data(path, seed=1), load_user_data(path, seed=2)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)
    assert np.bincount(a.y_test).tolist() == [2, 2, 2, 2]  # stratified


def _bad_cases(tmp):
    return [
        (tmp / "missing.npz", "no such file"),
        (_csv(tmp / "x.txt", "hello"), "unsupported data file"),
        (_npz(tmp / "noy.npz", x=np.zeros((4, 2))), r"missing array\(s\) y"),
        (_npz(tmp / "len.npz", x=np.zeros((4, 2)), y=np.array([0, 1, 0])), "4 samples but y has 3"),
        (_npz(tmp / "nan.npz", x=np.full((4, 2), np.nan), y=np.array([0, 1, 0, 1])), "NaN"),
        (_npz(tmp / "one.npz", x=np.zeros((4, 2)), y=np.zeros(4)), "at least 2 classes"),
        (_npz(tmp / "single.npz", x=np.zeros((5, 2)), y=np.array([0, 0, 0, 0, 1])), "has one sample"),
        (_npz(tmp / "shape.npz", x=np.zeros((4, 2, 2, 2, 2)), y=np.array([0, 1, 0, 1])), "expected"),
        (_csv(tmp / "bad.npz", "not a zip"), r"not an \.npz archive \(no zip header\)"),
        (_csv(tmp / "void.npz", ""), "void.npz: empty"),
        (_csv(tmp / "nolabel.csv", "a,b\n1,2\n"), "no label column 'label'; columns: a, b"),
        (_csv(tmp / "text.csv", "a,label\n1,x\nfoo,y\n"), "line 3, column 'a': 'foo' is not a number"),
        (_csv(tmp / "ragged.csv", "a,label\n1,x,3\n"), "line 2 has 3 fields"),
        (_csv(tmp / "empty.csv", "a,label\n"), "header row and at least one data row"),
        # malformed files the readers used to crash on, and data that holds no model input
        (_npy_named_npz(tmp / "array.npz"), "holds one .npy array, not named arrays x and y"),
        (_cut(_npz(tmp / "cut.npz", x=np.zeros((4, 2)), y=np.array([0, 1, 0, 1]))), r"not a readable \.npz archive"),
        (_bad_crc(_npz(tmp / "crc.npz", x=RNG.normal(size=(50, 8)), y=np.repeat([0, 1], 25))), "Bad CRC-32"),
        (_csv(tmp / "huge.csv", "a,label\n" + "1" * 200_000 + ",x\n"), "cannot read as UTF-8 .csv"),
        (_csv(tmp / "onlylabel.csv", "label\na\nb\na\nb\n"), r"samples have shape \(0,\), which holds no values"),
        (_npz(tmp / "nofeat.npz", x=np.zeros((4, 0)), y=np.array([0, 1, 0, 1])), "holds no values"),
        (_npz(tmp / "nanlab.npz", x=np.zeros((4, 2)), y=np.array([0, 1, np.nan, 1])), "1 NaN label"),
        (_csv(tmp / "gap.csv", "a,label\n1,x\n\nfoo,y\n"), "line 4, column 'a': 'foo'"),
    ]


def _npy_named_npz(path):
    with open(path, "wb") as fh:
        np.save(fh, np.zeros((4, 2)))
    return path


def _cut(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _bad_crc(path):
    data = bytearray(path.read_bytes())
    start = data.find(b"\x93NUMPY") + 200  # inside the first array's values: the zip index stays valid
    data[start:start + 16] = b"\xff" * 16
    path.write_bytes(bytes(data))
    return path


def test_bad_inputs_are_one_line_errors(tmp_path):
    for path, message in _bad_cases(tmp_path):
        with pytest.raises(DatasetError, match=message) as err:
            load_user_data(path)
        assert "\n" not in str(err.value), path


def test_bad_image_folders(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(DatasetError, match="one subfolder per class"):
        load_user_data(tmp_path / "flat")
    root = _images(tmp_path / "imgs")
    (root / "empty").mkdir()
    with pytest.raises(DatasetError, match="'empty' holds no images"):
        load_user_data(root)
    (root / "empty" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="cannot read image empty/broken.png"):
        load_user_data(root)


def test_npz_is_never_unpickled(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.array([object(), object()], dtype=object), y=np.array([0, 1]))
    with pytest.raises(DatasetError, match="holds an array of Python objects, which is not read") as err:
        load_user_data(path)
    assert "allow_pickle" not in str(err.value)


def test_a_text_file_named_npz_never_suggests_unpickling(tmp_path):
    path = _csv(tmp_path / "notes.npz", "x,y\n1,2\n")
    with pytest.raises(DatasetError) as err:
        load_user_data(path)
    assert "not an .npz archive" in str(err.value) and "pickle" not in str(err.value)


CNN8 = "cnn-i1x8x8-c4k3-o4"


def _arch_cases(tmp):
    """(path, arch, words of the one-line refusal or None where the data fits)."""
    four = np.repeat(np.arange(4), 5)
    return [
        (_npz(tmp / "big.npz", x=RNG.integers(0, 256, (20, 16, 16), dtype=np.uint8), y=four), CNN8,
         r"shape 1x16x16\) do not fit 'cnn-i1x8x8-c4k3-o4', which declares input 1x8x8"),
        (_npz(tmp / "rgb.npz", x=RNG.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), y=four), CNN8,
         r"shape 3x8x8\) do not fit"),
        (_npz(tmp / "forty.npz", x=RNG.integers(0, 256, (40, 8, 8), dtype=np.uint8), y=np.arange(40)), CNN8,
         "40 labels for the 4 outputs"),
        (_npz(tmp / "feat.npz", x=RNG.normal(size=(20, 5)), y=four), "mlp-i4-h8-o4", r"shape 5\) do not fit"),
        (_csv(tmp / "wide.csv", "a,b,label\n" + "".join(f"{i},{i},{i % 5}\n" for i in range(20))), "mlp-i2-h8-o4",
         "5 labels for the 4 outputs"),
        (_images(tmp / "imgs", sizes=((8, 8), (8, 8))), "cnn-i1x8x8-c4k3-o2", None),
        (_npz(tmp / "fits.npz", x=RNG.integers(0, 256, (20, 8, 8), dtype=np.uint8), y=four), CNN8, None),
        (_npz(tmp / "fewer.npz", x=RNG.normal(size=(20, 4)), y=np.repeat([0, 1], 10)), "mlp-i4-h8-o4", None),
    ]


def test_data_must_match_what_the_architecture_declares(tmp_path):
    for path, arch, words in _arch_cases(tmp_path):
        if words is None:
            assert load_user_data(path, arch=arch).info.n_classes <= 4, path
            continue
        with pytest.raises(DatasetError, match=words) as err:
            load_user_data(path, arch=arch)
        assert "\n" not in str(err.value), path


@pytest.mark.parametrize("x,y,words", [
    (RNG.integers(0, 256, (20, 16, 16), dtype=np.uint8), np.repeat(np.arange(4), 5), "which declares input 1x8x8"),
    (RNG.integers(0, 256, (40, 8, 8), dtype=np.uint8), np.arange(40), "40 labels for the 4 outputs"),
    (None, None, "not an .npz archive"),
])
def test_generate_refuses_bad_data_in_one_line_writing_nothing(cli, tmp_path, x, y, words):
    path = tmp_path / "data.npz"
    np.savez(path, x=x, y=y) if x is not None else path.write_text("label,a\n0,1\n")
    before = sorted(p.name for p in tmp_path.iterdir())
    result = cli("generate", "--arch", CNN8, "--data", path, "--out", tmp_path / "out.safetensors", "--register")
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and words in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no weights, no registry
