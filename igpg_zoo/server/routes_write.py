"""The write endpoints (add, remove, generate with register): each needs the server's token.

An added checkpoint is the request body itself (safetensors bytes, the only format taken over HTTP:
no pickle is ever read from a request); the server writes it to a temporary file of its own naming,
adds it, and deletes the file. No path from a request is ever opened.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from igpg_zoo.errors import CheckpointError, ConfigError
from igpg_zoo.records import KINDS, MAX_ID, CheckpointMeta
from igpg_zoo.server.deps import State, check_token, require_token
from igpg_zoo.server.errors import error
from igpg_zoo.server.routes_read import RecordId
from igpg_zoo.server.serialize import record_json
from igpg_zoo.server.settings import ServeConfig
from igpg_zoo.server.state import ServerState

router = APIRouter(prefix="/api", tags=["write (token)"])
_DEFAULTS = ServeConfig()
Text = Annotated[str, Query(max_length=1024)]


@router.post("/records", status_code=201, dependencies=[Depends(require_token)],
             summary="Add a checkpoint: the body is a .safetensors file (igpg-zoo add)",
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def add_record(
    request: Request, state: State, arch: Annotated[str, Query(min_length=1, max_length=1024)],
    task: Text = "", dataset: Text = "", name: Annotated[str | None, Query(max_length=512)] = None,
    metric: Annotated[list[str], Query(max_length=64, description="NAME=VALUE or NAME@DATASET=VALUE")] = [],  # noqa: B006
    tag: Annotated[list[str], Query(max_length=64)] = [],  # noqa: B006
    license: Text = "", source: Text = "",
    parent_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    kind: Annotated[str, Query(description="trained | finetuned | imported")] = "imported",
):
    from igpg_zoo.registry.manifest import parse_metric

    if kind not in KINDS or kind == "generated":
        raise ConfigError(f"kind must be one of trained, finetuned, imported, got '{kind}' "
                          "(generated weights are registered by /api/generate)")
    meta = CheckpointMeta(arch=arch, task=task, dataset=dataset, name=name, license=license, source=source,
                          metrics=tuple(parse_metric(m) for m in metric), tags=tuple(tag), parent_id=parent_id,
                          kind=kind)
    body = await read_body(request, state.config.max_upload_bytes)
    if isinstance(body, int):
        return error(413, f"the checkpoint is larger than this server takes ({state.config.max_upload_bytes:,} "
                          "bytes); add it with 'igpg-zoo add' on the registry's machine")
    result = await run_in_threadpool(_add, state, body, meta)
    return {**record_json(result.checkpoint), "created": result.created}


async def read_body(request: Request, limit: int, allow_empty: bool = False) -> bytes | int:
    """The body, or its size so far once it passes ``limit`` (nothing more is read)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        return int(declared)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return size
        chunks.append(chunk)
    if not size and not allow_empty:
        raise CheckpointError("the request body is empty; send the .safetensors file as the body")
    return b"".join(chunks)


def _add(state: ServerState, body: bytes, meta: CheckpointMeta):
    with tempfile.TemporaryDirectory(prefix="igpg-zoo-upload-") as tmp:
        path = Path(tmp) / "upload.safetensors"
        path.write_bytes(body)
        with state.lock:
            result = state.zoo.add(path, meta)
            state.after_write()
    return result


@router.delete("/records/{record_id}", dependencies=[Depends(require_token)],
               summary="Remove a record; its blob stays while another record uses it (igpg-zoo remove)")
def remove_record(state: State, record_id: RecordId) -> dict[str, Any]:
    with state.lock:
        record = state.zoo.remove(record_id)
        state.after_write()
    return {"removed": record_json(record), "blob_kept": state.zoo.blobs.has(record.sha256)}


class GenerateRequest(BaseModel):
    """What ``igpg-zoo generate`` takes, for a built-in dataset or generated task (no files)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    arch: str = Field(min_length=1, max_length=1024)
    dataset: str = Field(min_length=1, max_length=256, description="built-in dataset or generated task name")
    task: str | None = Field(None, max_length=1024, description="task text (default: the dataset's description)")
    n: int = Field(5, ge=1, le=_DEFAULTS.max_samples, description="samples, best first")
    seed: int = Field(0, ge=0, le=2**31 - 1)
    temperature: float = Field(1.0, ge=0.0, le=10.0)
    top_p: float | None = Field(0.9, gt=0.0, le=1.0)
    prior: int | None = Field(None, ge=1, le=MAX_ID, description="prior artifact id (default: latest)")
    add_to_registry: bool = Field(False, alias="register",
                                  description="add the best sample to the registry (needs the token)")


@router.post("/generate", tags=["generate"],
             summary="Generate weights for an architecture and dataset; register=true needs the token")
def generate(state: State, req: GenerateRequest, authorization: Annotated[str | None, Header()] = None
             ) -> dict[str, Any]:
    from igpg_zoo.data import load_dataset
    from igpg_zoo.data.embedding import dataset_embedding_for
    from igpg_zoo.igpg.generate import register_generated
    from igpg_zoo.igpg.sampling import SamplingSettings

    if req.add_to_registry:
        check_token(state, authorization)
    ds = load_dataset(req.dataset)
    emb = dataset_embedding_for(req.dataset)
    task = req.task or ds.info.description
    settings = SamplingSettings(temperature=req.temperature, top_p=req.top_p)
    with state.lock:  # one generation at a time: the generator's modules are shared
        results = state.generator(req.prior).generate(
            req.arch, task=task, data=ds, data_embedding=emb, n=req.n, settings=settings, seed=req.seed,
            dataset_name=req.dataset)
        out: dict[str, Any] = {"results": [_sample(g, i) for i, g in enumerate(results)],
                               "provenance": results[0].provenance}
        if req.add_to_registry:
            added = register_generated(state.zoo, results[0], task, req.dataset, ds, emb)
            state.after_write()
            out["registered_id"], out["registered_new"] = added.checkpoint.id, added.created
    return out


def _sample(g, rank: int) -> dict[str, Any]:
    nb = g.neighbour or {}
    return {"rank": rank, "val_acc": g.val_accuracy, "log_likelihood": g.log_likelihood,
            "nearest_id": nb.get("id"), "nearest_distance": nb.get("distance"),
            "relative_distance": nb.get("relative_distance"), "exact_copy_of": nb.get("exact_copy_of")}
