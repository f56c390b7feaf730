"""``igpg-zoo serve``: the registry over HTTP (FastAPI on uvicorn) and a web page to browse it.

``create_app(state)`` builds the ASGI app around one open registry (``ServerState``), which keeps
the embedder, the search index and the generator loaded between requests. Reads are open; writes
need the token of ``IGPG_ZOO_TOKEN``. Nothing here is imported by the CLI until ``serve`` runs.
"""
