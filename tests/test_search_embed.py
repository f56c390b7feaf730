"""Embedders: the hash embedder (deterministic, spelling-aware), get_embedder specs, the real MiniLM."""

import subprocess
import sys

import numpy as np
import pytest

from igpg_zoo.errors import ConfigError
from igpg_zoo.search.embed import (
    BUNDLED_NAME,
    Embedder,
    HashEmbedder,
    SentenceEmbedder,
    bundled_model_path,
    get_embedder,
)

DIGITS = "image classification of handwritten digits 8x8 smallnet cnn"
IRIS = "tabular classification of iris flowers mlp"


@pytest.fixture(scope="module")
def minilm():
    return get_embedder(None)


# -- hash embedder -----------------------------------------------------------------------------


def test_hash_rows_are_unit_float32_and_duplicates_equal():
    texts = ["a b c", "", "a b c", "something else entirely"]
    v = HashEmbedder(64).embed(texts)
    assert v.shape == (4, 64) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v[0], v[2])
    assert HashEmbedder(64).embed([]).shape == (0, 64)


def test_hash_similar_strings_are_closer_than_unrelated_ones():
    v = HashEmbedder().embed([DIGITS, DIGITS.replace("digits", "digit"), IRIS])
    assert v[0] @ v[1] > 0.8
    assert v[0] @ v[1] > v[0] @ v[2] + 0.3


def test_hash_is_identical_across_processes():
    """No dependence on Python's salted str hash: a fresh interpreter gives the same bytes."""
    code = "from igpg_zoo.search.embed import HashEmbedder; print(HashEmbedder(32).embed(['x y z'])[0].tobytes().hex())"
    env = {"PYTHONHASHSEED": "123"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, **env}).stdout.strip()
    assert out == HashEmbedder(32).embed(["x y z"])[0].tobytes().hex()


def test_hash_batch_order_and_chunking_do_not_change_rows():
    texts = [f"record {i} of task {i % 7}" for i in range(50)]
    small_chunks = HashEmbedder(48)
    small_chunks.chunk = 7
    np.testing.assert_array_equal(small_chunks.embed(texts), HashEmbedder(48).embed(texts))
    np.testing.assert_array_equal(HashEmbedder(48).embed(texts[::-1])[::-1], HashEmbedder(48).embed(texts))


# -- get_embedder --------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, cls, dim", [
    ("hash", HashEmbedder, 384),
    ("hash:64", HashEmbedder, 64),
    (None, SentenceEmbedder, 384),
    (BUNDLED_NAME, SentenceEmbedder, 384),
])
def test_get_embedder_specs(spec, cls, dim):
    e = get_embedder(spec)
    assert isinstance(e, cls) and isinstance(e, Embedder) and e.dim == dim


@pytest.mark.parametrize("spec, says", [
    ("hash:big", "integer"),
    ("hash:4", "at least 8"),
    ("/no/such/model/folder", "does not exist"),
])
def test_get_embedder_bad_specs_are_one_line_config_errors(spec, says):
    with pytest.raises(ConfigError, match=says) as info:
        get_embedder(spec)
    assert "\n" not in str(info.value)


def test_get_embedder_refuses_a_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(ConfigError, match="not a sentence-transformers model folder"):
        get_embedder(str(tmp_path))


def test_local_model_path_is_accepted():
    e = get_embedder(str(bundled_model_path()))
    assert isinstance(e, SentenceEmbedder) and e.dim == 384


def test_choosing_the_embedder_imports_nothing_heavy():
    code = ("import sys; from igpg_zoo.search.embed import get_embedder; e = get_embedder(None); "
            "assert e.dim == 384; print(sorted(m for m in ('torch', 'sentence_transformers', 'faiss') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- the real MiniLM -----------------------------------------------------------------------------


def test_minilm_semantic_sanity(minilm):
    records = minilm.embed([DIGITS, IRIS, "sentiment analysis of movie reviews with a transformer"])
    q = minilm.embed(["image classification of handwritten digits"])[0]
    scores = records @ q
    assert scores[0] > scores[1] and scores[0] > scores[2]
    q_flower = minilm.embed(["classify flower species from petal measurements"])[0]
    assert records[1] @ q_flower > records[0] @ q_flower


def test_minilm_rows_unit_deduplicated_and_batch_independent(minilm):
    v = minilm.embed([DIGITS, IRIS, DIGITS])
    assert v.shape == (3, 384) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(v[0], v[2])
    np.testing.assert_allclose(minilm.embed([IRIS])[0], v[1], atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)
    assert minilm.dim == minilm._load().get_embedding_dimension()


def test_minilm_short_embeds_leave_the_torch_thread_count_as_it_was(minilm):
    import torch

    before = torch.get_num_threads()
    minilm.embed(["one query"])
    assert torch.get_num_threads() == before
