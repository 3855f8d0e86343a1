"""How fast the sandbox serves pages, shallow and deep, offset and cursor.

An ODS/API on SQL Server slows down with the offset (it must skip every row
before the page), which is why 7.3 added cursor paging. The sandbox must not
have that cliff, or a benchmark of a client against it would measure the
sandbox instead of the client: this prints records/second at the first and
the last pages of the biggest resource, sequentially and concurrently, their
ratio, and a full cursor-paged pass over every resource.

    python bench/sandbox_paging.py --students 25000 --concurrency 8

It starts ``edfi-sandbox serve`` as a subprocess on a saved database
(``bench/.cache/sandbox-N.sqlite``, generated on the first run) and stops it
at the end. Not a test: it prints numbers, it asserts only that every record
was read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 500


@dataclass
class Measure:
    """One timed run: how many records in how many seconds."""

    name: str
    records: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else float("inf")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def database(students: int, openapi: str | None) -> Path:
    """The saved district for a size and model (the same file ``bench/extract.py`` uses)."""
    cache = ROOT / "bench" / ".cache"
    cache.mkdir(parents=True, exist_ok=True)
    return cache / f"sandbox-{students}{f'-{openapi}' if openapi else ''}.sqlite"


def start_sandbox(
    students: int, port: int, openapi: str | None = None
) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """Start the CLI and return it with its first stdout line (where and how to log in)."""
    cmd = [
        sys.executable,
        "-m",
        "sandbox",
        "serve",
        "--port",
        str(port),
        "--students",
        str(students),
        "--db",
        str(database(students, openapi)),
        *(["--openapi", openapi] if openapi else []),
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        proc.wait(timeout=10)
        raise SystemExit(f"edfi-sandbox serve exited with {proc.returncode} before it was ready")
    info: dict[str, Any] = json.loads(line)
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(info["base_url"] + "/", timeout=5)
            return proc, info
        except httpx.TransportError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.terminate()
                raise SystemExit("the sandbox did not start listening") from None
            time.sleep(0.1)


def _peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (Linux ``VmHWM``)."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def start_only(students: int, openapi: str | None) -> None:
    """Start (and stop) the sandbox: generation when new, then a start on the saved file."""
    runs = ["generate", "reuse"] if not database(students, openapi).exists() else ["reuse"]
    for run in runs:
        started = time.perf_counter()
        proc, info = start_sandbox(students, free_port(), openapi)
        wall = time.perf_counter() - started
        try:
            peak = _peak_rss_mb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        print(
            json.dumps(
                {
                    "students": students,
                    "model": openapi or "full",
                    "start": run,
                    "ready_seconds": info["ready_seconds"],
                    "wall_seconds": round(wall, 2),
                    "peak_rss_mb": round(peak),
                    "database_mb": round(database(students, openapi).stat().st_size / 2**20),
                }
            ),
            flush=True,
        )


def login(info: dict[str, Any]) -> dict[str, str]:
    r = httpx.post(
        f"{info['base_url']}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(info["client_id"], info["client_secret"]),
    )
    r.raise_for_status()
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def counts(client: httpx.Client) -> dict[str, int]:
    """Total-Count of every resource the server lists in its dependency order."""
    resources = [e["resource"] for e in client.get("/metadata/data/v3/dependencies").json()]
    out = {}
    for path in resources:
        r = client.get(f"/data/v3{path}", params={"limit": 0, "totalCount": "true"})
        r.raise_for_status()
        out[path] = int(r.headers["Total-Count"])
    return out


def sequential(client: httpx.Client, name: str, path: str, offsets: Sequence[int]) -> Measure:
    started = time.perf_counter()
    records = 0
    for offset in offsets:
        r = client.get(f"/data/v3{path}", params={"offset": offset, "limit": LIMIT})
        r.raise_for_status()
        records += len(r.json())
    return Measure(name, records, time.perf_counter() - started)


async def concurrent(
    base_url: str,
    headers: dict[str, str],
    name: str,
    path: str,
    offsets: Sequence[int],
    concurrency: int,
) -> Measure:
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def page(offset: int) -> int:
            async with gate:
                r = await client.get(f"/data/v3{path}", params={"offset": offset, "limit": LIMIT})
                r.raise_for_status()
                return len(r.json())

        started = time.perf_counter()
        got = await asyncio.gather(*(page(o) for o in offsets))
    return Measure(name, sum(got), time.perf_counter() - started)


async def cursor_pass(
    base_url: str, headers: dict[str, str], totals: dict[str, int], concurrency: int
) -> Measure:
    """Every resource, each split into partitions read concurrently with page tokens."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, limits=limits, timeout=120
    ) as client:

        async def partition(path: str, token: str) -> int:
            n = 0
            params = {"pageToken": token, "pageSize": str(LIMIT)}
            while True:
                async with gate:
                    r = await client.get(f"/data/v3{path}", params=params)
                r.raise_for_status()
                n += len(r.json())
                nxt = r.headers.get("Next-Page-Token")
                if not nxt:
                    return n
                params["pageToken"] = nxt

        async def resource(path: str, total: int) -> int:
            number = max(1, min(concurrency, math.ceil(total / (LIMIT * 4))))
            async with gate:
                r = await client.get(f"/data/v3{path}/partitions", params={"number": number})
            r.raise_for_status()
            got = await asyncio.gather(*(partition(path, t) for t in r.json()["pageTokens"]))
            return sum(got)

        started = time.perf_counter()
        read = await asyncio.gather(*(resource(p, n) for p, n in totals.items() if n))
    elapsed = time.perf_counter() - started
    if sum(read) != sum(totals.values()):
        raise SystemExit(
            f"cursor paging read {sum(read)} records, Total-Count says {sum(totals.values())}"
        )
    return Measure("cursor, every resource", sum(read), elapsed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=25000)
    parser.add_argument("--port", type=int, default=0, help="default: a free port")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pages", type=int, default=20, help="pages at each end")
    parser.add_argument(
        "--openapi",
        default=None,
        help="the model served: default the whole DS 5.0 API, 'compact' the district's "
        "48 resources (as before the full model)",
    )
    parser.add_argument(
        "--start-only",
        action="store_true",
        help="only start the sandbox: seconds to ready and peak RSS, generating the "
        "database first if it is not saved yet (then starting again on the saved one)",
    )
    args = parser.parse_args(argv)
    if args.start_only:
        start_only(args.students, args.openapi)
        return

    proc, info = start_sandbox(args.students, args.port or free_port(), args.openapi)
    try:
        print(
            json.dumps(
                {
                    "students": args.students,
                    "ready_seconds": info["ready_seconds"],
                    "base_url": info["base_url"],
                }
            ),
            flush=True,
        )
        headers = login(info)
        with httpx.Client(base_url=info["base_url"], headers=headers, timeout=120) as client:
            totals = counts(client)
            biggest = max(totals, key=lambda p: totals[p])
            n = totals[biggest]
            last = max(0, (n - 1) // LIMIT)
            shallow = [i * LIMIT for i in range(min(args.pages, last + 1))]
            deep = [i * LIMIT for i in range(max(0, last + 1 - args.pages), last + 1)]
            results = [
                sequential(client, "offset, shallow, sequential", biggest, shallow),
                sequential(client, "offset, deep, sequential", biggest, deep),
            ]
        results += [
            asyncio.run(
                concurrent(
                    info["base_url"],
                    headers,
                    f"offset, shallow, {args.concurrency} concurrent",
                    biggest,
                    shallow,
                    args.concurrency,
                )
            ),
            asyncio.run(
                concurrent(
                    info["base_url"],
                    headers,
                    f"offset, deep, {args.concurrency} concurrent",
                    biggest,
                    deep,
                    args.concurrency,
                )
            ),
            asyncio.run(cursor_pass(info["base_url"], headers, totals, args.concurrency)),
        ]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()

    print(
        f"\nbiggest resource: {biggest} ({n:,} records, {last + 1} pages of {LIMIT}); "
        f"all resources: {sum(totals.values()):,} records"
    )
    print(f"{'run':<34}{'records':>10}{'seconds':>10}{'records/s':>12}")
    for m in results:
        print(f"{m.name:<34}{m.records:>10,}{m.seconds:>10.2f}{m.rate:>12,.0f}")
    seq_ratio = results[1].rate / results[0].rate
    conc_ratio = results[3].rate / results[2].rate
    print(
        f"\ndeep/shallow records/s: sequential {seq_ratio:.2f}, "
        f"{args.concurrency} concurrent {conc_ratio:.2f}"
    )
    print(
        json.dumps(
            {
                "students": args.students,
                "ready_seconds": info["ready_seconds"],
                "biggest": biggest,
                "records": n,
                **{m.name: round(m.rate) for m in results},
                "deep_shallow_sequential": round(seq_ratio, 3),
                "deep_shallow_concurrent": round(conc_ratio, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
