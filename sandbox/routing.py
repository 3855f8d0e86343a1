"""The sandbox's routes as one declared table, matched the way the ODS/API matches them.

A route is a path pattern (``/data/v3/{namespace}/{resource}/deletes``), its
handlers by method, what it needs (nothing, a token and a data set, or also a
resource), and the ODS/API's 405 text for the methods it refuses. Segments
match case-insensitively (``/ed-fi/Students``, ``/changeQueries/v1/AvailableChangeVersions``),
and query-parameter names too.

Matching is a lookup by segment count and a comparison of a few segments,
cheaper than a regular-expression router on the request path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from edfi.model import Resource

if TYPE_CHECKING:
    from .app import Sandbox
    from .auth import Token
    from .store import Store

Handler = Callable[["Sandbox", "Call"], Awaitable[Response]]

OPEN = "open"  # no token: discovery, OAuth, metadata
DATA = "data"  # a token and a data set
RESOURCE = "resource"  # a token, a data set and one of the model's resources


@dataclass(frozen=True)
class Route:
    path: str
    methods: Mapping[str, Handler]
    needs: str = OPEN
    refusals: Mapping[str, str] = field(default_factory=dict)  # method -> ODS 405 error

    @property
    def segments(self) -> tuple[str, ...]:
        return tuple(p.lower() for p in self.path.split("/") if p)


class Router:
    def __init__(self, routes: tuple[Route, ...]):
        self.routes = routes
        self._by_length: dict[int, list[tuple[Route, tuple[str, ...]]]] = {}
        for route in routes:
            segs = route.segments
            self._by_length.setdefault(len(segs), []).append((route, segs))

    def match(self, parts: list[str]) -> tuple[Route, dict[str, str]] | None:
        """The first route whose literal segments equal ``parts`` ignoring case."""
        for route, segs in self._by_length.get(len(parts), ()):
            params: dict[str, str] = {}
            for seg, part in zip(segs, parts, strict=True):
                if seg[:1] == "{":
                    params[seg[1:-1]] = part
                elif seg != part.lower():
                    break
            else:
                return route, params
        return None


class Query:
    """Query parameters by lower-cased name (the ODS/API binds them case-insensitively)."""

    __slots__ = ("_first", "items")

    def __init__(self, request: Request):
        self._first: dict[str, str] = {}
        if not request.scope["query_string"]:
            self.items: list[tuple[str, str]] = []
            return
        self.items = request.query_params.multi_items()
        for name, value in self.items:
            self._first.setdefault(name.lower(), value)

    def get(self, name: str, default: Any = None) -> Any:
        return self._first.get(name, default)

    def __contains__(self, name: object) -> bool:
        return name in self._first


@dataclass(slots=True)
class Call:
    """One request as the handlers see it, with what routing and auth found out."""

    request: Request
    params: dict[str, str]
    query: Query
    tenant: str
    year: int | None
    prefix: str  # the tenant and year segments of the path, as served ("/t1/2025")
    correlation_id: str | None
    headers: dict[bytes, str]  # the headers routing reads (lower-case names)
    token: Token | None = None
    store: Store | None = None
    resource: Resource | None = None
    snapshot: bool = False
