"""Server CPU per request of the sandbox: POST (insert, update) and a GET of 25 records.

The sandbox is on the benchmark path of every client measured against it, so
its own cost per request must stay small. This calls the ASGI app directly
(no sockets, no client), on an empty data set, and prints the best of five
rounds of CPU microseconds per request:

    python bench/sandbox_requests.py [--requests 2000]

Not a test: it prints numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import orjson

from sandbox.app import Sandbox
from sandbox.server import build_sandbox


async def call(
    app: Sandbox, method: str, path: str, body: bytes = b"", headers: Any = (), query: bytes = b""
) -> tuple[int, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000")]
        + [(k.lower().encode(), v.encode()) for k, v in headers],
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 5000),
    }
    await app(scope, receive, send)
    return int(sent[0]["status"]), sent


async def main(n: int) -> dict[str, float]:
    sb = build_sandbox(students=0, template=False)
    form = b"grant_type=client_credentials&client_id=sandbox&client_secret="
    _, sent = await call(
        sb,
        "POST",
        "/oauth/token",
        form + sb.client_secret.encode(),
        [("content-type", "application/x-www-form-urlencoded")],
    )
    token = orjson.loads(sent[1]["body"])["access_token"]
    headers = [("authorization", "Bearer " + token), ("content-type", "application/json")]
    best: dict[str, float] = {}

    def note(name: str, started: float, count: int) -> None:
        best[name] = min(best.get(name, 1e9), (time.process_time() - started) / count * 1e6)

    for round_ in range(5):
        for name, first in (("post insert", "A"), ("post update", "C")):
            t = time.process_time()
            for i in range(n):
                body = {
                    "studentUniqueId": f"S{round_}-{i}",
                    "firstName": first,
                    "lastSurname": "B",
                    "birthDate": "2010-01-01",
                }
                status, _ = await call(
                    sb, "POST", "/data/v3/ed-fi/students", orjson.dumps(body), headers
                )
                assert status in (200, 201), status
            note(name, t, n)
        t = time.process_time()
        for i in range(n // 4):
            query = f"offset={i}&limit=25".encode()
            status, _ = await call(sb, "GET", "/data/v3/ed-fi/students", b"", headers, query)
            assert status == 200, status
        note("get 25", t, n // 4)
    return {k: round(v) for k, v in best.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    result = asyncio.run(main(args.requests))
    print(json.dumps({"cpu_us_per_request": result}))
