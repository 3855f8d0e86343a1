"""Benchmark: the extract flow against the practical client limit and against edfi-api-client.

On one sandbox district (default 25,000 students), side by side in one process
tree, for each added latency (default 0 and 30 ms per response):

  (a) the extract flow (full pull into a local lake: raw JSONL + typed parquet),
  (b) a minimal async httpx loop fetching the same pages with the same
      concurrency and discarding them (the client-side limit),
  (c) edfi-api-client's ``get_rows`` for every resource (how people do it today).

Each runs in its own child process, which reports wall seconds, records, CPU
seconds and peak RSS. Prints records/s, CPU s per 100k records and the ratios
a/b and a/c. Usage:

    .venv/bin/python bench/extract.py --students 25000 --latency 0 30
    .venv/bin/python bench/extract.py --students 5000 --latency 0 --memory-only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MAIN_AT = time.time()  # when this process got to run Python (the child's clock starts here)
ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "bench" / ".cache"
PEERS = ROOT / ".venv-peers" / "bin" / "python"


def child(role: str, info: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    python = str(PEERS) if role == "peer" else sys.executable
    payload = json.dumps(
        {"role": role, "info": info, "concurrency": args.concurrency, "page_size": args.page_size}
    )
    spawned = time.time()
    out = subprocess.run(
        [python, str(Path(__file__).resolve()), "--child", payload],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "PREFECT_LOGGING_LEVEL": "ERROR",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
        },
    )
    exited = time.time()
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            result = dict(json.loads(line[7:]))
            result["process_start"] = result["main_at"] - spawned  # interpreter, before imports
            result["teardown"] = exited - result["reported_at"]  # after the work, to exit
            result["process_wall"] = exited - spawned
            return result
    raise RuntimeError(f"{role} child failed:\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")


# -- the three clients (run inside a child process) -----------------------------------


def _report(records: int, seconds: float, cpu: float, **extra: Any) -> None:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {"records": records, "seconds": seconds, "cpu": cpu, "peak_mb": peak_mb, **extra}
    result.update(main_at=MAIN_AT, reported_at=time.time())
    print("RESULT " + json.dumps(result), flush=True)


def run_flow(info: dict[str, Any], concurrency: int, page_size: int) -> None:
    import datetime as dt

    from pydantic import SecretStr

    from blocks import EdFiConnection, LakeStorage
    from flows.extract import extract

    imported = time.time() - MAIN_AT
    lake = tempfile.mkdtemp(prefix="bench-lake-")
    conn = EdFiConnection(
        base_url=info["base_url"],
        client_id=info["client_id"],
        client_secret=SecretStr(info["client_secret"]),
        max_concurrency=concurrency,
        page_size=page_size,
    )
    cpu0, t0, called = time.process_time(), time.perf_counter(), time.time()
    summary = asyncio.run(extract(conn, LakeStorage(url=lake), mode="full"))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    size = sum(f.stat().st_size for f in Path(lake).rglob("*") if f.is_file())
    shutil.rmtree(lake, ignore_errors=True)
    flow_started = dt.datetime.fromisoformat(summary["started_at"]).timestamp()
    _report(
        summary["records"],
        summary["seconds"],
        cpu,
        wall_with_startup=seconds,
        requests=summary["requests"],
        lake_mb=size / 2**20,
        imports=imported,
        # Prefect's temporary server, the flow run's creation, the blocks: before the
        # flow's own clock starts
        prefect_start=flow_started - called,
        phases=summary["timings"],
        after_flow=seconds - (flow_started - called) - summary["seconds"],
    )


def run_fixed(info: dict[str, Any], concurrency: int, page_size: int) -> None:
    """The flow three times in one process over an API with (almost) nothing to pull: what
    a run costs besides the records, the first run paying Prefect's start as well."""
    import datetime as dt

    from pydantic import SecretStr

    from blocks import EdFiConnection, LakeStorage
    from flows.extract import extract

    conn = EdFiConnection(
        base_url=info["base_url"],
        client_id=info["client_id"],
        client_secret=SecretStr(info["client_secret"]),
        max_concurrency=concurrency,
        page_size=page_size,
    )
    runs = []
    for _ in range(3):
        lake = tempfile.mkdtemp(prefix="bench-lake-")
        called = time.time()
        summary = asyncio.run(extract(conn, LakeStorage(url=lake), mode="full"))
        wall = time.time() - called
        shutil.rmtree(lake, ignore_errors=True)
        started = dt.datetime.fromisoformat(summary["started_at"]).timestamp()
        runs.append(
            {
                "prefect_start": round(started - called, 2),
                **summary["timings"],
                "after_flow": round(wall - (started - called) - summary["seconds"], 2),
                "records": summary["records"],
                "requests": summary["requests"],
                "resources": len(summary["resources"]),
            }
        )
    _report(runs[0]["records"], 0.0, 0.0, runs=runs)


