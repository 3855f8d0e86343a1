"""Benchmark: the publish flow against ``lightbeam send``, records per second.

Both write the same records -- a full copy of a synthetic district -- into a
fresh, empty sandbox; the source and both targets are ``python -m sandbox
serve`` processes. lightbeam gets the records as JSONL files (fetched from the
source first, not timed) and runs with its default settings (8 connections,
one resource at a time). The flow runs with its own defaults (the Ed-Fi API
Publisher's: 10 resources at once, 20 writes per resource) and writes with at
most ``--write-concurrency`` requests in flight (default: the flow's own
``write_concurrency``, 32).

Each ``--latency`` round adds that many milliseconds to every data response of
every sandbox (the flow's source too): on loopback a client that keeps few
requests in flight looks faster than it is against a hosted ODS/API. After each
run the target's records are compared with the source's, record by record.
This is a script, not a test: it prints figures for the README.

    .venv/bin/python bench/publish.py --students 1000 --latency 0 30
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import resource
import secrets
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402
import psutil  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from edfi.client import Connection, EdFiClient  # noqa: E402
from edfi.model import builtin_model  # noqa: E402
from edfi.paging import ReadPlan, read_pages, total_count  # noqa: E402
from edfi.publish import publishable  # noqa: E402
from sandbox.server import sandbox_process  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
PEERS = ROOT / ".venv-peers"


@dataclass
class Result:
    latency: float
    client: str
    records: int
    seconds: float
    client_cpu: float  # CPU seconds of the client process(es)
    target_cpu: float  # CPU seconds of the target sandbox
    check: str

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@contextmanager
def serve(students: int, db: Path, *, fresh: bool, latency: float = 0) -> Iterator[dict[str, Any]]:
    """A sandbox in its own process (so it does not share the GIL with the client)."""
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    faults = f"latency_ms={latency:g}" if latency else None
    with sandbox_process(
        students=students, db=db, faults=faults, client_secret=secrets.token_urlsafe(12)
    ) as info:
        info["process"] = next(
            p for p in psutil.Process().children() if str(db) in " ".join(p.cmdline())
        )
        yield info


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def connection(info: dict[str, Any], **kwargs: Any) -> Connection:
    return Connection(
        info["base_url"], info["client_id"], SecretStr(info["client_secret"]), **kwargs
    )


async def fetch_jsonl(info: dict[str, Any], folder: Path) -> dict[str, int]:
    """Every resource of the source as ``<name>.jsonl`` POST bodies (lightbeam's input).

    The folder is flat, one file per resource name, as lightbeam reads it: of two
    resources with the same name in different namespaces (``ed-fi`` and ``lmsx``
    both have ``submissionStatusDescriptors``) only the first is written, and
    the other is named on stderr rather than overwriting it.
    """
    counts: dict[str, int] = {}
    written: dict[str, str] = {}
    async with EdFiClient(connection(info)) as client:
        await client.discover()
        model = await client.load_model()
        base = client.url("dataManagementApi")
        folder.mkdir(parents=True, exist_ok=True)
        for res in model:
            if res.name in written:
                print(
                    f"{res.path}: left out, {written[res.name]} has the file "
                    f"{res.name}.jsonl (a flat folder holds one file per name)",
                    file=sys.stderr,
                )
                continue
            written[res.name] = res.path
            plan = ReadPlan(base + res.path)
            total = await total_count(client, plan)
            n = 0
            with open(folder / f"{res.name}.jsonl", "wb") as fh:
                async for page in read_pages(
                    client, plan, total, page_size=500, parallel=8, cursor=True
                ):
                    fh.write(b"".join(json.dumps(publishable(r)).encode() + b"\n" for r in page))
                    n += len(page)
            counts[res.path] = n
    return counts


def jsonl_marker(jsonl: Path) -> Path:
    """Where the note that ``jsonl`` was fetched whole is kept: beside the folder, not in it.

    The folder is the clients' input as it stands, and a stray ``done.json``
    in it is a file that names no resource (the send flow warns about it,
    lightbeam skips it). A marker left inside by an older run is moved out.
    """
    marker = jsonl.with_name(f"{jsonl.name}.done.json")
    old = jsonl / "done.json"
    if old.exists():
        old.replace(marker)
    return marker


def contents(db: Path) -> dict[str, Counter[bytes]]:
    """Every record of a sandbox database as it would be POSTed, per resource.

    Each record is kept as a 16-byte digest of its sorted JSON: comparing
    needs only equality and counts, and the records themselves (800 MB at
    1,000 students) would sit in the benchmark's process beside what it measures.
    """
    paths = sorted(builtin_model().resources)  # the store numbers resources this way
    out: dict[str, Counter[bytes]] = {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        for rid, body in conn.execute("SELECT rid, body FROM records"):
            record = publishable(orjson.loads(body))
            out.setdefault(paths[rid - 1], Counter())[
                hashlib.blake2b(
                    orjson.dumps(record, option=orjson.OPT_SORT_KEYS), digest_size=16
                ).digest()
            ] += 1
    return out


def compare(source: dict[str, Counter[bytes]], target_db: Path) -> tuple[int, str]:
    """Records on the target, and whether they equal the source's (or what differs)."""
    target = contents(target_db)
    written = sum(sum(c.values()) for c in target.values())
    differ = sorted(p for p in set(source) | set(target) if source.get(p) != target.get(p))
    if not differ:
        return written, "equals source"
    empty: Counter[bytes] = Counter()
    missing = sum(sum((source.get(p, empty) - target.get(p, empty)).values()) for p in differ)
    extra = sum(sum((target.get(p, empty) - source.get(p, empty)).values()) for p in differ)
    return written, (
        f"differs in {len(differ)} resources ({', '.join(differ[:2])}): "
        f"{missing} missing, {extra} extra"
    )


def run_flow(
    source: dict[str, Any], target: dict[str, Any], lake: Path, concurrency: int | None
) -> dict[str, Any]:
    from blocks import EdFiConnection, LakeStorage
    from flows.publish import publish

    def block(info: dict[str, Any], **kwargs: Any) -> EdFiConnection:
        fields = {k: info[k] for k in ("base_url", "client_id", "client_secret")}
        return EdFiConnection.model_validate({**fields, **kwargs})

    extra = {} if concurrency is None else {"write_concurrency": concurrency}
    run: Any = publish(
        block(source),
        block(target),
        LakeStorage.model_validate({"url": str(lake)}),
        mode="full",
        include_descriptors=True,
        **extra,
    )
    return cast(dict[str, Any], asyncio.run(run))


def flow_round(
    args: argparse.Namespace,
    latency: float,
    run_dir: Path,
    source_db: Path,
    expected: dict[str, Counter[bytes]],
) -> Result:
    target_db = run_dir / f"target-flow-{latency:g}ms.sqlite"
    with (
        serve(args.students, source_db, fresh=False, latency=latency) as source,
        serve(0, target_db, fresh=True, latency=latency) as target,
    ):
        cpu0, target0 = own_cpu(), cpu_seconds(target["process"])
        t0 = time.perf_counter()
        summary = run_flow(source, target, run_dir / f"lake-{latency:g}", args.write_concurrency)
        seconds = time.perf_counter() - t0
        cpu, target_cpu = own_cpu() - cpu0, cpu_seconds(target["process"]) - target0
    _, check = compare(expected, target_db)
    if summary["failed"]:
        check += f"; {summary['failed']} failed"
    return Result(latency, "publish flow", int(summary["written"]), seconds, cpu, target_cpu, check)


def lightbeam_yaml(path: Path, target: dict[str, Any], data_dir: Path, lmsx: list[str]) -> None:
    overrides = "".join(f"    - {name}\n" for name in lmsx)
    path.write_text(
        f"state_dir: {path.parent / 'lb-state'}\n"
        f"data_dir: {data_dir}/\n"
        "namespace: ed-fi\n"
        + ("namespace_overrides:\n  lmsx:\n" + overrides if lmsx else "")
        + "edfi_api:\n"
        f"  base_url: {target['base_url']}\n"
        "  mode: sandbox\n"
        f"  client_id: {target['client_id']}\n"
        f"  client_secret: {target['client_secret']}\n"
        "connection:\n"
        "  verify_ssl: true\n"
        "log_level: WARNING\n"
    )


def ensure_peers() -> Path:
    lightbeam = PEERS / "bin" / "lightbeam"
    if not lightbeam.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS)], check=True)
        subprocess.run(
            [str(PEERS / "bin" / "pip"), "install", "--quiet", "lightbeam", "edfi-api-client"],
            check=True,
        )
    return lightbeam


