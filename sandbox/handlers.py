"""What each route answers: discovery, OAuth, metadata, change versions and resources.

Handlers take the sandbox and the routed ``Call`` and return a response, or
raise the ``ApiError`` the ODS/API would answer. Reads that touch SQLite run
in a worker thread; a POST writes one record and stays on the event loop
(cheaper than the thread hop), where concurrent POSTs share a COMMIT.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.responses import Response

from edfi.model import Resource
from edfi.validate import pascal

from .problems import (
    ApiError,
    data_validation_failed,
    method_not_allowed,
    no_such_data,
    parameter_invalid,
    request_not_processed,
)
from .routing import Call
from .store import MAX_LIMIT, Page, Store, Window, decode_token, encode_token

if TYPE_CHECKING:
    from .app import Sandbox

JSON = "application/json"
VERSION = "7.3"
DEFAULT_PAGE_SIZE = MAX_LIMIT  # ODS/API: a GET without a limit returns up to the page size limit
MAX_PARTITIONS = 200
# query parameters that are not get-by-example filters (lower-cased)
PAGING = frozenset(
    {
        "offset",
        "limit",
        "totalcount",
        "minchangeversion",
        "maxchangeversion",
        "pagesize",
        "pagetoken",
        "number",
        "allowsmallpartitions",
        "correlationid",
    }
)


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


# -- discovery, OAuth, metadata ----------------------------------------------------------


async def discovery(sb: Sandbox, call: Call) -> Response:
    base = sb.public_base(call) + (f"/{call.tenant}" if call.tenant else "")
    year = "/{schoolYearFromRoute}" if sb.years else ""
    body: dict[str, Any] = {
        "version": VERSION,
        "informationalVersion": VERSION,
        "suite": "3",
        "build": "7.3.0.0",
        "applicationName": "Ed-Fi ODS / API (edfi-flows sandbox)",
        "dataModels": [
            {"name": "Ed-Fi", "version": "5.0.0", "informationalVersion": "DS 5.0"},
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
    if sb.years:
        body["schoolYears"] = sb.years
    return json_response(body)


async def oauth(sb: Sandbox, call: Call) -> Response:
    request = call.request
    granted = sb.auth.grant(
        await request.body(),
        request.headers,
        call.tenant,
        lifetime=sb.faults.token_ttl,
        scope_exists=lambda scope: sb.education_organization_exists(call.tenant, scope),
    )
    return json_response(granted.body, granted.status)


async def metadata_index(sb: Sandbox, call: Call) -> Response:
    base = sb.public_base(call) + call.prefix
    return json_response(
        [
            {
                "name": name,
                "endpointUri": f"{base}/metadata/data/v3/{section}/swagger.json",
                "prefix": "",
            }
            for name, section in (("Resources", "resources"), ("Descriptors", "descriptors"))
        ]
    )


async def metadata_document(sb: Sandbox, call: Call) -> Response:
    section = call.params["section"].lower()
    if section == "resources":
        return json_response(sb.documents[0])
    if section == "descriptors":
        return json_response(sb.documents[1])
    raise no_such_data(f"There is no '{call.params['section']}' metadata document.")


async def xsd(sb: Sandbox, call: Call) -> Response:
    return json_response([])  # the sandbox publishes no XSD files


async def dependencies(sb: Sandbox, call: Call) -> Response:
    if "application/graphml" in call.request.headers.get("accept", ""):
        return Response(sb.graphml(), media_type="application/graphml")
    return json_response(sb.dependencies.as_json())


# -- change queries ----------------------------------------------------------------------


async def change_versions(sb: Sandbox, call: Call) -> Response:
    store = _store(call)
    newest = store.newest_change_version
    if call.snapshot:
        newest = sb.snapshot_for(store, call)
    return json_response({"oldestChangeVersion": 0, "newestChangeVersion": newest})


# -- resources -----------------------------------------------------------------------------


async def get_collection(sb: Sandbox, call: Call) -> Response:
    store, resource = _store(call), _resource(call)
    q = call.query
    w = sb.window(call, resource)
    headers: dict[str, str] = {}
    # 7.3 cursor paging: a GET without offset/limit starts a page-token chain
    cursor = "pagetoken" in q or ("offset" not in q and "limit" not in q)
    if cursor:
        if "pagesize" in q and "pagetoken" not in q:
            raise parameter_invalid(
                "PageToken is required when PageSize is specified; start with a GET without "
                "paging parameters or use /partitions."
            )
        size = _int_param(q, "pagesize", DEFAULT_PAGE_SIZE)
        _check_limit(size, "PageSize", minimum=1)
        start, end = decode_token(q.get("pagetoken")) if "pagetoken" in q else (0, 2**62)
        page: Page = await anyio.to_thread.run_sync(store.page_range, resource, w, start, end, size)
    else:
        offset = _int_param(q, "offset", 0)
        limit = _int_param(q, "limit", DEFAULT_PAGE_SIZE)
        _check_limit(limit, "Limit")
        if offset < 0:
            raise parameter_invalid("Offset cannot be a negative value.")
        end = 2**62
        page = await anyio.to_thread.run_sync(store.page_offset, resource, w, offset, limit)
    if page.count and page.last_seq is not None:
        # every non-empty page names where the next one starts; an empty page ends a chain
        headers["Next-Page-Token"] = encode_token(page.last_seq + 1, end)
    if _bool_param(q, "totalcount"):
        total = await anyio.to_thread.run_sync(store.count, resource, w)
        headers["Total-Count"] = str(total)
    body = page.body
    if resource.name in sb.faults.malformed:
        body = body[: max(1, len(body) // 2)]
    return Response(body, media_type=JSON, headers=headers)


async def get_deletes(sb: Sandbox, call: Call) -> Response:
    return await _tracked(sb, call, "deletes")


async def get_key_changes(sb: Sandbox, call: Call) -> Response:
    return await _tracked(sb, call, "key_changes")


async def _tracked(sb: Sandbox, call: Call, table: str) -> Response:
    store, resource = _store(call), _resource(call)
    q = call.query
    w = sb.window(call, resource, allow_filters=False)
    offset = _int_param(q, "offset", 0)
    limit = _int_param(q, "limit", DEFAULT_PAGE_SIZE)
    _check_limit(limit, "Limit")
    if offset < 0:
        raise parameter_invalid("Offset cannot be a negative value.")
    if table == "key_changes" and not resource.key_changes:
        body, total = b"[]", 0  # keys of this resource cannot change
    else:
        body, total = await anyio.to_thread.run_sync(
            store.tracked, resource, table, w, offset, limit
        )
    headers = {"Total-Count": str(total)} if _bool_param(q, "totalcount") else {}
    return Response(body, media_type=JSON, headers=headers)


async def get_partitions(sb: Sandbox, call: Call) -> Response:
    store, resource = _store(call), _resource(call)
    number = _int_param(call.query, "number", 1)
    if not 1 <= number <= MAX_PARTITIONS:
        raise parameter_invalid(f"Number must be a value between 1 and {MAX_PARTITIONS}.")
    _bool_param(call.query, "allowsmallpartitions")  # accepted (and checked) as ODS/API 7.3 does
    w = sb.window(call, resource)
    tokens = await anyio.to_thread.run_sync(store.partitions, resource, w, number)
    return json_response({"pageTokens": tokens})


async def get_item(sb: Sandbox, call: Call) -> Response:
    store, resource = _store(call), _resource(call)
    id_ = resource_id(call.params["id"])
    snapshot = sb.snapshot_for(store, call) if call.snapshot else None
    body, cv = await anyio.to_thread.run_sync(store.get_by_id, resource, id_, snapshot)
    etag = f'"{cv}"'
    if _etag_value(call.request.headers.get("if-none-match")) == str(cv):
        return Response(status_code=304, headers={"ETag": etag})
    return Response(body, media_type=JSON, headers={"ETag": etag})


async def post(sb: Sandbox, call: Call) -> Response:
    store, resource = _store(call), _resource(call)
    body = await read_body(call)
    if sb.faults.forbid_students_until_enrolled and resource.name == "students":
        await sb.forbid_unenrolled(store, body)
    # a POST writes one record (no cascade): cheaper on the event loop than a thread hop,
    # and POSTs running together there share a COMMIT (Store.post)
    result = await store.post(resource, body)
    headers = {
        "ETag": f'"{result.cv}"',
        "Location": sb.location(call, resource, result.id),
    }
    return Response(status_code=201 if result.created else 200, headers=headers)


async def put(sb: Sandbox, call: Call) -> Response:
    store, resource = _store(call), _resource(call)
    id_ = resource_id(call.params["id"])
    body = await read_body(call)
    if isinstance(body, dict):
        given = next((v for k, v in body.items() if k.lower() == "id"), None)
        if given is not None and (not isinstance(given, str) or _as_guid(given) != id_):
            raise data_validation_failed(
                errors=["The identifier in the request body does not match the one in the URL."]
            )
    result = await anyio.to_thread.run_sync(
        store.put, resource, id_, body, _etag_value(call.request.headers.get("if-match"))
    )
    return Response(status_code=204, headers={"ETag": f'"{result.cv}"'})


async def delete(sb: Sandbox, call: Call) -> Response:
    store, resource = _store(call), _resource(call)
    id_ = resource_id(call.params["id"])
    await anyio.to_thread.run_sync(
        store.delete, resource, id_, _etag_value(call.request.headers.get("if-match"))
    )
    return Response(status_code=204)


# -- helpers -------------------------------------------------------------------------------


async def read_body(call: Call) -> Any:
    raw = await call.request.body()
    if not raw.strip():
        raise request_not_processed("A non-empty request body is required.")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise data_validation_failed(
            {"$": [f"The request body is not valid JSON: {exc}."]}
        ) from exc


def resource_id(raw: str) -> str:
    """A resource id from the route, as stored (32 hex digits); a non-GUID is a 400."""
    id_ = _as_guid(raw)
    if id_ is None:
        raise parameter_invalid(f"The value '{raw}' is not valid for Id: ids are GUIDs.")
    return id_


def _as_guid(raw: str) -> str | None:
    try:
        return uuid.UUID(raw).hex
    except ValueError:
        return None


def _store(call: Call) -> Store:
    assert call.store is not None
    return call.store


def _resource(call: Call) -> Resource:
    assert call.resource is not None
    return call.resource


def _etag_value(header: str | None) -> str | None:
    """An ``If-Match``/``If-None-Match`` etag, unquoted (``W/`` dropped)."""
    if not header:
        return None
    return header.strip().removeprefix("W/").strip('"')


def _int_param(q: Any, name: str, default: int) -> int:
    raw = q.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise parameter_invalid(
            f"The value '{raw}' is not valid for {_param_label(name)}."
        ) from exc


def _bool_param(q: Any, name: str) -> bool:
    raw = q.get(name)
    if raw is None or raw == "":
        return False
    low = raw.strip().lower()
    if low not in ("true", "false"):
        raise parameter_invalid(f"The value '{raw}' is not valid for {_param_label(name)}.")
    return low == "true"


_LABELS = {
    "totalcount": "TotalCount",
    "pagesize": "PageSize",
    "pagetoken": "PageToken",
    "minchangeversion": "MinChangeVersion",
    "maxchangeversion": "MaxChangeVersion",
    "allowsmallpartitions": "AllowSmallPartitions",
}


def _param_label(name: str) -> str:
    return _LABELS.get(name, pascal(name))


def _check_limit(limit: int, name: str, minimum: int = 0) -> None:
    if not minimum <= limit <= MAX_LIMIT:
        raise parameter_invalid(f"{name} must be a value between {minimum} and {MAX_LIMIT}.")


def window(call: Call, snapshot: int | None, filters: tuple[tuple[str, Any], ...]) -> Window:
    q = call.query
    min_cv = q.get("minchangeversion")
    max_cv = q.get("maxchangeversion")
    return Window(
        min_cv=None if min_cv in (None, "") else _int_param(q, "minchangeversion", 0),
        max_cv=None if max_cv in (None, "") else _int_param(q, "maxchangeversion", 0),
        filters=filters,
        snapshot=snapshot,
    )


def coerce(kind: str, value: str, name: str) -> Any:
    """A get-by-example value typed as the property is."""
    if kind in ("integer", "number"):
        try:
            return int(value) if kind == "integer" else float(value)
        except ValueError as exc:
            raise parameter_invalid(
                f"The value '{value}' is not valid for {pascal(name)}."
            ) from exc
    if kind == "boolean":
        if value.strip().lower() not in ("true", "false"):
            raise parameter_invalid(f"The value '{value}' is not valid for {pascal(name)}.")
        return 1 if value.strip().lower() == "true" else 0
    return value


def refuse(method: str, route_refusals: Mapping[str, str]) -> ApiError:
    return method_not_allowed(
        route_refusals.get(
            method, f"The endpoint of the request does not support the '{method}' method."
        )
    )
