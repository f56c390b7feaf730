"""``POST /api/generate`` on a tiny real zoo with a trained tokenizer and prior: samples without the
token, registration only with it, and the generator loaded once and kept."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'igpg-zoo[serve]')")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (the dev extra)")

from fastapi.testclient import TestClient  # noqa: E402

from igpg_zoo.server.app import create_app  # noqa: E402
from igpg_zoo.server.state import ServerState  # noqa: E402

ARCH = "mlp-i1x8x8-h8-o3"  # declares the digit images' shape, as generate requires
TASKS = ("digits[classes=0,1,2]", "digits[classes=3,4,5]")
TOKEN = "generate-token"
pytestmark = [pytest.mark.usefixtures("torch_one_thread"), pytest.mark.slow]


@pytest.fixture(scope="module")
def zoo_with_prior(tmp_path_factory, add_trained):
    """A registry of 4 trained models (2 epochs), a tiny tokenizer and a prior trained 20 steps."""
    root = tmp_path_factory.mktemp("serve-gen")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IGPG_ZOO_EMBEDDER", "hash")
        mp.setenv("IGPG_ZOO_CACHE", str(root / "cache"))
        mp.setenv("IGPG_ZOO_PLUGINS", "none")
        from igpg_zoo.igpg.prior_train import PriorTrainConfig, train_prior
        from igpg_zoo.igpg.recipe import Recipe
        from igpg_zoo.igpg.tokenizer_train import fit_tokenizer
        from igpg_zoo.igpg.vqvae import TokenizerConfig
        from igpg_zoo.zoo import open_zoo

        with open_zoo(str(root / "registry.db"), embedder="hash") as zoo:
            items = []
            for task in TASKS:
                for seed in range(2):
                    items.append((add_trained(zoo, ARCH, task, seed, epochs=2), ARCH))
            tok, _ = fit_tokenizer(items, TokenizerConfig(chunk_size=64, tokens_per_chunk=2, codebook_size=16,
                                                          hidden=(32,), code_dim=8, steps=40, refine_steps=0,
                                                          batch_size=32), seed=0, progress=False)
            tensors, config = tok.state()
            zoo.add_artifact("tokenizer", "tiny", tensors, config, {"snapshot": zoo.snapshot()})
            train_prior(zoo, Recipe(prior={"n_layer": 1, "n_embd": 32, "n_head": 2, "block_size": 8, "window_context": 3},
                                    train=PriorTrainConfig(steps=20, batch_size=8, warmup=5)))
    return root


def test_generate_samples_openly_and_registers_only_with_the_token(zoo_with_prior, monkeypatch):
    monkeypatch.setenv("IGPG_ZOO_CACHE", str(zoo_with_prior / "cache"))
    state = ServerState.open(str(zoo_with_prior / "registry.db"), token=TOKEN, embedder="hash")
    body = {"arch": ARCH, "dataset": TASKS[1], "n": 2, "seed": 1}
    with TestClient(create_app(state)) as client:
        before = state.zoo.store.count()
        drawn = client.post("/api/generate", json=body)
        assert drawn.status_code == 200, drawn.text
        assert len(drawn.json()["results"]) == 2 and state.zoo.store.count() == before
        assert state.generator(None) is state.generator(None)  # loaded once, kept warm
        refused = client.post("/api/generate", json={**body, "register": True},
                              headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401 and state.zoo.store.count() == before
        added = client.post("/api/generate", json={**body, "register": True},
                            headers={"Authorization": f"Bearer {TOKEN}"})
        assert added.status_code == 200, added.text
        record = client.get(f"/api/records/{added.json()['registered_id']}").json()
        assert record["kind"] == "generated" and record["provenance"]["nearest"]["id"] is not None
        assert record["provenance"]["generator_artifact_id"] == client.get("/api/artifacts",
                                                                           params={"kind": "prior"}).json()[0]["id"]
        assert state.zoo.store.count() == before + 1 and torch.is_tensor(next(iter(
            state.zoo.load_weights(record["id"]).values())))
