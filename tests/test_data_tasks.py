"""Built-in datasets and the task-name grammar (canonical names, transforms, errors)."""

from __future__ import annotations

import numpy as np
import pytest

from igpg_zoo.data import canonical_name, fashion_mnist_dir, load_dataset, split_suffix
from igpg_zoo.errors import DatasetError


@pytest.mark.parametrize("name, canonical", [
    ("digits", "digits"),
    ("digits[classes=8,3,5]", "digits[classes=3,5,8]"),
    ("digits[classes=0-4]", "digits[classes=0,1,2,3,4]"),
    ("digits[classes=0-2,7]:test", "digits[classes=0,1,2,7]"),
    ("digits[rot=90][invert]", "digits[rot=90][invert]"),
    ("digits[noise=0.30]", "digits[noise=0.3]"),
    ("mnist1d[flip][perm=007]", "mnist1d[flip][perm=7]"),
    ("fashion_mnist[classes=0-4][n=2000][size=14]", "fashion_mnist[classes=0,1,2,3,4][n=2000][size=14]"),
])
def test_canonical_names(name, canonical):
    assert canonical_name(name) == canonical


@pytest.mark.parametrize("name, message", [
    ("cifar10", "unknown dataset 'cifar10'"),
    ("digits[color=red]", r"unknown dataset option \[color\]"),
    ("digits[classes=3]", "at least 2 classes"),
    ("digits[classes=3,12]", r"0\.\.9"),
    ("iris[classes=0,3]", r"0\.\.2"),
    ("digits[rot=45]", "90, 180 or 270"),
    ("iris[rot=90]", "image datasets only"),
    ("digits[noise=-1]", r"\(0, 5\]"),
    ("digits[invert=1]", "takes no value"),
    ("digits[perm]", "needs a value"),
    ("Digits", "cannot parse"),
    ("digits[classes=3,5", "cannot parse"),
])
def test_bad_names_are_one_line_errors(name, message):
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(name)
    assert "\n" not in str(err.value)


def test_split_suffix():
    assert split_suffix("digits[rot=90]:test") == ("digits[rot=90]", "test")
    assert split_suffix("digits") == ("digits", None)


@pytest.mark.parametrize("name, shape, n_classes, n_train, n_test", [
    ("digits", (1, 8, 8), 10, 1438, 359),
    ("iris", (4,), 3, 120, 30),
    ("wine", (13,), 3, 142, 36),
    ("breast_cancer", (30,), 2, 456, 113),
])
def test_builtin_sets(name, shape, n_classes, n_train, n_test):
    ds = load_dataset(name)
    assert ds.info.input_shape == shape and ds.info.n_classes == n_classes
    assert ds.x_train.shape == (n_train, *shape) and ds.x_test.shape == (n_test, *shape)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
    assert set(np.unique(ds.y_train)) == set(range(n_classes))
    assert not ds.x_train.flags.writeable  # cached arrays are shared: read-only


def test_class_subset_relabels_in_ascending_order():
    full, sub = load_dataset("digits"), load_dataset("digits[classes=8,3,5]")
    assert sub.class_names == ("3", "5", "8") and sub.info.n_classes == 3
    assert sub.info.description == "classify 8x8 images of handwritten digits 3, 5 and 8"
    # the images of relabelled class 1 are exactly the digit-5 images of the full set
    np.testing.assert_array_equal(sub.x_train[sub.y_train == 1], full.x_train[full.y_train == 5])
    assert len(sub.y_test) == np.isin(full.y_test, [3, 5, 8]).sum()


def test_perm_rot_invert_noise():
    full = load_dataset("digits")
    perm = load_dataset("digits[perm=1]")
    mapping = {(a, b) for a, b in zip(full.y_train, perm.y_train)}
    assert len(mapping) == 10 and sorted(b for _, b in mapping) == list(range(10))  # a bijection
    assert perm.class_names[perm.y_train[0]] == full.class_names[full.y_train[0]]
    rot = load_dataset("digits[rot=90]")
    np.testing.assert_array_equal(rot.x_train[0, 0], np.rot90(full.x_train[0, 0]))
    inv = load_dataset("digits[invert]")
    np.testing.assert_allclose(inv.x_train, 1.0 - full.x_train)
    noisy = load_dataset("digits[noise=0.3]")
    assert 0.25 < float((noisy.x_train - full.x_train).std()) < 0.35
    from igpg_zoo.data.tasks import _load_canonical

    _load_canonical.cache_clear()  # a fresh load draws the same noise
    np.testing.assert_array_equal(load_dataset("digits[noise=0.3]").x_train, noisy.x_train)


def test_subsample_and_resize():
    ds = load_dataset("digits[classes=0-4][n=100][size=4]")
    assert ds.x_train.shape == (100, 1, 4, 4) and ds.info.input_shape == (1, 4, 4)
    assert np.bincount(ds.y_train).min() >= 19  # stratified
    assert "trained on 100 samples" in ds.info.description


def test_mnist1d_is_generated_offline_never_downloaded(monkeypatch):
    import mnist1d.data

    def refuse(*a, **k):
        raise AssertionError("the downloader must never run")

    monkeypatch.setattr(mnist1d.data, "get_dataset", refuse)
    state = np.random.get_state()
    ds = load_dataset("mnist1d")
    assert ds.x_train.shape == (4000, 1, 40) and ds.x_test.shape == (1000, 1, 40)
    assert ds.info.modality == "sequence"
    assert np.array_equal(np.random.get_state()[1], state[1])  # global RNG left alone


@pytest.mark.skipif(fashion_mnist_dir() is None, reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package():
    ds = load_dataset("fashion_mnist[classes=5,7,9][n=300][size=14]")
    assert ds.class_names == ("sandal", "sneaker", "ankle boot")
    assert ds.x_train.shape == (300, 1, 14, 14) and len(ds.y_test) == 3000
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0


def test_fashion_mnist_missing_says_how_to_install(monkeypatch, tmp_path):
    from igpg_zoo.data import sources

    monkeypatch.setattr(sources, "FASHION_DIR", tmp_path / "nowhere")
    monkeypatch.setattr(sources.shutil, "which", lambda name: None)
    sources._load_fashion_mnist.cache_clear()
    from igpg_zoo.data.tasks import _load_canonical

    _load_canonical.cache_clear()
    try:
        assert not sources.is_available("fashion_mnist")
        with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
            load_dataset("fashion_mnist")
    finally:
        sources._load_fashion_mnist.cache_clear()
        _load_canonical.cache_clear()
