"""Every failed request answers one line of JSON, ``{"error": "..."}``, with a 4xx status for bad input.

The registry's error hierarchy (``igpg_zoo.errors``) maps to HTTP statuses here; request validation
(bad types, out-of-range numbers, malformed JSON) is 422; anything unexpected is a 500 whose message
names only the error's type (the details stay in the server log).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from igpg_zoo import errors as E

log = logging.getLogger("igpg_zoo.server")

STATUS: tuple[tuple[type[E.ZooError], int], ...] = (  # first match wins: subclasses before their bases
    (E.NotFound, 404),
    (E.NothingToReturn, 404),
    (E.DuplicateCheckpoint, 409),
    (E.GeneratorError, 409),
    (E.RegistryUnavailable, 503),
    (E.IntegrityError, 500),
    (E.ExportParityError, 500),
)


class Unauthorized(HTTPException):
    def __init__(self, detail: str):
        super().__init__(401, detail, headers={"WWW-Authenticate": "Bearer"})


def one_line(text: object) -> str:
    return " ".join(str(text).split()) or "error"


def error(status: int, message: object, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


def status_of(err: E.ZooError) -> int:
    for cls, status in STATUS:
        if isinstance(err, cls):
            return status
    return 400  # bad input of every other kind: metadata, filters, architecture, format, dataset


def _validation_message(err: RequestValidationError) -> str:
    problems = err.errors()
    if not problems:
        return "the request is malformed"
    first = problems[0]
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}"


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into one line of JSON."""

    @app.exception_handler(E.ZooError)
    async def zoo_error(_request: Request, err: E.ZooError) -> JSONResponse:
        return error(status_of(err), err)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, err: RequestValidationError) -> JSONResponse:
        return error(422, _validation_message(err))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, err: HTTPException) -> JSONResponse:
        message = err.detail if err.status_code != 404 or err.detail != "Not Found" else \
            "no such page or endpoint; see /docs for the API"
        return error(err.status_code, message, getattr(err, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, err: Exception) -> JSONResponse:
        log.exception("request failed")
        return error(500, f"internal error ({type(err).__name__}); see the server log")
