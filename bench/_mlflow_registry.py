"""MLflow's side of the comparison, run as its own process: ``python -m bench._mlflow_registry CMD ...``.

- ``init STORE``: create the SQLite tracking/registry database, the experiment and one registered
  model per architecture (not timed: MLflow's schema migrations would dominate the import).
- ``register STORE FOLDER``: register every file of ``FOLDER/models.json`` the fastest way MLflow's
  Python client offers for a plain file: a run (metric, params) + ``log_artifact`` (the file is
  copied into the artifact store, as igpg-zoo copies it into its blobs) + ``create_model_version``
  with the record's fields as tags.
- ``search STORE SEARCHES REPEATS``: run each ``search_model_versions`` filter REPEATS times in this
  warm process; print per filter the median milliseconds and the matching file names (JSON).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")

EXPERIMENT = "zoo-import"


def _client(store: Path):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
                        registry_uri=f"sqlite:///{store / 'mlflow.db'}")


def init(store: Path, archs: list[str]) -> None:
    store.mkdir(parents=True, exist_ok=True)
    client = _client(store)
    client.create_experiment(EXPERIMENT, artifact_location=(store / "artifacts").as_uri())
    for arch in archs:
        client.create_registered_model(arch)


def register(store: Path, folder: Path) -> None:
    from mlflow.entities import Metric, Param

    client = _client(store)
    experiment = client.get_experiment_by_name(EXPERIMENT).experiment_id
    for m in json.loads((folder / "models.json").read_text()):
        run = client.create_run(experiment, run_name=Path(m["file"]).stem)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric("acc", m["acc"], now, 0)],
                         params=[Param("arch", m["arch"]), Param("dataset", m["dataset"])])
        client.log_artifact(run_id, str(folder / m["file"]))
        tags = {"task": m["task"], "dataset": m["dataset"], "site": m["tags"][0], "batch": m["tags"][1]}
        client.create_model_version(m["arch"], source=f"{run.info.artifact_uri}/{m['file']}", run_id=run_id,
                                    tags=tags)
        client.set_terminated(run_id)


def search(store: Path, searches: dict[str, str], repeats: int) -> dict:
    client = _client(store)
    out = {}
    for label, filter_string in searches.items():
        times, found = [], []
        for _ in range(repeats):
            started = time.perf_counter()
            found = _all_versions(client, filter_string)
            times.append((time.perf_counter() - started) * 1000)
        out[label] = {"ms": round(statistics.median(times), 2), "files": sorted(Path(v.source).stem for v in found)}
    return out


def _all_versions(client, filter_string: str) -> list:
    versions, token = [], None
    while True:
        page = client.search_model_versions(filter_string, max_results=10_000, page_token=token)
        versions += list(page)
        token = page.token
        if not token:
            return versions


def main(argv: list[str]) -> int:
    command, store = argv[0], Path(argv[1])
    if command == "init":
        init(store, json.loads(argv[2]))
    elif command == "register":
        register(store, Path(argv[2]))
    elif command == "search":
        print(json.dumps(search(store, json.loads(argv[2]), int(argv[3]))))
    else:
        raise SystemExit(f"unknown command {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
