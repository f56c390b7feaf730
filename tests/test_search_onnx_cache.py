"""The ONNX file of a text model: which folders run on onnxruntime, its cache key, atomic writes,
reuse without re-export, and a read-only cache falling back to memory."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from igpg_zoo.search import onnx_embed
from igpg_zoo.search.embed import bundled_model_path


def _model_folder(tmp_path, *, model_type="bert", pooling=("mean_tokens",), extra_module=None, tokenizer=True):
    """A sentence-transformers folder's configs (no weights: runs_on_onnx reads configs only)."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "max_position_embeddings": 512}))
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if extra_module:
        modules.append({"idx": 2, "name": "2", "path": "2_X", "type": f"sentence_transformers.models.{extra_module}"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    modes = {f"pooling_mode_{m}": m in pooling for m in ("cls_token", "mean_tokens", "max_tokens")}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 8, **modes}))
    return folder


@pytest.mark.parametrize("kwargs, runs", [
    ({}, True),
    ({"extra_module": "Normalize"}, True),
    ({"extra_module": "Dense"}, False),  # a projection the exported graph does not hold
    ({"pooling": ("max_tokens",)}, False),
    ({"pooling": ("mean_tokens", "cls_token")}, False),
    ({"model_type": "mpnet"}, False),  # no token type ids
    ({"tokenizer": False}, False),  # the tokenizers library needs tokenizer.json
])
def test_which_folders_run_on_onnxruntime(tmp_path, kwargs, runs):
    assert onnx_embed.runs_on_onnx(_model_folder(tmp_path, **kwargs)) is runs


def test_the_bundled_model_runs_on_onnxruntime():
    assert onnx_embed.runs_on_onnx(bundled_model_path())


def test_cache_key_follows_the_model_files(tmp_path):
    folder = _model_folder(tmp_path)
    key = onnx_embed._cache_key(folder)
    assert onnx_embed._cache_key(folder) == key
    (folder / "config.json").write_text(json.dumps({"model_type": "bert", "max_position_embeddings": 128}))
    assert onnx_embed._cache_key(folder) != key


def test_store_is_atomic_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "cache" / "m.onnx"
    assert onnx_embed._store(target, b"abc")
    assert target.read_bytes() == b"abc"
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.onnx"]


def test_store_refuses_quietly_where_the_cache_cannot_be_written(tmp_path):
    (tmp_path / "a-file").write_text("")
    assert onnx_embed._store(tmp_path / "a-file" / "m.onnx", b"abc") is False


def test_a_cached_file_is_used_without_exporting_again(tmp_path, monkeypatch):
    folder = tmp_path / "copy"
    shutil.copytree(bundled_model_path(), folder, ignore=shutil.ignore_patterns("model.safetensors"))
    monkeypatch.setenv("IGPG_ZOO_CACHE", str(tmp_path / "cache"))
    cached = onnx_embed.cache_folder() / f"copy-{onnx_embed._cache_key(folder)}.onnx"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"onnx")

    def no_export(_path):
        raise AssertionError("exported although the cache holds the file")

    monkeypatch.setattr("igpg_zoo.search.onnx_export.export_onnx", no_export)
    assert onnx_embed.onnx_model(folder) == cached


def test_an_unwritable_cache_exports_to_memory(tmp_path, monkeypatch):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("IGPG_ZOO_CACHE", str(tmp_path / "a-file"))
    monkeypatch.setattr("igpg_zoo.search.onnx_export.export_onnx", lambda _path: b"exported")
    assert onnx_embed.onnx_model(bundled_model_path()) == b"exported"
    assert not os.path.isdir(tmp_path / "a-file")


def test_a_damaged_cached_file_is_a_one_line_config_error(tmp_path, monkeypatch):
    from igpg_zoo.errors import ConfigError

    monkeypatch.setenv("IGPG_ZOO_CACHE", str(tmp_path / "cache"))
    path = bundled_model_path()
    cached = onnx_embed.cache_folder() / f"{path.name}-{onnx_embed._cache_key(path)}.onnx"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"not an onnx file")
    embedder = onnx_embed.OnnxEmbedder(path, name="m", dim=384)
    with pytest.raises(ConfigError, match="delete") as info:
        embedder.embed(["text"])
    assert "\n" not in str(info.value)
