"""Register a fine-tuned model: kind ``finetuned``, its parent, and its lineage in ``extra``.

Lineage (``extra["finetune"]``): the start (kind, parent id, how it was found), the data's
fingerprint and shape, the hyper-parameters, the held-out curve, the head policy's outcome, and the
step whose weights were kept. Metrics: ``acc`` on the user's test split, ``val_acc`` on the held-out part.
"""

from __future__ import annotations

from typing import Any

import torch

from igpg_zoo.records import AddResult, CheckpointMeta, Metric

SOURCE = "igpg-zoo finetune"


def register_finetuned(zoo, arch: str, weights: dict[str, torch.Tensor], dataset, lineage: dict[str, Any],
                       test_acc: float, val_acc: float, parent_id: int | None, name: str | None = None) -> AddResult:
    """Add the fine-tuned weights; returns the registry's AddResult (existing record when identical)."""
    from igpg_zoo.data.embedding import embed_dataset

    data_name = f"user:{dataset.name}" if dataset.info.source == "user" else dataset.name
    metrics = (Metric("acc", float(test_acc), f"{data_name}:test"),
               Metric("val_acc", float(val_acc), f"{data_name}:heldout"))
    emb = tuple(float(v) for v in embed_dataset(dataset, text_embedder=zoo.embedder))
    meta = CheckpointMeta(arch=arch, task=dataset.info.description, dataset=data_name, metrics=metrics,
                          tags=("finetuned", f"start:{lineage['start']['kind']}"), source=SOURCE,
                          name=name or f"{data_name}/{arch}/finetuned-from-{lineage['start']['kind']}",
                          parent_id=parent_id, kind="finetuned", extra={"finetune": lineage},
                          dataset_embedding=emb)
    return zoo.add_weights(weights, meta)
