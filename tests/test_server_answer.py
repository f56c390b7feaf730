"""``POST /api/answer`` and ``POST /api/select`` (the front door over HTTP) on a tiny real zoo: data by
dataset name or as an uploaded .npz, recording only with the token, bad data refused in one line."""

from __future__ import annotations

import io

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'igpg-zoo[serve]')")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the dev extra)")

from fastapi.testclient import TestClient  # noqa: E402

from igpg_zoo.server.app import create_app  # noqa: E402
from igpg_zoo.server.state import ServerState  # noqa: E402

ARCH = "mlp-i64-h8-o3"
TASKS = ("digits[classes=0,1,2]", "digits[classes=3,5,8]")
TOKEN = "front-door"
pytestmark = [pytest.mark.usefixtures("torch_one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def served(tmp_path_factory, add_trained):
    """A client on a registry of 2 tasks x 2 seeds of ARCH (trained 2 epochs), writes with TOKEN."""
    root = tmp_path_factory.mktemp("serve-answer")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
        mp.setenv("IGPG_ZOO_CACHE", str(root / "cache"))
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        from igpg_zoo.zoo import open_zoo

        with open_zoo(str(root / "registry.db"), embedder="hash") as zoo:
            for task in TASKS:
                for seed in (0, 1):
                    add_trained(zoo, ARCH, task, seed, epochs=2, embed=True)
        state = ServerState.open(str(root / "registry.db"), token=TOKEN, embedder="hash")
        with TestClient(create_app(state)) as client:
            yield client, state


def _npz(classes=(0, 1, 2), n=120) -> bytes:
    from sklearn.datasets import load_digits

    d = load_digits()
    keep = np.isin(d.target, classes)
    buf = io.BytesIO()
    np.savez(buf, x=d.images[keep][:n].astype(np.float32), y=d.target[keep][:n])
    return buf.getvalue()


def test_answer_scores_named_or_uploaded_data_and_records_only_with_the_token(served):
    client, state = served
    before = len(state.zoo.answers.list(100))
    named = client.post("/api/answer", params={"dataset": TASKS[0], "mode": "retrieve"})
    assert named.status_code == 200, named.text
    assert named.json()["decision"]["choice"] == "retrieved" and len(state.zoo.answers.list(100)) == before
    uploaded = client.post("/api/answer", params={"mode": "retrieve", "arch": ARCH}, content=_npz())
    assert uploaded.status_code == 200, uploaded.text
    assert uploaded.json()["decision"]["chosen"]["arch"] == ARCH
    refused = client.post("/api/answer", params={"dataset": TASKS[0], "mode": "retrieve", "record": True})
    assert refused.status_code == 401 and len(state.zoo.answers.list(100)) == before
    recorded = client.post("/api/answer", params={"dataset": TASKS[0], "mode": "retrieve", "record": True},
                           headers={"Authorization": f"Bearer {TOKEN}"})
    assert recorded.status_code == 200 and len(state.zoo.answers.list(100)) == before + 1


def test_select_ranks_members_for_the_data(served):
    client, state = served
    ranked = client.post("/api/select", params={"dataset": TASKS[1], "k": 3})
    assert ranked.status_code == 200, ranked.text
    rows = ranked.json()["rows"]
    assert 1 <= len(rows) <= 3 and {r["id"] for r in rows} <= {r.id for r in state.zoo.list()}


@pytest.mark.parametrize("path,params,body,status,words", [
    ("/api/answer", {"dataset": TASKS[0]}, b"x", 400, "not both"),
    ("/api/answer", {}, b"not an npz file", 400, ""),
    ("/api/answer", {"dataset": "no-such-dataset"}, b"", 400, "no-such-dataset"),
    ("/api/answer", {"dataset": TASKS[0], "k": 10_000}, b"", 422, "k:"),
    ("/api/answer", {"dataset": TASKS[0], "mode": "guess"}, b"", 422, "mode"),
    ("/api/select", {}, b"", 400, "select needs data"),
    ("/api/select", {"dataset": TASKS[0], "estimate": "vibes"}, b"", 422, "estimate"),
])
def test_bad_front_door_requests_are_one_line_and_change_nothing(served, path, params, body, status, words):
    client, state = served
    before = (len(state.zoo.answers.list(100)), state.zoo.store.count())
    response = client.post(path, params=params, content=body)
    assert response.status_code == status, response.text
    assert list(response.json()) == ["error"] and words in response.json()["error"]
    assert (len(state.zoo.answers.list(100)), state.zoo.store.count()) == before
