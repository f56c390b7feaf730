"""igpg-zoo: a model-zoo registry with semantic retrieval and IGPG weight generation.

Re-exports only; heavy modules load on first use.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["Zoo", "open_zoo", "get_adapter", "list_adapters", "__version__"]


def __getattr__(name: str):
    if name in ("Zoo", "open_zoo"):
        from igpg_zoo import zoo

        return getattr(zoo, name)
    if name in ("get_adapter", "list_adapters"):
        from igpg_zoo import adapters

        return getattr(adapters, name)
    raise AttributeError(name)
