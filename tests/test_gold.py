"""Gold (AMT views) against the sandbox district: expectations come from the sandbox's own
records in plain Python, never from the views' SQL."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from edfi import amt
from edfi.lake import Lake
from sandbox.server import RunningSandbox
from tests.conftest import new_s3_lake, run_extract

ABSENCES = {"Excused Absence", "Unexcused Absence"}


def code(uri: str | None) -> str | None:
    return None if uri is None else uri.split("#", 1)[1]


def records(sb: RunningSandbox, name: str) -> list[dict[str, Any]]:
    store = sb.store()
    return list(store.iter_records(sb.sandbox.model.find(name)))


def view_rows(lake: Lake, view: str) -> list[dict[str, Any]]:
    return list(amt.read_view(lake, view).to_pylist())


def fork_lake(source: str, target: Path) -> Lake:
    """A lake sharing ``source``'s committed tables (its ``current`` folder, linked) with its
    own state and gold folders, so tests never write into the shared district lake."""
    shutil.copytree(Path(source) / "state", target / "state")
    (target / "current").symlink_to(Path(source) / "current")
    return Lake(str(target))


def instructional_days(sb: RunningSandbox) -> dict[int, set[dt.date]]:
    days: dict[int, set[dt.date]] = defaultdict(set)
    for r in records(sb, "calendarDates"):
        if any(
            code(e["calendarEventDescriptor"]) in ("Instructional day", "Make-up day")
            for e in r["calendarEvents"]
        ):
            days[r["calendarReference"]["schoolId"]].add(dt.date.fromisoformat(r["date"]))
    return days


def school_absences(sb: RunningSandbox, categories: set[str]) -> Counter[str]:
    """Per student, the dates with a school attendance event of ``categories``."""
    dates: dict[str, set[str]] = defaultdict(set)
    for r in records(sb, "studentSchoolAttendanceEvents"):
        if code(r["attendanceEventCategoryDescriptor"]) in categories:
            dates[r["studentReference"]["studentUniqueId"]].add(r["eventDate"])
    return Counter({k: len(v) for k, v in dates.items()})


@pytest.fixture(scope="module")
def gold_lake(district_lake: str, tmp_path_factory: pytest.TempPathFactory) -> Lake:
    """The district lake with every view built once (through the core)."""
    lake = fork_lake(district_lake, tmp_path_factory.mktemp("gold"))
    amt.build_gold(lake)
    return lake


# -- the views against the sandbox's data -------------------------------------------------


def test_every_view_is_built_with_its_key_columns(gold_lake: Lake) -> None:
    manifest = amt.gold_manifest(gold_lake)
    assert list(manifest["views"]) == list(amt.VIEWS)
    assert len(amt.VIEWS) == 30
    empty = {name for name, v in manifest["views"].items() if v["rows"] == 0}
    # no school-level student associations, feeder schools, or open staff assignments
    # (the sandbox's year ended before "now") in the sandbox
    assert empty == {"StudentSchoolDemographicsBridge", "equity_FeederSchoolDim", "StaffSectionDim"}
    for name, v in manifest["views"].items():
        for file in v["files"]:  # relative to the lake root, so the lake can move
            assert file.startswith(f"gold/{manifest['version']}/{name}/")
        assert v["columns"], name
    assert "LastModifiedDate" in manifest["views"]["StudentSchoolDim"]["columns"]


def test_student_school_dim_has_each_current_enrolment(
    district: RunningSandbox, gold_lake: Lake
) -> None:
    students = {s["studentUniqueId"]: s for s in records(district, "students")}
    expected = {}
    for ssa in records(district, "studentSchoolAssociations"):
        if ssa.get("exitWithdrawDate"):
            continue  # every exit in the sandbox is in the past
        st = students[ssa["studentReference"]["studentUniqueId"]]
        school = ssa["schoolReference"]["schoolId"]
        expected[f"{st['studentUniqueId']}-{school}"] = (
            st["studentUniqueId"],
            str(school),
            st["firstName"],
            st["lastSurname"],
            code(ssa["entryGradeLevelDescriptor"]),
            ssa["entryDate"],
            st["birthDate"],
        )
    rows = view_rows(gold_lake, "StudentSchoolDim")
    got = {
        r["StudentSchoolKey"]: (
            r["StudentKey"],
            r["SchoolKey"],
            r["StudentFirstName"],
            r["StudentLastName"],
            r["GradeLevel"],
            r["EnrollmentDateKey"],
            r["BirthDate"].isoformat(),
        )
        for r in rows
    }
    assert len(rows) == len(expected) > 900
    assert got == expected
    seoa = {
        s["studentReference"]["studentUniqueId"]: s
        for s in records(district, "studentEducationOrganizationAssociations")
    }
    for r in rows[:50]:  # demographics fall back to the district association
        s = seoa[r["StudentKey"]]
        assert r["Sex"] == code(s["sexDescriptor"])
        assert r["IsHispanic"] == s["hispanicLatinoEthnicity"]
        assert r["LimitedEnglishProficiency"] == code(s["limitedEnglishProficiencyDescriptor"])


def test_chronic_absenteeism_counts_exactly_the_absence_events(
    district: RunningSandbox, gold_lake: Lake
) -> None:
    days = instructional_days(district)
    absences = school_absences(district, ABSENCES)
    rows = view_rows(gold_lake, "chrab_ChronicAbsenteeismAttendanceFact")
    absent: Counter[str] = Counter()
    per_student: Counter[str] = Counter()
    for r in rows:
        absent[r["StudentKey"]] += r["ReportedAsAbsentFromSchool"]
        per_student[r["StudentKey"]] += 1
    assert absent == absences
    assert sum(absences.values()) > 1000
    for ssa in records(district, "studentSchoolAssociations"):
        uid = ssa["studentReference"]["studentUniqueId"]
        entry = dt.date.fromisoformat(ssa["entryDate"])
        leave = dt.date.fromisoformat(ssa.get("exitWithdrawDate") or "9999-12-31")
        enrolled = {d for d in days[ssa["schoolReference"]["schoolId"]] if entry <= d <= leave}
        assert per_student[uid] == len(enrolled)


def test_early_warning_flags_tardies_and_behaviors(
    district: RunningSandbox, gold_lake: Lake
) -> None:
    rows = view_rows(gold_lake, "ews_StudentEarlyWarningFact")
    calendar: dict[int, set[str]] = defaultdict(set)
    for r in records(district, "calendarDates"):
        calendar[r["calendarReference"]["schoolId"]].add(r["date"])
    expected_days = 0
    for ssa in records(district, "studentSchoolAssociations"):
        leave = ssa.get("exitWithdrawDate") or "9999-12-31"
        expected_days += sum(
            ssa["entryDate"] <= d <= leave for d in calendar[ssa["schoolReference"]["schoolId"]]
        )
    assert len(rows) == expected_days
    tardy: Counter[str] = Counter()
    for r in rows:
        tardy[r["StudentKey"]] += r["IsTardyToSchool"]
    assert tardy == school_absences(district, {"Tardy"})
    behaviors = Counter(
        code(b["behaviorDescriptor"])
        for b in records(district, "studentDisciplineIncidentBehaviorAssociations")
    )
    assert sum(r["CountByDayOfStateOffenses"] for r in rows) == behaviors["State Offense"] > 0
    assert (
        sum(r["CountByDayOfConductOffenses"] for r in rows) == behaviors["School Code of Conduct"]
    )


def test_student_section_dim_teachers_come_from_staff_section_associations(
    district: RunningSandbox, gold_lake: Lake
) -> None:
    staff = {
        s["staffUniqueId"]: f"{s['firstName']} {s['lastSurname']}"
        for s in records(district, "staffs")
    }
    teachers: dict[str, list[str]] = defaultdict(list)
    for a in records(district, "staffSectionAssociations"):
        ref = a["sectionReference"]
        key = "-".join(
            str(ref[k])
            for k in (
                "schoolId",
                "localCourseCode",
                "schoolYear",
                "sectionIdentifier",
                "sessionName",
            )
        )
        teachers[key].append(staff[a["staffReference"]["staffUniqueId"]])
    rows = view_rows(gold_lake, "StudentSectionDim")
    assert len(rows) == len(records(district, "studentSectionAssociations"))
    for r in rows:
        assert sorted(r["TeacherName"].split(", ")) == sorted(teachers[r["SectionKey"]])


def test_grades_and_submissions_keep_their_grain(district: RunningSandbox, gold_lake: Lake) -> None:
    grades = records(district, "grades")
    rows = view_rows(gold_lake, "ews_StudentSectionGradeFact")
    assert len(rows) == len(grades)
    assert sorted(float(r["NumericGradeEarned"]) for r in rows) == sorted(
        g["numericGradeEarned"] for g in grades
    )
    subs = records(district, "assignmentSubmissions")
    facts = view_rows(gold_lake, "engage_AssignmentSubmissionFact")
    assert len(facts) == len(subs)  # every sandbox status maps to exactly one constant
    missing = sum(code(s["submissionStatusDescriptor"]) == "missing" for s in subs)
    assert sum(f["IsPastDue"] for f in facts) == missing


def test_unmapped_descriptor_values_are_reported(district: RunningSandbox, gold_lake: Lake) -> None:
    unmapped = {
        (u["descriptor"], u["codeValue"]): u
        for u in amt.gold_manifest(gold_lake)["unmapped_descriptors"]
    }
    early = unmapped[("AttendanceEventCategoryDescriptor", "Early departure")]
    count = sum(
        code(r["attendanceEventCategoryDescriptor"]) == "Early departure"
        for name in ("studentSchoolAttendanceEvents", "studentSectionAttendanceEvents")
        for r in records(district, name)
    )
    assert early["rows"] == count > 0
    assert ("CalendarEventDescriptor", "Holiday") in unmapped
    assert ("AttendanceEventCategoryDescriptor", "Tardy") not in unmapped  # mapped
    assert all(t != "SexDescriptor" for t, _ in unmapped)  # not a mapped type


# -- the descriptor map -------------------------------------------------------------------


def write_map(path: Path, rows: Any) -> str:
    path.write_text(rows if isinstance(rows, str) else json.dumps(rows))
    return str(path)


def test_mapping_tardy_as_absence_changes_the_counts_exactly(
    district: RunningSandbox, district_lake: str, tmp_path: Path
) -> None:
    rows, _ = amt.load_descriptor_map()
    rows.append(
        amt.MapRow("AttendanceEvent.Absence", "AttendanceEventCategoryDescriptor", "tardy")
    )  # code values match case-insensitively
    lake = fork_lake(district_lake, tmp_path / "lake")
    view = "chrab_ChronicAbsenteeismAttendanceFact"
    amt.build_gold(lake, descriptor_map=rows, views=[view])
    absent: Counter[str] = Counter()
    for r in view_rows(lake, view):
        absent[r["StudentKey"]] += r["ReportedAsAbsentFromSchool"]
    assert absent == school_absences(district, ABSENCES | {"Tardy"})
    assert absent != school_absences(district, ABSENCES)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('[{"constantName": "Address.Home", ', "not valid JSON (line 1"),
        (
            [
                {
                    "constantName": "Address.Home",
                    "descriptor": "AddressTypeDescriptor",
                    "codeValue": "Home",
                },
                {"constantName": "Address.Work", "codeValue": "Work"},
            ],
            'row 2 ({"constantName": "Address.Work", "codeValue": "Work"}): missing '
            "property 'descriptor'",
        ),
        (
            [
                {
                    "constantName": "attendanceEvent.Tardy",
                    "descriptor": "AttendanceEventCategory",
                    "codeValue": "Tardy",
                }
            ],
            "row 1 (",
        ),
    ],
)
def test_malformed_maps_are_rejected_naming_the_row(
    tmp_path: Path, content: Any, message: str
) -> None:
    path = write_map(tmp_path / "map.json", content)
    with pytest.raises(amt.DescriptorMapError) as err:
        amt.load_descriptor_map(path)
    assert message in str(err.value)
    assert path in str(err.value)


def test_unknown_constant_suggests_the_right_case(tmp_path: Path) -> None:
    path = write_map(
        tmp_path / "map.json",
        [
            {
                "constantName": "AttendanceEvent.Tardy",
                "descriptor": "AttendanceEventCategory",
                "codeValue": "Tardy",
            },
            {
                "constantName": "attendanceEvent.tardy",
                "descriptor": "AttendanceEventCategory",
                "codeValue": "Tardy",
            },
        ],
    )
    with pytest.raises(
        amt.DescriptorMapError,
        match=r"row 2 .*unknown constantName "
        r"'attendanceEvent.tardy' .*did you mean 'AttendanceEvent.Tardy'",
    ):
        amt.load_descriptor_map(path)
    with pytest.raises(amt.DescriptorMapError, match="does not exist"):
        amt.load_descriptor_map(str(tmp_path / "nope.json"))


def test_the_shipped_map_is_amts_default() -> None:
    rows, source = amt.load_descriptor_map()
    assert source.endswith("descriptor_map.json")
    pairs = {(r.constantName, r.codeValue) for r in rows}
    assert ("AttendanceEvent.Absence", "Excused Absence") in pairs
    assert ("AttendanceEvent.Absence", "Unexcused Absence") in pairs
    assert ("Email.Personal", "Home/Personal") in pairs
    assert {r.constantName for r in rows} == amt.CONSTANTS - {"Foodservice.FullPrice"}


# -- Data Standard 4 ----------------------------------------------------------------------


def test_a_ds4_lake_reads_parents_as_contacts(
    district_lake: str, gold_lake: Lake, tmp_path: Path
) -> None:
    lake = fork_lake(district_lake, tmp_path / "ds4")
    for ds5, ds4, rename in (
        ("contacts", "parents", {"contactUniqueId": "parentUniqueId"}),
        (
            "studentContactAssociations",
            "studentParentAssociations",
            {"contactReference": "parentReference"},
        ),
    ):
        state = json.loads((tmp_path / "ds4/state/ed-fi" / ds5 / "school_year=0.json").read_text())
        table = pq.read_table(lake.resolve(state["files"][0]))
        if ds5 == "studentContactAssociations":
            ref = table.column("contactReference").combine_chunks()
            table = table.set_column(
                table.column_names.index("contactReference"),
                "contactReference",
                pa.StructArray.from_arrays([ref.field("contactUniqueId")], ["parentUniqueId"]),
            )
        table = table.rename_columns([rename.get(c, c) for c in table.column_names])
        out = tmp_path / "ds4" / "raw" / "ds4" / f"{ds4}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, out)
        shutil.rmtree(tmp_path / "ds4/state/ed-fi" / ds5)
        (tmp_path / "ds4/state/ed-fi" / ds4).mkdir()
        (tmp_path / "ds4/state/ed-fi" / ds4 / "school_year=0.json").write_text(
            json.dumps({**state, "files": [f"raw/ds4/{ds4}.parquet"]})
        )
    amt.build_gold(lake, views=["ContactPersonDim"])
    key = "UniqueKey"
    got = sorted(view_rows(lake, "ContactPersonDim"), key=lambda r: r[key])
    want = sorted(view_rows(gold_lake, "ContactPersonDim"), key=lambda r: r[key])
    assert got == want and len(got) > 1000


# -- the flow: local and S3, versions, incremental ----------------------------------------


def local_block(url: str) -> Any:
    """A lake block for a local folder (not saved to a server)."""
    from blocks import LakeStorage

    return LakeStorage.model_validate({"url": url})


@pytest.fixture(scope="module")
def s3_district(district: RunningSandbox, s3_endpoint: str, prefect_harness: None) -> Any:
    """The district extracted once into a fresh bucket of the moto server."""
    block = new_s3_lake(s3_endpoint, "gold")
    assert run_extract(district, "", storage=block, mode="full")["status"] == "completed"
    return block


@pytest.fixture(params=["local", "s3"])
def flow_lake(request: pytest.FixtureRequest, district_lake: str, tmp_path: Path) -> Any:
    """A lake block holding the district: the shared local lake's tables, or the S3 one."""
    if request.param == "local":
        fork_lake(district_lake, tmp_path / "lake")
        return local_block(str(tmp_path / "lake"))
    return request.getfixturevalue("s3_district")


