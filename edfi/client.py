"""An async client for Ed-Fi ODS/APIs: discovery, OAuth, retries, one request budget.

One ``EdFiClient`` per API per flow run. Every request it sends -- whichever
task sends it -- passes one ``asyncio.Semaphore`` (max concurrent requests) and
one token bucket (requests per second), so a flow fanning out many resources
never exceeds what the API owner allows.

Retries live here, not in Prefect: connection failures, read timeouts, dropped
bodies, 5xx and 429 (honouring ``Retry-After``) are retried with exponential
backoff and full jitter; a request takes its token only once it holds its
slot, and a 401 renews the token once per token (however many requests it
failed) before the request is retried. URLs the server hands out receive
credentials only on the base URL's own origin. Errors that a person
must fix raise ``EdFiError`` subclasses whose message names the problem and
the fix, and never contains the client secret.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
from pydantic import SecretStr

# exceptions live in edfi.errors; re-exported so old imports keep working
from .errors import EdFiAuthError as EdFiAuthError
from .errors import EdFiConnectionError as EdFiConnectionError
from .errors import EdFiError as EdFiError
from .errors import EdFiMalformedError as EdFiMalformedError
from .errors import EdFiResponseError as EdFiResponseError
from .errors import EdFiResponseTooLargeError as EdFiResponseTooLargeError
from .errors import EdFiUnsupportedError as EdFiUnsupportedError
from .model import ApiModel, load_model
from .transport import AiohttpTransport, Answer, ResponseTooLargeError

log = logging.getLogger("edfi.client")

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
# 401s one request may answer with a token renewal before the 401 is reported: a token
# can expire on its way to the server, but a server refusing fresh tokens is a real error
MAX_RENEWALS = 3
# discovery URLs that receive credentials (the secret, or a token)
_CREDENTIALED_URLS = (
    "oauth",
    "dataManagementApi",
    "openApiMetadata",
    "dependencies",
    "changeQueries",
)


def check_base_url(url: str) -> None:
    """Refuse a base URL that is not http(s) or that carries credentials (``user:pass@``).

    Credentials in a URL end up stored verbatim, in logs and in error messages;
    the message names only the host, never what was embedded.
    """
    try:
        parts = urlsplit(url)
        has_userinfo = bool(parts.username or parts.password or "@" in parts.netloc)
    except ValueError:
        parts, has_userinfo = None, False
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        shown = url if parts is None or "@" not in (parts.netloc or "") else "(hidden)"
        raise EdFiError(
            f"The Ed-Fi base URL {shown!r} is not an http(s) URL; set it to the "
            "API's root, e.g. https://api.example.org/v7.3/api"
        )
    if has_userinfo:
        raise EdFiError(
            f"The Ed-Fi base URL for host {parts.hostname!r} has credentials in it "
            "(user:password@); remove them from the URL and put the client id and secret "
            "in the connection's client_id and client_secret fields."
        )


def choose_school_year(listed: Sequence[int], asked: int | None, base_url: str) -> int | None:
    """The school year a job uses on one API: the one asked for, else the latest listed.

    ``listed`` is the connection's ``school_years``. A year asked for must be one
    of them; with none listed it passes through as asked, and building a URL
    then says whether the API is year-specific (``EdFiClient.url``), so an
    unlisted year on a year-specific API still works.
    """
    if not listed:
        return asked
    if asked is None:
        return max(listed)
    if asked not in listed:
        raise EdFiError(
            f"school_year {asked} is not among the connection's school years "
            f"{list(listed)} ({base_url})."
        )
    return asked


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine (plain http to it never leaves the machine)."""
    if not host:
        return False
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL, the port spelled out, lower case."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme.lower()}://{(parts.hostname or '').lower()}:{port}"


