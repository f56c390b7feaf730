"""The web page, its charts, the shareable report and the OpenAPI page, all served offline.

The page (``static/``) is plain HTML, CSS and JavaScript shipped in the package; charts are SVG drawn
by matplotlib on the server (``igpg_zoo.report.plots``), cached until the registry changes. The
OpenAPI page is Swagger UI from the files the ``fastapi-offline`` package ships (no CDN).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from igpg_zoo.report import catalog
from igpg_zoo.server.deps import State

STATIC = Path(__file__).resolve().parent / "static"
router = APIRouter(include_in_schema=False)
PlotName = Literal["map", "accuracy", "novelty", "finetune"]
PLOTS = get_args(PlotName)


@router.get("/")
def index(state: State) -> FileResponse:
    state.preload_charts()
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/report")
async def report(state: State) -> HTMLResponse:
    from igpg_zoo.report import render_report

    return HTMLResponse(await run_in_threadpool(render_report, state.zoo, state.config.map_points))


plots = APIRouter(prefix="/api", tags=["read"])


@plots.get("/plots/{name}.svg", summary="A chart of the zoo as SVG (the zoo map and the report's charts)",
           response_class=Response, responses={200: {"content": {"image/svg+xml": {}}}})
async def plot(state: State, name: PlotName) -> Response:
    svg = await run_in_threadpool(_plot, state, name)
    return Response(svg, media_type="image/svg+xml", headers={"Cache-Control": "no-cache"})


def _plot(state, name: str) -> bytes:
    from igpg_zoo.report.plots import draw

    key = (name, catalog.version(state.zoo))
    if key not in state.plot_cache:
        if len(state.plot_cache) >= 4 * len(PLOTS):  # charts of older registry states
            state.plot_cache.clear()
        state.plot_cache[key] = draw(state.zoo, name, state.config.map_points)
    return state.plot_cache[key]


def mount(app: FastAPI) -> None:
    """The page, its static files, the charts and the offline OpenAPI page."""
    app.include_router(router)
    app.include_router(plots)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    swagger = _swagger_folder()
    if swagger is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        if swagger is None:  # the serve extra is not fully installed: link the schema itself
            return HTMLResponse('<p>The interactive API page needs the fastapi-offline package '
                                '(pip install "igpg-zoo[serve]"); the schema is at <a href="/openapi.json">'
                                '/openapi.json</a>.</p>')
        return get_swagger_ui_html(openapi_url="/openapi.json", title="igpg-zoo API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon.png")


def _swagger_folder() -> Path | None:
    """Swagger UI's files as the fastapi-offline package ships them (only its files are used)."""
    from importlib.util import find_spec

    spec = find_spec("fastapi_offline")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "static"
    return folder if (folder / "swagger-ui-bundle.js").is_file() else None
