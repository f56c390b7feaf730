"""The reading commands start without the heavy libraries (nor SQLAlchemy): each runs in a fresh interpreter on a
tiny registry, and the modules it imported are checked afterwards. Opening an up-to-date registry
costs one query and never imports alembic; the migrations' file names give the head revision."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.registry import db as registry_db

MLP = "mlp-i64-h32-o10"
NEVER_ON_READS = ("torch", "transformers", "sentence_transformers", "safetensors.torch", "timm", "alembic",
                  "sqlalchemy")  # a SQLite registry is read through sqlite3

RUN_CLI = """
import json, sys
from igpg_zoo.cli.app import main
args, watched = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.argv = ["igpg-zoo", *args]
try:
    main()
except SystemExit as exit:
    if exit.code:
        raise
print("IMPORTED " + json.dumps(sorted(m for m in watched if m in sys.modules)))
"""


@pytest.fixture(scope="module")
def minilm_registry(tmp_path_factory, _data_cache):
    """A registry of one record whose vector comes from the bundled MiniLM, its ONNX file made in the
    cache the tests' processes use (module fixtures start before the per-test environment)."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.search.embed import get_embedder
    from igpg_zoo.zoo import open_zoo

    folder = tmp_path_factory.mktemp("light")
    weights = get_adapter(MLP).build(MLP).state_dict()
    meta = CheckpointMeta(arch=MLP, task="image classification", dataset="user-digits",
                          metrics=(Metric("acc", 0.9, ""),), tags=("demo",))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_CACHE", str(_data_cache))
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        with open_zoo(str(folder / "registry.db"), embedder=get_embedder(None)) as zoo:
            record = zoo.add_weights(weights, meta).checkpoint
    return folder / "registry.db", record.id


def _run(args: list[str], registry, watched=NEVER_ON_READS) -> tuple[str, list[str]]:
    env = {**os.environ, "IGPG_ZOO_REGISTRY": str(registry)}
    env.pop("IGPG_ZOO_EMBEDDER", None)  # the bundled MiniLM, as users run it
    done = subprocess.run([sys.executable, "-c", RUN_CLI, json.dumps([*args]), json.dumps(list(watched))],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    out, _, imported = done.stdout.rpartition("IMPORTED ")
    return out, json.loads(imported)


@pytest.mark.parametrize("args", [
    ["--help"],
    ["list", "--arch", "mlp-*"],
    ["list", "--json"],
    ["show", "{id}"],
    ["query", "digits classifier", "-k", "1"],
    ["query", "digits classifier", "-k", "1", "--json"],
])
def test_reading_commands_import_no_torch_transformers_or_alembic(minilm_registry, args):
    registry, record_id = minilm_registry
    out, imported = _run([a.format(id=record_id) for a in args], registry)
    assert imported == []
    if args[0] == "query":
        assert MLP in out  # the query really ran and found the record


def test_head_revision_is_alembics_head_and_files_are_named_by_revision():
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", str(registry_db.MIGRATIONS))
    scripts = ScriptDirectory.from_config(cfg)
    assert registry_db.head_revision() == scripts.get_current_head()
    for revision in scripts.walk_revisions():
        assert os.path.basename(revision.path).startswith(f"{revision.revision}_")


def test_a_registry_at_an_older_revision_is_still_upgraded(tmp_path):
    import sqlalchemy as sa
    from alembic import command
    from alembic.config import Config

    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = sa.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(registry_db.MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")  # a registry written by the first version
    registry_db.Database(url).dispose()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == \
            registry_db.head_revision()
    engine.dispose()


def test_every_command_is_mapped_to_the_module_that_registers_it():
    import typer

    from igpg_zoo.cli import app as cli_app

    full = cli_app.full_app()
    names = {c.name or typer.main.get_command_name(c.callback.__name__): c.callback.__module__.rsplit(".", 1)[-1]
             for c in full.registered_commands}
    groups = {g.name: None for g in full.registered_groups}
    assert set(cli_app.COMMANDS) == set(names) | set(groups)
    for name, module in names.items():
        assert cli_app.COMMANDS[name] == module
    for name in groups:  # a group is registered by the module COMMANDS names
        built = cli_app._registered([cli_app.COMMANDS[name]])
        assert name in {g.name for g in built.registered_groups}