@dataclass(frozen=True)
class Connection:
    """Everything needed to talk to one Ed-Fi API (the core's view of the connection block)."""

    base_url: str
    client_id: str
    client_secret: SecretStr
    tenant: str | None = None
    verify_tls: bool = True
    page_size: int = 500
    max_concurrency: int = 8
    requests_per_second: float | None = None
    timeout_seconds: float = 60.0
    max_retries: int = 8
    backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0
    # other origins (scheme://host[:port]) the discovery document may send us to, for
    # deployments whose OAuth or metadata server is not the API's own host
    allowed_origins: tuple[str, ...] = ()
    # send credentials over plain http to a host other than this machine
    allow_insecure_http: bool = False
    # a bigger response body fails its request: one enormous record must not exhaust memory
    max_response_bytes: int = 256 * 1024 * 1024

    def __post_init__(self) -> None:
        check_base_url(self.base_url)
        for allowed in self.allowed_origins:
            parts = urlsplit(allowed)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.username:
                raise EdFiError(
                    f"allowed_origins entry {allowed!r} is not scheme://host[:port], "
                    "e.g. https://auth.example.org"
                )
        host = urlsplit(self.base_url).hostname
        if (
            urlsplit(self.base_url).scheme == "http"
            and not is_loopback(host)
            and not self.allow_insecure_http
        ):
            raise EdFiError(
                f"The Ed-Fi base URL is plain http to {host!r}: the client secret and every "
                "token would cross the network unencrypted. Use https, or set "
                "allow_insecure_http in the connection if this network is trusted."
            )
        if not 1 <= self.page_size <= 500:
            raise EdFiError(f"page_size must be between 1 and 500 (got {self.page_size}).")
        if self.max_concurrency < 1:
            raise EdFiError("max_concurrency must be at least 1.")


@dataclass
class Discovery:
    """What the root document says about the API."""

    version: str
    data_models: dict[str, str]
    urls: dict[str, str]
    school_years: list[int] = field(default_factory=list)

    @property
    def version_tuple(self) -> tuple[int, ...]:
        out = []
        for part in self.version.split("."):
            digits = "".join(ch for ch in part if ch.isdigit())
            if not digits:
                break
            out.append(int(digits))
        return tuple(out)

    @property
    def cursor_paging(self) -> bool:
        """ODS/API 7.3 added page tokens and partitions."""
        return self.version_tuple >= (7, 3)

    @property
    def snapshots(self) -> bool:
        """``Use-Snapshot`` exists on 7.x (and 5.x/6.x servers with snapshots enabled)."""
        return self.version_tuple >= (7,)


