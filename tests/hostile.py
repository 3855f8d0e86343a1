"""A hostile server for tests: a proxy in front of a sandbox that lies the way real servers do.

Each lie is one field of ``Hostility`` and can be changed while the proxy runs
(``proxy.hostility = Hostility(...)``). Everything else passes through byte for
byte, with the proxy's own host in the ``Host`` header, so the URLs the sandbox
builds from it (discovery, metadata listings) name the proxy.

The lies:

- ``oauth_url`` / ``urls``: the discovery document names another token
  endpoint (or other metadata and data URLs) -- another host, another scheme;
- ``version``: the discovery document claims another ODS/API version (``"7.1"``:
  no cursor paging, so clients page by offset);
- ``understate``: ``Total-Count`` of a resource is this many records short;
- ``invalid_utf8``: ``(resource, field)``: one page of the resource gets bytes
  that are not UTF-8 inside that string field (the same page every time it is
  asked for again);
- ``enormous``: ``(resource, field, size)``: every page of the resource is
  streamed (chunked, no ``Content-Length``) with that string field of its
  first record padded to ``size`` bytes; ``sent`` counts what went out.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from sandbox.server import free_port

_HOP = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding"}
)
# the proxy's upstream client, kept on the app (typed key: aiohttp warns about str keys)
SESSION = web.AppKey("session", aiohttp.ClientSession)


@dataclass
class Hostility:
    oauth_url: str | None = None
    urls: dict[str, str] = field(default_factory=dict)
    version: str | None = None
    understate: dict[str, int] = field(default_factory=dict)
    invalid_utf8: tuple[str, str] | None = None
    enormous: tuple[str, str, int] | None = None


@dataclass
class HostileProxy:
    base_url: str
    upstream: str
    hostility: Hostility
    poisoned: str | None = None  # the page (path and query) that got invalid UTF-8
    sent: int = 0  # bytes of enormous pages that went out
    requests: list[str] = field(default_factory=list)

    def _resource(self, request: web.Request) -> str | None:
        """The resource name of a collection GET (``.../data/v3/<ns>/<name>``), else None."""
        parts = [p for p in request.path.split("/") if p]
        if "data" not in parts:
            return None
        rest = parts[parts.index("data") + 1 :]
        if len(rest) != 3 or request.method != "GET":
            return None
        return rest[2]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(f"{request.method} {request.path_qs}")
        h = self.hostility
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        headers["Host"] = request.host
        body = await request.read()
        session: aiohttp.ClientSession = request.app[SESSION]
        async with session.request(
            request.method,
            self.upstream + request.path_qs,
            headers=headers,
            data=body or None,
            allow_redirects=False,
        ) as up:
            content = await up.read()
            out_headers = {k: v for k, v in up.headers.items() if k.lower() not in _HOP}
            status = up.status
        resource = self._resource(request)
        if request.path.strip("/") == "" and status == 200:
            content = self._discovery(content)
        elif resource and status == 200:
            counted = [k for k in out_headers if k.lower() == "total-count"]
            if resource in h.understate and counted:
                count = int(out_headers.pop(counted[0]))
                out_headers["Total-Count"] = str(max(0, count - h.understate[resource]))
            if (
                h.invalid_utf8
                and h.invalid_utf8[0] == resource
                and self.poisoned in (None, request.path_qs)
            ):
                key = b'"' + h.invalid_utf8[1].encode() + b'":"'
                if key in content:
                    self.poisoned = request.path_qs
                    content = content.replace(key, key + b"caf\xe9 \xff", 1)
            if h.enormous and h.enormous[0] == resource and content.strip() != b"[]":
                return await self._stream_enormous(request, status, out_headers, content)
        return web.Response(body=content, status=status, headers=out_headers)

    def _discovery(self, content: bytes) -> bytes:
        h = self.hostility
        if not (h.oauth_url or h.urls or h.version):
            return content
        doc: dict[str, Any] = orjson.loads(content)
        if h.oauth_url:
            doc["urls"]["oauth"] = h.oauth_url
        doc["urls"].update(h.urls)
        if h.version:
            doc["version"] = h.version
        return orjson.dumps(doc)

    async def _stream_enormous(
        self, request: web.Request, status: int, headers: dict[str, str], content: bytes
    ) -> web.StreamResponse:
        assert self.hostility.enormous is not None
        _, name, size = self.hostility.enormous
        key = b'"' + name.encode() + b'":"'
        at = content.index(key) + len(key)
        response = web.StreamResponse(status=status, headers=headers)
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"x" * (1 << 20)
        try:
            await response.write(content[:at])
            self.sent += at
            left = size
            while left > 0:
                piece = chunk[: min(left, len(chunk))]
                await response.write(piece)
                self.sent += len(piece)
                left -= len(piece)
            await response.write(content[at:])
            self.sent += len(content) - at
            await response.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: what it refused to read was never sent
        return response


@contextmanager
def hostile_proxy(upstream: str, hostility: Hostility | None = None) -> Iterator[HostileProxy]:
    """Serve a ``HostileProxy`` in front of ``upstream`` from a background thread."""
    port = free_port()
    proxy = HostileProxy(f"http://127.0.0.1:{port}", upstream.rstrip("/"), hostility or Hostility())
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        app = web.Application(client_max_size=1 << 30)
        app[SESSION] = aiohttp.ClientSession(auto_decompress=True)
        app.router.add_route("*", "/{tail:.*}", proxy.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        ready.set()
        await stop.wait()
        await app[SESSION].close()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(20):
        raise RuntimeError("the hostile proxy did not start")
    try:
        yield proxy
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()


@contextmanager
def catcher() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """A server on another loopback host that records every request it gets (and answers 200)."""
    port = free_port("127.0.0.2")
    seen: list[dict[str, str]] = []
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop: asyncio.Event | None = None

    async def handle(request: web.Request) -> web.Response:
        seen.append({"path": request.path, **dict(request.headers)})
        return web.json_response({"access_token": "stolen", "expires_in": 3600})

    async def serve() -> None:
        nonlocal stop
        stop = asyncio.Event()
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.2", port).start()
        ready.set()
        await stop.wait()
        await runner.cleanup()

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(20):
        raise RuntimeError("the catcher did not start")
    try:
        yield f"http://127.0.0.2:{port}", seen
    finally:
        assert stop is not None
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=10)
        loop.close()
