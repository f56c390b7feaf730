"""The read endpoints, mirroring the CLI's reads: list, show, lineage, query, artifacts, export download.

None of them writes to the registry: an export is written to a temporary folder of the server's
own, sent, and deleted; the record's metadata is not touched (``igpg-zoo export`` notes the figure).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path as PathParam, Query
from fastapi.responses import FileResponse, JSONResponse
from starlette.background import BackgroundTask

from igpg_zoo.errors import ConfigError, NotFound
from igpg_zoo.records import MAX_ID
from igpg_zoo.report import catalog
from igpg_zoo.server.deps import Filters, State
from igpg_zoo.server.serialize import artifact_json, brief, hit_json, provenance_json, record_json
from igpg_zoo.server.settings import ServeConfig

router = APIRouter(prefix="/api", tags=["read"])
_DEFAULTS = ServeConfig()

RecordId = Annotated[int, PathParam(ge=1, le=MAX_ID, description="record id")]
ExportFormat = Literal["safetensors", "onnx", "native", "timm"]


@router.get("/summary", summary="Record count and the values of task, arch, dataset and kind")
def summary(state: State) -> dict[str, Any]:
    out = catalog.facets(state.zoo)
    out["writable"] = state.writable
    return out


@router.get("/records", summary="List records, filtered and sorted (igpg-zoo list)")
def list_records(
    state: State, filters: Filters,
    sort: Annotated[str | None, Query(max_length=128, description="metric name or id, name, created_at, n_params")] = None,
    asc: Annotated[bool, Query(description="smallest first")] = False,
    limit: Annotated[int, Query(ge=1, le=_DEFAULTS.max_list, description="at most this many")] = 100,
) -> JSONResponse:
    zoo = state.zoo
    if sort is not None and not zoo.store.sort_is_known(sort):
        raise ConfigError(f"no record has a metric '{sort}'; sort by a metric the records have or by "
                          "id, name, created_at, n_params")
    records = zoo.list(**filters.as_kwargs(), sort=sort, descending=not asc, limit=min(limit, state.config.max_list))
    return JSONResponse({"records": [record_json(r) for r in records], "count": len(records)})


@router.get("/records/{record_id}", summary="One record (igpg-zoo show), with export formats and provenance")
def show_record(state: State, record_id: RecordId) -> dict[str, Any]:
    record = state.zoo.get(record_id)
    return {**record_json(record), "export_formats": _formats(record.arch),
            "provenance": provenance_json(record)}


@router.get("/records/{record_id}/lineage", summary="Ancestors (parent first) and children of a record")
def lineage(state: State, record_id: RecordId) -> dict[str, Any]:
    zoo, cfg = state.zoo, state.config
    record = zoo.get(record_id)
    ancestors, seen, parent = [], {record.id}, record.parent_id
    while parent is not None and parent not in seen and len(ancestors) < cfg.lineage_depth:
        seen.add(parent)
        try:
            up = zoo.get(parent)
        except NotFound:  # a parent removed meanwhile: the chain ends there
            break
        ancestors.append(brief(up))
        parent = up.parent_id
    kids = zoo.get_many(catalog.children(zoo, record.id, cfg.lineage_children))
    return {"record": brief(record), "ancestors": ancestors, "children": [brief(c) for c in kids]}


@router.get("/query", summary="Semantic search: the k records most like the text (igpg-zoo query)")
def query(
    state: State, filters: Filters,
    q: Annotated[str, Query(min_length=1, max_length=2000, description="what you are looking for, in words")],
    k: Annotated[int, Query(ge=1, le=_DEFAULTS.max_k, description="how many results")] = 10,
) -> JSONResponse:
    with state.lock:
        state.fresh_index()
        try:
            hits = state.zoo.query(q, k=min(k, state.config.max_k), **filters.as_kwargs())
        except NotFound:  # another worker removed a hit and has not saved the index yet: check it now
            state.fresh_index(force=True)
            hits = state.zoo.query(q, k=min(k, state.config.max_k), **filters.as_kwargs())
    # JSON values already: sent as they are, without FastAPI's encoder walking them again
    return JSONResponse({"query": q, "hits": [hit_json(h) for h in hits], "count": len(hits)})


@router.get("/artifacts", summary="Stored generator artifacts: tokenizers and priors (igpg-zoo artifacts)")
def artifacts(state: State, kind: Literal["tokenizer", "prior"] | None = None) -> list[dict[str, Any]]:
    return [artifact_json(a) for a in state.zoo.list_artifacts(kind)]


@router.get("/records/{record_id}/export", summary="Download a record exported and parity-checked",
            response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}, "application/zip": {}}}})
def export(state: State, record_id: RecordId, format: ExportFormat = "safetensors") -> FileResponse:
    from igpg_zoo.export import export_weights
    from igpg_zoo.export.record import record_meta

    zoo = state.zoo
    record = zoo.get(record_id)
    weights = zoo.load_weights(record_id)
    work = Path(tempfile.mkdtemp(prefix="igpg-zoo-export-"))
    try:
        stem = f"record-{record.id}-{format}"
        suffix = {"onnx": ".onnx", "safetensors": ".safetensors"}.get(format)
        report = export_weights(record.arch, weights, format, work / (stem + (suffix or "")), record_meta(record))
        if suffix is None:  # a folder: sent as one zip
            sent = Path(shutil.make_archive(str(work / stem), "zip", root_dir=report.path))
            media = "application/zip"
        else:
            sent, media = report.path, "application/octet-stream"
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return FileResponse(sent, media_type=media, filename=sent.name,
                        headers={"X-Parity-Max-Abs-Diff": f"{report.max_abs_diff:.3g}"},
                        background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))


def _formats(arch: str) -> list[str]:
    """The export formats the record's adapter supports (just safetensors when none is installed)."""
    from igpg_zoo.adapters import get_adapter
    from igpg_zoo.errors import ZooError
    from igpg_zoo.export import supported_formats

    try:
        return list(supported_formats(get_adapter(arch)))
    except ZooError:
        return ["safetensors"]
