"""Benchmark: Ed-Fi XML interchange files -> API records, parse+map alone and end to end.

The input is a synthetic district exported as interchange XML
(``edfi-sandbox export-xml``, cached under ``bench/.cache``). Parse+map is the
reader's two passes (check with XSD validation, then records) on one core:
elements per CPU-second, and peak RSS to show memory does not grow with the
district. End to end (``--end-to-end``) bulk-loads the files into a fresh
empty sandbox process and reports records per second. This is a script, not a
test: it prints figures for the README. Run it late and quietly:

    flock /tmp/edfi-bench.lock .venv/bin/python bench/bulk_load.py --students 1000 5000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import asyncio  # noqa: E402
import tempfile  # noqa: E402

from pydantic import SecretStr  # noqa: E402

from edfi.client import Connection, EdFiClient  # noqa: E402
from edfi.model import builtin_model  # noqa: E402
from edfi.send import Item, Sender, SendOptions, write_connection  # noqa: E402
from edfi.xml.bulk import BulkLoad  # noqa: E402
from edfi.xml.reader import XmlLoad, list_files  # noqa: E402
from edfi.xml.spool import XmlSpool  # noqa: E402
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
    info: dict[str, str], folder: Path, years: list[dict[str, object]]
) -> dict[str, float]:
    conn = write_connection(
        Connection(info["base_url"], info["client_id"], SecretStr(info["client_secret"])), 32
    )
    async with EdFiClient(conn) as client:
        model = await client.load_model()
        sender = Sender(client, model, client.url("dataManagementApi"), SendOptions())
        # the school years every ODS/API ships (no interchange carries them)
        await sender.upsert("/ed-fi/schoolYearTypes", [Item(y) for y in years])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        with XmlSpool(XmlLoad(list_files(str(folder)), model)) as spool:
            report = spool.build()
            parse_cpu = time.process_time() - cpu0
            result = await BulkLoad(model, spool, sender).run()
        wall = time.perf_counter() - wall0
        cpu = time.process_time() - cpu0
    sent = sum(r.sent for r in result.rows.values())
    assert result.failed == 0 and not report.file_problems, result.rejects[:3]
    return {
        "records": sent,
        "seconds": round(wall, 1),
        "records_per_s": round(sent / wall),
        "loader_cpu_s": round(cpu, 1),
        "parse_map_share_of_loader_cpu": round(parse_cpu / cpu, 2),
    }


def end_to_end(students: int, latency: float) -> dict[str, float]:
    """Bulk-load the exported district into a fresh, empty sandbox process."""
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
            return asyncio.run(_load(info, folder, years))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, nargs="+", default=[1000])
    parser.add_argument("--no-validate", action="store_true", help="skip XSD validation")
    parser.add_argument("--end-to-end", action="store_true", help="also load into a sandbox")
    parser.add_argument("--latency", type=float, nargs="+", default=[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = parse_map(Path(args.child), not args.no_validate)
        result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result))
        return
    for n in args.students:
        folder = exported(n)
        size = sum(p.stat().st_size for p in folder.glob("*.xml")) / 2**20
        result = child_parse_map(folder, not args.no_validate)
        print(json.dumps({"students": n, "xml_mib": round(size, 1), **result}), flush=True)
        if args.end_to_end:
            for latency in args.latency:
                e2e = end_to_end(n, latency)
                print(json.dumps({"students": n, "latency_ms": latency, **e2e}), flush=True)


if __name__ == "__main__":
    main()
