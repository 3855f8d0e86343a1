"""The sandbox's HTTP surface: an Ed-Fi ODS/API 7.3 emulator as a Starlette app.

Routes (each optionally behind ``/{tenant}`` and ``/{schoolYear}`` when the
sandbox is configured with tenants or school years):

    GET  /                                   discovery document
    POST /oauth/token                        client_credentials (Basic, form or JSON)
    GET  /metadata/                          list of OpenAPI documents
    GET  /metadata/data/v3/{resources|descriptors}/swagger.json
    GET  /metadata/data/v3/dependencies      JSON, or GraphML with Accept: application/graphml
    GET  /changeQueries/v1/availableChangeVersions
    GET|POST /data/v3/{ns}/{resource}        (+ /deletes, /keyChanges, /partitions)
    GET|PUT|DELETE /data/v3/{ns}/{resource}/{id}
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from random import Random
from typing import Any
from urllib.parse import parse_qs

import anyio
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from edfi.model import ApiModel, Resource

from .store import (
    MAX_LIMIT,
    ApiError,
    Page,
    Store,
    Window,
    bad_request,
    decode_token,
    encode_token,
    not_found,
)

JSON = "application/json"
VERSION = "7.3"
_METHODS = frozenset({"GET", "POST", "PUT", "DELETE"})


@dataclass
class Faults:
    """Failures the sandbox injects into data and change-query requests.

    ``error``: share of requests answered 500 or 503; ``throttle``: share answered
    429 with ``Retry-After: retry_after``; ``drop``: share whose connection is cut
    in the middle of the body; ``latency_ms``: added to every response;
    ``token_ttl``: seconds a token lives; ``malformed``: resource names whose
    collection pages are served as broken JSON; ``forbid_students_until_enrolled``:
    refuse POSTs of students (403) until a school association names them.
    """

    error: float = 0.0
    throttle: float = 0.0
    retry_after: float = 1.0
    drop: float = 0.0
    latency_ms: float = 0.0
    token_ttl: float | None = None
    malformed: frozenset[str] = frozenset()
    forbid_students_until_enrolled: bool = False
    seed: int = 1
    rng: Random = field(default_factory=Random, repr=False)

    def __post_init__(self) -> None:
        self.rng = Random(self.seed)

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """``error=0.05,throttle=0.02,retry_after=1,drop=0.01,latency_ms=30,token_ttl=5``."""
        faults = cls()
        if not spec:
            return faults
        values: dict[str, Any] = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            name, _, raw = part.partition("=")
            name = name.strip()
            if name not in cls.__dataclass_fields__ or name == "rng":
                known = ", ".join(n for n in cls.__dataclass_fields__ if n != "rng")
                raise ValueError(f"unknown fault {name!r} in --faults; known: {known}")
            if name == "malformed":
                values[name] = frozenset(x for x in raw.split("|") if x)
            elif name == "forbid_students_until_enrolled":
                values[name] = raw.strip().lower() in ("1", "true", "yes", "")
            elif name == "seed":
                values[name] = int(raw)
            else:
                values[name] = float(raw)
        return cls(**values)

    @property
    def active(self) -> bool:
        return bool(self.error or self.throttle or self.drop or self.latency_ms)


@dataclass
class Token:
    value: str
    expires: float
    scope: str  # tenant the token was issued for ("" when none)
    lifetime: float = 0.0
    last_used: float = 0.0
    snapshots: dict[int, int] = field(default_factory=dict)  # id(store) -> change version


class Sandbox:
    """State shared by every request: model, data sets, credentials, tokens, faults."""

    def __init__(
        self,
        model: ApiModel,
        documents: list[dict[str, Any]],
        stores: Mapping[tuple[str, int | None], Store],
        *,
        client_id: str = "sandbox",
        client_secret: str | None = None,
        tenants: list[str] | None = None,
        years: list[int] | None = None,
        faults: Faults | None = None,
        token_lifetime: int = 1800,
    ):
        self.model = model
        self.documents = documents
        self.stores = dict(stores)
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(18)
        self.tenants = tenants or []
        self.years = years or []
        self.faults = faults or Faults()
        self.token_lifetime = token_lifetime
        self.tokens: dict[str, Token] = {}
        self.request_count = 0
        self.app = self._build_app()

    # -- public helpers --------------------------------------------------------------
    def store(self, year: int | None = None, tenant: str = "") -> Store:
        if year is None and self.years:
            year = self.years[-1]
        return self.stores[(tenant, year)]

    def take_snapshot(self, store: Store) -> int:
        """Refresh what ``Use-Snapshot`` reads see, for every session: the data as of now."""
        cv = store.newest_change_version
        for token in self.tokens.values():
            token.snapshots[id(store)] = cv
        return cv

    @staticmethod
    def _snapshot_for(store: Store, token: Token) -> int:
        """The snapshot a session reads: taken at its first ``Use-Snapshot`` read.

        Each client session (token) reads one stable view, so a run sees no
        change made while it pulls; the next run, with a new token, sees them.
        """
        return token.snapshots.setdefault(id(store), store.newest_change_version)

    def _inherited_snapshots(self, tenant: str) -> dict[int, int]:
        """A renewed token continues the session of one that expired (or is about to)."""
        now = time.monotonic()
        candidates = [
            t
            for t in self.tokens.values()
            if t.scope == tenant
            and t.snapshots
            and t.expires - now < 0.25 * t.lifetime
            and now - t.last_used < 60
        ]
        if not candidates:
            return {}
        return dict(max(candidates, key=lambda t: t.last_used).snapshots)

    # -- app -------------------------------------------------------------------------
    def _build_app(self) -> Starlette:
        methods = ["GET", "POST", "PUT", "DELETE"]
        return Starlette(
            routes=[
                Route("/", self.dispatch, methods=methods),
                Route("/{path:path}", self.dispatch, methods=methods),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Requests go straight to ``dispatch``; Starlette's router answers the rest.

        Every API route is the one catch-all route anyway, and skipping the
        router and its middleware saves a good part of a POST's cost to the
        server. An unexpected exception is answered 500, as Starlette's
        ``ServerErrorMiddleware`` does, and re-raised for the server to log.
        """
        if scope["type"] != "http" or scope["method"] not in _METHODS:
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            response = await self.dispatch(Request(scope, receive))
            await response(scope, receive, sending)
        except Exception:
            if not started:
                await PlainTextResponse("Internal Server Error", 500)(scope, receive, send)
            raise

    async def dispatch(self, request: Request) -> Response:
        self.request_count += 1
        parts = [p for p in request.url.path.split("/") if p]
        tenant = ""
        year: int | None = None
        if self.tenants:
            if not parts or parts[0] not in self.tenants:
                return _problem(
                    not_found(
                        "Unknown tenant; the first path segment must name a tenant: "
                        + ", ".join(self.tenants)
                    )
                )
            tenant = parts.pop(0)
        if self.years and parts and parts[0].isdigit():
            year = int(parts.pop(0))
            if year not in self.years:
                return _problem(not_found(f"School year {year} is not served here."))
        try:
            if not parts:
                return self.discovery(request, tenant)
            head = parts[0]
            if head == "oauth" and parts[1:] == ["token"]:
                return await self.oauth(request, tenant)
            if head == "metadata":
                return self.metadata(request, parts[1:], tenant)
            if head in ("data", "changeQueries"):
                token = self._authorize(request, tenant)
                if self.years and year is None:
                    raise not_found(
                        "This API is year-specific: put the school year first in "
                        "the path, e.g. /" + str(self.years[-1]) + "/data/v3/..."
                    )
                store = self.stores[(tenant, year)]
                fault = await self._inject(request)
                if fault is not None:
                    return fault
                if head == "changeQueries":
                    return self.change_versions(request, store, token, parts[1:])
                return await self.data(request, store, token, parts[1:])
            raise not_found()
        except ApiError as err:
            return _problem(err)

    # -- discovery, auth, metadata ----------------------------------------------------
    def discovery(self, request: Request, tenant: str) -> Response:
        base = str(request.base_url).rstrip("/") + (f"/{tenant}" if tenant else "")
        year = "/{schoolYearFromRoute}" if self.years else ""
        body: dict[str, Any] = {
            "version": VERSION,
            "informationalVersion": VERSION,
            "suite": "3",
            "build": "7.3.0.0",
            "applicationName": "Ed-Fi ODS / API (edfi-flows sandbox)",
            "dataModels": [
                {"name": "Ed-Fi", "version": "5.0.0", "informationalVersion": "DS 5.0 subset"},
                {"name": "LMSX", "version": "1.0.0", "informationalVersion": "LMS Toolkit"},
            ],
            "urls": {
                "dependencies": f"{base}{year}/metadata/data/v3/dependencies",
                "openApiMetadata": f"{base}{year}/metadata/",
                "oauth": f"{base}/oauth/token",
                "dataManagementApi": f"{base}{year}/data/v3/",
                "xsdMetadata": f"{base}{year}/metadata/xsd",
                "changeQueries": f"{base}{year}/changeQueries/v1/",
            },
        }
        if self.years:
            body["schoolYears"] = self.years
        return _json(body)

    async def oauth(self, request: Request, tenant: str) -> Response:
        if request.method != "POST":
            raise ApiError(405, "method-not-allowed", "Method Not Allowed", "Use POST.")
        raw = await request.body()
        fields: dict[str, str] = {}
        if request.headers.get("content-type", "").startswith(JSON):
            try:
                data = orjson.loads(raw or b"{}")
                fields = {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
            except orjson.JSONDecodeError:
                fields = {}
        else:
            fields = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                fields.setdefault("client_id", user)
                fields.setdefault("client_secret", pw)
            except (ValueError, UnicodeDecodeError):
                pass
        if fields.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        if not (
            secrets.compare_digest(fields.get("client_id", ""), self.client_id)
            and secrets.compare_digest(fields.get("client_secret", ""), self.client_secret)
        ):
            return _json(
                {
                    "error": "invalid_client",
                    "error_description": "Invalid client or Invalid client credentials",
                },
                401,
            )
        lifetime = self.faults.token_ttl or self.token_lifetime
        value = secrets.token_hex(16)
        self.tokens[value] = Token(
            value,
            time.monotonic() + lifetime,
            tenant,
            lifetime,
            time.monotonic(),
            self._inherited_snapshots(tenant),
        )
        return _json({"access_token": value, "expires_in": int(lifetime), "token_type": "bearer"})

    def _authorize(self, request: Request, tenant: str) -> Token:
        auth = request.headers.get("authorization", "")
        if not auth.lower().startswith("bearer "):
            raise ApiError(
                401,
                "security:authentication",
                "Authentication Failed",
                "Authorization header is missing or is not a bearer token.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        token = self.tokens.get(auth[7:].strip())
        if token is None or token.scope != tenant:
            raise ApiError(
                401,
                "security:authentication",
                "Authentication Failed",
                "Invalid token.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if time.monotonic() >= token.expires:
            raise ApiError(
                401,
                "security:authentication",
                "Authentication Failed",
                "Token is expired.",
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
        token.last_used = time.monotonic()
        return token

    def metadata(self, request: Request, parts: list[str], tenant: str) -> Response:
        base = str(request.url).split("/metadata", 1)[0]
        if parts in ([], [""]):
            return _json(
                [
                    {
                        "name": "Resources",
                        "endpointUri": f"{base}/metadata/data/v3/resources/swagger.json",
                        "prefix": "",
                    },
                    {
                        "name": "Descriptors",
                        "endpointUri": f"{base}/metadata/data/v3/descriptors/swagger.json",
                        "prefix": "",
                    },
                ]
            )
        if parts == ["data", "v3", "resources", "swagger.json"]:
            return _json(self.documents[0])
        if parts == ["data", "v3", "descriptors", "swagger.json"]:
            return _json(self.documents[1])
        if parts == ["xsd"]:
            return _json([])  # the sandbox publishes no XSD files
        if parts == ["data", "v3", "dependencies"]:
            if "application/graphml" in request.headers.get("accept", ""):
                return Response(self._graphml(), media_type="application/graphml")
            return _json(self.model.dependency_list())
        raise not_found()

    def _graphml(self) -> str:
        lines = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">',
            '  <graph id="EdFi Dependencies" edgedefault="directed">',
        ]
        for p in self.model.load_order():
            lines.append(f'    <node id="{p}" />')
        for p in self.model.load_order():
            for d in sorted(self.model.dependencies[p]):
                lines.append(f'    <edge source="{d}" target="{p}" />')
        lines += ["  </graph>", "</graphml>"]
        return "\n".join(lines) + "\n"

    # -- faults ------------------------------------------------------------------------
    async def _inject(self, request: Request) -> Response | None:
        f = self.faults
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if not (f.error or f.throttle or f.drop):
            return None
        roll = f.rng.random()
        if roll < f.error:
            status = 500 if f.rng.random() < 0.5 else 503
            return _problem(
                ApiError(
                    status,
                    "internal-server-error",
                    "Injected Failure",
                    "The sandbox injected this failure (--faults error).",
                )
            )
        roll -= f.error
        if roll < f.throttle:
            return _problem(
                ApiError(
                    429,
                    "too-many-requests",
                    "Too Many Requests",
                    "The sandbox injected this throttle (--faults throttle).",
                    headers={"Retry-After": f"{f.retry_after:g}"},
                )
            )
        roll -= f.throttle
        if roll < f.drop:
            return _DroppedResponse()
        return None

    # -- change queries ------------------------------------------------------------------
    def change_versions(
        self, request: Request, store: Store, token: Token, parts: list[str]
    ) -> Response:
        if parts != ["v1", "availableChangeVersions"]:
            raise not_found()
        newest = store.newest_change_version
        if _snapshot_requested(request):
            newest = self._snapshot_for(store, token)
        return _json({"oldestChangeVersion": 0, "newestChangeVersion": newest})

    # -- resources ---------------------------------------------------------------------
    async def data(
        self, request: Request, store: Store, token: Token, parts: list[str]
    ) -> Response:
        if len(parts) < 3 or parts[0] != "v3":
            raise not_found("Data requests look like /data/v3/{namespace}/{resource}.")
        path = f"/{parts[1]}/{parts[2]}"
        resource = self.model.resources.get(path)
        if resource is None:
            raise not_found(f"The resource {path} is not part of this API.")
        rest = parts[3:]
        method = request.method
        if method == "GET":
            snapshot = self._snapshot_for(store, token) if _snapshot_requested(request) else None
            if not rest:
                return await self.get_collection(request, store, resource, snapshot)
            if rest == ["deletes"] or rest == ["keyChanges"]:
                if rest == ["keyChanges"] and not resource.key_changes:
                    raise not_found(f"{path} does not allow key changes.")
                return await self.get_tracked(request, store, resource, rest[0], snapshot)
            if rest == ["partitions"]:
                return await self.get_partitions(request, store, resource, snapshot)
            if len(rest) == 1:
                body = await anyio.to_thread.run_sync(store.get_by_id, resource, rest[0], snapshot)
                return Response(body, media_type=JSON)
            raise not_found()
        if method == "POST" and not rest:
            body = await _read_json(request)
            if self.faults.forbid_students_until_enrolled and resource.name == "students":
                await self._forbid_unenrolled(store, body)
            # a POST writes one record (no cascade): cheaper on the event loop than a thread hop
            result = store.upsert(resource, body)
            headers = {"ETag": f'"{result.cv}"'}
            if result.created:
                headers["Location"] = f"{str(request.url).split('?')[0]}/{result.id}"
            return Response(status_code=201 if result.created else 200, headers=headers)
        if method == "PUT" and len(rest) == 1:
            body = await _read_json(request)
            if "id" in body and body["id"] != rest[0]:
                raise bad_request("The identifier in the body does not match the one in the URL.")
            result = await anyio.to_thread.run_sync(
                store.put, resource, rest[0], body, _if_match(request)
            )
            return Response(status_code=204, headers={"ETag": f'"{result.cv}"'})
        if method == "DELETE" and len(rest) == 1:
            await anyio.to_thread.run_sync(store.delete, resource, rest[0], _if_match(request))
            return Response(status_code=204)
        raise ApiError(
            405,
            "method-not-allowed",
            "Method Not Allowed",
            f"{method} is not supported on this path.",
        )

    async def _forbid_unenrolled(self, store: Store, body: Any) -> None:
        """A target that refuses students until a school association grants access."""
        if not isinstance(body, dict):
            return
        ssa = self.model["/ed-fi/studentSchoolAssociations"]
        uid = body.get("studentUniqueId")

        def enrolled() -> bool:
            rows = store.count(ssa, Window(filters=(("$.studentReference.studentUniqueId", uid),)))
            return rows > 0

        existing = await anyio.to_thread.run_sync(
            store.find, self.model["/ed-fi/students"], {"studentUniqueId": uid}
        )
        if existing is not None and not await anyio.to_thread.run_sync(enrolled):
            raise ApiError(
                403,
                "security:authorization:access-denied:relationship",
                "Authorization Denied",
                "Access to the requested data could not be authorized: no relationship exists "
                f"between the caller's education organizations and student '{uid}'.",
            )

    def _window(
        self,
        request: Request,
        resource: Resource,
        snapshot: int | None,
        *,
        allow_filters: bool = True,
    ) -> Window:
        q = request.query_params
        known = {
            "offset",
            "limit",
            "totalCount",
            "minChangeVersion",
            "maxChangeVersion",
            "pageSize",
            "pageToken",
            "number",
        }
        filters: list[tuple[str, Any]] = []
        for name, value in q.multi_items():
            if name in known:
                continue
            if not allow_filters:
                raise bad_request(f"The query parameter '{name}' is not supported here.")
            filters.append(self._filter(resource, name, value))
        return Window(
            min_cv=_int_param(q, "minChangeVersion"),
            max_cv=_int_param(q, "maxChangeVersion"),
            filters=tuple(filters),
            snapshot=snapshot,
        )

    def _filter(self, resource: Resource, name: str, value: str) -> tuple[str, Any]:
        """A get-by-example parameter as a JSON path and a typed value."""
        for k in resource.key:
            if k.name == name:
                return "$." + ".".join(k.source), _coerce(k.kind, value, name)
        shape = resource.shape
        if name == "id":
            return "$.id", value
        if name in shape.scalars:
            return "$." + name, _coerce(shape.scalars[name].kind, value, name)
        for ref in shape.references.values():
            for f in ref.fields:
                if f.name == name:
                    return f"$.{ref.name}.{name}", _coerce(f.kind, value, name)
        raise bad_request(f"The query parameter '{name}' is not a property of {resource.path}.")

    async def get_collection(
        self, request: Request, store: Store, resource: Resource, snapshot: int | None
    ) -> Response:
        q = request.query_params
        w = self._window(request, resource, snapshot)
        headers: dict[str, str] = {}
        # 7.3 cursor paging: a GET without offset/limit starts a page-token chain
        cursor = "pageToken" in q or ("offset" not in q and "limit" not in q)
        if cursor:
            if "pageSize" in q and "pageToken" not in q:
                raise bad_request(
                    "pageToken is required when pageSize is specified; start "
                    "with a GET without paging parameters or use /partitions."
                )
            size = _int_param(q, "pageSize")
            size = 25 if size is None else size
            _check_limit(size, "pageSize", minimum=1)
            start, end = decode_token(q["pageToken"]) if "pageToken" in q else (0, 2**62)
            page: Page = await anyio.to_thread.run_sync(
                store.page_range, resource, w, start, end, size
            )
            if page.more and page.last_seq is not None:
                headers["Next-Page-Token"] = encode_token(page.last_seq + 1, end)
        else:
            offset = _int_param(q, "offset")
            offset = 0 if offset is None else offset
            limit = _int_param(q, "limit")
            limit = 25 if limit is None else limit
            _check_limit(limit, "limit")
            if offset < 0:
                raise bad_request("Offset cannot be a negative value.")
            page = await anyio.to_thread.run_sync(store.page_offset, resource, w, offset, limit)
        if q.get("totalCount", "").lower() == "true":
            total = await anyio.to_thread.run_sync(store.count, resource, w)
            headers["Total-Count"] = str(total)
        body = page.body
        if resource.name in self.faults.malformed:
            body = body[: max(1, len(body) // 2)]
        return Response(body, media_type=JSON, headers=headers)

    async def get_tracked(
        self, request: Request, store: Store, resource: Resource, kind: str, snapshot: int | None
    ) -> Response:
        q = request.query_params
        w = self._window(request, resource, snapshot, allow_filters=False)
        offset = _int_param(q, "offset")
        offset = 0 if offset is None else offset
        limit = _int_param(q, "limit")
        limit = 25 if limit is None else limit
        _check_limit(limit, "limit")
        table = "deletes" if kind == "deletes" else "key_changes"
        body, total = await anyio.to_thread.run_sync(
            store.tracked, resource, table, w, offset, limit
        )
        headers = {"Total-Count": str(total)} if q.get("totalCount", "").lower() == "true" else {}
        return Response(body, media_type=JSON, headers=headers)

    async def get_partitions(
        self, request: Request, store: Store, resource: Resource, snapshot: int | None
    ) -> Response:
        number = _int_param(request.query_params, "number")
        number = 1 if number is None else number
        if not 1 <= number <= 200:
            raise bad_request("number must be between 1 and 200.")
        w = self._window(request, resource, snapshot)
        tokens = await anyio.to_thread.run_sync(store.partitions, resource, w, number)
        return _json({"pageTokens": tokens})


class _DroppedResponse(Response):
    """Promise a body, send half of it, then cut the connection."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", JSON.encode()), (b"content-length", b"100000")],
            }
        )
        await send({"type": "http.response.body", "body": b'[{"id":"', "more_body": True})
        raise ConnectionAbortedError("sandbox fault: connection dropped mid-body")


def _if_match(request: Request) -> str | None:
    """The ``If-Match`` etag, unquoted (writes fail with 412 when it is stale)."""
    value = request.headers.get("if-match")
    return value.strip().strip('"') if value else None


def _snapshot_requested(request: Request) -> bool:
    return request.headers.get("use-snapshot", "").lower() == "true"


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def _problem(err: ApiError) -> Response:
    return Response(
        orjson.dumps(err.problem()),
        status_code=err.status,
        media_type="application/problem+json",
        headers=err.headers,
    )


async def _read_json(request: Request) -> Any:
    raw = await request.body()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}.") from exc


def _int_param(q: Mapping[str, str], name: str) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError as exc:
        raise bad_request(f"The value '{raw}' is not valid for {name}.") from exc


def _check_limit(limit: int, name: str, minimum: int = 0) -> None:
    if not minimum <= limit <= MAX_LIMIT:
        raise bad_request(f"{name} must be a value between {minimum} and {MAX_LIMIT}.")


def _coerce(kind: str, value: str, name: str) -> Any:
    if kind == "integer":
        try:
            return int(value)
        except ValueError as exc:
            raise bad_request(f"The value '{value}' is not valid for {name}.") from exc
    if kind == "number":
        try:
            return float(value)
        except ValueError as exc:
            raise bad_request(f"The value '{value}' is not valid for {name}.") from exc
    if kind == "boolean":
        return 1 if value.lower() == "true" else 0
    return value
