"""Benchmark: the student-ID crosswalk against the bundles' ``student_ids`` package.

Both score every (candidate column, Ed-Fi ID type) pair of the same vendor file
against the same roster: the package through earthmover (its CLI, in a
subprocess, as users run it), ``edfi.crosswalk`` in this process. The script
checks that both find the same rates, then prints seconds, rows per second and
the ratio.

    .venv/bin/python bench/bundle.py --rows 100000 --students 25000

The vendor file has three candidate columns (a State ID with some spreadsheet
``.0`` suffixes and some unknown values, a District ID in half the rows, a
vendor ID that matches nothing); the roster has District and State codes.
Needs the package beside the project (``../shared/earthmover-bundles``).

The end-to-end comparison (earthmover + crosswalk + validate + send against
``earthmover run`` + the package + ``lightbeam send``) is not here yet.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edfi.crosswalk import Crosswalk, best_pair, read_csv, roster_table  # noqa: E402

PACKAGE = ROOT.parent / "shared" / "earthmover-bundles" / "packages" / "student_ids"
CANDIDATES = ["StateID", "VendorID", "LocalID"]
TYPES = ["District", "State"]


def roster(students: int) -> list[dict[str, Any]]:
    system = "uri://ed-fi.org/StudentIdentificationSystemDescriptor#"
    return [
        {
            "educationOrganizationReference": {
                "educationOrganizationId": 255901,
                "link": {"rel": "LocalEducationAgency"},
            },
            "studentReference": {"studentUniqueId": str(600000 + i)},
            "studentIdentificationCodes": [
                {
                    "studentIdentificationSystemDescriptor": system + "District",
                    "assigningOrganizationIdentificationCode": "255901",
                    "identificationCode": str(600000 + i),
                },
                {
                    "studentIdentificationSystemDescriptor": system + "State",
                    "assigningOrganizationIdentificationCode": "255",
                    "identificationCode": f"S{5000000 + i}",
                },
            ],
        }
        for i in range(students)
    ]


def vendor_file(path: Path, rows: int, students: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CANDIDATES, "Score"])
        for i in range(rows):
            s = rng.randrange(students)
            state = f"S{5000000 + s}" if i % 9 else f"SX{i}"
            if i % 5 == 0:
                state += ".0"
            writer.writerow([state, f"V{rng.randrange(10**9)}", 600000 + s if i % 2 else "", i])


def run_package(
    work: Path, vendor: Path, roster_file: Path
) -> tuple[float, dict[tuple[str, str], int]]:
    (work / "earthmover.yaml").write_text(
        "version: 2\nconfig:\n  output_dir: ${OUTPUT_DIR}\n  show_graph: False\n"
        f"packages:\n  student_ids:\n    local: {PACKAGE}\n"
        f"sources:\n  input:\n    file: {vendor}\n    header_rows: 1\n"
    )
    params = json.dumps(
        {
            "POSSIBLE_STUDENT_ID_COLUMNS": ",".join(CANDIDATES),
            "EDFI_ROSTER_SOURCE_TYPE": "file",
            "EDFI_ROSTER_FILE": str(roster_file),
            "EDFI_STUDENT_ID_TYPES": ",".join(TYPES),
            "EARTHMOVER_NODE_TO_XWALK": "$sources.input",
            "REQUIRED_ID_MATCH_RATE": 0.5,
            "OUTPUT_DIR": str(work / "out"),
        }
    )
    earthmover = [sys.executable, "-m", "earthmover"]
    subprocess.run(
        [*earthmover, "deps", "-c", "earthmover.yaml", "-p", params],
        cwd=work,
        check=True,
        capture_output=True,
    )
    started = time.perf_counter()
    subprocess.run(
        [*earthmover, "run", "-c", "earthmover.yaml", "-p", params],
        cwd=work,
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - started
    with (work / "out" / "student_id_match_rates.csv").open(newline="") as fh:
        rates = {
            (r["source_column_name"], r["edfi_column_name"]): int(r["num_matches"])
            for r in csv.DictReader(fh)
        }
    return seconds, rates


def run_ours(
    vendor: Path, records: list[dict[str, Any]]
) -> tuple[float, dict[tuple[str, str], int]]:
    started = time.perf_counter()
    x = Crosswalk(read_csv(vendor.read_bytes()), roster_table(records), TYPES)
    rates = x.match_rates(CANDIDATES)
    best = best_pair(rates, 0.5)
    assert best is not None
    x.apply(best)  # the package applies its best pair in the same run
    seconds = time.perf_counter() - started
    x.close()
    return seconds, {(r.source_column, r.edfi_column): r.matches for r in rates if r.matches}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--students", type=int, default=25_000)
    args = parser.parse_args()
    if not PACKAGE.is_dir():
        sys.exit(f"the student_ids package is not at {PACKAGE}")
    with tempfile.TemporaryDirectory(prefix="edfi-bench-bundle-") as tmp:
        work = Path(tmp)
        records = roster(args.students)
        roster_file = work / "roster.jsonl"
        roster_file.write_text("".join(json.dumps(r) + "\n" for r in records))
        vendor = work / "vendor.csv"
        vendor_file(vendor, args.rows, args.students)
        ours_s, ours = run_ours(vendor, records)
        theirs_s, theirs = run_package(work, vendor, roster_file)
    same = ours == theirs
    print(
        f"vendor rows {args.rows:,}, roster {args.students:,} students, "
        f"{len(CANDIDATES)} candidate columns x {len(TYPES) + 1} ID types"
    )
    print(
        f"student_ids package (earthmover): {theirs_s:8.2f} s  {args.rows / theirs_s:10,.0f} rows/s"
    )
    print(f"edfi.crosswalk:                   {ours_s:8.2f} s  {args.rows / ours_s:10,.0f} rows/s")
    print(f"ratio: {theirs_s / ours_s:.1f}x faster; same match counts: {same}")
    if not same:
        print(f"  package: {theirs}\n  ours:    {ours}")
        sys.exit(1)


if __name__ == "__main__":
    main()
