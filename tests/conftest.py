"""Shared fixtures: every test runs in its own folder with its own registry, offline, plugins off.

- autouse: chdir to ``tmp_path``; ``IGPG_ZOO_REGISTRY`` = ``tmp_path/registry.db``;
  ``IGPG_ZOO_PLUGINS=none``; HF offline; ``IGPG_ZOO_EMBEDDER=hash`` (the deterministic n-gram
  embedder: no model loads unless a test asks for ``minilm``); generated-data cache per session.
- ``minilm``: the real bundled all-MiniLM-L6-v2 embedder, loaded once per session.
- ``registry_url``: a registry location, parametrised over SQLite and PostgreSQL (the latter skipped
  unless ``IGPG_ZOO_TEST_POSTGRES_URL`` is set; see ``.ci/postgres.sh``); each PostgreSQL test gets
  a fresh schema, dropped afterwards. It also points ``IGPG_ZOO_REGISTRY``/``_BLOBS``/``_INDEX_DIR`` at it.
- ``cli``: runs the real console entry point (``igpg_zoo.cli.app.main``, with its error mapping)
  under click's ``CliRunner``; returns the click ``Result``.
- ``tiny_token_zoo``, ``probe_accuracy``, ``forbid_test_split``: a tiny real zoo with a residual
  tokenizer, the training-probe accuracy the recombination check and the member floor score on, and a
  guard that fails a test reading a test split (tests/test_recombine_check.py, test_member_floor.py);
  ``on_two_gloo_ranks`` runs a computation on that zoo in 2 spawned gloo processes.
"""

from __future__ import annotations

import os
import sys
import uuid

import pytest

ENV_CLEARED = ("IGPG_ZOO_BLOBS", "IGPG_ZOO_INDEX_DIR", "IGPG_ZOO_CONFIG", "IGPG_ZOO_DEBUG")


@pytest.fixture(scope="session")
def _data_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("igpg-zoo-cache")


@pytest.fixture(autouse=True)
def _hermetic(tmp_path, monkeypatch, _data_cache):
    monkeypatch.chdir(tmp_path)
    for var in ENV_CLEARED:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("IGPG_ZOO_REGISTRY", str(tmp_path / "registry.db"))
    monkeypatch.setenv("IGPG_ZOO_PLUGINS", "none")
    monkeypatch.setenv("IGPG_ZOO_EMBEDDER", "hash")
    monkeypatch.setenv("IGPG_ZOO_CACHE", str(_data_cache))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    from igpg_zoo.adapters import reset_adapters

    reset_adapters()
    yield
    reset_adapters()


@pytest.fixture(scope="session")
def minilm():
    """The bundled all-MiniLM-L6-v2 sentence embedder (384-d), loaded once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from igpg_zoo.search.embed import get_embedder

    embedder = get_embedder(None)
    embedder.embed(["warm up"])
    return embedder


def _postgres_schema_url(base: str):
    """A fresh schema on the test server and a URL whose search_path points at it."""
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.engine.make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    return engine, schema, url.render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path, monkeypatch):
    """A registry location on each backend; IGPG_ZOO_REGISTRY, _BLOBS and _INDEX_DIR point at it."""
    if request.param == "sqlite":
        url = str(tmp_path / "registry.db")
        monkeypatch.setenv("IGPG_ZOO_REGISTRY", url)
        yield url
        return
    base = os.environ.get("IGPG_ZOO_TEST_POSTGRES_URL")
    if not base:
        pytest.skip("PostgreSQL tests need IGPG_ZOO_TEST_POSTGRES_URL (source .ci/postgres.sh)")
    import sqlalchemy as sa

    engine, schema, url = _postgres_schema_url(base)
    monkeypatch.setenv("IGPG_ZOO_REGISTRY", url)
    monkeypatch.setenv("IGPG_ZOO_BLOBS", str(tmp_path / "blobs"))
    monkeypatch.setenv("IGPG_ZOO_INDEX_DIR", str(tmp_path / "index"))
    try:
        yield url
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


class _Main:
    """Lets click's CliRunner drive ``igpg_zoo.cli.app.main`` (which reads sys.argv)."""

    name = "igpg-zoo"

    def main(self, args=(), prog_name=None, **_extra):
        from igpg_zoo.cli import app as cli_app

        saved = sys.argv
        sys.argv = ["igpg-zoo", *args]
        try:
            cli_app.main()
        finally:
            sys.argv = saved


