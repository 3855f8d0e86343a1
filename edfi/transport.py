"""httpx's transport interface on aiohttp's connection pool.

``EdFiClient`` speaks httpx (its request and response models, auth, redirects,
exceptions), but httpx's own HTTP/1.1 stack (httpcore over anyio) costs about
0.8 ms of CPU per request on this project's machines -- more than the ODS/API
spends serving a POST, so a publish of single-record writes was bound by its own
client. aiohttp's pool and C parser do the same wire work for about a tenth of
that. This transport plugs aiohttp in underneath httpx: everything above it,
and every exception the client catches, stays httpx's.

The response body is read whole (the client never streams) and handed to httpx
undecoded, so httpx still applies ``Content-Encoding``. The aiohttp session is
made on first use, inside the event loop that uses it.

``fetch`` is the client's hot path: one request with no httpx client layer at
all (no redirects, cookies or auth flows, which data requests with a bearer
token do not need), answered as an ``Answer`` (status, headers, decoded body),
not an ``httpx.Response``, whose construction and read cost about 15-30 us of
CPU a request -- a tenth of a one-record write's client side.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping

import aiohttp
import certifi
import httpx
from multidict import CIMultiDict
from yarl import URL

# headers aiohttp sets itself from the body it sends
_DROP = frozenset({b"content-length", b"transfer-encoding"})


class ResponseTooLargeError(Exception):
    """A response body bigger than the configured cap; the rest of it is never read."""

    def __init__(self, url: str, size: int | None, cap: int):
        self.url = url
        self.size = size
        self.cap = cap
        told = f"{size / 2**20:.1f} MB" if size is not None else "more than that"
        super().__init__(
            f"{url.split('?', 1)[0]} sent a response of {told}, over the "
            f"{cap / 2**20:.0f} MB limit (max_response_mb in the connection); it was not read."
        )


_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class Answer:
    """A response of ``fetch``, read whole and decoded: status, raw headers, body.

    Not an ``httpx.Response``: building and reading one costs more CPU than
    the rest of a one-record write's client side, so one is made only for
    what needs it (``as_httpx``: an error answer, with the request it answers).
    """

    __slots__ = ("_headers", "content", "raw_headers", "status_code")

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]], content: bytes):
        self.status_code = status
        self.raw_headers = raw_headers
        self.content = content
        self._headers: httpx.Headers | None = None

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self.raw_headers)
        return self._headers

    @property
    def is_redirect(self) -> bool:
        return self.status_code in _REDIRECTS and "location" in self.headers

    def as_httpx(self, request: httpx.Request) -> httpx.Response:
        """The answer as an (already decoded) ``httpx.Response`` to ``request``."""
        headers = [(k, v) for k, v in self.raw_headers if k.lower() != b"content-encoding"]
        return httpx.Response(
            self.status_code, headers=headers, content=self.content, request=request
        )


class AiohttpTransport(httpx.AsyncBaseTransport):
    """An ``httpx.AsyncBaseTransport`` sending requests through one ``aiohttp.ClientSession``.

    A response body is read only up to ``max_body`` bytes: one enormous record
    (or a hostile server) fails its request instead of exhausting memory.
    """

    def __init__(
        self, *, max_connections: int = 16, verify: bool = True, max_body: int = 256 * 2**20
    ):
        self._max_body = max_body
        self._max_connections = max_connections
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=certifi.where()) if verify else False
        )
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, ...], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, URL] = {}

    def _open(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, ssl=self._ssl
            )
            session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,  # httpx decodes, as with its own transport
                cookie_jar=aiohttp.DummyCookieJar(),  # httpx keeps the cookies
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
            )
            self._session = session
        return session

    def _timeout(self, t: Mapping[str, float | None]) -> aiohttp.ClientTimeout:
        key = (t.get("connect"), t.get("read"), t.get("pool"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            connect, read, pool = key
            timeout = aiohttp.ClientTimeout(
                total=None,
                connect=None if pool is None or connect is None else pool + connect,
                sock_connect=connect,
                sock_read=read,
            )
            self._timeouts[key] = timeout
        return timeout

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        headers = CIMultiDict(
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in request.headers.raw
            if k.lower() not in _DROP
        )
        body = await request.aread()
        status, raw_headers, content, reason = await self._exchange(
            request.method,
            URL(str(request.url), encoded=True),
            headers,
            body or None,
            request.extensions.get("timeout") or {},
            request,
        )
        return httpx.Response(
            status,
            headers=raw_headers,
            stream=httpx.ByteStream(content),
            extensions={
                "http_version": b"HTTP/1.1",
                "reason_phrase": (reason or "").encode("latin-1", "replace"),
            },
            request=request,
        )

    async def fetch(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        content: bytes | None,
        timeout: Mapping[str, float | None],
    ) -> Answer:
        """One request straight through aiohttp; the body read whole and decoded.

        Redirects are not followed (a 3xx is returned as it is).
        """
        target = self._urls.get(url)
        if target is None:
            if len(self._urls) > 1000:
                self._urls.clear()
            target = self._urls[url] = URL(url, encoded=True)
        status, raw_headers, body, _ = await self._exchange(
            method, target, headers, content, timeout, None
        )
        if body and any(k.lower() == b"content-encoding" for k, _ in raw_headers):
            # httpx decodes what it announced in Accept-Encoding (gzip, br, zstd, ...)
            encoded = httpx.Response(status, headers=raw_headers, stream=httpx.ByteStream(body))
            body = encoded.read()
        if len(body) > self._max_body:
            raise ResponseTooLargeError(url, len(body), self._max_body)
        return Answer(status, raw_headers, body)

    async def _exchange(
        self,
        method: str,
        url: URL,
        headers: Mapping[str, str],
        data: bytes | None,
        timeout: Mapping[str, float | None],
        request: httpx.Request | None,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, str | None]:
        """One round trip, the body read whole: status, raw headers, body, reason."""
        try:
            async with self._open().request(
                method,
                url,
                headers=headers,
                data=data,
                allow_redirects=False,
                timeout=self._timeout(timeout),
            ) as resp:
                length = resp.content_length
                if length is None:
                    body = await self._read_capped(resp, str(url))
                elif length > self._max_body:
                    raise ResponseTooLargeError(str(url), length, self._max_body)
                else:
                    body = await resp.read()
                return resp.status, list(resp.raw_headers), body, resp.reason
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            mapped = _as_httpx_error(exc, request)
            if mapped is None:
                raise
            raise mapped from exc

    async def _read_capped(self, resp: aiohttp.ClientResponse, url: str) -> bytes:
        """A body of unannounced length, read until it passes the cap (then dropped)."""
        buf = bytearray()
        async for chunk in resp.content.iter_any():
            buf += chunk
            if len(buf) > self._max_body:
                resp.close()  # the connection goes: the rest of the body is never read
                raise ResponseTooLargeError(url, None, self._max_body)
        return bytes(buf)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _as_httpx_error(exc: BaseException, request: httpx.Request | None) -> Exception | None:
    """aiohttp's failure as the httpx exception the client handles (None: not aiohttp's).

    A function, not a context manager: it runs only on failure, where a context
    manager's generator would be built and stepped for every request.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(str(exc) or "connect timed out", request=request)
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(str(exc) or "read timed out", request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(str(exc), request=request)
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError(
            "Server disconnected without sending a response.", request=request
        )
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientResponseError):
        return httpx.RemoteProtocolError(str(exc), request=request)
    if isinstance(exc, aiohttp.ClientError | OSError):
        return httpx.ReadError(str(exc) or type(exc).__name__, request=request)
    return None
