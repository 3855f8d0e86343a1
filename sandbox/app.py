"""The sandbox's HTTP surface: an Ed-Fi ODS/API 7.3 emulator as an ASGI app.

Routes (each optionally behind ``/{tenant}`` and ``/{schoolYear}`` when the
sandbox is configured with tenants or school years; segments and query
parameter names match case-insensitively, as on the ODS/API):

    GET  /                                   discovery document
    POST /oauth/token                        client_credentials (Basic, form or JSON)
    GET  /metadata/                          list of OpenAPI documents
    GET  /metadata/data/v3/{resources|descriptors}/swagger.json
    GET  /metadata/data/v3/dependencies      JSON, or GraphML with Accept: application/graphml
    GET  /changeQueries/v1/availableChangeVersions
    GET|POST /data/v3/{ns}/{resource}        (+ /deletes, /keyChanges, /partitions)
    GET|PUT|DELETE /data/v3/{ns}/{resource}/{id}
    POST /bulk/v1/bulkOperations, /bulk/v1/uploads/{file_id}/chunk|commit (``sandbox.bulk``)
    GET  /bulk/v1/bulkOperations/{id}[/exceptions/{file_id}]

The table is ``ROUTES``; ``sandbox.auth`` grants and checks tokens,
``sandbox.faults`` injects failures, ``sandbox.handlers`` answers, and
``sandbox.store`` keeps the data.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from functools import cached_property
from typing import Any

import anyio
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive, Scope, Send

from edfi.model import ApiModel, Resource

from . import bulk
from . import handlers as h
from .auth import Auth, Token
from .dependencies import OdsDependencies
from .faults import Faults, inject
from .problems import (
    PROBLEM_JSON,
    ApiError,
    no_such_data,
    parameter_invalid,
    snapshot_write,
)
from .routing import DATA, RESOURCE, Call, Query, Route, Router
from .store import Store, Window

__all__ = ["ROUTES", "Faults", "Sandbox"]

_COLLECTION_REFUSALS = {
    "PUT": 'Resource collections cannot be replaced. To "upsert" an item in the collection, '
    'use POST. To update a specific item, use PUT and include the "id" in the route.',
    "DELETE": "Resource collections cannot be deleted. To delete a specific item, use DELETE "
    'and include the "id" in the route.',
}
_ITEM_REFUSALS = {
    "POST": 'Resource items can only be updated using PUT. To "upsert" an item in the data '
    'collection using POST, remove the "id" from the route.',
}
_WRITES = frozenset({"POST", "PUT", "DELETE"})
_ROUTING = frozenset(
    {
        b"host",
        b"authorization",
        b"use-snapshot",
        b"correlation-id",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
    }
)

ROUTES: tuple[Route, ...] = (
    Route("/", {"GET": h.discovery}),
    Route("/oauth/token", {"POST": h.oauth}),
    Route("/metadata", {"GET": h.metadata_index}),
    Route("/metadata/data/v3/dependencies", {"GET": h.dependencies}),
    Route("/metadata/data/v3/{section}/swagger.json", {"GET": h.metadata_document}),
    Route("/metadata/xsd", {"GET": h.xsd}),
    Route("/changeQueries/v1/availableChangeVersions", {"GET": h.change_versions}, DATA),
    Route(
        "/data/v3/{namespace}/{resource}",
        {"GET": h.get_collection, "POST": h.post},
        RESOURCE,
        _COLLECTION_REFUSALS,
    ),
    Route("/data/v3/{namespace}/{resource}/deletes", {"GET": h.get_deletes}, RESOURCE),
    Route("/data/v3/{namespace}/{resource}/keyChanges", {"GET": h.get_key_changes}, RESOURCE),
    Route("/data/v3/{namespace}/{resource}/partitions", {"GET": h.get_partitions}, RESOURCE),
    Route(
        "/data/v3/{namespace}/{resource}/{id}",
        {"GET": h.get_item, "PUT": h.put, "DELETE": h.delete},
        RESOURCE,
        _ITEM_REFUSALS,
    ),
    # the legacy Bulk Load Services of ODS/API 2.x-3.x (sandbox.bulk)
    Route("/bulk/v1/bulkOperations", {"POST": bulk.create_operation}, DATA),
    Route("/bulk/v1/bulkOperations/{id}", {"GET": bulk.get_operation}, DATA),
    Route("/bulk/v1/bulkOperations/{id}/exceptions/{file_id}", {"GET": bulk.get_exceptions}, DATA),
    Route("/bulk/v1/uploads/{file_id}/chunk", {"POST": bulk.upload_chunk}, DATA),
    Route("/bulk/v1/uploads/{file_id}/commit", {"POST": bulk.commit_upload}, DATA),
)


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
        self.auth = Auth(client_id, client_secret or secrets.token_urlsafe(18), token_lifetime)
        self.tenants = tenants or []
        self.years = years or []
        self.faults = faults or Faults()
        self.request_count = 0
        self.router = Router(ROUTES)
        self._tenants = {t.lower(): t for t in self.tenants}
        self._resources = {p.lower(): r for p, r in model.resources.items()}
        self._filters: dict[str, dict[str, tuple[str, str, str]]] = {}
        self.app = Starlette()  # what is not an HTTP request (lifespan) goes here

    @property
    def client_id(self) -> str:
        return self.auth.client_id

    @property
    def client_secret(self) -> str:
        return self.auth.client_secret

    @property
    def tokens(self) -> dict[str, Token]:
        """Every token granted, by value (tests count and clear them)."""
        return self.auth.tokens

    # -- public helpers --------------------------------------------------------------
    def store(self, year: int | None = None, tenant: str = "") -> Store:
        if year is None and self.years:
            year = self.years[-1]
        return self.stores[(tenant, year)]

    def take_snapshot(self, store: Store) -> int:
        """Refresh what ``Use-Snapshot`` reads see, for every session: the data as of now."""
        cv = store.newest_change_version
        for session in self.auth.sessions():
            session.snapshots[id(store)] = cv
        return cv

    def snapshot_for(self, store: Store, call: Call) -> int:
        """The snapshot a session reads: taken at its first ``Use-Snapshot`` read.

        Each client session reads one stable view, so a run sees no change made
        while it pulls; the next run, a new session, sees them.
        """
        assert call.token is not None
        snapshots = call.token.session.snapshots
        return snapshots.setdefault(id(store), store.newest_change_version)

    # -- ASGI ------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Requests go straight to ``dispatch``: the route table is matched there.

        An unexpected exception is answered 500, as Starlette's
        ``ServerErrorMiddleware`` does, and re-raised for the server to log.
        """
        if scope["type"] != "http":
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
        # the few headers routing needs, read from the raw list (Starlette's URL and
        # header objects cost more than the rest of a POST's routing)
        headers = {k: v.decode("latin-1") for k, v in request.scope["headers"] if k in _ROUTING}
        query = Query(request)
        correlation_id = query.get("correlationid") or headers.get(b"correlation-id")
        try:
            return await self._handle(request, headers, query, correlation_id)
        except ApiError as err:
            return problem_response(err, correlation_id)

    async def _handle(
        self,
        request: Request,
        headers: dict[bytes, str],
        query: Query,
        correlation_id: str | None,
    ) -> Response:
        parts = [p for p in request.scope["path"].split("/") if p]
        tenant, prefix = "", ""
        year: int | None = None
        if self.tenants:
            if not parts or parts[0].lower() not in self._tenants:
                raise no_such_data(
                    "The first segment of the path must name a tenant: " + ", ".join(self.tenants)
                )
            tenant = self._tenants[parts[0].lower()]
            prefix = "/" + parts.pop(0)
        if self.years and parts and parts[0].isdigit():
            year = int(parts.pop(0))
            if year not in self.years:
                raise no_such_data(f"School year {year} is not served here.")
            prefix += f"/{year}"
        matched = self.router.match(parts)
        if matched is None:
            raise no_such_data()
        route, params = matched
        method = request.method
        handler = route.methods.get(method)
        if handler is None:
            raise h.refuse(method, route.refusals)
        call = Call(request, params, query, tenant, year, prefix, correlation_id, headers)
        if route.needs in (DATA, RESOURCE):
            call.token = self.auth.authorize(headers.get(b"authorization", ""), tenant)
            if self.years and year is None:
                raise no_such_data(
                    "This API is year-specific: put the school year first in the path, e.g. /"
                    + str(self.years[-1])
                    + "/data/v3/..."
                )
            call.store = self.stores[(tenant, year)]
            call.snapshot = headers.get(b"use-snapshot", "").lower() == "true"
            if call.snapshot and method in _WRITES:
                raise snapshot_write()
            fault = await inject(self.faults)
            if isinstance(fault, ApiError):
                raise fault
            if fault is not None:
                return fault
            if route.needs == RESOURCE:
                path = f"/{params['namespace']}/{params['resource']}"
                resource = self._resources.get(path.lower())
                if resource is None:
                    raise no_such_data(f"The resource {path} is not part of this API.")
                call.resource = resource
        return await handler(self, call)

    # -- what handlers share -----------------------------------------------------------
    def public_base(self, call: Call) -> str:
        """The URL clients reach this server at, honouring ``X-Forwarded-Host/Port/Proto``."""
        headers = call.headers
        scope = call.request.scope
        scheme = (headers.get(b"x-forwarded-proto") or scope["scheme"]).split(",")[0].strip()
        host = (headers.get(b"x-forwarded-host") or headers.get(b"host") or "").split(",")[0]
        if not host.strip():
            server = scope.get("server") or ("localhost", None)
            host = server[0] if server[1] is None else f"{server[0]}:{server[1]}"
        host, given = _split_host(host.strip())
        port = (headers.get(b"x-forwarded-port") or "").split(",")[0].strip() or given
        default = {"http": "80", "https": "443"}.get(scheme)
        if port and port != default:
            host = f"{host}:{port}"
        return f"{scheme}://{host}{scope.get('root_path', '')}".rstrip("/")

    def location(self, call: Call, resource: Resource, id_: str) -> str:
        return f"{self.public_base(call)}{call.prefix}/data/v3{resource.path}/{id_}"

    def window(self, call: Call, resource: Resource, *, allow_filters: bool = True) -> Window:
        """What a read selects: change versions, get-by-example filters, snapshot."""
        filters: list[tuple[str, Any]] = []
        known = self.filters_of(resource)
        for name, value in call.query.items:
            low = name.lower()
            if low in h.PAGING:
                continue
            if not allow_filters:
                raise parameter_invalid(f"The query parameter '{name}' is not supported here.")
            spec = known.get(low)
            if spec is None:
                raise parameter_invalid(
                    f"The query parameter '{name}' is not a property of {resource.path}."
                )
            path, kind, label = spec
            filters.append((path, h.coerce(kind, value, label)))
        assert call.store is not None
        snapshot = self.snapshot_for(call.store, call) if call.snapshot else None
        return h.window(call, snapshot, tuple(filters))

    def filters_of(self, resource: Resource) -> dict[str, tuple[str, str, str]]:
        """Get-by-example parameters (lower-cased) -> (JSON path, kind, name).

        Every top-level property and every field of a top-level reference, by the
        names the OpenAPI document gives them: key fields (``gradingPeriodSchoolYear``),
        role-named reference fields (``nextYearSchoolId``, ``classOfSchoolYear``)
        and plain ones.
        """
        found = self._filters.get(resource.path)
        if found is not None:
            return found
        out: dict[str, tuple[str, str, str]] = {"id": ("$.id", "string", "id")}
        for k in resource.key:
            out.setdefault(k.name.lower(), ("$." + ".".join(k.source), k.kind, k.name))
        for s in resource.shape.scalars.values():
            out.setdefault(s.name.lower(), ("$." + s.name, s.kind, s.name))
        for ref in resource.shape.references.values():
            role = ref.name.removesuffix("Reference")
            entity = ref.schema.split("_", 1)[-1].removesuffix("Reference")
            prefixes = {role}
            if role.lower().endswith(entity.lower()) and len(role) > len(entity):
                prefixes.add(role[: -len(entity)])
            for f in ref.fields:
                spec = (f"$.{ref.name}.{f.name}", f.kind, f.name)
                out.setdefault(f.name.lower(), spec)
                for p in prefixes:
                    name = p + f.name[:1].upper() + f.name[1:]
                    out.setdefault(name.lower(), (spec[0], f.kind, name))
        self._filters[resource.path] = out
        return out

    def education_organization_exists(self, tenant: str, scope: str) -> bool:
        """Whether an OAuth ``scope`` names an education organization of the tenant's data."""
        if not scope.isdigit():
            return False
        members = self.model.abstract.get("edFi_educationOrganizationReference", ())
        for (t, _), store in self.stores.items():
            if t != tenant:
                continue
            for path in members:
                r = self.model[path]
                if len(r.key) == 1 and store.find(r, {r.key[0].name: int(scope)}) is not None:
                    return True
        return False

    async def forbid_unenrolled(self, store: Store, body: Any) -> None:
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
                "security:authorization",
                "Authorization Denied",
                "Access to the requested data could not be authorized. Hint: You may need to "
                "create a corresponding 'StudentSchoolAssociation' item.",
                errors=[
                    "No relationships have been established between the caller's education "
                    f"organization id claims and the resource item's 'StudentUniqueId' value "
                    f"('{uid}')."
                ],
            )

    @cached_property
    def dependencies(self) -> OdsDependencies:
        """The load order as the ODS/API computes it (descriptors first, persons split)."""
        return OdsDependencies(self.model)

    def graphml(self) -> str:
        return self.dependencies.as_graphml()


def _split_host(host: str) -> tuple[str, str]:
    """``example.org:8443`` -> (``example.org``, ``8443``); IPv6 literals keep their brackets."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else ""
    name, _, port = host.partition(":")
    return name, port


def problem_response(err: ApiError, correlation_id: str | None = None) -> Response:
    return Response(
        orjson.dumps(err.problem(correlation_id)),
        status_code=err.status,
        media_type=PROBLEM_JSON,
        headers=err.headers,
    )