class _RateLimiter:
    """A token bucket: at most ``rate`` requests a second, bursts of one second's worth."""

    def __init__(self, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self.lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


_UNPARSED = object()


@dataclass
class Response:
    """A successful response: status, headers and the raw body (parsed once, on demand)."""

    status: int
    headers: httpx.Headers
    content: bytes
    url: str
    _parsed: Any = field(default=_UNPARSED, repr=False)

    def json(self) -> Any:
        if self._parsed is not _UNPARSED:
            return self._parsed
        try:
            self._parsed = orjson.loads(self.content) if self.content else None
            return self._parsed
        except orjson.JSONDecodeError as exc:
            raise EdFiMalformedError(
                f"{self.url} returned a body that is not valid JSON ({exc}); the server or a "
                "proxy in front of it is sending broken responses."
            ) from exc


@dataclass
class ClientStats:
    """Totals over the client's life (every request, whoever made it)."""

    requests: int = 0
    retries: int = 0
    bytes: int = 0
    token_refreshes: int = 0


@dataclass
class RequestCounts:
    """What the client did for one unit of work (a resource) beyond answering it.

    Retries, throttling and token renewals happen inside the client, below any
    task a user watches; a unit of work opens ``counting()`` and reads these
    afterwards, to show them in its summary row and log line. Every field only
    grows; ``describe()`` is the one-line account a log shows, ``columns()``
    the summary table's cells.

    A request that is retried counts once in ``requests`` per attempt sent; a
    429 is a retry and also counts in ``throttled``; ``waited_seconds`` is the
    time slept before retries (backoff and ``Retry-After``).
    """

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    token_renewals: int = 0
    waited_seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    """Retries by cause: ``"503"``, ``"429"``, ``"timeout"``, ``"connection"``, ``"bad body"``."""

    @property
    def eventful(self) -> bool:
        """Whether anything happened worth a line in the log."""
        return bool(self.retries or self.token_renewals)

    def describe(self) -> str:
        """``"37 retries (503: 30, timeout: 7), 2 token renewals, waited 12.5 s"``."""
        parts = []
        if self.retries:
            causes = ", ".join(f"{cause}: {n}" for cause, n in self.reasons.most_common())
            plural = "retry" if self.retries == 1 else "retries"
            parts.append(f"{self.retries} {plural} ({causes})")
        if self.token_renewals:
            plural = "renewal" if self.token_renewals == 1 else "renewals"
            parts.append(f"{self.token_renewals} token {plural}")
        if self.waited_seconds >= 0.05:
            parts.append(f"waited {self.waited_seconds:.1f} s")
        return ", ".join(parts) or "no retries"

    def add(self, other: RequestCounts) -> None:
        """Add another unit's counts to these (a total over several resources)."""
        self.requests += other.requests
        self.retries += other.retries
        self.throttled += other.throttled
        self.token_renewals += other.token_renewals
        self.waited_seconds += other.waited_seconds
        self.reasons.update(other.reasons)

    def columns(self) -> dict[str, int]:
        """The summary-table cells: ``requests``, ``retries``, ``throttled``, ``token_renewals``."""
        return {
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "token_renewals": self.token_renewals,
        }


def with_params(url: str, params: Mapping[str, Any]) -> str:
    """``url`` with ``params`` as its query, encoded exactly as httpx encodes them.

    A pull sends thousands of page requests, and parsing the URL into an
    ``httpx.URL`` to merge them cost a tenth of a millisecond each (13 times
    this); plain text and whole numbers on a URL without a query are joined
    directly, anything else goes through httpx.
    """
    if "?" not in url and all(
        isinstance(v, str) or (isinstance(v, int) and not isinstance(v, bool))
        for v in params.values()
    ):
        return f"{url}?{urlencode(params)}"
    return str(httpx.URL(url).copy_merge_params(params))


_COUNTING: ContextVar[tuple[RequestCounts, ...]] = ContextVar("edfi_request_counts", default=())


@contextmanager
def counting(counts: RequestCounts | None = None) -> Iterator[RequestCounts]:
    """Count every ``EdFiClient`` request made in this context into ``counts``.

    The context is asyncio's: the requests of this coroutine and of the tasks it
    starts (paging's parallel reads) are counted, not those of sibling tasks, so
    resources pulled at once each get their own counts. Nested ``counting()``
    blocks all count (a run-wide total around per-resource ones). Pass an
    existing ``counts`` to keep adding to it (a retried task)::

        with counting() as counts:
            await extract_resource(client, ...)
        log.warning("%s: %s", name, counts.describe())
    """
    counts = counts if counts is not None else RequestCounts()
    reset = _COUNTING.set((*_COUNTING.get(), counts))
    try:
        yield counts
    finally:
        _COUNTING.reset(reset)


class EdFiClient:
    """Async client bound to one event loop; use ``async with EdFiClient(conn) as api``."""

    def __init__(
        self, connection: Connection, *, transport: httpx.AsyncBaseTransport | None = None
    ):
        self.conn = connection
        # httpx's own HTTP/1.1 stack costs more CPU per request than a POST costs the
        # server, so requests go through aiohttp (see edfi/transport.py): API calls
        # straight, the rest (discovery, OAuth, redirects) through httpx's client
        self._fast: AiohttpTransport | None = None
        if transport is None:
            transport = self._fast = AiohttpTransport(
                max_connections=connection.max_concurrency * 2,
                verify=connection.verify_tls,
                max_body=connection.max_response_bytes,
            )
        timeout = httpx.Timeout(connection.timeout_seconds, connect=15.0)
        self._http = httpx.AsyncClient(
            timeout=timeout,
            verify=connection.verify_tls,
            transport=transport,
            follow_redirects=True,
        )
        self._timeout = timeout.as_dict()
        self._base_headers = {
            k.title(): v
            for k, v in self._http.headers.items()
            if k in ("user-agent", "accept-encoding")
        }
        self._sem = asyncio.Semaphore(connection.max_concurrency)
        self._rate = (
            _RateLimiter(connection.requests_per_second) if connection.requests_per_second else None
        )
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lifetime = 0.0
        self._token_lock = asyncio.Lock()
        self._origins = {origin(self.root_url), *(origin(o) for o in connection.allowed_origins)}
        self.discovery: Discovery | None = None
        self.stats = ClientStats()
        self._rng = random.Random()

    async def __aenter__(self) -> EdFiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # -- discovery and metadata --------------------------------------------------------
    @property
    def root_url(self) -> str:
        base = self.conn.base_url.rstrip("/")
        return f"{base}/{self.conn.tenant}" if self.conn.tenant else base

    async def discover(self) -> Discovery:
        """Read the root document; fail early and clearly if this is not an Ed-Fi API."""
        url = self.root_url + "/"
        try:
            resp = await self._http.get(url)
        except ResponseTooLargeError as exc:
            raise EdFiUnsupportedError(f"The discovery request: {exc}") from None
        except httpx.HTTPError as exc:
            raise EdFiConnectionError(
                f"Cannot reach the Ed-Fi API at {url}: {_describe(exc)}. Check the base URL "
                "in the connection and that the server is running and reachable."
            ) from exc
        if resp.status_code != 200:
            raise EdFiUnsupportedError(
                f"{url} answered {resp.status_code} to the discovery request; the base URL "
                "should be the API root that returns the Ed-Fi discovery document."
            )
        try:
            doc = orjson.loads(resp.content)
            urls = {k: str(v) for k, v in doc["urls"].items()}
            version = str(doc["version"])
            models = {m["name"]: str(m["version"]) for m in doc.get("dataModels", [])}
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
            raise EdFiUnsupportedError(
                f"{url} did not return an Ed-Fi discovery document (no 'version' and 'urls'); "
                "check that the base URL points at an Ed-Fi ODS/API."
            ) from exc
        for needed in ("oauth", "dataManagementApi"):
            if needed not in urls:
                raise EdFiUnsupportedError(
                    f"The discovery document at {url} has no '{needed}' URL; this server is "
                    "not an Ed-Fi ODS/API this project supports."
                )
        for name in _CREDENTIALED_URLS:
            if name in urls:
                self._check_target(urls[name], f"The discovery document's {name!r} URL")
        disc = Discovery(version, models, urls, [int(y) for y in doc.get("schoolYears", [])])
        if disc.version_tuple < (5,):
            raise EdFiUnsupportedError(
                f"{url} is Ed-Fi ODS/API {version}; this project supports 5.x, 6.x and 7.x."
            )
        self.discovery = disc
        return disc

    def _check_target(self, url: str, what: str) -> None:
        """Refuse a URL a server gave us unless credentials may go there.

        A discovery document (or a metadata listing) is the server's word; a
        compromised or misconfigured server must not be able to send the client
        secret or tokens to another host, or down from https to http.
        """
        try:
            target = origin(url)
            host = urlsplit(url).hostname
        except ValueError:
            target, host = "", None
        if not target.startswith(("http://", "https://")) or not host:
            raise EdFiUnsupportedError(f"{what} is {_redact(url)!r}, not an http(s) URL.")
        if target not in self._origins:
            raise EdFiUnsupportedError(
                f"{what} points at {target}, not at the base URL's {origin(self.root_url)}; "
                "credentials are sent only to the API's own scheme and host. If this "
                f"deployment really serves it from there, add {target!r} to allowed_origins "
                "in the connection."
            )
        insecure_ok = self.conn.allow_insecure_http
        if target.startswith("http://") and not is_loopback(host) and not insecure_ok:
            raise EdFiUnsupportedError(
                f"{what} is plain http to {host!r}: credentials would cross the network "
                "unencrypted. Use https, or set allow_insecure_http in the connection."
            )

    async def _discovered(self) -> Discovery:
        return self.discovery or await self.discover()

    def url(self, name: str, school_year: int | None = None) -> str:
        """A URL from the discovery document, the school year put in its route."""
        if self.discovery is None:
            raise EdFiError("discover() must run before URLs are built")
        raw = self.discovery.urls[name]
        if "{" in raw:
            if school_year is None:
                raise EdFiError(
                    "This Ed-Fi API is year-specific: set school_years in the connection "
                    f"(it serves {self.discovery.school_years or 'several years'})."
                )
            start = raw.index("{")
            end = raw.index("}", start)
            raw = raw[:start] + str(school_year) + raw[end + 1 :]
        elif school_year is not None and name in (
            "dataManagementApi",
            "changeQueries",
            "dependencies",
            "openApiMetadata",
        ):
            raise EdFiError(
                f"school year {school_year} was asked for, but this Ed-Fi API is not "
                "year-specific; leave school_years empty in the connection."
            )
        return raw.rstrip("/")

    async def load_model(self, school_year: int | None = None) -> ApiModel:
        """The server's own model, from the OpenAPI documents its metadata lists."""
        await self._discovered()
        listing = (await self.get_absolute(self.url("openApiMetadata", school_year) + "/")).json()
        if not isinstance(listing, list):
            raise EdFiUnsupportedError("The metadata endpoint did not list OpenAPI documents.")
        docs = []
        for entry in listing:
            name = str(entry.get("name", "")).lower()
            if name in ("resources", "descriptors") or name.endswith(("resources", "descriptors")):
                uri = str(entry["endpointUri"])
                self._check_target(uri, f"The metadata listing's {name!r} document")
                docs.append((await self.get_absolute(uri)).json())
        if not docs:
            raise EdFiUnsupportedError(
                "The API's metadata lists no Resources or Descriptors OpenAPI document."
            )
        return load_model(*docs)

    async def dependencies(self, school_year: int | None = None) -> list[dict[str, Any]]:
        await self._discovered()
        data = (await self.get_absolute(self.url("dependencies", school_year))).json()
        if not isinstance(data, list):
            raise EdFiUnsupportedError("The dependencies metadata is not a JSON list.")
        return data

    # -- auth --------------------------------------------------------------------------
    async def _authenticate(self, stale: str | None = None) -> str:
        async with self._token_lock:
            if self._token and self._token != stale and time.monotonic() < self._token_expires:
                return self._token
            disc = await self._discovered()
            url = disc.urls["oauth"]
            secret = self.conn.client_secret.get_secret_value()
            for attempt in range(self.conn.max_retries + 1):
                try:
                    resp = await self._http.post(
                        url,
                        data={"grant_type": "client_credentials"},
                        auth=(self.conn.client_id, secret),
                        # a renewal names the token it replaces, so a server that keeps a
                        # snapshot per client session (the sandbox) keeps this run's view;
                        # servers without sessions ignore the header
                        headers={"Previous-Token": self._token} if self._token else None,
                    )
                except ResponseTooLargeError as exc:
                    raise EdFiUnsupportedError(f"The token endpoint: {exc}") from None
                except httpx.HTTPError as exc:
                    if attempt >= self.conn.max_retries:
                        raise EdFiConnectionError(
                            f"Cannot reach the token endpoint {url}: {_describe(exc)}."
                        ) from exc
                    await self._sleep_backoff(attempt, None)
                    continue
                if resp.status_code in RETRY_STATUSES and attempt < self.conn.max_retries:
                    await self._sleep_backoff(attempt, resp.headers.get("retry-after"))
                    continue
                break
            if resp.status_code in (400, 401, 403):
                raise EdFiAuthError(
                    f"The Ed-Fi API at {self.root_url} rejected the client credentials for "
                    f"client id {self.conn.client_id!r} (HTTP {resp.status_code}). Check the "
                    "client id and secret in the connection block."
                )
            if resp.status_code != 200:
                raise EdFiResponseError(
                    f"The token endpoint {url} answered {resp.status_code}.", resp.status_code
                )
            try:
                body = orjson.loads(resp.content)
                token = str(body["access_token"])
                lifetime = float(body.get("expires_in", 1800))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise EdFiUnsupportedError(
                    f"The token endpoint {url} did not return an OAuth token."
                ) from exc
            if self._token is not None:
                for counts in _COUNTING.get():
                    counts.token_renewals += 1
            self._token = token
            self._token_lifetime = lifetime
            # renew a little before expiry, so long pulls don't stall on 401s
            self._token_expires = time.monotonic() + lifetime - min(60.0, lifetime * 0.2)
            self.stats.token_refreshes += 1
            return token

    async def token(self) -> str:
        if self._token and time.monotonic() < self._token_expires:
            return self._token
        return await self._authenticate()

    # -- requests ------------------------------------------------------------------------
    async def get_absolute(
        self,
        url: str,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """GET an absolute URL with auth (metadata is served with or without a token)."""
        return await self.request("GET", url, params=params, headers=headers)

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        json_body: Any = None,
        content: bytes | None = None,
        content_type: str | None = None,
        ok: tuple[int, ...] = (200, 201, 204),
        retry_statuses: frozenset[int] = RETRY_STATUSES,
        parse_json: bool = False,
    ) -> Response:
        """Send one request under the shared budget, retrying what retrying can fix.

        With ``parse_json`` a body that is not JSON counts as a transient failure
        (a truncated proxy response) and is retried like one, then reported.
        A body is ``json_body`` (serialized here) or raw ``content`` of ``content_type``
        (a multipart upload).
        """
        if json_body is not None:
            content, content_type = orjson.dumps(json_body), "application/json"
        full_url = with_params(url, params) if params else url
        attempt = 0
        renewals = 0
        while True:
            failure: str
            cause: str
            retry_after: str | None = None
            try:
                if self._rate:
                    await self._rate.acquire()
                async with self._sem:
                    # the token is taken once the request holds its slot: a token taken
                    # before waiting in the queue can expire there (short-lived tokens)
                    token = self._token
                    if token is None or time.monotonic() >= self._token_expires:
                        token = await self._authenticate()
                    hdrs = {
                        **self._base_headers,
                        "Authorization": f"Bearer {token}",
                        "Accept": "application/json",
                    }
                    if content is not None:
                        hdrs["Content-Type"] = content_type or "application/octet-stream"
                    if headers:
                        for name, value in headers.items():
                            for same in [k for k in hdrs if k.lower() == name.lower()]:
                                del hdrs[same]
                            hdrs[name] = value
                    self.stats.requests += 1
                    for counts in _COUNTING.get():
                        counts.requests += 1
                    resp, answered = await self._send(method, full_url, hdrs, content)
                    body = resp.content
                self.stats.bytes += len(body)
            except httpx.TimeoutException as exc:
                failure, cause = f"timed out ({type(exc).__name__})", "timeout"
            except httpx.TransportError as exc:
                failure, cause = _describe(exc), "connection"
            except ResponseTooLargeError as exc:
                raise EdFiResponseTooLargeError(
                    f"{method} {exc}; a record that big is not Ed-Fi data a lake can hold. "
                    "Raise max_response_mb in the connection if it really is."
                ) from None
            else:
                if resp.status_code in ok:
                    result = Response(resp.status_code, resp.headers, body, answered)
                    if not parse_json:
                        return result
                    try:
                        result.json()
                        return result
                    except EdFiMalformedError as exc:
                        failure, cause = str(exc), "bad body"
                        if attempt >= min(2, self.conn.max_retries):
                            raise
                elif resp.status_code == 401 and renewals < MAX_RENEWALS:
                    # renewed once per token, however many requests the old one failed:
                    # _authenticate hands out the newer token if another request renewed it
                    renewals += 1
                    await self._authenticate(stale=token)
                    continue
                elif resp.status_code in retry_statuses:
                    failure, cause = f"HTTP {resp.status_code}", str(resp.status_code)
                    retry_after = resp.headers.get("retry-after")
                else:
                    if isinstance(resp, Answer):  # a 2xx this call does not accept
                        resp = resp.as_httpx(httpx.Request(method, full_url))
                    raise _response_error(method, resp)
            if attempt >= self.conn.max_retries:
                raise EdFiConnectionError(
                    f"{method} {_redact(url)} failed after {attempt + 1} attempts; last failure: "
                    f"{failure}."
                )
            self.stats.retries += 1
            active = _COUNTING.get()
            for counts in active:
                counts.retries += 1
                counts.reasons[cause] += 1
                counts.throttled += cause == "429"
            log.debug("retrying %s %s after %s", method, _redact(url), failure)
            slept = time.monotonic()
            await self._sleep_backoff(attempt, retry_after)
            slept = time.monotonic() - slept
            for counts in active:
                counts.waited_seconds += slept
            attempt += 1

    async def _send(
        self, method: str, url: str, headers: dict[str, str], content: bytes | None
    ) -> tuple[httpx.Response | Answer, str]:
        """One attempt: the response and the URL that answered it.

        A redirect is followed by httpx's client, as for every other call; an
        error answer becomes an ``httpx.Response`` naming its request (the
        error message names it).
        """
        if self._fast is not None:
            answer = await self._fast.fetch(method, url, headers, content, self._timeout)
            if answer.status_code < 300:
                return answer, url
            if not answer.is_redirect:
                return answer.as_httpx(httpx.Request(method, url)), url
        resp = await self._http.request(method, url, headers=headers, content=content)
        return resp, str(resp.url)

    async def _sleep_backoff(self, attempt: int, retry_after: str | None) -> None:
        if retry_after:
            try:
                await asyncio.sleep(min(float(retry_after), self.conn.max_backoff_seconds))
                return
            except ValueError:
                pass
        cap = min(self.conn.max_backoff_seconds, self.conn.backoff_seconds * 2**attempt)
        await asyncio.sleep(self._rng.uniform(0, cap))


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text != type(exc).__name__ else text


def _redact(url: str) -> str:
    """URLs never carry secrets here, but keep query strings out of messages anyway."""
    return url.split("?", 1)[0]


def _response_error(method: str, resp: httpx.Response) -> EdFiResponseError:
    problem: Any = None
    detail = ""
    try:
        problem = orjson.loads(resp.content)
        if isinstance(problem, dict):
            detail = str(problem.get("detail") or problem.get("message") or "")
            errs = problem.get("validationErrors") or {}
            if errs:
                detail += " " + "; ".join(f"{k}: {' '.join(v)}" for k, v in errs.items())
    except orjson.JSONDecodeError:
        detail = resp.text[:300]
    where = _redact(str(resp.request.url))
    return EdFiResponseError(
        f"{method} {where} answered {resp.status_code}: {detail.strip() or resp.reason_phrase}",
        resp.status_code,
        problem,
    )