def test_flow_builds_views_and_keeps_only_the_committed_version(
    district: RunningSandbox, flow_lake: Any, prefect_harness: None
) -> None:
    from flows.gold import gold

    first = gold(flow_lake)
    assert [v["view"] for v in first["views"]] == list(amt.VIEWS)
    assert any(u["codeValue"] == "Early departure" for u in first["unmapped_descriptors"])
    second = gold(flow_lake)
    lake = flow_lake.lake()
    lake.invalidate()
    versions = [p.rstrip("/").rsplit("/", 1)[-1] for p in lake.fs.ls(lake.path("gold"))]
    assert sorted(versions) == sorted([second["version"], "_manifest.json"])
    rows = {r["StudentSchoolKey"]: r for r in view_rows(lake, "StudentSchoolDim")}
    current = [
        s for s in records(district, "studentSchoolAssociations") if not s.get("exitWithdrawDate")
    ]
    assert len(rows) == len(current)
    days = instructional_days(district)
    chrab = view_rows(lake, "chrab_ChronicAbsenteeismAttendanceFact")
    assert sum(r["ReportedAsAbsentFromSchool"] for r in chrab) == sum(
        school_absences(district, ABSENCES).values()
    )
    assert {r["SchoolKey"] for r in chrab} == {str(s) for s in days}


