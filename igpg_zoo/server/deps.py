"""Request dependencies shared by the routes: the server state, the filters, the token check."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request

from igpg_zoo.errors import ConfigError
from igpg_zoo.records import KINDS
from igpg_zoo.server.errors import Unauthorized
from igpg_zoo.server.settings import TOKEN_ENV
from igpg_zoo.server.state import ServerState

MAX_FILTER_VALUES = 50  # values one filter may list


def get_state(request: Request) -> ServerState:
    return request.app.state.zoo


State = Annotated[ServerState, Depends(get_state)]


def _values(description: str):
    return Query(description=description, max_length=MAX_FILTER_VALUES)


@dataclass(frozen=True)
class FilterParams:
    arch: tuple[str, ...]
    dataset: tuple[str, ...]
    task: tuple[str, ...]
    kind: tuple[str, ...]
    tag: tuple[str, ...]
    where: tuple[str, ...]

    def as_kwargs(self) -> dict:
        return {"arch": self.arch, "dataset": self.dataset, "task": self.task, "kind": self.kind,
                "tags": self.tag, "where": self.where}


def filters(
    arch: Annotated[list[str], _values("architecture; * and ? match any text (repeat to OR)")] = [],  # noqa: B006
    dataset: Annotated[list[str], _values("dataset; * and ? allowed (repeat to OR)")] = [],  # noqa: B006
    task: Annotated[list[str], _values("task; * and ? allowed (repeat to OR)")] = [],  # noqa: B006
    kind: Annotated[list[str], _values("trained | finetuned | generated | imported (repeat to OR)")] = [],  # noqa: B006
    tag: Annotated[list[str], _values("tag; * and ? allowed (repeat to OR)")] = [],  # noqa: B006
    where: Annotated[list[str], _values("metric condition such as acc>=0.9 (repeat to AND)")] = [],  # noqa: B006
) -> FilterParams:
    unknown = sorted(set(kind) - set(KINDS))
    if unknown:
        raise ConfigError(f"unknown kind {', '.join(unknown)}; use one of {', '.join(KINDS)}")
    clean = [tuple(v for v in values if v) for values in (arch, dataset, task, kind, tag, where)]
    return FilterParams(*clean)


Filters = Annotated[FilterParams, Depends(filters)]


def require_token(state: State, authorization: Annotated[str | None, Header(
        description="Bearer TOKEN: the server's IGPG_ZOO_TOKEN; needed for every write")] = None) -> None:
    """Refuse (401) a write without the server's token; the comparison takes constant time."""
    check_token(state, authorization)


def check_token(state: ServerState, authorization: str | None) -> None:
    if not state.writable:
        raise Unauthorized(f"this server is read-only; restart it with {TOKEN_ENV} set to allow writes")
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise Unauthorized("writes need the header 'Authorization: Bearer TOKEN' with the server's token")
    if not state.token_ok(given.strip()):
        raise Unauthorized("wrong token; use the server's IGPG_ZOO_TOKEN")
