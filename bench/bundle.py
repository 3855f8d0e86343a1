"""Benchmark: the bundle flow against earthmover + the ``student_ids`` package + lightbeam.

Two parts, on the same synthetic vendor file (``--rows`` rows, four test dates per
student of a ``--students`` roster; columns ``StudentStateId`` -- the State code,
every 5th with a spreadsheet's ``.0``, every 9th unknown --, ``VendorId`` garbage,
``LocalId`` the District code in odd rows, an overall score and two subscores):

- ``crosswalk``: ``edfi.crosswalk`` (rates of every candidate column x ID type,
  then apply the best) in this process against the bundles' ``student_ids``
  package run by earthmover's CLI on the same file and roster; both must find the
  same match counts.
- ``e2e``: the whole bundle flow (roster from the API, crosswalk, earthmover
  running ``tests/bundles/synthetic_vendor``, validate, send) against what a
  district does by hand with the peers' CLIs: ``lightbeam fetch`` of the
  roster, ``earthmover deps`` + ``earthmover run`` of a project composing the
  same bundle with the ``student_ids`` package (as its ``student_id_wrapper``
  does), ``lightbeam send``. Each side writes into its own copy of a sandbox
  holding the roster (its own process, ``--latency`` ms per data response);
  afterwards both targets must hold the same student assessments.

    flock /tmp/edfi-bench.lock .venv/bin/python bench/bundle.py --part crosswalk \\
        --rows 100000 --students 25000
    flock /tmp/edfi-bench.lock .venv/bin/python bench/bundle.py --part e2e \\
        --rows 100000 --students 25000 --latency 30

Needs the package beside the project (``../shared/earthmover-bundles``) and
lightbeam in ``.venv-peers``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from edfi.crosswalk import Crosswalk, best_pair, read_csv, roster_table  # noqa: E402

PACKAGES = ROOT.parent / "shared" / "earthmover-bundles" / "packages"
PACKAGE = PACKAGES / "student_ids"
BUNDLE = ROOT / "tests" / "bundles" / "synthetic_vendor"
CACHE = ROOT / "bench" / ".cache"
CANDIDATES = ["StudentStateId", "VendorId", "LocalId"]
TYPES = ["District", "State"]
SYSTEM = "uri://ed-fi.org/StudentIdentificationSystemDescriptor#"


def uid(i: int) -> str:
    return str(700000 + i)


def state(i: int) -> str:
    return f"S{6000000 + i}"


def roster(students: int) -> list[dict[str, Any]]:
    """The associations as lightbeam fetch writes them (and the API serves them)."""
    return [
        {
            "educationOrganizationReference": {
                "educationOrganizationId": 255901,
                "link": {"rel": "LocalEducationAgency"},
            },
            "studentReference": {"studentUniqueId": uid(i)},
            "studentIdentificationCodes": [
                {
                    "studentIdentificationSystemDescriptor": SYSTEM + "District",
                    "assigningOrganizationIdentificationCode": "255901",
                    "identificationCode": uid(i),
                },
                {
                    "studentIdentificationSystemDescriptor": SYSTEM + "State",
                    "assigningOrganizationIdentificationCode": "255",
                    "identificationCode": state(i),
                },
            ],
        }
        for i in range(students)
    ]


def vendor_file(path: Path, rows: int, students: int) -> int:
    """The vendor file; returns how many rows name a student of the roster."""
    known = 0
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CANDIDATES, "TestDate", "Grade", "Overall", "Reading", "Writing"])
        for i in range(rows):
            s, round_ = i % students, i // students
            sid = state(s) if i % 9 else f"SX{i}"
            known += bool(i % 9)
            if i % 5 == 0:
                sid += ".0"
            writer.writerow(
                [
                    sid,
                    f"V{(i * 7919) % 1_000_003}",
                    uid(s) if i % 2 else "",
                    f"2026-{1 + round_ % 12:02d}-{1 + round_ // 12:02d}",
                    "Fourth grade",
                    500 + i % 300,
                    200 + i % 100,
                    300 + i % 100,
                ]
            )
    return known


def cpu() -> float:
    """CPU seconds of this process and of its children that have ended (earthmover,
    lightbeam): on a shared machine a steadier measure than wall time."""
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def earthmover(*args: str, cwd: Path, params: dict[str, Any]) -> float:
    """One earthmover CLI command (the project's earthmover); its seconds."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "earthmover",
            *args,
            "-c",
            "earthmover.yaml",
            "-p",
            json.dumps(params),
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode:
        sys.exit(f"earthmover {args[0]} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - t0


def package_rates(out: Path) -> dict[tuple[str, str], int]:
    with (out / "student_id_match_rates.csv").open(newline="") as fh:
        return {
            (r["source_column_name"], r["edfi_column_name"]): int(r["num_matches"])
            for r in csv.DictReader(fh)
        }


# -- part 1: the crosswalk against the package ------------------------------------------
def run_package(
    work: Path, vendor: Path, roster_file: Path
) -> tuple[float, dict[tuple[str, str], int]]:
    (work / "earthmover.yaml").write_text(
        "version: 2\nconfig:\n  output_dir: ${OUTPUT_DIR}\n  show_graph: False\n"
        f"packages:\n  student_ids:\n    local: {PACKAGE}\n"
        f"sources:\n  input:\n    file: {vendor}\n    header_rows: 1\n"
    )
    params = {
        "POSSIBLE_STUDENT_ID_COLUMNS": ",".join(CANDIDATES),
        "EDFI_ROSTER_SOURCE_TYPE": "file",
        "EDFI_ROSTER_FILE": str(roster_file),
        "EDFI_STUDENT_ID_TYPES": ",".join(TYPES),
        "EARTHMOVER_NODE_TO_XWALK": "$sources.input",
        "REQUIRED_ID_MATCH_RATE": 0.5,
        "OUTPUT_DIR": str(work / "out"),
    }
    earthmover("deps", cwd=work, params=params)
    c0 = cpu()
    seconds = earthmover("run", cwd=work, params=params)
    print(f"  (package: {cpu() - c0:.1f} CPU s)", flush=True)
    return seconds, package_rates(work / "out")


def run_ours(
    vendor: Path, records: list[dict[str, Any]]
) -> tuple[float, dict[tuple[str, str], int]]:
    started, c0 = time.perf_counter(), cpu()
    x = Crosswalk(read_csv(vendor.read_bytes()), roster_table(records), TYPES)
    rates = x.match_rates(CANDIDATES)
    best = best_pair(rates, 0.5)
    assert best is not None
    x.apply(best)  # the package applies its best pair in the same run
    seconds = time.perf_counter() - started
    print(f"  (edfi.crosswalk: {cpu() - c0:.1f} CPU s)", flush=True)
    x.close()
    return seconds, {(r.source_column, r.edfi_column): r.matches for r in rates if r.matches}


def part_crosswalk(args: argparse.Namespace, work: Path, vendor: Path) -> None:
    records = roster(args.students)
    roster_file = work / "roster.jsonl"
    roster_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    ours_s, ours = run_ours(vendor, records)
    theirs_s, theirs = run_package(work, vendor, roster_file)
    same = ours == theirs
    print(
        f"crosswalk: vendor rows {args.rows:,}, roster {args.students:,} students, "
        f"{len(CANDIDATES)} candidate columns x {len(TYPES) + 1} ID types"
    )
    for name, s in (("student_ids package (earthmover run)", theirs_s), ("edfi.crosswalk", ours_s)):
        print(f"  {name:38s} {s:8.2f} s  {args.rows / s:10,.0f} rows/s")
    print(f"  ratio: {theirs_s / ours_s:.1f}x; same match counts: {same}", flush=True)
    if not same:
        print(f"  package: {theirs}\n  ours:    {ours}")
        sys.exit(1)


# -- part 2: end to end ------------------------------------------------------------------
def target_db(students: int) -> Path:
    """A sandbox database holding the template, the district's education organizations
    and ``students`` students with their associations (State and District codes)."""
    from edfi.model import builtin_model
    from sandbox.district import generate
    from sandbox.server import DEFAULT_YEAR, _district_tag
    from sandbox.store import Store
    from sandbox.template import with_template

    CACHE.mkdir(parents=True, exist_ok=True)
    db = CACHE / f"bundle-target-{students}.sqlite"
    if db.exists():
        return db
    model = builtin_model()
    keep = {
        "/ed-fi/schoolYearTypes",
        "/ed-fi/stateEducationAgencies",
        "/ed-fi/educationServiceCenters",
        "/ed-fi/localEducationAgencies",
    }

    def batches() -> Iterator[tuple[str, list[dict[str, Any]]]]:
        for path, batch in generate(1, seed=1, school_year=DEFAULT_YEAR):
            if path in keep or model[path].is_descriptor:
                yield path, batch
        for start in range(0, students, 5000):
            part = range(start, min(students, start + 5000))
            yield (
                "/ed-fi/students",
                [
                    {
                        "studentUniqueId": uid(i),
                        "firstName": "Bench",
                        "lastSurname": f"Student{i}",
                        "birthDate": "2014-09-01",
                    }
                    for i in part
                ],
            )
        records = roster(students)
        for start in range(0, students, 5000):
            chunk = [json.loads(json.dumps(r)) for r in records[start : start + 5000]]
            for r in chunk:
                r["educationOrganizationReference"].pop("link")
            yield "/ed-fi/studentEducationOrganizationAssociations", chunk

    tmp = db.with_suffix(".tmp")
    store = Store(model, str(tmp), seed=1 + DEFAULT_YEAR)
    store.bulk_load(with_template(model, DEFAULT_YEAR, batches()))
    store.set_meta("district", _district_tag(students, 1, DEFAULT_YEAR, True))
    store.close()
    tmp.rename(db)
    return db


def student_assessments(db: Path) -> int:
    from edfi.model import builtin_model
    from sandbox.store import Store

    model = builtin_model()
    store = Store(model, str(db))
    try:
        return sum(1 for _ in store.iter_records(model["/ed-fi/studentAssessments"]))
    finally:
        store.close()


def run_flow(info: dict[str, Any], vendor: Path, lake: Path) -> dict[str, Any]:
    from pydantic import SecretStr

    from blocks import EdFiConnection, LakeStorage
    from flows.bundle import bundle

    conn = EdFiConnection(
        base_url=info["base_url"],
        client_id=info["client_id"],
        client_secret=SecretStr(info["client_secret"]),
    )
    return asyncio.run(
        bundle(
            bundle=str(BUNDLE),
            parameters={"INPUT_FILE": str(vendor)},
            connection=conn,
            lake=LakeStorage(url=str(lake)),
        )
    )


def lightbeam(command: str, config: Path, *extra: str) -> float:
    from publish import ensure_peers  # type: ignore[import-not-found]

    exe = ensure_peers()
    t0 = time.perf_counter()
    done = subprocess.run(
        [str(exe), command, "-c", str(config), *extra], capture_output=True, text=True, check=False
    )
    if done.returncode:
        sys.exit(f"lightbeam {command} failed:\n{(done.stdout + done.stderr)[-3000:]}")
    return time.perf_counter() - t0


def lightbeam_config(path: Path, info: dict[str, Any], data_dir: Path) -> None:
    path.write_text(
        f"state_dir: {path.parent / 'lb-state'}\n"
        f"data_dir: {data_dir}/\n"
        "namespace: ed-fi\n"
        "edfi_api:\n"
        f"  base_url: {info['base_url']}\n"
        "  mode: sandbox\n"
        f"  client_id: {info['client_id']}\n"
        f"  client_secret: {info['client_secret']}\n"
        "connection:\n  verify_ssl: true\n"
        "log_level: WARNING\n"
    )


def run_peers(info: dict[str, Any], vendor: Path, work: Path) -> dict[str, float]:
    """What a district runs by hand: fetch the roster, earthmover the composed project, send."""
    times: dict[str, float] = {}
    roster_dir, out = work / "roster", work / "out"
    roster_dir.mkdir(parents=True)
    lightbeam_config(work / "fetch.yaml", info, roster_dir)
    times["lightbeam fetch (roster)"] = lightbeam(
        "fetch",
        work / "fetch.yaml",
        "-s",
        "studentEducationOrganizationAssociations",
        "-k",
        "studentIdentificationCodes,educationOrganizationReference,studentReference",
    )
    project = work / "project"
    project.mkdir()
    (project / "earthmover.yaml").write_text(
        "version: 2\nconfig:\n  output_dir: ${OUTPUT_DIR}\n  show_graph: False\n"
        "packages:\n"
        f"  synthetic_vendor:\n    local: {BUNDLE}\n"
        f"  student_ids:\n    local: {PACKAGE}\n"
        "transformations:\n  input:\n    source: $transformations.input_xwalked\n"
    )
    params = {
        "INPUT_FILE": str(vendor),
        "OUTPUT_DIR": str(out),
        "STATE_FILE": str(work / "em-state.csv"),
        "EDFI_ROSTER_SOURCE_TYPE": "file",
        "EDFI_ROSTER_FILE": str(roster_dir / "studentEducationOrganizationAssociations.jsonl"),
        "EDFI_STUDENT_ID_TYPES": ",".join(TYPES),
        "POSSIBLE_STUDENT_ID_COLUMNS": ",".join(CANDIDATES),
        "REQUIRED_ID_MATCH_RATE": 0.5,
    }
    times["earthmover deps"] = earthmover("deps", cwd=project, params=params)
    times["earthmover run (bundle + student_ids)"] = earthmover("run", cwd=project, params=params)
    lightbeam_config(work / "send.yaml", info, out)
    times["lightbeam send"] = lightbeam("send", work / "send.yaml")
    return times


def part_e2e(args: argparse.Namespace, work: Path, vendor: Path, known: int) -> None:
    from prefect.testing.utilities import prefect_test_harness
    from publish import serve  # type: ignore[import-not-found]

    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    base = target_db(args.students)
    print(
        f"end to end: {args.rows:,} vendor rows ({known:,} of known students), roster "
        f"{args.students:,} students, latency {args.latency:g} ms",
        flush=True,
    )
    results: dict[str, tuple[float, int]] = {}
    for side in ("flow", "peers"):
        db = work / f"target-{side}.sqlite"
        shutil.copy(base, db)
        # the flow's Prefect server runs before the clock starts, as it does in production
        harness = prefect_test_harness(180) if side == "flow" else contextlib.nullcontext()
        with serve(args.students, db, fresh=False, latency=args.latency) as info, harness:
            t0, c0 = time.perf_counter(), cpu()
            if side == "flow":
                summary = run_flow(info, vendor, work / "lake")
                steps = {"bundle flow": time.perf_counter() - t0}
                print(f"  flow: sent {summary['sent']:,}", flush=True)
            else:
                steps = run_peers(info, vendor, work / "peers")
            seconds, cpu_s = time.perf_counter() - t0, cpu() - c0
        count = student_assessments(db)
        results[side] = (seconds, count)
        for step, s in steps.items():
            print(f"    {step:42s} {s:8.1f} s", flush=True)
        print(
            f"  {side}: {seconds:8.1f} s ({cpu_s:.1f} CPU s; the target's not counted), "
            f"{count:,} student assessments on the target",
            flush=True,
        )
    (flow_s, flow_n), (peer_s, peer_n) = results["flow"], results["peers"]
    print(f"  ratio: {peer_s / flow_s:.1f}x; same student assessments: {flow_n == peer_n == known}")
    if not flow_n == peer_n == known:
        sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--students", type=int, default=25_000)
    parser.add_argument("--latency", type=float, default=30)
    parser.add_argument("--part", choices=("crosswalk", "e2e", "both"), default="both")
    args = parser.parse_args()
    if not PACKAGE.is_dir():
        sys.exit(f"the student_ids package is not at {PACKAGE}")
    with tempfile.TemporaryDirectory(prefix="edfi-bench-bundle-") as tmp:
        work = Path(tmp)
        vendor = work / "vendor.csv"
        known = vendor_file(vendor, args.rows, args.students)
        if args.part in ("crosswalk", "both"):
            (work / "xwalk").mkdir()
            part_crosswalk(args, work / "xwalk", vendor)
        if args.part in ("e2e", "both"):
            part_e2e(args, work, vendor, known)


if __name__ == "__main__":
    main()