def lightbeam_round(
    latency: float, run_dir: Path, jsonl: Path, expected: dict[str, Counter[bytes]]
) -> Result:
    lightbeam = ensure_peers()
    # one file per resource name: lightbeam cannot tell ed-fi and lmsx names apart
    lmsx = [p.rsplit("/", 1)[-1] for p in expected if p.startswith("/lmsx/")]
    target_db = run_dir / f"target-lightbeam-{latency:g}ms.sqlite"
    with serve(0, target_db, fresh=True, latency=latency) as target:
        config = run_dir / f"lightbeam-{latency:g}ms.yaml"
        shutil.rmtree(run_dir / "lb-state", ignore_errors=True)
        lightbeam_yaml(config, target, jsonl, lmsx)
        cpu0, target0 = children_cpu(), cpu_seconds(target["process"])
        t0 = time.perf_counter()
        done = subprocess.run(
            [str(lightbeam), "send", "-c", str(config)], capture_output=True, text=True
        )
        seconds = time.perf_counter() - t0
        cpu, target_cpu = children_cpu() - cpu0, cpu_seconds(target["process"]) - target0
    if done.returncode != 0:
        print(done.stderr[-2000:], flush=True)
    written, check = compare(expected, target_db)
    return Result(latency, "lightbeam send", written, seconds, cpu, target_cpu, check)


