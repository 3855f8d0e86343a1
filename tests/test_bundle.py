"""The bundle flow with the real i-Ready bundle and earthmover, into a sandbox over HTTP:
checks before the run, the crosswalk against the target's roster, exact counts on the
target, a rerun that sends nothing new, and earthmover's own errors surfaced."""

from __future__ import annotations

import asyncio
import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edfi.bundle import BundleError, open_bundle, problems
from edfi.errors import SendError
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import connection_block, run_extract

SAMPLES = ("sample_anonymized_file_math.csv", "sample_anonymized_file_ela.csv")


@pytest.fixture(scope="module")
def iready(spec_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = spec_dir.parent / "earthmover-bundles" / "assessments" / "i-Ready"
    if not source.is_dir():
        pytest.skip(f"the i-Ready bundle is not at {source}")
    copy = tmp_path_factory.mktemp("bundles") / "i-Ready"
    shutil.copytree(source, copy)
    return copy


def sample_ids(iready: Path) -> set[str]:
    ids: set[str] = set()
    for name in SAMPLES:
        with open(iready / "data" / name, encoding="utf-8-sig", newline="") as fh:
            ids |= {row["Student State ID"] for row in csv.DictReader(fh)}
    return ids


@pytest.fixture(scope="module")
def target(iready: Path) -> Iterator[RunningSandbox]:
    """A small district plus the sample's students, known to Ed-Fi by other unique ids:
    the sample's IDs are their State identification codes."""
    with running_sandbox(students=20, seed=5) as sb:
        store = sb.store()
        students = store.model.find("students")
        seoa = store.model.find("studentEducationOrganizationAssociations")
        for state_id in sorted(sample_ids(iready)):
            store.upsert(
                students,
                {
                    "studentUniqueId": f"U{state_id}",
                    "firstName": "Sample",
                    "lastSurname": state_id,
                    "birthDate": "2015-05-01",
                },
            )
            store.upsert(
                seoa,
                {
                    "educationOrganizationReference": {"educationOrganizationId": 255901},
                    "studentReference": {"studentUniqueId": f"U{state_id}"},
                    "studentIdentificationCodes": [
                        {
                            "studentIdentificationSystemDescriptor": "uri://ed-fi.org/"
                            "StudentIdentificationSystemDescriptor#State",
                            "assigningOrganizationIdentificationCode": "255",
                            "identificationCode": state_id,
                        }
                    ],
                },
            )
        yield sb


def run_bundle(sb: RunningSandbox, bundle: Path, lake: Path, **kwargs: Any) -> dict[str, Any]:
    from blocks import LakeStorage
    from flows.bundle import bundle as bundle_flow

    return asyncio.run(
        bundle_flow(
            bundle=str(bundle),
            connection=connection_block(sb),
            lake=LakeStorage(url=str(lake)),
            **kwargs,
        )
    )


def test_checks_name_every_missing_parameter_file_and_column(iready: Path, spec_dir: Path) -> None:
    spec = open_bundle(iready)
    assert spec.required_params == ("INPUT_FILE",)
    assert spec.student_id_columns == ("Student ID", "Student State ID")
    assert problems(spec, {}) == [
        f"The bundle {spec.name!r} needs the parameter(s) INPUT_FILE; "
        "give them in the flow's parameters."
    ]
    assert problems(spec, {"INPUT_FILE": "/nowhere/file.csv"}) == [
        "The input file INPUT_FILE=/nowhere/file.csv does not exist."
    ]
    template = open_bundle(
        spec_dir.parent / "earthmover-bundles" / "assessments" / "_template_bundle"
    )
    found = problems(template, {"INPUT_FILE": str(iready / "data" / SAMPLES[0])})
    assert len(found) == 1
    assert "lacks the column(s) studentId, adminDate, grade, scaleScore" in found[0]


def test_iready_samples_through_the_crosswalk_into_the_target(
    target: RunningSandbox, iready: Path, prefect_harness: None, tmp_path: Path
) -> None:
    store = target.store()
    results = store.model.find("studentAssessments")
    before = {r["id"] for r in store.iter_records(results)}
    for sample in SAMPLES:
        summary = run_bundle(
            target,
            iready,
            tmp_path / "lake",
            parameters={"INPUT_FILE": str(iready / "data" / sample)},
        )
        assert summary["status"] == "completed", summary
        (run,) = summary["runs"]
        chosen = run["crosswalk"]["chosen"]
        # both ID columns match every row; ties go to the name that sorts last, as the package does
        assert (chosen["source_column_name"], chosen["edfi_column_name"]) == (
            "Student State ID",
            "State",
        )
        assert chosen["match_rate"] == 1.0
        # the first file's rates are kept for the bundle and target, the next file reuses them
        assert run["crosswalk"]["reused"] == (sample != SAMPLES[0])
        assert run["crosswalk"]["unmatched_rows"] == 0
        assert run["earthmover"] == {
            "assessmentReportingMethodDescriptors": 29,
            "assessments": 2,
            "objectiveAssessments": 11,
            "performanceLevelDescriptors": 97,
            "studentAssessments": 5,
        }
    made = [r for r in store.iter_records(results) if r["id"] not in before]
    assert len(made) == 10
    assert {r["studentReference"]["studentUniqueId"] for r in made} == {
        f"U{i}" for i in sample_ids(iready)
    }
    assessments = {
        r["assessmentIdentifier"] for r in store.iter_records(store.model.find("assessments"))
    }
    assert {r["assessmentReference"]["assessmentIdentifier"] for r in made} <= assessments

    # the same file again: nothing new is sent
    again = run_bundle(
        target,
        iready,
        tmp_path / "lake",
        parameters={"INPUT_FILE": str(iready / "data" / SAMPLES[0])},
    )
    rows = {r["resource"]: r for r in again["resources"]}
    assert sum(r.get("sent", 0) for r in rows.values()) == 0, rows
    assert len([r for r in store.iter_records(results) if r["id"] not in before]) == 10


def test_below_the_threshold_nothing_student_level_is_sent(
    target: RunningSandbox, iready: Path, prefect_harness: None, tmp_path: Path
) -> None:
    vendor = tmp_path / "strangers.csv"
    with open(iready / "data" / SAMPLES[0], encoding="utf-8-sig", newline="") as src:
        rows = list(csv.reader(src))
    for row in rows[1:]:
        row[rows[0].index("Student ID")] = "nobody"
        row[rows[0].index("Student State ID")] = "nobody"
    with open(vendor, "w", newline="") as out:
        csv.writer(out).writerows(rows)
    store = target.store()
    results = store.model.find("studentAssessments")
    before = sum(1 for _ in store.iter_records(results))
    with pytest.raises(
        BundleError, match="no student-ID column reaches the required match rate 50%"
    ):
        run_bundle(target, iready, tmp_path / "lake", parameters={"INPUT_FILE": str(vendor)})
    assert sum(1 for _ in store.iter_records(results)) == before
    unmatched = list((tmp_path / "lake" / "bundle" / "runs").glob("*/*/unmatched.csv"))
    assert len(unmatched) == 1
    with open(unmatched[0], newline="") as fh:
        assert list(csv.reader(fh)) == rows  # every row, with its original columns


def test_earthmovers_own_error_is_surfaced_and_nothing_sent(
    target: RunningSandbox, iready: Path, prefect_harness: None, tmp_path: Path
) -> None:
    vendor = tmp_path / "wrong.csv"
    vendor.write_text("Student ID,Student State ID,Other\n605001,605001,x\n")
    with pytest.raises(BundleError, match="earthmover run failed for the bundle"):
        run_bundle(target, iready, tmp_path / "lake", parameters={"INPUT_FILE": str(vendor)})
    assert not list((tmp_path / "lake").glob("bundle/runs/*/*/output/*.jsonl"))


SYNTHETIC = Path(__file__).resolve().parent / "bundles" / "synthetic_vendor"


def test_synthetic_bundle_picks_the_state_id_column_and_lands_subscores_on_the_right_students(
    target: RunningSandbox, prefect_harness: None, tmp_path: Path
) -> None:
    """A bundle of our own in the bundles' format: two candidate ID columns (the State code
    and a vendor's garbage), an overall score and two subscores per row."""
    store = target.store()
    seoa = store.model.find("studentEducationOrganizationAssociations")
    state_to_uid = {}
    for r in store.iter_records(seoa):
        for c in r.get("studentIdentificationCodes", []):
            if c["studentIdentificationSystemDescriptor"].endswith("#State"):
                state_to_uid[c["identificationCode"]] = r["studentReference"]["studentUniqueId"]
    rows = []
    for i, state in enumerate(sorted(state_to_uid)):
        rows.append(
            {
                "StudentStateId": state if i % 6 else f"S-UNKNOWN-{i}",
                "VendorId": f"V{(i * 104729) % 99991}",
                "TestDate": "2026-01-15",
                "Grade": "Fourth grade",
                "Overall": str(500 + i),
                "Reading": str(200 + i),
                "Writing": str(300 + i),
            }
        )
    vendor = tmp_path / "screener.csv"
    with open(vendor, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    unknown = [r for r in rows if r["StudentStateId"].startswith("S-UNKNOWN")]

    summary = run_bundle(
        target, SYNTHETIC, tmp_path / "lake", parameters={"INPUT_FILE": str(vendor)}
    )
    assert summary["status"] == "completed", summary
    (run,) = summary["runs"]
    chosen = run["crosswalk"]["chosen"]
    assert (chosen["source_column_name"], chosen["edfi_column_name"]) == ("StudentStateId", "State")
    assert chosen["num_matches"] == len(rows) - len(unknown)
    assert run["crosswalk"]["unmatched_rows"] == len(unknown)
    assert run["earthmover"] == {
        "assessments": 1,
        "objectiveAssessments": 2,
        "studentAssessments": len(rows) - len(unknown),
    }
    landed = {
        r["studentReference"]["studentUniqueId"]: r
        for r in store.iter_records(store.model.find("studentAssessments"))
        if r["assessmentReference"]["assessmentIdentifier"] == "SYN-LITERACY"
    }
    expected = {state_to_uid[r["StudentStateId"]]: r for r in rows if r not in unknown}
    assert landed.keys() == expected.keys()
    for uid, record in landed.items():
        row = expected[uid]
        assert record["scoreResults"][0]["result"] == row["Overall"]
        subscores = {
            s["objectiveAssessmentReference"]["identificationCode"]: s["scoreResults"][0]["result"]
            for s in record["studentObjectiveAssessments"]
        }
        assert subscores == {
            "SYN-LITERACY-READING": row["Reading"],
            "SYN-LITERACY-WRITING": row["Writing"],
        }
    (unmatched_file,) = (tmp_path / "lake" / "bundle" / "runs").glob("*/*/unmatched.csv")
    with open(unmatched_file, newline="") as fh:
        assert list(csv.DictReader(fh)) == unknown


def test_every_problem_of_every_run_is_named_before_anything_runs(
    target: RunningSandbox, iready: Path, prefect_harness: None, tmp_path: Path
) -> None:
    from flows.bundle import BundleRun

    with pytest.raises(BundleError) as caught:
        run_bundle(
            target,
            iready,
            tmp_path / "lake",
            parameters={},
            more_bundles=[
                BundleRun(bundle=str(SYNTHETIC), parameters={"INPUT_FILE": "/nowhere/a.csv"})
            ],
        )
    assert str(caught.value) == (
        "i-Ready: The bundle 'i-Ready Diagnostic Math and ELA Assessments' needs the "
        "parameter(s) INPUT_FILE; give them in the flow's parameters. synthetic_vendor "
        "a.csv: The input file INPUT_FILE=/nowhere/a.csv does not exist."
    )
    assert not (tmp_path / "lake").exists()  # nothing partial is visible


def state_codes(store: Any) -> dict[str, str]:
    """The target's students by their State identification code."""
    out = {}
    for r in store.iter_records(store.model.find("studentEducationOrganizationAssociations")):
        for c in r.get("studentIdentificationCodes", []):
            if c["studentIdentificationSystemDescriptor"].endswith("#State"):
                out[c["identificationCode"]] = r["studentReference"]["studentUniqueId"]
    return out


def test_files_fan_out_with_the_roster_from_a_lake_and_a_missing_descriptor_is_resent(
    target: RunningSandbox, prefect_harness: None, tmp_path: Path
) -> None:
    """Two vendor drops, one task each; the roster read from an extract lake; the second
    drop's grade is a descriptor the target lacks: its records are rejected with the
    reason, and once the district adds the descriptor a rerun sends exactly them."""
    from blocks import LakeStorage

    extract_lake = tmp_path / "extract"
    done = run_extract(
        target, str(extract_lake), resources=["ed-fi/studentEducationOrganizationAssociations"]
    )
    assert done["status"] == "completed", done
    store = target.store()
    students = sorted(state_codes(store).items())[:6]
    files = []
    for n, (date, grade) in enumerate((("2026-02-02", "Fourth grade"), ("2026-03-02", "Year 4"))):
        vendor = tmp_path / f"drop{n}.csv"
        with open(vendor, "w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(
                ["StudentStateId", "VendorId", "TestDate", "Grade", "Overall", "Reading", "Writing"]
            )
            for i, (state, _) in enumerate(students):
                writer.writerow([state, f"V{i}", date, grade, 400 + i, 100 + i, 200 + i])
        files.append(str(vendor))
    results = store.model.find("studentAssessments")

    def landed(date: str) -> set[str]:
        return {
            r["studentReference"]["studentUniqueId"]
            for r in store.iter_records(results)
            if r["assessmentReference"]["assessmentIdentifier"] == "SYN-LITERACY"
            and r["administrationDate"].startswith(date)  # a date-time on the target
        }

    def run() -> dict[str, Any]:
        return run_bundle(
            target,
            SYNTHETIC,
            tmp_path / "lake",
            parameters={},
            input_files=files,
            roster_lake=LakeStorage(url=str(extract_lake)),
            force_match_rates=True,
        )

    with pytest.raises(SendError) as caught:
        run()
    message = str(caught.value)
    assert message.startswith("synthetic_vendor drop1.csv: 6 records failed (studentAssessments 6)")
    assert (
        "GradeLevelDescriptor value 'uri://ed-fi.org/GradeLevelDescriptor#Year 4' does not "
        "exist in the target" in message
    )
    uids = {uid for _, uid in students}
    assert landed("2026-02-02") == uids
    assert landed("2026-03-02") == set()
    # each file had its own task and run folder, crosswalked against the lake's roster
    folders = sorted(p.name for p in (tmp_path / "lake" / "bundle" / "runs").glob("*/*"))
    assert folders == ["00-synthetic_vendor-drop0-csv", "01-synthetic_vendor-drop1-csv"]

    store.upsert(  # the district adds the grade level its vendor uses
        store.model.find("gradeLevelDescriptors"),
        {
            "namespace": "uri://ed-fi.org/GradeLevelDescriptor",
            "codeValue": "Year 4",
            "shortDescription": "Year 4",
        },
    )
    again = run()
    assert [s["sent"] for s in again["send"]] == [0, 6]  # only the rejected records
    assert landed("2026-03-02") == uids
