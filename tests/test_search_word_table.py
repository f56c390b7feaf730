"""The token-embedding table read beside the ONNX graph: the model's own rows, memory-mapped, and
None (sentence-transformers then runs the folder) where model.safetensors does not hold one."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from igpg_zoo.search.embed import SentenceEmbedder, bundled_model_path, model_embedder
from igpg_zoo.search.onnx_embed import OnnxEmbedder
from igpg_zoo.search.word_table import word_table


def test_the_bundled_table_is_the_models_own():
    path = bundled_model_path()
    table = word_table(path)
    want = load_file(str(path / "model.safetensors"))["embeddings.word_embeddings.weight"]
    assert isinstance(table, np.memmap) and np.array_equal(np.asarray(table), want)


@pytest.mark.parametrize("tensors, raw", [
    (None, None),  # no model.safetensors
    ({"other.weight": np.zeros((4, 3), np.float32)}, None),  # no word embeddings
    ({"embeddings.word_embeddings.weight": np.zeros((4, 3), np.float16)}, None),  # not float32
    ({"embeddings.word_embeddings.weight": np.zeros(12, np.float32)}, None),  # not a table
    (None, b"\xff" * 8 + b"{}"),  # a header length no file has
    (None, b"\x02\x00\x00\x00\x00\x00\x00\x00{"),  # a header that is no JSON
])
def test_a_folder_without_a_float32_table_has_none(tmp_path, tensors, raw):
    if tensors is not None:
        save_file(tensors, str(tmp_path / "model.safetensors"))
    if raw is not None:
        (tmp_path / "model.safetensors").write_bytes(raw)
    assert word_table(tmp_path) is None


@pytest.mark.parametrize("weights, kind", [(True, OnnxEmbedder), (False, SentenceEmbedder)])
def test_only_a_folder_with_the_table_runs_on_onnxruntime(tmp_path, weights, kind):
    folder = tmp_path / "model"
    shutil.copytree(bundled_model_path(), folder, ignore=None if weights else shutil.ignore_patterns("*.safetensors"))
    assert isinstance(model_embedder(folder), kind)