def report(results: list[Result]) -> None:
    print(
        "\n| added latency | client | records | seconds | records/s | "
        "client CPU ms/record | target CPU ms/record | target afterwards |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        n = max(1, r.records)
        print(
            f"| {r.latency:g} ms | {r.client} | {r.records:,} | {r.seconds:.1f} | {r.rate:,.0f} | "
            f"{r.client_cpu / n * 1000:.2f} | {r.target_cpu / n * 1000:.2f} | {r.check} |"
        )
    for latency in dict.fromkeys(r.latency for r in results):
        rates = {r.client: r.rate for r in results if r.latency == latency}
        if rates.get("publish flow") and rates.get("lightbeam send"):
            ratio = rates["publish flow"] / rates["lightbeam send"]
            print(f"ratio at {latency:g} ms: publish flow / lightbeam = {ratio:.2f}x")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument(
        "--latency",
        type=float,
        nargs="+",
        default=[0.0, 30.0],
        help="milliseconds each sandbox adds to every data response; one round each",
    )
    parser.add_argument(
        "--write-concurrency",
        type=int,
        default=None,
        help="the flow's write_concurrency: requests in flight to the target (default: 32)",
    )
    parser.add_argument("--only", choices=("flow", "lightbeam", "both"), default="both")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    run_dir = CACHE / f"run-{args.students}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    jsonl = CACHE / f"jsonl-{args.students}"
    source_db = CACHE / f"sandbox-{args.students}.sqlite"
    started = time.perf_counter()
    with serve(args.students, source_db, fresh=False) as source:
        print(
            f"source ready ({args.students} students) in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        marker = jsonl_marker(jsonl)
        if not marker.exists():
            jsonl.mkdir(parents=True, exist_ok=True)
            fetched = asyncio.run(fetch_jsonl(source, jsonl))
            marker.write_text(json.dumps(fetched))
    expected = contents(source_db)
    print(
        f"records: {sum(sum(c.values()) for c in expected.values()):,} in "
        f"{len(expected)} resources; flow write_concurrency "
        f"{args.write_concurrency or 'default'}",
        flush=True,
    )
    results: list[Result] = []
    harness: Any = None
    if args.only in ("flow", "both"):
        from prefect.testing.utilities import prefect_test_harness

        harness = prefect_test_harness(server_startup_timeout=120)
        harness.__enter__()
    try:
        for latency in args.latency:
            if args.only in ("flow", "both"):
                results.append(flow_round(args, latency, run_dir, source_db, expected))
                report(results[-1:])
            if args.only in ("lightbeam", "both"):
                results.append(lightbeam_round(latency, run_dir, jsonl, expected))
                report(results[-1:])
    finally:
        if harness is not None:
            harness.__exit__(None, None, None)
    report(results)


if __name__ == "__main__":
    main()