def run_raw(info: dict[str, Any], concurrency: int, page_size: int) -> None:
    """The same requests the flow makes -- counts, partitions, page-token chains under
    ``Use-Snapshot`` -- with the same concurrency, bodies read and discarded."""
    import httpx

    async def main() -> int:
        base = info["base_url"]
        async with httpx.AsyncClient(
            timeout=120, limits=httpx.Limits(max_connections=concurrency * 2)
        ) as http:
            tok = (
                await http.post(
                    f"{base}/oauth/token",
                    data={"grant_type": "client_credentials"},
                    auth=(info["client_id"], info["client_secret"]),
                )
            ).json()
            headers = {"Authorization": f"Bearer {tok['access_token']}", "Use-Snapshot": "true"}
            deps = (await http.get(f"{base}/metadata/data/v3/dependencies")).json()
            sem = asyncio.Semaphore(concurrency)
            total = 0

            async def get(url: str, params: dict[str, Any]) -> httpx.Response:
                async with sem:
                    return await http.get(url, params=params, headers=headers)

            async def chain(url: str, token: str | None) -> None:
                while token:
                    resp = await get(url, {"pageSize": page_size, "pageToken": token})
                    token = resp.headers.get("next-page-token")

            async def one(path: str) -> None:
                nonlocal total
                url = f"{base}/data/v3{path}"
                count = int(
                    (await get(url, {"limit": 0, "totalCount": "true"})).headers["total-count"]
                )
                total += count
                if not count:
                    return
                pages = -(-count // page_size)
                number = max(1, min(pages, min(concurrency, pages) * 2))
                tokens = (await get(f"{url}/partitions", {"number": number})).json()
                await asyncio.gather(*(chain(url, t) for t in tokens["pageTokens"]))

            await asyncio.gather(*(one(d["resource"]) for d in deps))
            return total

    cpu0, t0 = time.process_time(), time.perf_counter()
    records = asyncio.run(main())
    _report(records, time.perf_counter() - t0, time.process_time() - cpu0)


def run_peer(info: dict[str, Any], concurrency: int, page_size: int) -> None:
    import requests
    from edfi_api_client import EdFiClient

    client = EdFiClient(info["base_url"], info["client_id"], info["client_secret"])
    deps = requests.get(f"{info['base_url']}/metadata/data/v3/dependencies", timeout=60).json()
    cpu0, t0 = time.process_time(), time.perf_counter()
    records = 0
    for d in deps:
        namespace, name = d["resource"].strip("/").split("/")
        endpoint = (
            client.descriptor(name, namespace=namespace)
            if name.endswith("Descriptors")
            else client.resource(name, namespace=namespace)
        )
        for _ in endpoint.get_rows(page_size=page_size):
            records += 1
    _report(records, time.perf_counter() - t0, time.process_time() - cpu0)


# -- driver ---------------------------------------------------------------------------


def ensure_peers() -> bool:
    if PEERS.exists():
        return True
    venv = ROOT / ".venv-peers"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", "edfi-api-client", "lightbeam"]
    )
    return done.returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=25000)
    parser.add_argument(
        "--latency",
        type=float,
        nargs="+",
        default=[0.0, 30.0],
        help="added milliseconds per response, one run each",
    )
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--skip-peer", action="store_true", help="leave out edfi-api-client")
    parser.add_argument(
        "--memory-only", action="store_true", help="only the flow: its peak memory and throughput"
    )
    parser.add_argument(
        "--openapi",
        default=None,
        help="the sandbox's model: default the whole DS 5.0 API, 'compact' the district's "
        "48 resources (as before the full model)",
    )
    parser.add_argument(
        "--fixed-cost",
        action="store_true",
        help="only the flow's fixed cost: three runs in one process over a --students 0 "
        "sandbox (every resource, default descriptors only), each run itemized",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        spec = json.loads(args.child)
        runner = {"flow": run_flow, "raw": run_raw, "peer": run_peer, "fixed": run_fixed}[
            spec["role"]
        ]
        runner(spec["info"], spec["concurrency"], spec["page_size"])
        return

    sys.path.insert(0, str(ROOT))
    from sandbox.server import sandbox_process  # the peer child's venv does not have it

    if args.fixed_cost:
        for latency in args.latency:
            CACHE.mkdir(parents=True, exist_ok=True)
            with sandbox_process(
                students=0,
                db=CACHE / f"sandbox-0{f'-{args.openapi}' if args.openapi else ''}.sqlite",
                faults=f"latency_ms={latency}" if latency else None,
                openapi=args.openapi,
            ) as info:
                result = child("fixed", info, args)
            print(f"== added latency {latency:g} ms; load average {os.getloadavg()[0]:.1f}")
            for i, run in enumerate(result["runs"], 1):
                print(f"run {i}: " + ", ".join(f"{k} {v}" for k, v in run.items()))
            print(f"process exit (teardown) {result['teardown']:.2f}")
        return
    peer = not (args.skip_peer or args.memory_only) and ensure_peers()
    print(
        f"district: {args.students} students; concurrency {args.concurrency}, "
        f"page size {args.page_size}",
        flush=True,
    )
    for latency in args.latency:
        CACHE.mkdir(parents=True, exist_ok=True)
        suffix = f"-{args.openapi}" if args.openapi else ""
        with sandbox_process(
            students=args.students,
            db=CACHE / f"sandbox-{args.students}{suffix}.sqlite",
            faults=f"latency_ms={latency}" if latency else None,
            openapi=args.openapi,
        ) as info:
            print(
                f"\n== added latency {latency:g} ms (sandbox ready in "
                f"{info['ready_seconds']:.1f}s) ==",
                flush=True,
            )
            # a first, unreported pass pulls the database into the page cache, so the
            # first client measured does not pay for the cold cache the others skip
            child("raw", info, args)
            results: dict[str, dict[str, Any]] = {}
            roles = ["flow"] if args.memory_only else ["flow", "raw"] + (["peer"] if peer else [])
            for role in roles:
                results[role] = child(role, info, args)
                r = results[role]
                rate = r["records"] / r["seconds"]
                print(
                    f"{role:5s} {r['records']:>10,} records {r['seconds']:8.1f}s "
                    f"{rate:>10,.0f} rec/s  {100_000 * r['cpu'] / r['records']:6.2f} CPU s/100k"
                    f"  peak {r['peak_mb']:7.0f} MB  (process {r['process_wall']:.1f}s)",
                    flush=True,
                )
            flow = results["flow"]
            fixed = {
                "python + imports": flow["process_start"] + flow["imports"],
                "Prefect start (temporary server, flow run, blocks)": flow["prefect_start"],
                **{f"run: {k}": v for k, v in flow["phases"].items()},
                "after the flow (engine)": flow["after_flow"],
                "process exit (teardown)": flow["teardown"],
            }
            print("flow seconds, itemized: " + ", ".join(f"{k} {v:.2f}" for k, v in fixed.items()))
            if "raw" in results:
                rate = {k: v["records"] / v["seconds"] for k, v in results.items()}
                print(
                    f"flow / raw httpx loop: {rate['flow'] / rate['raw']:.2f}x throughput "
                    "(each client's own run, from connecting to its last record: Prefect's "
                    "temporary-server start, which a deployed run never pays, excluded)"
                )
                if "peer" in results:
                    print(f"flow / edfi-api-client get_rows: {rate['flow'] / rate['peer']:.2f}x")
                whole = {k: v["records"] / v["process_wall"] for k, v in results.items()}
                line = "whole processes (start to exit): flow / raw "
                line += f"{whole['flow'] / whole['raw']:.2f}x"
                if "peer" in whole:
                    line += f", flow / edfi-api-client {whole['flow'] / whole['peer']:.2f}x"
                print(line)


if __name__ == "__main__":
    main()
