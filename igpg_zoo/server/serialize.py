"""Records, hits, artifacts and lineage as JSON values for the API (no file paths ever leave)."""

from __future__ import annotations

from typing import Any

from igpg_zoo.records import Artifact, Checkpoint, Hit


def record_json(record: Checkpoint) -> dict[str, Any]:
    """``Checkpoint.to_dict()``: every column, metrics keyed by name (``name@dataset`` for repeats)."""
    return record.to_dict()


def hit_json(hit: Hit) -> dict[str, Any]:
    return {"score": round(hit.score, 6), **record_json(hit.checkpoint)}


def brief(record: Checkpoint) -> dict[str, Any]:
    """What a lineage tree shows of a record."""
    return {"id": record.id, "name": record.name, "kind": record.kind, "arch": record.arch,
            "acc": record.metric("acc")}


def artifact_json(a: Artifact) -> dict[str, Any]:
    """One generator artifact: what it is, what it was trained on, and how (as ``igpg-zoo artifacts``)."""
    p = a.provenance or {}
    snapshot = p.get("snapshot") or {}
    train = (a.config or {}).get("train") or {}
    return {"id": a.id, "kind": a.kind, "name": a.name, "parent_id": a.parent_id, "created_at": a.created_at,
            "records": len(snapshot.get("ids") or ()), "snapshot": (snapshot.get("hash") or "")[:12],
            "steps": train.get("steps"), "holdout_tasks": p.get("holdout_tasks") or [],
            "size_bytes": a.size_bytes, "sha256": a.sha256}


def provenance_json(record: Checkpoint) -> dict[str, Any] | None:
    """Where generated weights came from and the zoo member nearest to them (None for other kinds)."""
    if record.kind != "generated":
        return None
    prov = record.extra.get("provenance") or {}
    gen = prov.get("generator") or {}
    return {"generator_artifact_id": record.extra.get("generator_artifact_id", gen.get("prior_artifact_id")),
            "tokenizer_artifact_id": gen.get("tokenizer_artifact_id"),
            "zoo_snapshot_hash": prov.get("zoo_snapshot_hash"), "seed": prov.get("seed"),
            "sampling": prov.get("sampling"), "conditioning": prov.get("conditioning"),
            "head": prov.get("head"), "ranked_by": prov.get("ranked_by"),
            "nearest": record.extra.get("nearest") or None}
