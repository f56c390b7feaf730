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
