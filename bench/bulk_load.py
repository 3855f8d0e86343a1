"""Benchmark: Ed-Fi XML interchange files -> API records, parse+map alone and end to end.

The input is a synthetic district exported as interchange XML
(``edfi-sandbox export-xml``, cached under ``bench/.cache``). Parse+map is the
reader's two passes (check with XSD validation, then records) on one core:
elements per CPU-second, and peak RSS to show memory does not grow with the
district. End to end (``--end-to-end``) loads the files into a fresh sandbox
process (``--students 0``: the default descriptors, nothing else) by each
``--method``:

- ``api``: the flow's default -- parse+map here (the check pass, then the
  conversion in a thread beside the sending), one POST per record through the
  shared sender, resources in dependency order;
- ``bulk``: the legacy ``/bulk/v1`` services -- the files uploaded in chunks,
  the sandbox parses, maps and writes them itself;
- ``jsonl``: the same records, already mapped (the spool's JSON lines, built
  before the clock starts), through the same sender: the API method without
  the XML, so ``api`` minus ``jsonl`` is what XML costs end to end.

Each reports records/s, the loader's and the sandbox's CPU seconds. This is
a script, not a test: it prints figures for the README. Run it late:

    flock /tmp/edfi-bench.lock .venv/bin/python bench/bulk_load.py --students 1000 \
        --end-to-end --latency 0 30 --method api bulk jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncio  # noqa: E402
import tempfile  # noqa: E402

import psutil  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from edfi.client import Connection, EdFiClient  # noqa: E402
from edfi.lake import Lake  # noqa: E402
from edfi.model import builtin_model  # noqa: E402
from edfi.send import Item, Sender, SendOptions, write_connection  # noqa: E402
from edfi.xml.reader import XmlLoad, list_files  # noqa: E402
from edfi.xml.run import BulkLoadRun, BulkLoadSettings  # noqa: E402
from sandbox.server import open_store, sandbox_process  # noqa: E402

CACHE = ROOT / "bench" / ".cache"


def exported(students: int, seed: int = 1) -> Path:
    """The district as interchange XML, exported once and reused."""
    out = CACHE / f"xml-{students}-{seed}"
    done = out / "_done.json"
    if not done.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "sandbox",
                "export-xml",
                str(out),
                "--students",
                str(students),
                "--seed",
                str(seed),
            ],
            check=True,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        done.write_text("{}")
    return out


def parse_map(folder: Path, validate: bool) -> dict[str, float]:
    """Both reader passes over every file, in this process: elements per CPU-second."""
    model = builtin_model()
    load = XmlLoad(list_files(str(folder)), model, validate=validate)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    report = load.check()
    records = sum(1 for r in load.records() if r.body is not None)
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    assert not report.problems, report.problems[:3]
    return {
        "elements": records,
        "cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "elements_per_cpu_s": round(records / cpu),
    }


def child_parse_map(folder: Path, validate: bool) -> dict[str, float]:
    """``parse_map`` in a fresh process, so its peak RSS is the reader's alone."""
    cmd = [sys.executable, __file__, "--child", str(folder)]
    if not validate:
        cmd.append("--no-validate")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def _load(
    info: dict[str, str], folder: Path, years: list[dict[str, object]], method: str, tmp: str
) -> dict[str, float]:
    """One load by the flow's own core (``BulkLoadRun``: send state and rejects included)."""
    conn = write_connection(
        Connection(info["base_url"], info["client_id"], SecretStr(info["client_secret"])), 32
    )
    server = next(
        p
        for p in psutil.Process().children()
        if info["base_url"].rsplit(":", 1)[1] in " ".join(p.cmdline())
    )
    lake = f"{tmp}/lake"
    run = BulkLoadRun(
        BulkLoadSettings(data=str(folder), method="bulk" if method == "bulk" else "api"),
        lake=Lake(lake),
        state_url=lake,
        state_options=None,
        target="bench",
    )
    async with EdFiClient(conn) as client:
        model = await client.load_model()
        # the school years every ODS/API ships (no interchange carries them)
        years_sender = Sender(client, model, client.url("dataManagementApi"), SendOptions())
        await years_sender.upsert("/ed-fi/schoolYearTypes", [Item(y) for y in years])
        await run.open(client)
        if method == "jsonl":  # the records mapped before the clock starts
            assert run.spool is not None
            run.read_messages(run.spool.build())
        server0 = _cpu(server)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        if method == "bulk":
            await run.upload(client)
        else:  # api: the files checked, then converted beside the sending, as the flow does
            await run.send()
        summary = run.finish()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
        server_cpu = _cpu(server) - server0
    assert not run.failed, f"{run.failed} failed: {run.failure_message()}"
    sent = int(summary["sent"])
    out: dict[str, float] = {
        "records": sent,
        "seconds": round(wall, 1),
        "records_per_s": round(sent / wall),
        "loader_cpu_s": round(cpu, 1),
        "sandbox_cpu_s": round(server_cpu, 1),
        "loader_cpu_ms_per_1000": round(1000 * 1000 * cpu / sent),
        "sandbox_cpu_ms_per_1000": round(1000 * 1000 * server_cpu / sent),
        **{f"{k}_s": v for k, v in summary.get("phases", {}).items()},
        "loader_peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "sandbox_peak_rss_mib": _peak_rss_mib(server.pid),
    }
    return out