@pytest.fixture
def cli():
    """cli("list", "--json") -> click Result (exit_code, stdout, stderr)."""
    from click.testing import CliRunner

    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        return runner.invoke(_Main(), [str(a) for a in args], input=input, catch_exceptions=True)

    return run


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models on a shared 2-core machine: a second intra-op thread only adds contention.

    Opt in per module with ``pytestmark = pytest.mark.usefixtures("torch_one_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_token_zoo():
    """A builder, used as ``with tiny_token_zoo(root, arch, members) as (zoo, tokenizer, records, data, ids)``:
    a registry under ``root`` holding one record per ``(seed, task, trained)`` member of ``arch`` (trained
    2 epochs on the task, or left at its seeded initialisation), a 2-stage residual tokenizer fitted on
    them, and their TokenSet; ``ids`` are the records' ids in ``members``' order."""
    from contextlib import contextmanager

    @contextmanager
    def build(root, arch: str, members: list[tuple[int, str, bool]]):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
            mp.setenv("IGPG_ZOO_CACHE", str(root / "cache"))
            mp.setenv("IGPG_ZOO_PLUGINS", "none")
            from igpg_zoo.igpg.conditioning import Conditioner
            from igpg_zoo.igpg.prior_dataset import build_token_set
            from igpg_zoo.igpg.tokenizer import Tokenizer
            from igpg_zoo.zoo import open_zoo

            zoo = open_zoo(str(root / "registry.db"), embedder="hash")
            items, ids = _tiny_members(zoo, arch, members)
            tokenizer = Tokenizer.load(zoo, _tiny_tokenizer(zoo, items))
            records = zoo.list()
            data = build_token_set(zoo, tokenizer, Conditioner(zoo.embedder, ["depth"], 0), records)
            yield zoo, tokenizer, records, data, ids
            zoo.close()

    return build


def _tiny_members(zoo, arch: str, members: list[tuple[int, str, bool]]) -> tuple[list, list[int]]:
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.data import load_dataset
    from igpg_zoo.records import CheckpointMeta
    from igpg_zoo.zoobuild.trainer import fit, init_module

    items, ids = [], []
    for seed, task, trained in members:
        m = init_module(get_adapter(arch).build(arch), seed)
        if trained:
            ds = load_dataset(task)
            m = fit(m, ds.x_train, ds.y_train, epochs=2, seed=seed)
        w = {k: v.detach().clone() for k, v in m.state_dict().items()}
        ids.append(zoo.add_weights(w, CheckpointMeta(arch=arch, task=task, dataset=task, kind="trained")).checkpoint.id)
        items.append((w, arch))
    return items, ids


def _tiny_tokenizer(zoo, items: list) -> int:
    """A 2-stage residual tokenizer (chunks of 64, 16 codes) fitted on ``items``; its artifact id."""
    from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
    from igpg_zoo.igpg.vqvae import TokenizerConfig

    tok, _ = fit_tokenizer(items, TokenizerConfig(chunk_size=64, tokens_per_chunk=2, codebook_size=16, hidden=(32,),
                                                  code_dim=8, steps=60, refine_steps=0, batch_size=32),
                           seed=0, progress=False)
    tensors, config = tok.state()
    return zoo.add_artifact("tokenizer", "tiny", tensors, config, {"snapshot": zoo.snapshot()}).id


@pytest.fixture
def forbid_test_split(monkeypatch):
    """``forbid_test_split()``: from then on, reading a dataset's ``x_test`` / ``y_test`` fails the test."""
    import igpg_zoo.data

    real = igpg_zoo.data.load_dataset

    class TrainOnly:
        def __init__(self, ds):
            self._ds = ds

        def __getattr__(self, name):
            if name in ("x_test", "y_test"):
                raise AssertionError(f"the code under test read {name}")
            return getattr(self._ds, name)

    return lambda: monkeypatch.setattr(igpg_zoo.data, "load_dataset", lambda name: TrainOnly(real(name)))


def probe_sample_accuracy(tokenizer, tokens, arch: str, task: str) -> float:
    """A member's decoded accuracy on the 256-sample stratified training probe (seed 0) that the
    recombination check and the member floor score on, computed independently of them."""
    import numpy as np
    import torch

    from igpg_zoo.data import load_dataset
    from igpg_zoo.data.dataset import stratified_subsample
    from igpg_zoo.igpg.probe import accuracy_on, build_loaded
    from igpg_zoo.igpg.curation.probe import SAMPLES as PROBE

    ds = load_dataset(task)
    keep = stratified_subsample(ds.y_train, PROBE, 0)
    x = torch.tensor(np.asarray(ds.x_train[keep]), dtype=torch.float32)
    return accuracy_on(build_loaded(arch, dict(tokenizer.decode(tokens, arch))), x,
                       torch.tensor(np.asarray(ds.y_train[keep]), dtype=torch.long))


@pytest.fixture(scope="session")
def probe_accuracy():
    """``probe_accuracy(tokenizer, tokens, arch, task)``: see ``probe_sample_accuracy``."""
    return probe_sample_accuracy


def _tiny_rank(rank: int, world: int, init_file: str, registry: str, tokenizer_id: int, out_dir: str, compute) -> None:
    """One gloo rank: rebuild the tiny zoo's TokenSet and write ``compute(tokenizer, records, data)`` as JSON."""
    import json

    import torch
    import torch.distributed as dist

    from igpg_zoo.igpg.conditioning import Conditioner
    from igpg_zoo.igpg.prior_dataset import build_token_set
    from igpg_zoo.igpg.tokenizer import Tokenizer
    from igpg_zoo.zoo import open_zoo

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        with open_zoo(registry, embedder="hash") as zoo:
            tokenizer, records = Tokenizer.load(zoo, tokenizer_id), zoo.list()
            data = build_token_set(zoo, tokenizer, Conditioner(zoo.embedder, ["depth"], 0), records)
            result = compute(tokenizer, records, data)
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump(result, f)
    finally:
        dist.destroy_process_group()


@pytest.fixture
def on_two_gloo_ranks(tmp_path):
    """``on_two_gloo_ranks(zoo, tokenizer, compute)``: ``compute(tokenizer, records, data)`` (a module-level
    function returning JSON) run on the tiny zoo in 2 spawned gloo processes; the two results."""
    import json

    def run(zoo, tokenizer, compute) -> list:
        import torch.multiprocessing as mp

        mp.start_processes(_tiny_rank, args=(2, str(tmp_path / "init"), zoo.config.registry, tokenizer.artifact_id,
                                             str(tmp_path), compute), nprocs=2, join=True, start_method="spawn")
        return [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]

    return run


@pytest.fixture
def tiny_recipe(tmp_path):
    """``write(**sections)``: a recipe YAML (in tmp_path) training the tiny zoo in seconds, its sections
    (tokenizer, prior, train, recipe) updated with the ones given; returns its path."""
    import yaml

    base = {"tokenizer": {"steps": 10, "refine_steps": 100, "tokens_per_chunk": 2, "codebook_size": 32},
            "prior": {"n_layer": 1, "n_embd": 32, "n_head": 1}, "train": {"steps": 4, "batch_size": 4}}

    def write(name: str = "tiny.yaml", **sections):
        data = {k: dict(v) for k, v in base.items()}
        for key, value in sections.items():
            data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data))
        return path

    return write


