"""The client's aiohttp transport: what httpx did for it still happens.

API calls skip httpx's client layer, so these check over real HTTP what that
layer used to give them: decoded ``Content-Encoding``, followed redirects, query
parameters merged into the URL, one header per name, error statuses with the
server's message, and dropped connections retried and then reported.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from pydantic import SecretStr

from edfi.client import (
    Connection,
    EdFiClient,
    EdFiConnectionError,
    EdFiError,
    EdFiResponseError,
    choose_school_year,
)
from sandbox.server import free_port


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    path, method = scope["path"], scope["method"]
    host = dict(scope["headers"])[b"host"].decode()
    base = f"http://{host}"
    headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/json")]
    status, out = 200, b""
    if path == "/":
        out = orjson.dumps(
            {
                "version": "7.3",
                "dataModels": [],
                "urls": {"oauth": f"{base}/oauth/token", "dataManagementApi": f"{base}/data/v3/"},
            }
        )
    elif path == "/oauth/token":
        out = orjson.dumps({"access_token": "token", "expires_in": 3600})
    elif path == "/data/v3/gzip":
        out = gzip.compress(b'[{"a": 1}]')
        headers.append((b"content-encoding", b"gzip"))
    elif path == "/data/v3/moved":
        status = 307
        headers.append((b"location", f"{base}/data/v3/gzip".encode()))
    elif path == "/data/v3/echo":
        names = [k.decode() for k, _ in scope["headers"]]
        out = orjson.dumps(
            {
                "method": method,
                "query": scope["query_string"].decode(),
                "body": orjson.loads(body) if body else None,
                "headers": names,
                "content_type": dict(scope["headers"]).get(b"content-type", b"").decode(),
            }
        )
    elif path == "/data/v3/drop":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"1000")],
            }
        )
        await send({"type": "http.response.body", "body": b'[{"a":', "more_body": True})
        raise ConnectionAbortedError("cut mid-body")
    else:
        status = 404
        out = orjson.dumps({"detail": "No such thing here.", "status": 404})
    headers.append((b"content-length", str(len(out)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": out})


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    port = free_port()
    config = uvicorn.Config(_app, port=port, log_level="critical", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def _client(base: str) -> EdFiClient:
    return EdFiClient(
        Connection(base, "id", SecretStr("secret"), max_retries=2, backoff_seconds=0.01)
    )


def test_requests_decode_follow_merge_and_report(server: str) -> None:
    async def run() -> None:
        async with _client(server) as api:
            await api.discover()
            data = api.url("dataManagementApi")
            assert (await api.request("GET", f"{data}/gzip")).json() == [{"a": 1}]
            moved = await api.request("GET", f"{data}/moved")
            assert moved.json() == [{"a": 1}] and moved.url.endswith("/data/v3/gzip")
            echo = (
                await api.request(
                    "POST",
                    f"{data}/echo?x=1",
                    params={"flag": True, "n": 2},
                    headers={"accept": "application/graphml", "Use-Snapshot": "true"},
                    json_body={"b": [1, 2]},
                )
            ).json()
            assert echo["query"] == "x=1&flag=true&n=2"
            assert echo["body"] == {"b": [1, 2]}
            assert echo["content_type"] == "application/json"
            names = echo["headers"]
            assert len(names) == len(set(names)), names  # one header per name
            assert {"authorization", "accept", "use-snapshot"} <= set(names)
            with pytest.raises(EdFiResponseError) as missing:
                await api.request("GET", f"{data}/nothing")
            assert missing.value.status == 404
            assert "/data/v3/nothing answered 404: No such thing here." in str(missing.value)
            with pytest.raises(EdFiConnectionError) as dropped:
                await api.request("GET", f"{data}/drop")
            assert "failed after 3 attempts" in str(dropped.value)
            assert api.stats.retries == 2

    asyncio.run(run())


def test_school_year_is_the_one_asked_else_the_latest_listed() -> None:
    """Every job (send, publish, bulk load) picks its school year by the same rule."""
    assert choose_school_year([2024, 2025], None, "https://x") == 2025
    assert choose_school_year([2024, 2025], 2024, "https://x") == 2024
    # none listed: the asked year passes through (the URL says if the API has years)
    assert choose_school_year([], 2026, "https://x") == 2026
    assert choose_school_year([], None, "https://x") is None
    with pytest.raises(EdFiError, match=r"school_year 2023 is not among .*\[2024, 2025\]"):
        choose_school_year([2024, 2025], 2023, "https://x")
