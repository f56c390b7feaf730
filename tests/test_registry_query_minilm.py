"""Semantic query with the real bundled all-MiniLM-L6-v2 (offline): meaning, not spelling, ranks."""

from __future__ import annotations

import numpy as np
import torch

from igpg_zoo.adapters import get_adapter
from igpg_zoo.records import CheckpointMeta, Metric
from igpg_zoo.zoo import open_zoo

MLP = "mlp-i64-h32-o10"


def test_query_ranks_by_meaning_with_minilm(minilm):
    tasks = {
        "handwritten digit recognition": "toy-handwriting",
        "sentiment analysis of movie reviews": "toy-reviews",
        "predicting house prices": "toy-housing",
    }
    with open_zoo(embedder=minilm) as zoo:
        ids = {}
        for seed, (task, dataset) in enumerate(tasks.items()):
            torch.manual_seed(seed)
            meta = CheckpointMeta(arch=MLP, task=task, dataset=dataset, metrics=(Metric("acc", 0.5 + seed / 10, ""),))
            ids[task] = zoo.add_weights(get_adapter(MLP).build(MLP).state_dict(), meta).checkpoint.id
        vec = zoo.text_embedding(ids["predicting house prices"])
        assert vec.shape == (minilm.dim,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-4
        top = lambda text, **kw: [h.checkpoint.id for h in zoo.query(text, k=3, **kw)]  # noqa: E731
        assert top("a model that reads numbers written by hand")[0] == ids["handwritten digit recognition"]
        assert top("is this film review positive or negative?")[0] == ids["sentiment analysis of movie reviews"]
        assert top("real estate valuation")[0] == ids["predicting house prices"]
        assert top("real estate valuation", where="acc<0.6") == [ids["handwritten digit recognition"]]
