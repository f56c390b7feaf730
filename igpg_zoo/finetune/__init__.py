"""Fine-tuning from a record, a query's answer or a generated draw, with lineage in the registry.

    from igpg_zoo.finetune import FinetuneRequest, finetune
    result = finetune(zoo, FinetuneRequest("my.npz", record_id=12, compare=("random", "generated")))
    result.record            # the registered model (kind "finetuned", parent #12)
    result.comparison        # steps to the target accuracy and accuracy at fixed budgets, per start

``config`` (defaults, the request) imports no torch; ``finetune`` loads it when called.
"""

from __future__ import annotations

from typing import Any

from igpg_zoo.finetune.config import COMPARE_STARTS, HEADS, FinetuneConfig, FinetuneRequest, parse_compare

__all__ = ["COMPARE_STARTS", "HEADS", "FinetuneConfig", "FinetuneRequest", "FinetuneResult", "finetune",
           "parse_compare"]


def __getattr__(name: str) -> Any:
    if name in ("finetune", "FinetuneResult"):
        from igpg_zoo.finetune import api

        return getattr(api, name)
    raise AttributeError(name)
