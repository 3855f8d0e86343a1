"""``make demo``: start the sandbox district, run the extract flow into ./lake, show what landed.

Everything is local: the sandbox serves a synthetic district over HTTP from a
background thread and Prefect runs with its temporary local server, so no
Prefect server, credentials or cloud account are needed to try the project.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    line = "  ".join(c.ljust(widths[c]) for c in columns)
    out = [line, "  ".join("-" * widths[c] for c in columns)]
    for r in rows:
        out.append(
            "  ".join(
                str(r[c]).rjust(widths[c])
                if isinstance(r[c], int | float)
                else str(r[c]).ljust(widths[c])
                for c in columns
            )
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--lake", default="./lake", help="lake URL or folder (default ./lake)")
    parser.add_argument(
        "--db",
        default=".cache/demo-sandbox.sqlite",
        help="where the sandbox keeps its district (reused between demos)",
    )
    parser.add_argument("--mode", choices=["incremental", "full"], default="incremental")
    args = parser.parse_args()

    from pydantic import SecretStr

    from blocks import EdFiConnection, LakeStorage
    from flows.extract import extract
    from sandbox.server import build_sandbox, serve_in_thread

    logging.getLogger("prefect").setLevel(logging.WARNING)
    started = time.perf_counter()
    print(f"Building the sandbox district ({args.students} students) ...", flush=True)
    sandbox = build_sandbox(students=args.students, seed=1, db=args.db)
    with serve_in_thread(sandbox) as running:
        print(
            f"Sandbox Ed-Fi ODS/API 7.3 serving at {running.base_url} "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
        conn = EdFiConnection(
            base_url=running.base_url,
            client_id=running.client_id,
            client_secret=SecretStr(running.client_secret),
        )
        lake_url = str(Path(args.lake).resolve()) if "://" not in args.lake else args.lake
        print(f"Running the extract flow ({args.mode}) into {lake_url} ...", flush=True)
        summary = asyncio.run(extract(conn, LakeStorage(url=lake_url), mode=args.mode))

    rows = sorted(summary["resources"], key=lambda r: -r["records"])
    shown = [r for r in rows if not r["resource"].endswith("Descriptors")]
    print()
    print(
        _table(
            shown,
            [
                "resource",
                "school_year",
                "status",
                "records",
                "deletes",
                "key_changes",
                "rows",
                "seconds",
            ],
        )
    )
    descriptors = [r for r in rows if r["resource"].endswith("Descriptors")]
    print(
        f"... and {len(descriptors)} descriptor resources "
        f"({sum(r['records'] for r in descriptors)} records)"
    )
    print()
    print(
        f"Run {summary['run_id']}: {summary['status']}, {summary['records']} records, "
        f"{summary['requests']} requests in {summary['seconds']}s"
    )
    print(f"Lake: {lake_url}")
    print(f"  current tables: {lake_url}/current/<namespace>/<resource>/school_year=<y>/")
    print(f"  raw JSONL:      {lake_url}/raw/...   manifests: {lake_url}/state/, {lake_url}/runs/")
    print(
        'Try:  .venv/bin/python -c "import duckdb; print(duckdb.sql(\\"select count(*) from '
        f"'{lake_url}/current/ed-fi/students/*/*/*.parquet'\\\"))\""
    )


if __name__ == "__main__":
    main()
