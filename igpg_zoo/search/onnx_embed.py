"""Text embedding through onnxruntime and the ``tokenizers`` library: no torch on the query path.

``OnnxEmbedder`` runs a local BERT-family sentence-transformers model (mean pooling, normalised)
from an ONNX file made once from the model's own weights (``onnx_export``) and kept in the cache
folder (``$IGPG_ZOO_CACHE``, else ``$XDG_CACHE_HOME/igpg-zoo``), keyed by the model's files. The
file is written atomically (temporary file, then rename), so concurrent first uses never read half
a file; where the cache cannot be written the model is exported to memory for this process.
Tokenisation follows sentence-transformers: the model's fast tokenizer, truncation at the model's
``max_seq_length``, padding to the longest text of a batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from igpg_zoo.errors import ConfigError

CACHE_ENV = "IGPG_ZOO_CACHE"
EXPORT_FORMAT = "st-mean-normalised-v2-embeds"  # bump when the exported graph changes
DEFAULT_MAX_TOKENS = 256
SINGLE_THREAD_MAX = 8  # a first call with at most this many texts (a query) runs on one thread
# texts per run: small batches keep a layer's activations in cache (64 texts of 128 tokens took a
# quarter more CPU per text than 8 on the reference machine); texts are sorted by length first
BATCH_SIZE = 8


def cache_folder() -> Path:
    """Where exported text models live: ``$IGPG_ZOO_CACHE/text-models``, else under ``$XDG_CACHE_HOME``."""
    if os.environ.get(CACHE_ENV):
        root = Path(os.environ[CACHE_ENV]).expanduser()
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser() / "igpg-zoo"
    return root / "text-models"


def _read_json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def runs_on_onnx(model_path: Path) -> bool:
    """Whether the folder is a model this runtime reproduces exactly: a BERT transformer with a
    fast tokenizer, then mean pooling only (no dense layer)."""
    if _read_json(model_path / "config.json").get("model_type") != "bert":
        return False
    if not (model_path / "tokenizer.json").is_file():
        return False
    try:
        modules = json.loads((model_path / "modules.json").read_text())
    except (OSError, ValueError):
        return False
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules if isinstance(m, dict)]
    if kinds[:2] != ["Transformer", "Pooling"] or any(k not in ("Normalize",) for k in kinds[2:]):
        return False
    pooling = next(m for m in modules if str(m.get("type", "")).endswith("Pooling"))
    cfg = _read_json(model_path / pooling.get("path", "") / "config.json")
    modes = {k for k, v in cfg.items() if k.startswith("pooling_mode") and v is True}
    return modes == {"pooling_mode_mean_tokens"}


def _cache_key(model_path: Path) -> str:
    """Changes whenever the model's weights or configs change (size and modification time)."""
    h = hashlib.sha256(EXPORT_FORMAT.encode())
    h.update(str(model_path.resolve()).encode())
    for name in sorted(p.name for p in model_path.iterdir() if p.is_file()):
        st = (model_path / name).stat()
        h.update(f"{name}:{st.st_size}:{st.st_mtime_ns};".encode())
    return h.hexdigest()[:20]


def _store(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` atomically; False where the cache folder cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".onnx")
    except OSError:
        return False
    try:
        os.fchmod(fd, 0o644)  # readable by every user of a shared cache, like any other cached file
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        return True
    except OSError:
        Path(tmp).unlink(missing_ok=True)
        return False


def onnx_model(model_path: Path) -> Path | bytes:
    """The cached ONNX file of ``model_path``, made on first use (or the bytes, if the cache is read-only)."""
    path = cache_folder() / f"{model_path.name}-{_cache_key(model_path)}.onnx"
    if path.is_file():
        return path
    from igpg_zoo.search.onnx_export import export_onnx

    if sys.stderr.isatty():
        print(f"preparing text model {model_path.name} for fast start-up (once)", file=sys.stderr)
    data = export_onnx(model_path)
    return path if _store(path, data) else data


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]


def max_tokens(model_path: Path) -> int:
    cfg = _read_json(model_path / "sentence_bert_config.json")
    limit = cfg.get("max_seq_length") or DEFAULT_MAX_TOKENS
    positions = _read_json(model_path / "config.json").get("max_position_embeddings") or limit
    return int(min(limit, positions))


class OnnxEmbedder:
    """A BERT-family sentence-transformers model run by onnxruntime; loaded on the first ``embed``."""

    def __init__(self, model_path: str | Path, name: str, dim: int, batch_size: int = BATCH_SIZE):
        self.model_path = Path(model_path)
        self.name = name
        self.dim = dim
        self.batch_size = batch_size
        self._session = None
        self._tokenizer = None
        self._words = None  # (vocabulary, hidden) token-embedding table, memory-mapped

    def _load(self, n_texts: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from igpg_zoo.search.word_table import word_table

        words = word_table(self.model_path)
        if words is None:
            raise ConfigError(f"the text model {self.model_path.name} has no float32 word-embedding table in "
                              "model.safetensors; point 'embedder' at a folder that has one")
        tokenizer = Tokenizer.from_file(str(self.model_path / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=max_tokens(self.model_path))
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only
        # idle threads sleep instead of spinning: spinning burns CPU a busy machine's other jobs need
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if n_texts <= SINGLE_THREAD_MAX:  # one short text: threads wait more than they help on a busy machine
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
        model = onnx_model(self.model_path)
        try:
            session = ort.InferenceSession(model if isinstance(model, bytes) else str(model), options,
                                           providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a damaged file
            fix = f"delete {model} and retry" if isinstance(model, Path) else "check the model folder"
            raise ConfigError(f"cannot run the text model {self.model_path.name} ({_first_line(exc)}); {fix}") from None
        self._tokenizer, self._session, self._words = tokenizer, session, words

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        first: dict[str, int] = {}
        rows = np.array([first.setdefault(t, len(first)) for t in texts], dtype=np.int64)  # (n,)
        distinct = list(first)
        if self._session is None:
            self._load(len(distinct))
        encodings = self._tokenizer.encode_batch(distinct)
        order = np.argsort([len(e.ids) for e in encodings], kind="stable")  # similar lengths pad little
        out = np.empty((len(distinct), self.dim), dtype=np.float32)  # (u, dim)
        for start in range(0, len(order), self.batch_size):
            chosen = order[start : start + self.batch_size]
            out[chosen] = self._run([encodings[i] for i in chosen])
        return out[rows]  # (n, dim)

    def _run(self, encodings) -> np.ndarray:
        width = max(len(e.ids) for e in encodings)
        ids, mask, types = (np.zeros((len(encodings), width), dtype=np.int64) for _ in range(3))  # (b, width)
        for row, e in enumerate(encodings):  # 0 = padding
            n = len(e.ids)
            ids[row, :n] = e.ids
            mask[row, :n] = e.attention_mask
            types[row, :n] = e.type_ids
        feeds = {"inputs_embeds": np.ascontiguousarray(self._words[ids], dtype=np.float32),  # (b, width, hidden)
                 "attention_mask": mask, "token_type_ids": types}
        (vectors,) = self._session.run(None, feeds)  # (b, dim), unit rows
        return vectors