@pytest.fixture(scope="session")
def add_trained():
    """``add_trained(zoo, arch, task, seed, epochs, embed=False, task_text=None) -> weights``: train one small
    member on ``task`` and register it (test accuracy as ``acc``; ``embed``: with its dataset embedding)."""
    def add(zoo, arch: str, task: str, seed: int, epochs: int, embed: bool = False, task_text: str | None = None):
        from igpg_zoo.adapters import get_adapter
        from igpg_zoo.data import load_dataset
        from igpg_zoo.data.embedding import dataset_embedding_for
        from igpg_zoo.records import CheckpointMeta, Metric
        from igpg_zoo.zoobuild.trainer import accuracy, fit, init_module

        ds = load_dataset(task)
        m = fit(init_module(get_adapter(arch).build(arch), seed), ds.x_train, ds.y_train, epochs=epochs, seed=seed)
        weights = {k: v.detach().clone() for k, v in m.state_dict().items()}
        zoo.add_weights(weights, CheckpointMeta(
            arch=arch, task=task_text or task, dataset=task, kind="trained",
            metrics=(Metric("acc", accuracy(m, ds.x_test, ds.y_test), task + ":test"),),
            dataset_embedding=tuple(dataset_embedding_for(task).tolist()) if embed else None))
        return weights

    return add
