"""``export_record``: export a registry record and note the parity figure in its metadata."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from igpg_zoo.export.weights import DEFAULT_ATOL, ExportReport, export_weights

if TYPE_CHECKING:
    from igpg_zoo.records import Checkpoint


def record_meta(ck: Checkpoint) -> dict[str, Any]:
    """What an exported folder or file says about where its weights came from.

    A generated record also gives its provenance (generator artifact ids, zoo snapshot hash,
    conditioning, seed, sampling settings), so the weights keep their label wherever they go
    and ``igpg-zoo add`` records them as generated again (``igpg_zoo.registry.labels``).
    """
    meta = {
        "id": ck.id, "name": ck.name, "arch": ck.arch, "task": ck.task, "dataset": ck.dataset,
        "kind": ck.kind, "parent_id": ck.parent_id, "sha256": ck.sha256, "license": ck.license,
        "source": ck.source, "tags": list(ck.tags),
        "metrics": {m.name: {"value": m.value, "dataset": m.dataset} for m in ck.metrics},
    }
    if ck.kind == "generated":
        provenance = ck.extra.get("provenance") or {}
        meta["provenance"] = provenance
        meta["generator_artifact_id"] = ck.extra.get("generator_artifact_id",
                                                     (provenance.get("generator") or {}).get("prior_artifact_id"))
    return meta


def _calibration(ck: Checkpoint, weights: dict):
    """Data for a generated record whose BatchNorm statistics were never estimated (export.batchnorm)."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.export.batchnorm import calibration_for_record

    if ck.kind != "generated":
        return None
    module = get_adapter(ck.arch).build(ck.arch)
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError:
        return None  # export_weights reports the mismatch in one line
    return calibration_for_record(ck, module)


def export_record(zoo, id: int, fmt: str, out: Path, atol: float = DEFAULT_ATOL, *,
                  exporter: str = "auto", overwrite: bool = False) -> ExportReport:
    """Export record ``id`` of ``zoo`` to ``out`` and store the facts as ``extra["export_<fmt>"]``.

    The facts: parity figure, tolerance, how it was measured, and for ONNX the opset and exporter.
    A generated record whose BatchNorm statistics were never estimated gets them estimated on its
    dataset's training split first (``export.batchnorm``; the facts under ``batchnorm``).
    The record is only updated after the export passed its check.
    """
    ck = zoo.get(id)
    weights = zoo.load_weights(id)
    report = export_weights(ck.arch, weights, fmt, Path(out), record_meta(ck), atol, exporter=exporter,
                            overwrite=overwrite, calibration=_calibration(ck, weights))
    facts = report.facts()
    facts["exported_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    zoo.update_extra(id, **{f"export_{fmt}": facts})
    return report
