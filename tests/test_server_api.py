"""``igpg-zoo serve``'s API through an in-process client, on SQLite and PostgreSQL.

Reads mirror the facade; every bad request is a 4xx with one line of JSON and changes nothing;
writes need the token; a second server process sees the first one's writes.
"""

from __future__ import annotations

import io
import json
import zipfile

import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'igpg-zoo[serve]')")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the dev extra)")

from fastapi.testclient import TestClient  # noqa: E402

from igpg_zoo.adapters import get_adapter  # noqa: E402
from igpg_zoo.records import CheckpointMeta, Metric  # noqa: E402
from igpg_zoo.server.app import create_app  # noqa: E402
from igpg_zoo.server.settings import ServeConfig  # noqa: E402
from igpg_zoo.server.state import ServerState  # noqa: E402
from igpg_zoo.zoo import open_zoo  # noqa: E402

MLP = "mlp-i64-h16-o10"
CNN = "cnn-i1x8x8-c4k3-h16-o10"
TOKEN = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HUGE = str(2**70)


def weights(arch: str, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return get_adapter(arch).build(arch).state_dict()


def fill(zoo) -> dict[str, int]:
    """Five records: two digit models, a wine model, a fine-tuned child with a curve, a generated one."""
    def add(arch, seed, task, dataset, acc, **kw):
        meta = CheckpointMeta(arch=arch, task=task, dataset=dataset, metrics=(Metric("acc", acc, dataset),), **kw)
        return zoo.add_weights(weights(arch, seed), meta).checkpoint.id

    ids = {"mlp": add(MLP, 0, "handwritten digit recognition", "digits", 0.91, kind="trained"),
           "cnn": add(CNN, 1, "handwritten digit recognition", "digits", 0.95, kind="trained"),
           "wine": add(MLP.replace("i64", "i13"), 2, "wine cultivar classification", "wine", 0.8, kind="trained")}
    ids["child"] = add(MLP, 3, "handwritten digit recognition", "digits", 0.93, kind="finetuned", parent_id=ids["mlp"],
                       extra={"curve": [{"epoch": 1, "acc": 0.6}, {"epoch": 2, "acc": 0.93}]})
    ids["gen"] = add(MLP, 4, "handwritten digit recognition", "digits", 0.88, kind="generated", extra={
        "provenance": {"generator": {"prior_artifact_id": 7, "tokenizer_artifact_id": 6}, "seed": 3},
        "nearest": {"id": ids["mlp"], "distance": 2.5, "relative_distance": 0.31, "exact_copy_of": None}})
    return ids


@pytest.fixture
def served(registry_url):
    """(client, ids, state) on a filled registry, writes allowed with TOKEN."""
    with open_zoo() as zoo:
        ids = fill(zoo)
    state = ServerState.open(token=TOKEN, config=ServeConfig(max_upload_bytes=64 * 1024))
    with TestClient(create_app(state)) as client:
        yield client, ids, state


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One filled SQLite registry and server for the bad requests (none of which may change it)."""
    path = str(tmp_path_factory.mktemp("served") / "registry.db")
    with open_zoo(path, embedder="hash") as zoo:
        fill(zoo)
    state = ServerState(open_zoo(path, embedder="hash"), TOKEN, ServeConfig(max_upload_bytes=64 * 1024))
    with TestClient(create_app(state)) as client:
        yield client, state


def snapshot(state: ServerState) -> tuple:
    zoo = state.zoo
    return ([r.to_dict() for r in zoo.list(sort="id")], sorted(zoo.blobs), zoo.search.problems())


def test_reads_mirror_the_registry(served):
    client, ids, state = served
    listed = client.get("/api/records", params={"task": "handwritten*", "sort": "acc", "asc": True}).json()
    assert [r["id"] for r in listed["records"]] == [ids["gen"], ids["mlp"], ids["child"], ids["cnn"]]
    hits = client.get("/api/query", params={"q": "wine cultivar", "k": 2}).json()["hits"]
    assert [h["id"] for h in hits] == [h.checkpoint.id for h in state.zoo.query("wine cultivar", k=2)]
    assert hits[0]["id"] == ids["wine"] and hits[0]["score"] >= hits[1]["score"]
    shown = client.get(f"/api/records/{ids['gen']}").json()
    assert shown["provenance"]["nearest"]["id"] == ids["mlp"] and shown["provenance"]["generator_artifact_id"] == 7
    assert {"safetensors", "onnx", "native"} <= set(shown["export_formats"])
    tree = client.get(f"/api/records/{ids['child']}/lineage").json()
    assert [a["id"] for a in tree["ancestors"]] == [ids["mlp"]] and tree["children"] == []
    assert [c["id"] for c in client.get(f"/api/records/{ids['mlp']}/lineage").json()["children"]] == [ids["child"]]
    summary = client.get("/api/summary").json()
    assert summary["records"] == 5 and summary["writable"] is True
    assert {f["value"]: f["count"] for f in summary["facets"]["kind"]} == {"trained": 3, "finetuned": 1, "generated": 1}
    assert client.get("/api/artifacts").json() == []


BAD = [  # (method, path, params, body, headers, status, words)
    ("get", "/api/records/999999", None, None, None, 404, "no checkpoint #999999"),
    ("get", "/api/records/abc", None, None, None, 422, "record_id"),
    ("get", "/api/records/0", None, None, None, 422, "record_id"),
    ("get", f"/api/records/{HUGE}", None, None, None, 422, "record_id"),
    ("get", "/api/records", {"where": "acc>>1"}, None, None, 400, "not a number"),
    ("get", "/api/records", {"kind": "bogus"}, None, None, 400, "unknown kind bogus"),
    ("get", "/api/records", {"sort": "nosuchmetric"}, None, None, 400, "no record has a metric"),
    ("get", "/api/records", {"limit": HUGE}, None, None, 422, "limit"),
    ("get", "/api/query", {"q": "digits", "k": 100000}, None, None, 422, "k: Input should be less than or equal to 100"),
    ("get", "/api/query", {"q": "digits", "k": 0}, None, None, 422, "k:"),
    ("get", "/api/query", {"q": ""}, None, None, 422, "q:"),
    ("get", "/api/query", {"q": "   "}, None, None, 400, "query needs some text"),
    ("get", "/api/query", {"q": "x", "where": "acc>"}, None, None, 400, "cannot read condition"),
    ("get", "/api/records/1/export", {"format": "pickle"}, None, None, 422, "format"),
    ("get", "/api/records/..%2F..%2Fetc%2Fpasswd", None, None, None, 404, "no such page"),
    ("get", "/api/records/1/..%2F..%2F..%2Fregistry.db", None, None, None, 404, "no such page"),
    ("get", "/static/..%2F..%2F..%2Fzoo.py", None, None, None, 404, "no such page"),
    ("get", "/static/%2e%2e/%2e%2e/zoo.py", None, None, None, 404, "no such page"),
    ("get", "/api/plots/..%2F..%2Fstate.svg", None, None, None, 404, "no such page"),
    ("get", "/api/plots/secret.svg", None, None, None, 422, "name"),
    ("post", "/api/generate", None, b"{not json", {"content-type": "application/json"}, 422, "not valid JSON"),
    ("post", "/api/generate", None, b'{"arch": "mlp-i64-h16-o10", "dataset": "digits", "evil": 1}',
     {"content-type": "application/json"}, 422, "evil"),
    ("post", "/api/generate", None, b'{"arch": "mlp-i64-h16-o10", "dataset": "digits", "n": 100000}',
     {"content-type": "application/json"}, 422, "n: Input should be less than or equal to 16"),
    ("post", "/api/generate", None, b'{"arch": "mlp-i64-h16-o10", "dataset": "digits", "register": true}',
     {"content-type": "application/json"}, 401, "Authorization: Bearer"),
    ("delete", "/api/records/1", None, None, None, 401, "Authorization: Bearer"),
    ("delete", "/api/records/1", None, None, {"Authorization": "Bearer wrong"}, 401, "wrong token"),
    ("delete", "/api/records/1", None, None, {"Authorization": f"Basic {TOKEN}"}, 401, "Authorization: Bearer"),
    ("delete", "/api/records/999999", None, None, AUTH, 404, "no checkpoint #999999"),
    ("post", "/api/records", {"arch": MLP}, b"weights", None, 401, "Authorization: Bearer"),
    ("post", "/api/records", {"arch": MLP, "name": "../../../../tmp/evil"}, b"not a safetensors file", AUTH, 400,
     "not a valid safetensors file"),
    ("post", "/api/records", {"arch": MLP}, b"", AUTH, 400, "body is empty"),
    ("post", "/api/records", {"arch": MLP}, b"x" * (64 * 1024 + 1), AUTH, 413, "larger than this server takes"),
    ("post", "/api/records", {"arch": "nosuch-arch"}, b"x", AUTH, 400, "no adapter supports"),
    ("post", "/api/records", {"arch": MLP, "kind": "generated"}, b"x", AUTH, 400, "kind must be one of"),
    ("post", "/api/records", {"arch": MLP, "metric": "acc=high"}, b"x", AUTH, 400, "is not a number"),
    ("put", "/api/records/1", None, None, AUTH, 405, "Method Not Allowed"),
]


@pytest.mark.parametrize("method,path,params,body,headers,status,words", BAD)
def test_bad_requests_are_one_line_4xx_and_change_nothing(shared, tmp_path, method, path, params, body, headers,
                                                         status, words):
    client, state = shared
    before = snapshot(state)
    response = client.request(method, path, params=params, content=body, headers=headers)
    assert response.status_code == status, response.text
    answer = response.json()
    assert list(answer) == ["error"] and "\n" not in answer["error"] and words in answer["error"], answer
    assert snapshot(state) == before
    assert not (tmp_path.parent / "evil").exists() and not list(tmp_path.glob("**/evil*"))


def test_a_read_only_server_refuses_every_write(registry_url):
    with open_zoo() as zoo:
        fill(zoo)
    with TestClient(create_app(ServerState.open(token=None))) as client:
        for response in (client.delete("/api/records/1", headers=AUTH),
                         client.post("/api/records", params={"arch": MLP}, content=b"x", headers=AUTH)):
            assert response.status_code == 401 and "read-only" in response.json()["error"]
        assert client.get("/api/summary").json() == {**client.get("/api/summary").json(), "records": 5, "writable": False}


def test_writes_with_the_token_add_find_and_remove(served):
    client, ids, state = served
    body = save_safetensors(weights(MLP, 9))
    added = client.post("/api/records", headers=AUTH, content=body, params={
        "arch": MLP, "task": "rotated digit recognition", "dataset": "digits", "name": "../../outside",
        "metric": ["acc=0.97"], "tag": ["uploaded"], "parent_id": ids["mlp"], "kind": "finetuned"})
    assert added.status_code == 201, added.text
    record = added.json()
    assert record["created"] and record["name"] == "../../outside" and record["metrics"]["acc"]["value"] == 0.97
    assert state.zoo.blobs.path(record["sha256"]).parent == state.zoo.config.blob_root
    again = client.post("/api/records", headers=AUTH, content=body, params={
        "arch": MLP, "task": "rotated digit recognition", "dataset": "digits", "name": "../../outside",
        "metric": ["acc=0.97"], "tag": ["uploaded"], "parent_id": ids["mlp"], "kind": "finetuned"})
    assert again.status_code == 201 and again.json()["created"] is False and again.json()["id"] == record["id"]
    hits = client.get("/api/query", params={"q": "rotated digit recognition", "k": 1}).json()["hits"]
    assert hits[0]["id"] == record["id"]
    removed = client.delete(f"/api/records/{record['id']}", headers=AUTH)
    assert removed.status_code == 200 and removed.json()["removed"]["id"] == record["id"]
    assert client.get(f"/api/records/{record['id']}").status_code == 404
    assert state.zoo.verify() == []


def test_export_downloads_the_stored_weights(served):
    client, ids, state = served
    response = client.get(f"/api/records/{ids['mlp']}/export", params={"format": "safetensors"})
    assert response.status_code == 200 and f"record-{ids['mlp']}-safetensors.safetensors" in \
        response.headers["content-disposition"]
    got, want = load_safetensors(response.content), state.zoo.load_weights(ids["mlp"])
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)
    folder = client.get(f"/api/records/{ids['cnn']}/export", params={"format": "native"})
    assert folder.status_code == 200 and folder.headers["content-type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(folder.content)).namelist()
    assert "export_safetensors" not in state.zoo.get(ids["mlp"]).extra  # a download writes nothing


CHARTS = [("map", "Zoo map"), ("accuracy", "Generated vs trained accuracy"), ("novelty", "1 generated record"),
          ("finetune", "Fine-tuning curves (1 record")]


def test_charts_are_svg(served):
    client, _ids, _state = served
    for name, words in CHARTS:
        response = client.get(f"/api/plots/{name}.svg")
        assert response.status_code == 200 and response.headers["content-type"].startswith("image/svg+xml")
        assert b"<svg" in response.content and words.encode() in response.content, name


def test_second_worker_sees_the_first_workers_writes(registry_url):
    with open_zoo() as zoo:
        ids = fill(zoo)
    first = TestClient(create_app(ServerState.open(token=TOKEN)))
    second = TestClient(create_app(ServerState.open(token=TOKEN)))
    with first, second:
        assert second.get("/api/query", params={"q": "wine", "k": 1}).json()["hits"][0]["id"] == ids["wine"]
        assert first.delete(f"/api/records/{ids['wine']}", headers=AUTH).status_code == 200
        added = first.post("/api/records", headers=AUTH, content=save_safetensors(weights(MLP, 11)),
                           params={"arch": MLP, "task": "spoken wine tasting notes", "dataset": "digits"}).json()
        hits = second.get("/api/query", params={"q": "spoken wine tasting notes", "k": 5}).json()["hits"]
        assert hits[0]["id"] == added["id"] and ids["wine"] not in [h["id"] for h in hits]


def test_the_api_page_and_the_web_page_are_offline(served):
    client, _ids, _state = served
    schema = client.get("/openapi.json").json()
    assert {"/api/records", "/api/records/{record_id}", "/api/query", "/api/artifacts",
            "/api/records/{record_id}/export", "/api/generate"} <= set(schema["paths"])
    for page in ("/docs", "/"):
        text = client.get(page).text
        assert "https://" not in text and "http://" not in text
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    report = client.get("/report").text
    assert report.count("data:image/svg+xml;base64,") == 4 and "src=\"http" not in report
    assert json.loads(client.get("/api/summary").text)["records"] == 5
