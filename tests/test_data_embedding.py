"""Dataset embeddings: fixed size, deterministic, class-subset aware, user samples land near their source."""

from __future__ import annotations

import numpy as np
import pytest

from igpg_zoo.data import load_dataset
from igpg_zoo.data import embedding as emb
from igpg_zoo.data.userdata import build_dataset
from igpg_zoo.search.embed import HashEmbedder

TEXT = HashEmbedder(384)


def _cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def _block(v, name):
    return v[slice(*emb.LAYOUT[name])]


@pytest.mark.parametrize("name", ["digits", "digits[classes=3,5,8][rot=90]", "iris", "breast_cancer",
                                  "wine[perm=2]"])
def test_fixed_dimension_and_unit_length(name):
    v = emb.embed_dataset(load_dataset(name), text_embedder=TEXT)
    assert v.shape == (emb.EMBEDDING_DIM,) and v.dtype == np.float32
    assert abs(float(np.linalg.norm(v)) - 1.0) < 1e-5
    assert emb.LAYOUT["text"][1] == emb.EMBEDDING_DIM


def test_same_dataset_same_embedding():
    ds = load_dataset("digits[classes=3,5,8]")
    a = emb.embed_dataset(ds, text_embedder=TEXT)
    b = emb.embed_dataset(ds, text_embedder=TEXT)
    np.testing.assert_array_equal(a, b)


def test_class_subsets_get_clearly_different_embeddings():
    a = emb.embed_dataset(load_dataset("digits[classes=3,5,8]"), text_embedder=TEXT)
    b = emb.embed_dataset(load_dataset("digits[classes=2,5,8]"), text_embedder=TEXT)
    assert _cos(_block(a, "classes"), _block(b, "classes")) < 0.75  # slot 0 holds a 3 vs a 2
    assert _cos(a, b) < 0.9
    rot = emb.embed_dataset(load_dataset("digits[classes=3,5,8][rot=90]"), text_embedder=TEXT)
    assert _cos(_block(a, "global"), _block(rot, "global")) < 0.9


def test_user_sample_lands_near_its_dataset(minilm):
    """Raw 0..16 digits 3/5/8 as a user would save them (N, 8, 8): nearest stored task is the right one."""
    from sklearn.datasets import load_digits

    d = load_digits()
    pick = np.random.default_rng(5).permutation(np.flatnonzero(np.isin(d.target, [3, 5, 8])))[:60]
    mine = build_dataset(d.images[pick], d.target[pick], "mine", "mine.npz")
    u = emb.embed_dataset(mine, text_embedder=minilm)
    names = ["digits", "digits[classes=3,5,8]", "digits[classes=2,5,8]", "digits[classes=0,1,2]",
             "digits[classes=3,5,8][rot=90]", "digits[classes=3,5,8][invert]", "iris", "breast_cancer"]
    sims = {n: _cos(u, emb.dataset_embedding_for(n, text_embedder=minilm)) for n in names}
    best = max(sims, key=sims.get)
    assert best == "digits[classes=3,5,8]", sims
    assert sims[best] - sorted(sims.values())[-2] > 0.1, sims


def test_dataset_embedding_for_caches_and_ignores_split_suffix(monkeypatch):
    v = emb.dataset_embedding_for("digits[classes=0,1]", text_embedder=TEXT)
    emb._memory.clear()
    calls = []
    monkeypatch.setattr(emb, "embed_dataset", lambda *a, **k: calls.append(a))  # must not be needed
    w = emb.dataset_embedding_for("digits[classes=0-1]:test", text_embedder=TEXT)  # from the disk cache
    np.testing.assert_array_equal(v, w)
    assert calls == []


@pytest.mark.parametrize("name", ["cifar10", "digits[rot=45]", "user:mine", ""])
def test_unknown_names_give_none(name):
    assert emb.dataset_embedding_for(name, text_embedder=TEXT) is None


class _MeanEncoder:
    """A toy plug-in encoder of another feature size (as a CLIP wrapper would be)."""

    name = "toy-mean"
    dim = 17

    def encode(self, x, info):
        flat = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
        return np.repeat(flat.mean(1, keepdims=True), self.dim, axis=1) * np.arange(1, self.dim + 1)


def test_pluggable_encoder_keeps_the_dimension(monkeypatch):
    emb.register_encoder("toy-mean", _MeanEncoder)
    ds = load_dataset("digits[classes=0,1,2]")
    v = emb.embed_dataset(ds, encoder="toy-mean", text_embedder=TEXT)
    assert v.shape == (emb.EMBEDDING_DIM,)
    assert not np.allclose(v, emb.embed_dataset(ds, text_embedder=TEXT))
    monkeypatch.setenv(emb.ENCODER_ENV, "toy-mean")
    assert emb.get_encoder().name == "toy-mean"
    monkeypatch.setenv(emb.ENCODER_ENV, "nope")
    from igpg_zoo.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown dataset encoder 'nope'"):
        emb.get_encoder()


@pytest.mark.parametrize("h, w", [(8, 8), (28, 28), (16, 16), (5, 7), (1, 9), (40, 3)])
def test_images_are_resized_as_scipy_zoom_would(h, w):
    from scipy.ndimage import zoom

    from igpg_zoo.data.embedding import _resize_matrix

    img = np.random.default_rng(h * w).normal(size=(3, h, w))
    want = zoom(img, (1, 16 / h, 16 / w), order=1, grid_mode=True, mode="nearest")
    np.testing.assert_allclose(_resize_matrix(h, 16) @ img @ _resize_matrix(w, 16).T, want, atol=1e-12)
