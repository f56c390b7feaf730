"""Embedders: the hash embedder (deterministic, spelling-aware), get_embedder specs, the real MiniLM
run by onnxruntime (same vectors as sentence-transformers), and the cache of its ONNX file."""

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
from igpg_zoo.search.onnx_embed import OnnxEmbedder

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
    (None, OnnxEmbedder, 384),
    (BUNDLED_NAME, OnnxEmbedder, 384),
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
    assert isinstance(e, OnnxEmbedder) and e.dim == 384 and e.name == bundled_model_path().name


def test_choosing_the_embedder_imports_nothing_heavy():
    code = ("import sys; from igpg_zoo.search.embed import get_embedder; e = get_embedder(None); "
            "assert e.dim == 384; print(sorted(m for m in ('torch', 'sentence_transformers', 'faiss', 'onnxruntime') "
            "if m in sys.modules))")
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


@pytest.fixture(scope="module")
def sentence_transformers_minilm():
    """The same model through sentence-transformers itself, the reference the ONNX runtime must match."""
    return SentenceEmbedder(bundled_model_path(), name=BUNDLED_NAME)


REFERENCE_TEXTS = [
    "small CNN for rotated handwritten digits",
    "task: image classification; dataset: digits; smallnet cnn c8-c16 on 1x8x8 images, 10 classes",
    "tabular classification of iris flowers mlp",
    "",
    "a",
    "Ünïcödé, accents and 中文字符 and an emoji 🙂",
    "punctuation!!! (brackets) [more] {and} 'quotes' \"double\" -- dashes; semi:colons",
    "the quick brown fox jumps over the lazy dog " * 60,  # > 256 tokens: truncated like sentence-transformers
    "   leading and trailing spaces   ",
    "UPPER CASE TEXT IS LOWERED BY THE TOKENIZER",
    "numbers 0.93 1e-4 12345678901234567890",
    "sentiment analysis of movie reviews with a transformer",
]


def test_onnx_vectors_match_sentence_transformers(minilm, sentence_transformers_minilm):
    """Existing registries keep their index: cosine >= 0.999 against sentence-transformers, text by
    text, whether embedded alone or in one padded batch."""
    reference = sentence_transformers_minilm.embed(REFERENCE_TEXTS)  # (n, 384)
    batched = minilm.embed(REFERENCE_TEXTS)
    alone = np.concatenate([minilm.embed([t]) for t in REFERENCE_TEXTS])
    for got in (batched, alone):
        assert got.shape == reference.shape and got.dtype == np.float32
        assert np.min(np.sum(got * reference, axis=1)) >= 0.999
    assert minilm.dim == sentence_transformers_minilm._load().get_embedding_dimension()


def test_sentence_transformers_short_embeds_leave_the_torch_thread_count_as_it_was(sentence_transformers_minilm):
    import torch

    before = torch.get_num_threads()
    sentence_transformers_minilm.embed(["one query"])
    assert torch.get_num_threads() == before
