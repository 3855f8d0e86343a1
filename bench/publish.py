"""Benchmark: the publish flow against ``lightbeam send``, records per second.

Both write the same records -- a full copy of a synthetic district -- into a
fresh, empty sandbox; the source and both targets are ``python -m sandbox
serve`` processes. lightbeam gets the records as JSONL files (fetched from the
source first, not timed) and runs with its default settings. This is a script,
not a test: it prints figures for the README.

    .venv/bin/python bench/publish.py --students 5000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from edfi.client import Connection, EdFiClient  # noqa: E402
from edfi.paging import ReadPlan, read_pages, total_count  # noqa: E402
from edfi.publish import publishable  # noqa: E402
from sandbox.server import sandbox_process  # noqa: E402

CACHE = ROOT / "bench" / ".cache"
PEERS = ROOT / ".venv-peers"


@contextmanager
def serve(students: int, db: Path, *, fresh: bool) -> Iterator[dict[str, Any]]:
    """A sandbox in its own process (so it does not share the GIL with the client)."""
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    with sandbox_process(students=students, db=db, client_secret=secrets.token_urlsafe(12)) as info:
        yield info


def connection(info: dict[str, Any], **kwargs: Any) -> Connection:
    return Connection(
        info["base_url"], info["client_id"], SecretStr(info["client_secret"]), **kwargs
    )


async def fetch_jsonl(info: dict[str, Any], folder: Path) -> dict[str, int]:
    """Every resource of the source as ``<name>.jsonl`` POST bodies (lightbeam's input)."""
    counts: dict[str, int] = {}
    async with EdFiClient(connection(info)) as client:
        await client.discover()
        model = await client.load_model()
        base = client.url("dataManagementApi")
        folder.mkdir(parents=True, exist_ok=True)
        for resource in model:
            plan = ReadPlan(base + resource.path)
            total = await total_count(client, plan)
            n = 0
            with open(folder / f"{resource.name}.jsonl", "wb") as fh:
                async for page in read_pages(
                    client, plan, total, page_size=500, parallel=8, cursor=True
                ):
                    fh.write(b"".join(json.dumps(publishable(r)).encode() + b"\n" for r in page))
                    n += len(page)
            counts[resource.path] = n
    return counts


async def target_counts(info: dict[str, Any], paths: list[str]) -> dict[str, int]:
    async with EdFiClient(connection(info)) as client:
        await client.discover()
        base = client.url("dataManagementApi")
        return {p: await total_count(client, ReadPlan(base + p)) for p in paths}


def run_flow(
    source: dict[str, Any], target: dict[str, Any], lake: Path, concurrency: int
) -> dict[str, Any]:
    from blocks import EdFiConnection, LakeStorage
    from flows.publish import publish

    def block(info: dict[str, Any], **kwargs: Any) -> EdFiConnection:
        return EdFiConnection.model_validate({**info, **kwargs})

    run: Any = publish(
        block(source),
        block(target, max_concurrency=concurrency),
        LakeStorage.model_validate({"url": str(lake)}),
        mode="full",
        include_descriptors=True,
    )
    return cast(dict[str, Any], asyncio.run(run))


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


def run_flow_bench(
    source: dict[str, Any], run_dir: Path, counts: dict[str, int], concurrency: int
) -> float:
    from prefect.testing.utilities import prefect_test_harness

    with (
        prefect_test_harness(server_startup_timeout=120),
        serve(0, run_dir / "target-flow.sqlite", fresh=True) as target,
    ):
        t0 = time.perf_counter()
        summary = run_flow(source, target, run_dir / "lake", concurrency)
        seconds = time.perf_counter() - t0
        got = asyncio.run(target_counts(target, list(counts)))
    ok = got == counts and summary["failed"] == 0
    rate = float(summary["written"]) / seconds
    print(
        f"publish flow: {summary['written']} records in {seconds:.1f}s = {rate:.0f} records/s "
        f"(target max_concurrency {concurrency}; target equals source: {ok})",
        flush=True,
    )
    return rate


def run_lightbeam_bench(
    run_dir: Path, jsonl: Path, counts: dict[str, int]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    lightbeam = ensure_peers()
    lmsx = [p.rsplit("/", 1)[-1] for p in counts if p.startswith("/lmsx/")]
    # one file per resource name: lightbeam cannot tell ed-fi and lmsx names apart
    files = sum(f.read_bytes().count(b"\n") for f in jsonl.glob("*.jsonl"))
    with serve(0, run_dir / "target-lightbeam.sqlite", fresh=True) as target:
        config = run_dir / "lightbeam.yaml"
        lightbeam_yaml(config, target, jsonl, lmsx)
        t0 = time.perf_counter()
        done = subprocess.run(
            [str(lightbeam), "send", "-c", str(config)], capture_output=True, text=True
        )
        seconds = time.perf_counter() - t0
        written = sum(asyncio.run(target_counts(target, list(counts))).values())
    rate = written / seconds
    print(
        f"lightbeam send: {written} of {files} records in {seconds:.1f}s = {rate:.0f} "
        f"records/s (exit {done.returncode}; default settings)",
        flush=True,
    )
    return rate, done


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--students", type=int, default=25_000)
    parser.add_argument(
        "--target-concurrency",
        type=int,
        default=4,
        help="max_concurrency of the target connection block",
    )
    parser.add_argument("--only", choices=("flow", "lightbeam", "both"), default="both")
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    run_dir = CACHE / f"run-{args.students}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    jsonl = CACHE / f"jsonl-{args.students}"
    started = time.perf_counter()
    with serve(args.students, CACHE / f"sandbox-{args.students}.sqlite", fresh=False) as source:
        print(
            f"source ready ({args.students} students) in {time.perf_counter() - started:.0f}s",
            flush=True,
        )
        if not (jsonl / "done.json").exists():
            (jsonl / "done.json").parent.mkdir(parents=True, exist_ok=True)
            fetched = asyncio.run(fetch_jsonl(source, jsonl))
            (jsonl / "done.json").write_text(json.dumps(fetched))
        counts = json.loads((jsonl / "done.json").read_text())
        print(
            f"records: {sum(counts.values())} in {sum(1 for n in counts.values() if n)} resources",
            flush=True,
        )
        flow_rate = lb_rate = 0.0
        if args.only in ("flow", "both"):
            flow_rate = run_flow_bench(source, run_dir, counts, args.target_concurrency)
    if args.only in ("lightbeam", "both"):
        lb_rate, done = run_lightbeam_bench(run_dir, jsonl, counts)
        if done.returncode != 0:
            print(done.stderr[-2000:])
    if flow_rate and lb_rate:
        print(f"ratio: publish flow / lightbeam = {flow_rate / lb_rate:.2f}x", flush=True)


if __name__ == "__main__":
    main()