def test_flow_rejects_a_bad_map_before_writing(
    flow_lake: Any, prefect_harness: None, tmp_path: Path
) -> None:
    from flows.gold import gold

    path = write_map(
        tmp_path / "bad.json", [{"constantName": "Nope", "descriptor": "X", "codeValue": "Y"}]
    )
    lake = flow_lake.lake()
    lake.invalidate()
    before = lake.fs.find(lake.path("gold")) if lake.exists(lake.path("gold")) else []
    with pytest.raises(amt.DescriptorMapError, match="row 1"):
        gold(flow_lake, descriptor_map=path)
    lake.invalidate()
    after = lake.fs.find(lake.path("gold")) if lake.exists(lake.path("gold")) else []
    assert after == before


def test_incremental_extract_then_gold_reflects_updates_and_deletes(
    small_district: RunningSandbox, prefect_harness: None, tmp_path: Path
) -> None:
    from flows.gold import gold

    url = str(tmp_path / "lake")
    assert run_extract(small_district, url, mode="full")["status"] == "completed"
    block = local_block(url)
    built = gold(block, return_state=True)
    assert built.name == "Completed"
    # nothing the views read has changed: skipped, and the UI shows Cached
    again = gold(block, return_state=True)
    assert again.name == "Cached"
    assert again.result()["version"] == built.result()["version"]
    assert again.result()["status"] == "up to date"
    assert gold(block, force=True, return_state=True).name == "Completed"
    # another as-of day is another AMT "now": a new build
    past = gold(block, as_of=dt.date(2020, 1, 1), return_state=True)
    assert past.name == "Completed"
    assert amt.gold_manifest(Lake(url))["as_of"].startswith("2020-01-01")
    gold(block)
    lake = Lake(url)
    before = {r["StudentKey"]: r for r in view_rows(lake, "StudentSchoolDim")}
    chrab_before = Counter[str]()
    for r in view_rows(lake, "chrab_ChronicAbsenteeismAttendanceFact"):
        chrab_before[r["StudentKey"]] += r["ReportedAsAbsentFromSchool"]

    store = small_district.store()
    model = small_district.sandbox.model
    students = model.find("students")
    uid = sorted(before)[0]
    body = next(s for s in store.iter_records(students) if s["studentUniqueId"] == uid)
    body = {k: v for k, v in body.items() if k not in ("id", "_etag", "_lastModifiedDate")}
    body["firstName"] = "Renamed"
    store.upsert(students, body)
    events = model.find("studentSchoolAttendanceEvents")
    gone = next(
        e
        for e in store.iter_records(events)
        if code(e["attendanceEventCategoryDescriptor"]) in ABSENCES
    )
    store.delete(events, gone["id"])
    victim = gone["studentReference"]["studentUniqueId"]

    assert run_extract(small_district, url, mode="incremental")["status"] == "completed"
    rebuilt = gold(block, return_state=True)
    assert rebuilt.name == "Completed"  # a changed table: built again
    assert rebuilt.result()["status"] == "completed"
    after = {r["StudentKey"]: r for r in view_rows(lake, "StudentSchoolDim")}
    assert after[uid]["StudentFirstName"] == "Renamed"
    assert after[uid]["LastModifiedDate"] > before[uid]["LastModifiedDate"]
    changed = {k for k in after if after[k] != before[k]}
    assert changed == {uid}
    chrab_after = Counter[str]()
    for r in view_rows(lake, "chrab_ChronicAbsenteeismAttendanceFact"):
        chrab_after[r["StudentKey"]] += r["ReportedAsAbsentFromSchool"]
    expected = chrab_before.copy()
    expected[victim] -= 1
    assert +chrab_after == +expected
