"""The ASGI app: ``create_app(state)`` for one open registry, ``app_from_env()`` for uvicorn's workers.

Each uvicorn worker process calls ``app_from_env`` (``uvicorn.run(..., factory=True)``) and opens the
registry named by ``IGPG_ZOO_REGISTRY`` / ``IGPG_ZOO_BLOBS`` (set by ``igpg-zoo serve`` from its
flags); the write token comes from ``IGPG_ZOO_TOKEN``.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from igpg_zoo.server import errors, routes_answer, routes_page, routes_read, routes_write
from igpg_zoo.server.settings import TOKEN_ENV, ServeConfig
from igpg_zoo.server.state import ServerState

DESCRIPTION = ("The igpg-zoo registry over HTTP: list, show, search and export records; browse generator "
               "artifacts; generate weights. Reads are open; writes need `Authorization: Bearer TOKEN` "
               "with the server's IGPG_ZOO_TOKEN. Every error is one line of JSON: `{\"error\": \"...\"}`.")


def create_app(state: ServerState, warm: bool = True) -> FastAPI:
    """The app serving ``state``'s registry; ``warm`` loads embedder and index at start-up."""
    from igpg_zoo import __version__

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if warm:
            await run_in_threadpool(state.warm)
        yield
        state.close()

    app = FastAPI(title="igpg-zoo", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.zoo = state
    errors.install(app)
    app.include_router(routes_read.router)
    app.include_router(routes_write.router)
    app.include_router(routes_answer.router)
    routes_page.mount(app)
    return app


def app_from_env() -> FastAPI:
    """The app of one uvicorn worker: the registry and token from the environment."""
    state = ServerState.open(token=os.environ.get(TOKEN_ENV) or None, config=ServeConfig())
    return create_app(state)
