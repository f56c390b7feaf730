"""Three-channel image tasks: the procedural ``shapes`` set, ``[rgb]`` / ``[colour=SEED]``, ``[ntest=COUNT]``."""

from __future__ import annotations

import numpy as np
import pytest

from igpg_zoo.data import canonical_name, load_dataset
from igpg_zoo.data import embedding as emb
from igpg_zoo.data.procedural import MIN_CONTRAST, SHAPE_CLASSES, contrasting_colours, make_shapes
from igpg_zoo.errors import DatasetError
from igpg_zoo.search.embed import HashEmbedder

TEXT = HashEmbedder(384)


def test_shapes_is_a_three_channel_32px_set_with_balanced_classes():
    ds = load_dataset("shapes")
    assert ds.info.input_shape == (3, 32, 32) and ds.class_names == SHAPE_CLASSES
    assert ds.x_train.shape[1:] == (3, 32, 32) and ds.x_train.dtype == np.float32
    assert 0.0 <= ds.x_train.min() and ds.x_train.max() <= 1.0
    for y in (ds.y_train, ds.y_test):
        counts = np.bincount(y, minlength=len(SHAPE_CLASSES))
        assert counts.min() == counts.max() > 0


def test_shapes_are_deterministic_and_seeds_differ():
    a, ya = make_shapes(3, seed=5)
    b, yb = make_shapes(3, seed=5)
    c, _ = make_shapes(3, seed=6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a, c)


def test_colours_always_contrast():
    fg, bg = contrasting_colours(np.random.default_rng(0), 5000)
    assert (fg.mean(1) - bg.mean(1)).min() >= MIN_CONTRAST


@pytest.mark.parametrize("name, shape", [
    ("digits[n=100][rgb]", (3, 8, 8)),
    ("digits[n=100][colour=1]", (3, 8, 8)),
    ("digits[n=100][colour=1][size=32]", (3, 32, 32)),
    ("digits[n=100][size=16][rgb]", (3, 16, 16)),
    ("shapes[classes=0,1][size=16]", (3, 16, 16)),
])
def test_rgb_options_give_three_channels(name, shape):
    ds = load_dataset(name)
    assert ds.info.input_shape == shape
    assert ds.x_train.shape[1:] == shape and ds.x_test.shape[1:] == shape


def test_rgb_repeats_the_channel_and_colour_keeps_the_strokes():
    grey = load_dataset("digits[n=100]")
    rgb = load_dataset("digits[n=100][rgb]")
    for c in range(3):
        np.testing.assert_array_equal(rgb.x_train[:, c], grey.x_train[:, 0])
    col = load_dataset("digits[n=100][colour=1]")
    # per image, every channel is an affine map of the grey strokes: bg + (fg - bg) * x
    x = grey.x_train[:, 0].reshape(100, -1)
    for i in range(5):
        for c in range(3):
            y = col.x_train[i, c].reshape(-1)
            slope, offset = np.polyfit(x[i], y, 1)
            np.testing.assert_allclose(y, offset + slope * x[i], atol=1e-5)
    bg = col.x_train[:, :, 0, 0]  # (N, 3): digits' corners are background
    assert 0.01 < np.std(bg, axis=0).max() < 0.2  # one palette, jittered per image


def test_colour_palettes_depend_on_the_seed_only():
    from igpg_zoo.data.procedural import set_palette

    a, b = load_dataset("digits[n=100][colour=1]"), load_dataset("digits[classes=0,1][colour=1]")
    np.testing.assert_allclose(a.x_train[:, :, 0, 0].mean(0), b.x_train[:, :, 0, 0].mean(0), atol=0.05)
    np.testing.assert_allclose(a.x_train[:, :, 0, 0].mean(0), set_palette(1)[1], atol=0.05)
    assert np.abs(set_palette(1)[0] - set_palette(2)[0]).max() > 0.01


def test_colour_seed_changes_colours_not_labels():
    a, b = load_dataset("digits[n=100][colour=1]"), load_dataset("digits[n=100][colour=2]")
    np.testing.assert_array_equal(a.y_train, b.y_train)
    assert not np.allclose(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.x_test, load_dataset("digits[n=100][colour=1]").x_test)


def test_ntest_keeps_a_stratified_test_subset_and_leaves_train_alone():
    full, sub = load_dataset("digits"), load_dataset("digits[ntest=50]")
    assert len(sub.y_test) == 50 and len(sub.y_train) == len(full.y_train)
    assert set(np.unique(sub.y_test)) == set(range(10))
    assert "tested on 50 samples" in sub.info.description


@pytest.mark.parametrize("name, canonical, text", [
    ("digits[colour=01][size=32]", "digits[colour=1][size=32]", "coloured with stroke and background palette 1"),
    ("digits[rgb]", "digits[rgb]", "as 3-channel RGB"),
    ("shapes[classes=0,2]", "shapes[classes=0,2]", "classify 32x32 colour images of shapes: circle and triangle"),
])
def test_names_and_descriptions(name, canonical, text):
    assert canonical_name(name) == canonical
    assert text in load_dataset(name).info.description


@pytest.mark.parametrize("name, message", [
    ("shapes[rgb]", "already have 3 channels"),
    ("digits[rgb][colour=2]", "already have 3 channels"),
    ("iris[colour=1]", "image datasets only"),
    ("mnist1d[rgb]", "image datasets only"),
    ("digits[colour=red]", r"needs an integer"),
    ("digits[rgb=1]", "takes no value"),
    ("digits[ntest=1]", r"2\.\.10000000"),
])
def test_bad_rgb_options_are_one_line_errors(name, message):
    with pytest.raises(DatasetError, match=message) as err:
        load_dataset(name)
    assert "\n" not in str(err.value)


def test_embeddings_of_colour_tasks_are_valid_and_tell_tasks_apart():
    names = ["shapes", "shapes[classes=0,1,2]", "digits[n=200][colour=1][size=32]", "digits[n=200]"]
    vecs = {n: emb.embed_dataset(load_dataset(n), text_embedder=TEXT) for n in names}
    for v in vecs.values():
        assert v.shape == (emb.LAYOUT["text"][1],) and np.isfinite(v).all()
        assert abs(np.linalg.norm(v) - 1.0) < 1e-5
    cos = lambda a, b: float(vecs[a] @ vecs[b])  # noqa: E731  unit vectors
    assert cos("shapes", "shapes[classes=0,1,2]") < 0.999
    assert cos("digits[n=200][colour=1][size=32]", "digits[n=200]") > cos("digits[n=200][colour=1][size=32]", "shapes")