def _peak_rss_mib(pid: int) -> int:
    """A process's peak resident memory (Linux ``VmHWM``), in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return 0


def _cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return float(t.user + t.system)


def end_to_end(students: int, latency: float, method: str) -> dict[str, float]:
    """Load the exported district into a fresh sandbox process (default descriptors only)."""
    folder = exported(students)
    with tempfile.TemporaryDirectory(prefix="edfi-bench-") as tmp:
        model = builtin_model()
        source = open_store(model, f"{tmp}/source.sqlite", students=1, seed=1, year=2025)
        years = [
            {k: v for k, v in r.items() if k not in ("id", "_etag", "_lastModifiedDate")}
            for r in source.iter_records(model["/ed-fi/schoolYearTypes"])
        ]
        faults = f"latency_ms={latency:g}" if latency else None
        with sandbox_process(students=0, db=f"{tmp}/target.sqlite", faults=faults) as info:
            return asyncio.run(_load(info, folder, years, method, tmp))


def child_end_to_end(students: int, latency: float, method: str) -> dict[str, float]:
    """``end_to_end`` in a fresh process, so its peak RSS is that one load's."""
    cmd = [sys.executable, __file__, "--e2e-child", str(students), str(latency), method]
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, nargs="+", default=[1000])
    parser.add_argument("--no-validate", action="store_true", help="skip XSD validation")
    parser.add_argument("--end-to-end", action="store_true", help="also load into a sandbox")
    parser.add_argument("--latency", type=float, nargs="+", default=[0])
    parser.add_argument(
        "--method", nargs="+", default=["api", "bulk", "jsonl"], choices=["api", "bulk", "jsonl"]
    )
    parser.add_argument("--no-parse-map", action="store_true", help="end to end only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--e2e-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.e2e_child:
        n, latency, method = args.e2e_child
        print(json.dumps(end_to_end(int(n), float(latency), method)))
        return
    if args.child:
        result = parse_map(Path(args.child), not args.no_validate)
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result))
        return
    for n in args.students:
        folder = exported(n)
        size = sum(p.stat().st_size for p in folder.glob("*.xml")) / 2**20
        rate = 0.0
        if not args.no_parse_map:
            result = child_parse_map(folder, not args.no_validate)
            rate = result["elements_per_cpu_s"]
            print(json.dumps({"students": n, "xml_mib": round(size, 1), **result}), flush=True)
        if args.end_to_end:
            for latency in args.latency:
                for method in args.method:
                    e2e = child_end_to_end(n, latency, method)
                    row = {"students": n, "latency_ms": latency, "method": method, **e2e}
                    if method == "api" and rate:
                        # parse+map's CPU at the rate measured alone, against all the CPU used
                        parse = e2e["records"] / rate
                        cpu = e2e["loader_cpu_s"] + e2e["sandbox_cpu_s"]
                        row["parse_map_share_of_all_cpu"] = round(parse / cpu, 2)
                    print(json.dumps({**row, "load_avg": os.getloadavg()[0]}), flush=True)


if __name__ == "__main__":
    main()
