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
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# the demo prints its own summary (unmapped descriptor values included); failures still raise
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "ERROR")


def _table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    widths = {c: max([len(c), *(len(str(r[c])) for r in rows)]) for c in columns}
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


_CHRONIC = """
    WITH days AS (
        SELECT SchoolKey, StudentKey, count(*) AS days,
               sum(ReportedAsAbsentFromSchool) AS absent
        FROM chrab GROUP BY ALL)
    SELECT s.SchoolName AS school, count(*) AS students,
           count(*) FILTER (WHERE absent >= 0.1 * days) AS chronic
    FROM days d JOIN school s USING (SchoolKey)
    GROUP BY ALL ORDER BY chronic * 1.0 / students DESC
"""


def chronic_absenteeism(lake: Any) -> list[tuple[str, int, int]]:
    """Students absent on at least 10% of their enrolled days, per school (from gold)."""
    import duckdb

    from edfi.amt import read_view

    con = duckdb.connect()
    con.register("chrab", read_view(lake, "chrab_ChronicAbsenteeismAttendanceFact"))
    con.register("school", read_view(lake, "SchoolDim"))
    return [(str(a), int(b), int(c)) for a, b, c in con.execute(_CHRONIC).fetchall()]


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
    from edfi.lake import Lake
    from flows.extract import extract
    from sandbox.server import build_sandbox, serve_in_thread

    logging.getLogger("prefect").setLevel(logging.ERROR)
    started = time.perf_counter()
    print(f"Building the sandbox district ({args.students} students) ...", flush=True)
    sandbox = build_sandbox(students=args.students, seed=1, db=args.db)
    with serve_in_thread(sandbox) as running:
        print(
            f"Sandbox Ed-Fi ODS/API 7.3 serving at {running.base_url} "
            f"({time.perf_counter() - started:.1f} s)",
            flush=True,
        )
        conn = EdFiConnection(
            base_url=running.base_url,
            client_id=running.client_id,
            client_secret=SecretStr(running.client_secret),
        )
        lake_url = str(Path(args.lake).resolve()) if "://" not in args.lake else args.lake
        print(
            f"Running the extract flow ({args.mode}) into {lake_url}, "
            "then the gold flow (Analytics Middle Tier tables) ...",
            flush=True,
        )
        summary = asyncio.run(
            extract(conn, LakeStorage(url=lake_url), mode=args.mode, run_gold=True)
        )

    rows = sorted(summary["resources"], key=lambda r: -r["records"])
    descriptors = [r for r in rows if r["resource"].endswith("Descriptors")]
    others = [r for r in rows if not r["resource"].endswith("Descriptors")]
    shown = [
        {**r, "school_year": r["school_year"] or "-", "seconds": round(r["seconds"], 1)}
        for r in others
        if r["records"] or r["rows"] or r["status"] not in ("pulled", "unchanged")
    ]
    print()
    columns = ["resource", "school_year", "status", "records", "deletes", "key_changes", "rows"]
    if shown:
        print(_table(shown, [*columns, "seconds"]))
    else:
        print("Nothing changed since the last run: every table is unchanged.")
    empty = len(others) - len(shown)
    print(
        f"... and {len(descriptors)} descriptor resources "
        f"({sum(r['records'] for r in descriptors)} records)"
        + (f", {empty} resources with no records" if empty else "")
    )
    print()
    print(
        f"Run {summary['run_id']}: {summary['status']}, {summary['records']} records, "
        f"{summary['requests']} requests in {summary['seconds']:.1f} s"
    )
    gold = summary.get("gold") or {}
    if gold:
        unmapped = gold.get("unmapped_descriptors", [])
        print(
            f"Gold: {len(gold.get('views', []))} Analytics Middle Tier views built; "
            f"{len(unmapped)} descriptor values in the data are not in the descriptor map "
            "(README: 'The descriptor map')."
        )
        print()
        print("Chronic absenteeism (absent on 10% or more of enrolled days), by school:")
        for school, students, chronic in chronic_absenteeism(Lake(lake_url)):
            share = f"{chronic / students:.0%}"
            print(f"  {school:<40} {chronic:>5} of {students:>5} students ({share})")
    print()
    print(f"Lake: {lake_url}")
    print(f"  current tables: {lake_url}/current/<namespace>/<resource>/school_year=<y>/")
    print(f"  gold tables:    {lake_url}/gold/ (named by gold/_manifest.json)")
    print(f"  raw JSONL:      {lake_url}/raw/...   manifests: {lake_url}/state/, {lake_url}/runs/")
    print(
        'Try:  .venv/bin/python -c "import duckdb; print(duckdb.sql(\\"select count(*) from '
        f"'{lake_url}/current/ed-fi/students/*/*/*.parquet'\\\"))\""
    )
    print("Next: README.md shows the flows' parameters, how to deploy them and the other flows.")


if __name__ == "__main__":
    main()
