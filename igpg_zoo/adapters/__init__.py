"""Adapter discovery: entry-point group ``igpg_zoo.adapters``, loaded once, lazily.

Built-in adapters are declared in the same group by igpg-zoo's own ``pyproject.toml`` and are
also loaded from ``BUILTIN`` so a source checkout works. ``IGPG_ZOO_PLUGINS`` restricts which
third-party plugins load: ``none``, or a comma-separated list of names. A plugin that fails to
load becomes a warning and a row in ``igpg-zoo adapters``, never a crash.
"""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from importlib.metadata import entry_points

from igpg_zoo.adapters.base import Adapter
from igpg_zoo.adapters.validation import validate_weights
from igpg_zoo.errors import UnknownArchitecture

__all__ = ["Adapter", "AdapterInfo", "get_adapter", "list_adapters", "loaded_adapters", "register_adapter",
           "reset_adapters", "unregister_adapter", "validate_weights"]

GROUP = "igpg_zoo.adapters"
BUILTIN = {"smallnet": "igpg_zoo.adapters.smallnet:SmallNetAdapter"}


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    target: str  # "module:Class"
    distribution: str
    version: str
    state: str  # "ok" | "failed" | "disabled"
    message: str = ""


_adapters: dict[str, Adapter] | None = None
_infos: list[AdapterInfo] = []


def _load_target(name: str, target: str) -> Adapter:
    module_name, _, attr = target.partition(":")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except SystemExit as exc:  # a plugin that exits on import must not end the command
        raise RuntimeError(f"exited on import (SystemExit: {exc})") from None
    adapter = cls()
    if isinstance(adapter, Adapter) and getattr(adapter, "name", None) != name:
        raise TypeError(f"{target} has name {getattr(adapter, 'name', None)!r}, but its entry point is "
                        f"'{name}'; they must be equal")
    _check_contract(adapter, target)
    return adapter


def _check_contract(adapter, what: str) -> None:
    """What every adapter must have besides its methods: an igpg_zoo Adapter with a test_arch."""
    if not isinstance(adapter, Adapter):
        raise TypeError(f"{what} is not an igpg_zoo Adapter")
    if not isinstance(getattr(adapter, "test_arch", None), str):
        raise TypeError(f"{what} has no test_arch string (the contract test's architecture)")


def _candidates() -> list[tuple[str, str, str, str]]:
    """(name, target, distribution, version) for built-ins, then entry points."""
    found = {name: (name, target, "igpg-zoo", "builtin") for name, target in BUILTIN.items()}
    for ep in entry_points(group=GROUP):
        if ep.name in BUILTIN:
            continue
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        found[ep.name] = (ep.name, ep.value, dist, version)
    return list(found.values())


def _allowed(name: str) -> bool:
    if name in BUILTIN:
        return True
    wanted = os.environ.get("IGPG_ZOO_PLUGINS", "").strip()
    if not wanted:
        return True
    if wanted == "none":
        return False
    return name in {w.strip() for w in wanted.split(",")}


def _load_all() -> dict[str, Adapter]:
    global _adapters, _infos
    if _adapters is not None:
        return _adapters
    adapters: dict[str, Adapter] = {}
    infos: list[AdapterInfo] = []
    for name, target, dist, version in _candidates():
        if not _allowed(name):
            infos.append(AdapterInfo(name, target, dist, version, "disabled", "IGPG_ZOO_PLUGINS"))
            continue
        try:
            adapters[name] = _load_target(name, target)
            infos.append(AdapterInfo(name, target, dist, version, "ok"))
        except Exception as exc:  # a broken plugin must not break the others
            msg = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"igpg-zoo adapter plugin '{name}' failed to load ({msg})", stacklevel=2)
            infos.append(AdapterInfo(name, target, dist, version, "failed", msg))
    _adapters, _infos = adapters, infos
    return adapters


def reset_adapters() -> None:
    """Forget loaded adapters (tests, or after installing a plugin in-process)."""
    global _adapters, _infos
    _adapters, _infos = None, []


def register_adapter(adapter: Adapter) -> None:
    """Register an adapter instance in-process (tests, notebooks); replaces one of the same name.

    Held to the same contract as a plugin: a TypeError for one that is no Adapter or has no test_arch."""
    _check_contract(adapter, f"adapter {getattr(adapter, 'name', adapter)!r}")
    _load_all()[adapter.name] = adapter
    _infos[:] = [i for i in _infos if i.name != adapter.name]
    _infos.append(AdapterInfo(adapter.name, type(adapter).__qualname__, "in-process", "-", "ok"))


def unregister_adapter(name: str) -> None:
    _load_all().pop(name, None)
    _infos[:] = [i for i in _infos if i.name != name]


def list_adapters() -> list[AdapterInfo]:
    """Every adapter that was found, with its state."""
    _load_all()
    return list(_infos)


def loaded_adapters() -> list[Adapter]:
    return list(_load_all().values())


def get_adapter(arch: str) -> Adapter:
    """The first loaded adapter that supports ``arch``.

    An adapter whose ``supports`` raises is skipped with a warning (and named in the error when
    no adapter is found), so one broken plugin cannot hide the architectures of the others.
    """
    adapters = _load_all()
    broken = []
    for adapter in adapters.values():
        try:
            if adapter.supports(arch):
                return adapter
        except Exception as exc:  # a plugin's bug; the built-ins and other plugins keep working
            broken.append(adapter.name)
            warnings.warn(f"igpg-zoo adapter '{adapter.name}' failed in supports({arch!r}) "
                          f"({type(exc).__name__}: {exc}); skipped it", stacklevel=2)
    installed = ", ".join(sorted(adapters)) or "none"
    failed = [i.name for i in _infos if i.state == "failed"]
    hint = f" (failed to load: {', '.join(failed)})" if failed else ""
    hint += f" (raised in supports: {', '.join(broken)})" if broken else ""
    raise UnknownArchitecture(
        f"no adapter supports architecture '{arch}'; installed: {installed}{hint}. "
        "Check the spelling (docs/adapters.md), install a plugin (e.g. pip install -e plugins/igpg-zoo-timm) "
        "and run 'igpg-zoo adapters'"
    )
