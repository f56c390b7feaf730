"""The front door over HTTP: ``POST /api/answer`` (which weights to start from) and ``POST /api/select``.

The data is a built-in dataset or generated task named by ``dataset``, or your own ``.npz`` (arrays
``x`` and ``y``; read with ``allow_pickle=False``) sent as the request body; the server writes it to a
temporary file of its own naming and deletes it. Recording the answer in the registry (``record``) is a
write and needs the token; select's cached estimates are derived data and are stored as in the CLI.
"""

from __future__ import annotations

import tempfile
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from igpg_zoo.answer.settings import ESTIMATES, AnswerSettings, SelectSettings
from igpg_zoo.errors import ConfigError
from igpg_zoo.records import MAX_ID
from igpg_zoo.server.deps import Filters, FilterParams, State, check_token
from igpg_zoo.server.errors import error
from igpg_zoo.server.routes_write import read_body
from igpg_zoo.server.state import ServerState

router = APIRouter(prefix="/api", tags=["answer"])
Estimate = Literal[ESTIMATES]  # the answer package's estimates; the default is its settings'
DataName = Annotated[str | None, Query(max_length=256, description="built-in dataset or generated task name "
                                                                    "(or send your .npz as the body)")]
_NPZ = {"requestBody": {"required": False, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def _filters(f: FilterParams) -> dict:
    return {k: v for k, v in (("dataset", f.dataset), ("task", f.task), ("kind", f.kind), ("tags", f.tag),
                              ("where", f.where)) if v}


@contextmanager
def _data(dataset: str | None, body: bytes):
    """The data to score on: a loaded built-in dataset, the uploaded .npz as a temporary file, or None."""
    if dataset and body:
        raise ConfigError("give the data once: a dataset name or an .npz body, not both")
    if dataset:
        from igpg_zoo.data import load_dataset

        yield load_dataset(dataset)
        return
    if not body:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="igpg-zoo-data-") as tmp:
        path = Path(tmp) / "data.npz"
        path.write_bytes(body)
        yield path


async def _body(request: Request, state: ServerState):
    body = await read_body(request, state.config.max_upload_bytes, allow_empty=True)
    if isinstance(body, int):
        return None, error(413, f"the data is larger than this server takes ({state.config.max_upload_bytes:,} "
                                "bytes); run 'igpg-zoo query --data' on the registry's machine")
    return body, None


@router.post("/answer", summary="Which weights to start from: search, and with data score stored and generated "
                                "starts (igpg-zoo query --data)", openapi_extra=_NPZ)
async def answer(
    request: Request, state: State, filters: Filters,
    text: Annotated[str | None, Query(max_length=2000)] = None, dataset: DataName = None,
    mode: Literal["auto", "retrieve", "generate"] = "auto", k: Annotated[int, Query(ge=1, le=50)] = 5,
    estimate: Estimate = AnswerSettings.estimate, n: Annotated[int, Query(ge=1, le=16)] = 5,
    seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    prior: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    record: Annotated[bool, Query(description="record the answer in the registry (needs the token)")] = False,
    authorization: Annotated[str | None, Header()] = None,
):
    if record:
        check_token(state, authorization)
    body, refused = await _body(request, state)
    if refused is not None:
        return refused
    settings = replace(AnswerSettings(), mode=mode, k=k, estimate=estimate, n_generate=n, seed=seed)

    def run():
        with _data(dataset, body) as data, state.lock:
            state.fresh_index()
            result = state.zoo.answer(text, data, filters.arch, filters=_filters(filters), settings=settings,
                                      record=record, prior_id=prior)
            if record:
                state.after_write()
            return result.to_dict()

    return JSONResponse(await run_in_threadpool(run))


@router.post("/select", summary="Stored members ranked as starts for your data, with static baselines "
                                "(igpg-zoo select)", openapi_extra=_NPZ)
async def select(
    request: Request, state: State, filters: Filters, dataset: DataName = None,
    k: Annotated[int, Query(ge=1, le=100)] = 10, estimate: Estimate = SelectSettings.estimate,
    order: Literal["estimate", "acc", "params"] = "estimate", seed: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
):
    body, refused = await _body(request, state)
    if refused is not None:
        return refused
    settings = replace(SelectSettings(), k=k, estimate=estimate, order=order, seed=seed)

    def run():
        with _data(dataset, body) as data:
            if data is None:
                raise ConfigError("select needs data: name a dataset or send your .npz as the body")
            return state.zoo.select(data, filters.arch, filters=_filters(filters), settings=settings).to_dict()

    return JSONResponse(await run_in_threadpool(run))
