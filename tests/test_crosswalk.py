"""The student-ID crosswalk against the bundles' own ``student_ids`` package, run by the
real earthmover on the same vendor file and roster (the sandbox's associations)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edfi.crosswalk import (
    XWALK_COLUMN,
    Crosswalk,
    CrosswalkError,
    best_pair,
    read_csv,
    roster_table,
    write_csv,
)
from sandbox.server import build_sandbox

EARTHMOVER = Path(sys.executable).parent / "earthmover"


@pytest.fixture(scope="module")
def roster() -> list[dict[str, Any]]:
    store = build_sandbox(students=60, seed=11).store()
    return list(store.iter_records(store.model.find("studentEducationOrganizationAssociations")))


def codes(record: dict[str, Any]) -> dict[str, str]:
    return {
        c["studentIdentificationSystemDescriptor"].split("#")[-1]: c["identificationCode"]
        for c in record["studentIdentificationCodes"]
    }


@pytest.fixture(scope="module")
def vendor(roster: list[dict[str, Any]]) -> bytes:
    """A vendor file: ``StateID`` holds the State code (every 7th row a code no student has,
    every 5th with a spreadsheet's trailing ``.0``), ``VendorID`` garbage, ``LocalID`` the
    District code in odd rows only."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["StateID", "VendorID", "LocalID", "Score"])
    for i, record in enumerate(roster):
        ids = codes(record)
        state = ids["State"] if i % 7 else f"SX{i}"
        if i % 5 == 0:
            state += ".0"
        writer.writerow(
            [state, f"V{(i * 7919) % 100_003}", ids["District"] if i % 2 else "", 200 + i]
        )
    return ("\ufeff" + out.getvalue()).encode()


def test_rates_pick_and_apply(roster: list[dict[str, Any]], vendor: bytes) -> None:
    data = read_csv(vendor)
    x = Crosswalk(data, roster_table(roster), ["District", "State"])
    rates = {
        (r.source_column, r.edfi_column): r
        for r in x.match_rates(["StateID", "VendorID", "LocalID"])
    }
    n = len(roster)
    unmatched_rows = [i for i in range(n) if i % 7 == 0]
    assert rates["StateID", "State"].matches == n - len(unmatched_rows)
    assert rates["LocalID", "District"].matches == n // 2
    assert rates["LocalID", "studentUniqueId"].matches == n // 2  # District code == unique id here
    assert all(r.matches == 0 for (c, _), r in rates.items() if c == "VendorID")
    assert {r.rows for r in rates.values()} == {n}

    best = best_pair(list(rates.values()), 0.5)
    assert best is not None
    assert (best.source_column, best.edfi_column) == ("StateID", "State")
    assert best_pair(list(rates.values()), 0.99) is None

    matched, unmatched = x.apply(best)
    by_state = {codes(r)["State"]: r["studentReference"]["studentUniqueId"] for r in roster}
    for row in matched.to_pylist():
        assert row[XWALK_COLUMN] == by_state[row["StateID"].removesuffix(".0")]
    assert matched.num_rows == n - len(unmatched_rows)
    # unmatched rows keep their original columns and values, in file order
    original = list(csv.DictReader(io.StringIO(vendor.decode("utf-8-sig"))))
    assert unmatched.column_names == ["StateID", "VendorID", "LocalID", "Score"]
    assert list(csv.DictReader(io.StringIO(write_csv(unmatched).decode()))) == [
        original[i] for i in unmatched_rows
    ]


def test_a_value_two_students_share_is_no_match(roster: list[dict[str, Any]]) -> None:
    twin = json.loads(json.dumps(roster[1]))
    twin["studentReference"]["studentUniqueId"] = "someone-else"
    data = read_csv(f"StateID\n{codes(roster[1])['State']}\n{codes(roster[2])['State']}\n".encode())
    x = Crosswalk(data, roster_table([*roster, twin]), ["State"])
    best = best_pair(x.match_rates(["StateID"]), 0.5)
    assert best is not None
    matched, unmatched = x.apply(best)
    assert matched.column(XWALK_COLUMN).to_pylist() == [
        roster[2]["studentReference"]["studentUniqueId"]
    ]
    assert unmatched.num_rows == 1


def test_bad_input_is_named(roster: list[dict[str, Any]]) -> None:
    x = Crosswalk(read_csv(b"A,B\n1,2\n"), roster_table(roster))
    with pytest.raises(CrosswalkError, match="no column 'StudentID'; it has 'A', 'B'"):
        x.match_rates(["StudentID"])
    with pytest.raises(CrosswalkError, match="empty"):
        read_csv(b"")


def test_rates_equal_the_student_ids_package(
    roster: list[dict[str, Any]], vendor: bytes, spec_dir: Path, tmp_path: Path
) -> None:
    package = spec_dir.parent / "earthmover-bundles" / "packages" / "student_ids"
    if not package.is_dir():
        pytest.skip(f"the student_ids package is not at {package}")
    if not EARTHMOVER.exists():
        pytest.skip(f"earthmover is not installed at {EARTHMOVER}")
    (tmp_path / "vendor.csv").write_bytes(vendor.removeprefix("\ufeff".encode()))
    (tmp_path / "roster.jsonl").write_text("".join(json.dumps(r) + "\n" for r in roster))
    (tmp_path / "earthmover.yaml").write_text(
        "version: 2\nconfig:\n  output_dir: ${OUTPUT_DIR}\n  show_graph: False\n"
        f"packages:\n  student_ids:\n    local: {package}\n"
        f"sources:\n  input:\n    file: {tmp_path / 'vendor.csv'}\n    header_rows: 1\n"
    )
    params = json.dumps(
        {
            "POSSIBLE_STUDENT_ID_COLUMNS": "StateID,VendorID,LocalID",
            "EDFI_ROSTER_SOURCE_TYPE": "file",
            "EDFI_ROSTER_FILE": str(tmp_path / "roster.jsonl"),
            "EDFI_STUDENT_ID_TYPES": "District,State",
            "EARTHMOVER_NODE_TO_XWALK": "$sources.input",
            "REQUIRED_ID_MATCH_RATE": 0.5,
            "OUTPUT_DIR": str(tmp_path / "out"),
        }
    )
    for command in ("deps", "run"):
        done = subprocess.run(
            [str(EARTHMOVER), command, "-c", "earthmover.yaml", "-p", params],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with open(tmp_path / "out" / "student_id_match_rates.csv", newline="") as fh:
        theirs = {
            (r["source_column_name"], r["edfi_column_name"]): (
                int(r["num_matches"]),
                float(r["match_rate"]),
            )
            for r in csv.DictReader(fh)
        }
    x = Crosswalk(read_csv(vendor), roster_table(roster), ["District", "State"])
    ours = {
        (r.source_column, r.edfi_column): (r.matches, r.rate)
        for r in x.match_rates(["StateID", "VendorID", "LocalID"])
        if r.matches  # the package lists only pairs that matched at least one row
    }
    assert ours == theirs
    with open(tmp_path / "out" / "input_no_student_id_match.csv", newline="") as fh:
        their_unmatched = list(csv.DictReader(fh))
    best = best_pair(x.match_rates(["StateID", "VendorID", "LocalID"]), 0.5)
    assert best is not None
    _, unmatched = x.apply(best)
    assert list(csv.DictReader(io.StringIO(write_csv(unmatched).decode()))) == their_unmatched
