"""Benchmark: gold (DuckDB SQL over the lake) against pandas merges, the way the
API-to-AMT data lake builds its gold tables, on the same lake.

    python bench/gold.py --students 5000       # quick
    python bench/gold.py                        # 25,000 students

The lake is extracted once from a sandbox into ``bench/.cache/lake-<n>`` and
reused. Each side runs in its own child process so its peak memory (max RSS)
is its own; the pandas side builds the heaviest views only, and the DuckDB
side is timed on the same views (with every helper they read, written to the
lake, and the manifest) and on all views (the whole flow, with its lake-wide
report of unmapped descriptor values). Each side runs ``--repeat`` times,
interleaved; the fastest run counts and every run is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = ROOT / "bench" / ".cache"
HEAVY = (
    "StudentSchoolDim",
    "StudentSectionDim",
    "chrab_ChronicAbsenteeismAttendanceFact",
    "ews_StudentSectionGradeFact",
)


# -- the lake ------------------------------------------------------------------------------


def serve(students: int, db: Path) -> Any:
    """A sandbox in its own process, so it does not share the GIL with the extract."""
    from sandbox.server import sandbox_process

    return sandbox_process(students=students, db=db, client_secret=secrets.token_urlsafe(12))


def ensure_lake(students: int) -> Path:
    """Extract a sandbox district once; later runs reuse the committed lake."""
    lake = CACHE / f"lake-{students}"
    if (lake / "state" / "ed-fi" / "students" / "school_year=0.json").exists():
        return lake
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from prefect.testing.utilities import prefect_test_harness
    from pydantic import SecretStr

    from blocks import EdFiConnection, LakeStorage
    from flows.extract import extract

    CACHE.mkdir(parents=True, exist_ok=True)
    db = CACHE / f"sandbox-{students}.sqlite"
    started = time.perf_counter()
    with serve(students, db) as info, prefect_test_harness(server_startup_timeout=120):
        conn = EdFiConnection.model_validate(
            {
                "base_url": info["base_url"],
                "client_id": info["client_id"],
                "client_secret": SecretStr(info["client_secret"]),
            }
        )
        summary = asyncio.run(
            extract(conn, LakeStorage.model_validate({"url": str(lake)}), mode="full")
        )
    print(
        f"extracted {summary['records']:,} records into {lake} in "
        f"{time.perf_counter() - started:.0f}s",
        flush=True,
    )
    return lake


# -- the DuckDB side -----------------------------------------------------------------------


def run_duckdb(lake_path: Path, out: Path, views: list[str] | None) -> dict[str, Any]:
    """The gold build as the flow runs it: every view asked for with every helper and view it
    reads, each written to the lake, then the manifest. ``views=None`` is the whole flow,
    including its lake-wide scan for unmapped descriptor values (timed apart as well); the
    heavy views alone skip that report, which is no part of building them."""
    from edfi import amt
    from edfi.lake import Lake

    lake = Lake(str(out))
    (out / "state").symlink_to(lake_path / "state")
    (out / "current").symlink_to(lake_path / "current")  # manifests name files relative
    started = time.perf_counter()
    build = amt.GoldBuild(lake)
    try:
        for view in amt.view_order(views):
            build.run_view(view)
        report_started = time.perf_counter()
        unmapped = build.unmapped() if views is None else []
        report = time.perf_counter() - report_started
        manifest = build.commit(unmapped)
    finally:
        build.close()
    seconds = time.perf_counter() - started
    rows = {v: m["rows"] for v, m in manifest["views"].items() if views is None or v in views}
    view_seconds = {v: r.seconds for v, r in build.results.items()}
    return {"seconds": seconds, "rows": rows, "view_seconds": view_seconds, "unmapped_s": report}


# -- the pandas side (the API-to-AMT data lake's approach) ---------------------------------


def run_pandas(lake_path: Path, out: Path) -> dict[str, Any]:
    """The heaviest views with pandas: flatten nested JSON, explode lists, merge, group."""
    import pandas as pd
    import pyarrow.parquet as pq

    from edfi.lake import Lake

    started = time.perf_counter()

    def table(name: str) -> pd.DataFrame:
        state = json.loads(
            (lake_path / "state" / "ed-fi" / f"{name}" / "school_year=0.json").read_text()
        )
        t = pq.read_table(Lake(str(lake_path)).files_of(state)).flatten().flatten()
        return t.to_pandas().rename(columns=lambda c: c.replace(".", "_"))

    def explode(df: pd.DataFrame, column: str) -> pd.DataFrame:
        """One row per list element, its fields as columns (json_normalize, as the peer does)."""
        df = df.explode(column, ignore_index=True)
        fields = pd.json_normalize(df[column].where(df[column].notna(), None).tolist())
        fields.columns = [f"{column}_{c}" for c in fields.columns]
        return pd.concat([df.drop(columns=[column]), fields], axis=1)

    def descriptors(*names: str) -> pd.DataFrame:
        frames = []
        for name in names:
            d = table(name)
            frames.append(
                pd.DataFrame(
                    {
                        "uri": (d["namespace"] + "#" + d["codeValue"]).str.lower(),
                        "codeValue": d["codeValue"],
                        "description": d["description"],
                        "descriptorId": d[f"{name[:-1]}Id"],
                        "type": name[0].upper() + name[1:-1],
                        "lmd": d["_lastModifiedDate"],
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    with open(ROOT / "edfi" / "data" / "descriptor_map.json") as fh:
        dmap = pd.DataFrame(json.load(fh))
    desc = descriptors(
        "gradeLevelDescriptors",
        "sexDescriptors",
        "limitedEnglishProficiencyDescriptors",
        "academicSubjectDescriptors",
        "attendanceEventCategoryDescriptors",
        "calendarEventDescriptors",
        "gradeTypeDescriptors",
        "gradingPeriodDescriptors",
    )
    dmap["descriptor_lc"] = dmap["descriptor"].str.lower()
    dmap["code_lc"] = dmap["codeValue"].str.lower()
    desc["type_lc"] = desc["type"].str.lower()
    desc["code_lc"] = desc["codeValue"].str.lower()
    constants = desc.merge(
        dmap, left_on=["type_lc", "code_lc"], right_on=["descriptor_lc", "code_lc"]
    )[["uri", "constantName"]]
    now = pd.Timestamp.now(tz="UTC").tz_localize(None)

    def active(dates: pd.Series) -> pd.Series:
        return dates.isna() | (pd.to_datetime(dates) >= now)

    def ymd(dates: pd.Series) -> pd.Series:
        return pd.to_datetime(dates).dt.strftime("%Y%m%d")

    students = table("students")
    ssa = table("studentSchoolAssociations")
    schools = table("schools")
    rows: dict[str, int] = {}

    def write(name: str, df: pd.DataFrame) -> None:
        df.to_parquet(out / f"{name}.parquet", index=False)
        rows[name] = len(df)

    # StudentSchoolDim
    seoa = table("studentEducationOrganizationAssociations")
    seoa["lep"] = seoa["limitedEnglishProficiencyDescriptor"].str.split("#").str[1]
    seoa["sex"] = seoa["sexDescriptor"].str.split("#").str[1]
    keep = [
        "studentReference_studentUniqueId",
        "educationOrganizationReference_educationOrganizationId",
        "lep",
        "sex",
        "hispanicLatinoEthnicity",
        "_lastModifiedDate",
    ]
    s = ssa.merge(
        students,
        left_on="studentReference_studentUniqueId",
        right_on="studentUniqueId",
        suffixes=("", "_st"),
    )
    s["gl"] = s["entryGradeLevelDescriptor"].str.lower()
    s = s.merge(desc[["uri", "codeValue"]], left_on="gl", right_on="uri")
    s = s.merge(
        schools[["schoolId", "localEducationAgencyReference_localEducationAgencyId"]],
        left_on="schoolReference_schoolId",
        right_on="schoolId",
    )
    s = s.merge(
        seoa[keep].add_prefix("sch_"),
        how="left",
        left_on=["studentUniqueId", "schoolReference_schoolId"],
        right_on=[
            "sch_studentReference_studentUniqueId",
            "sch_educationOrganizationReference_educationOrganizationId",
        ],
    )
    s = s.merge(
        seoa[keep].add_prefix("dis_"),
        how="left",
        left_on=["studentUniqueId", "localEducationAgencyReference_localEducationAgencyId"],
        right_on=[
            "dis_studentReference_studentUniqueId",
            "dis_educationOrganizationReference_educationOrganizationId",
        ],
    )
    s = s[active(s["exitWithdrawDate"])]
    ssd = pd.DataFrame(
        {
            "StudentSchoolKey": s["studentUniqueId"] + "-" + s["schoolId"].astype(str),
            "StudentKey": s["studentUniqueId"],
            "SchoolKey": s["schoolId"].astype(str),
            "StudentFirstName": s["firstName"],
            "StudentLastName": s["lastSurname"],
            "EnrollmentDateKey": pd.to_datetime(s["entryDate"]).dt.strftime("%Y-%m-%d"),
            "GradeLevel": s["codeValue"],
            "LimitedEnglishProficiency": s["sch_lep"].fillna(s["dis_lep"]).fillna("Not applicable"),
            "Sex": s["sch_sex"].fillna(s["dis_sex"]).fillna(""),
            "LastModifiedDate": s[
                ["_lastModifiedDate_st", "sch__lastModifiedDate", "dis__lastModifiedDate"]
            ].max(axis=1),
        }
    )
    write("StudentSchoolDim", ssd)

    # StudentSectionDim
    seca = table("studentSectionAssociations")
    offerings = table("courseOfferings")
    courses = explode(table("courses"), "academicSubjects")
    staff = table("staffs")
    stfsa = table("staffSectionAssociations")
    sec5 = ["schoolId", "localCourseCode", "schoolYear", "sectionIdentifier", "sessionName"]
    names = stfsa.merge(staff, left_on="staffReference_staffUniqueId", right_on="staffUniqueId")
    names["name"] = names["firstName"] + " " + names["lastSurname"]
    teachers = (
        names.groupby([f"sectionReference_{k}" for k in sec5])["name"]
        .agg(lambda x: ", ".join(sorted(x)))
        .reset_index()
    )
    d = seca.merge(
        students[["studentUniqueId"]],
        left_on="studentReference_studentUniqueId",
        right_on="studentUniqueId",
    )
    d = d.merge(
        offerings,
        left_on=[
            "sectionReference_localCourseCode",
            "sectionReference_schoolId",
            "sectionReference_schoolYear",
            "sectionReference_sessionName",
        ],
        right_on=[
            "localCourseCode",
            "schoolReference_schoolId",
            "sessionReference_schoolYear",
            "sessionReference_sessionName",
        ],
        suffixes=("", "_co"),
    )
    d = d.merge(
        courses,
        left_on=["courseReference_courseCode", "courseReference_educationOrganizationId"],
        right_on=["courseCode", "educationOrganizationReference_educationOrganizationId"],
        suffixes=("", "_c"),
    )
    d["subject"] = d["academicSubjects_academicSubjectDescriptor"].str.lower()
    d = d.merge(desc[["uri", "description"]], how="left", left_on="subject", right_on="uri")
    d = d.merge(teachers, how="left", on=[f"sectionReference_{k}" for k in sec5])
    section_key = (
        d["sectionReference_schoolId"].astype(str)
        + "-"
        + d["sectionReference_localCourseCode"]
        + "-"
        + d["sectionReference_schoolYear"].astype(str)
        + "-"
        + d["sectionReference_sectionIdentifier"]
        + "-"
        + d["sectionReference_sessionName"]
    )
    write(
        "StudentSectionDim",
        pd.DataFrame(
            {
                "StudentSectionKey": d["studentUniqueId"]
                + "-"
                + section_key.str.split("-", n=1).str[0]
                + "-"
                + section_key.str.split("-", n=1).str[1]
                + "-"
                + ymd(d["beginDate"]),
                "StudentKey": d["studentUniqueId"],
                "SectionKey": section_key,
                "Subject": d["description"].fillna(""),
                "CourseTitle": d["courseTitle"].fillna(""),
                "TeacherName": d["name"].fillna(""),
                "StudentSectionStartDateKey": ymd(d["beginDate"]),
                "LastModifiedDate": d[
                    ["_lastModifiedDate", "_lastModifiedDate_c", "_lastModifiedDate_co"]
                ].max(axis=1),
            }
        ),
    )

    # chrab_ChronicAbsenteeismAttendanceFact
    cal = explode(table("calendarDates"), "calendarEvents")
    cal["uri"] = cal["calendarEvents_calendarEventDescriptor"].str.lower()
    cal = cal.merge(
        constants[constants["constantName"] == "CalendarEvent.InstructionalDay"], on="uri"
    )
    cal = cal[pd.to_datetime(cal["date"]) <= now][["calendarReference_schoolId", "date"]]
    cal = cal.drop_duplicates()
    e = ssa.merge(
        students[["studentUniqueId"]],
        left_on="studentReference_studentUniqueId",
        right_on="studentUniqueId",
    )
    e = e.merge(cal, left_on="schoolReference_schoolId", right_on="calendarReference_schoolId")
    e = e[
        (e["date"] >= e["entryDate"])
        & (e["exitWithdrawDate"].isna() | (e["exitWithdrawDate"] >= e["date"]))
    ]
    e = e[
        [
            "studentUniqueId",
            "schoolReference_schoolId",
            "schoolYearTypeReference_schoolYear",
            "date",
        ]
    ]

    def flags(events: pd.DataFrame, school: str, extra: list[str]) -> pd.DataFrame:
        events["uri"] = events["attendanceEventCategoryDescriptor"].str.lower()
        events = events.merge(constants, on="uri")
        events["present"] = (events["constantName"] == "AttendanceEvent.Present").astype(int)
        events["absent"] = (events["constantName"] == "AttendanceEvent.Absence").astype(int)
        for col in extra:
            base = col.removeprefix("hr_")
            events[col] = events[base] * events["homeroomIndicator"].fillna(False).astype(int)
        keys = ["studentReference_studentUniqueId", school, "eventDate", "sy"]
        return events.groupby(keys)[["present", "absent", *extra]].max().reset_index()

    sch = table("studentSchoolAttendanceEvents")
    sch["sy"] = sch["sessionReference_schoolYear"]
    sch = flags(sch, "schoolReference_schoolId", [])
    sec = table("studentSectionAttendanceEvents")
    sec["sy"] = sec["sectionReference_schoolYear"]
    hr = seca[
        [
            "studentReference_studentUniqueId",
            *[f"sectionReference_{k}" for k in sec5],
            "homeroomIndicator",
        ]
    ].drop_duplicates()
    sec = sec.merge(
        hr,
        how="left",
        on=["studentReference_studentUniqueId", *[f"sectionReference_{k}" for k in sec5]],
    )
    sec = flags(sec, "sectionReference_schoolId", ["hr_present", "hr_absent"])
    f = e.merge(
        sch,
        how="left",
        left_on=["studentUniqueId", "schoolReference_schoolId", "date"],
        right_on=["studentReference_studentUniqueId", "schoolReference_schoolId", "eventDate"],
    )
    f = f[f["sy"].isna() | (f["sy"] == f["schoolYearTypeReference_schoolYear"])]
    f = f.drop(columns=["studentReference_studentUniqueId", "eventDate", "sy"])
    f = f.merge(
        sec.add_prefix("sec_"),
        how="left",
        left_on=["studentUniqueId", "schoolReference_schoolId", "date"],
        right_on=[
            "sec_studentReference_studentUniqueId",
            "sec_sectionReference_schoolId",
            "sec_eventDate",
        ],
    )
    g = (
        f.fillna(
            {
                "present": 0,
                "absent": 0,
                "sec_present": 0,
                "sec_absent": 0,
                "sec_hr_present": 0,
                "sec_hr_absent": 0,
            }
        )
        .groupby(["studentUniqueId", "schoolReference_schoolId", "date"])[
            ["present", "absent", "sec_present", "sec_absent", "sec_hr_present", "sec_hr_absent"]
        ]
        .max()
        .reset_index()
    )
    write(
        "chrab_ChronicAbsenteeismAttendanceFact",
        pd.DataFrame(
            {
                "StudentSchoolKey": g["studentUniqueId"]
                + "-"
                + g["schoolReference_schoolId"].astype(str),
                "StudentKey": g["studentUniqueId"],
                "SchoolKey": g["schoolReference_schoolId"].astype(str),
                "DateKey": ymd(g["date"]),
                "ReportedAsPresentAtSchool": g["present"].astype(int),
                "ReportedAsAbsentFromSchool": g["absent"].astype(int),
                "ReportedAsPresentAtHomeRoom": g["sec_hr_present"].astype(int),
                "ReportedAsAbsentFromHomeRoom": g["sec_hr_absent"].astype(int),
                "ReportedAsIsPresentInAllSections": (
                    (g["sec_present"] == 1) & (g["sec_absent"] == 0)
                ).astype(int),
                "ReportedAsAbsentFromAnySection": g["sec_absent"].astype(int),
            }
        ),
    )

    # ews_StudentSectionGradeFact
    grades = table("grades")
    gps = table("gradingPeriods")
    grades["gt"] = grades["gradeTypeDescriptor"].str.lower()
    gt = constants[
        constants["constantName"].isin(
            ["GradeType.GradingPeriod", "GradeType.Semester", "GradeType.Final"]
        )
    ].drop_duplicates("uri")
    x = grades.merge(
        students[["studentUniqueId"]],
        left_on="studentSectionAssociationReference_studentUniqueId",
        right_on="studentUniqueId",
    )
    x = x.merge(gt, left_on="gt", right_on="uri").merge(desc[["uri", "codeValue"]], on="uri")
    gps["gpd"] = gps["gradingPeriodDescriptor"].str.lower()
    x["gpd"] = x["gradingPeriodReference_gradingPeriodDescriptor"].str.lower()
    x = x.merge(
        gps,
        left_on=[
            "gpd",
            "gradingPeriodReference_gradingPeriodName",
            "gradingPeriodReference_schoolId",
            "gradingPeriodReference_schoolYear",
        ],
        right_on=[
            "gpd",
            "gradingPeriodName",
            "schoolReference_schoolId",
            "schoolYearTypeReference_schoolYear",
        ],
        suffixes=("", "_gp"),
    )
    x = x.merge(desc[["uri", "descriptorId"]], left_on="gpd", right_on="uri", suffixes=("", "_d"))
    letters = pd.DataFrame(
        {"letterGradeEarned": list("ABCDF"), "translated": [95.0, 85.0, 75.0, 65.0, 55.0]}
    )
    x = x.merge(letters, how="left", on="letterGradeEarned")
    r = "studentSectionAssociationReference_"
    section = (
        x[f"{r}schoolId"].astype(str)
        + "-"
        + x[f"{r}localCourseCode"]
        + "-"
        + x[f"{r}schoolYear"].astype(str)
        + "-"
        + x[f"{r}sectionIdentifier"]
        + "-"
        + x[f"{r}sessionName"]
    )
    write(
        "ews_StudentSectionGradeFact",
        pd.DataFrame(
            {
                "StudentKey": x["studentUniqueId"],
                "SchoolKey": x[f"{r}schoolId"].astype(str),
                "GradingPeriodKey": x["descriptorId"].astype(str)
                + "-"
                + x["schoolReference_schoolId"].astype(str)
                + "-"
                + ymd(x["beginDate"]),
                "StudentSectionKey": x["studentUniqueId"]
                + "-"
                + section
                + "-"
                + ymd(x[f"{r}beginDate"]),
                "SectionKey": section,
                "NumericGradeEarned": x["numericGradeEarned"]
                .fillna(x["translated"])
                .fillna(0.0)
                .round(2),
                "LetterGradeEarned": x["letterGradeEarned"].fillna(""),
                "GradeType": x["codeValue"],
            }
        ),
    )
    return {"seconds": time.perf_counter() - started, "rows": rows}


# -- the harness ---------------------------------------------------------------------------


def child(side: str, lake: Path) -> None:
    """One side in this process; prints its figures as JSON (peak RSS in MiB)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        runs: dict[str, Callable[[], dict[str, Any]]] = {
            "duckdb-all": lambda: run_duckdb(lake, out / "all", None),
            "duckdb-heavy": lambda: run_duckdb(lake, out / "heavy", list(HEAVY)),
            "pandas-heavy": lambda: run_pandas(lake, out),
        }
        (out / "all").mkdir()
        (out / "heavy").mkdir()
        result = runs[side]()
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


def measure(side: str, lake: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", side, "--lake", str(lake)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=25_000)
    parser.add_argument(
        "--repeat", type=int, default=2, help="runs per side, interleaved; the fastest counts"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, Path(args.lake))
        return
    lake = ensure_lake(args.students)
    print(f"gold benchmark: {args.students:,}-student district, lake {lake}", flush=True)
    sides = ("duckdb-all", "duckdb-heavy", "pandas-heavy")
    runs: dict[str, list[dict[str, Any]]] = {side: [] for side in sides}
    for _ in range(max(1, args.repeat)):
        for side in sides:
            runs[side].append(measure(side, lake))
    results = {side: min(r, key=lambda x: x["seconds"]) for side, r in runs.items()}
    heavy, pandas_, full = results["duckdb-heavy"], results["pandas-heavy"], results["duckdb-all"]
    print(f"{'side':46s} {'seconds (each run)':>26s} {'peak MiB':>9s}")
    labels = {
        "duckdb-all": "DuckDB, all 30 views (the whole flow)",
        "duckdb-heavy": f"DuckDB, {len(HEAVY)} heaviest views",
        "pandas-heavy": f"pandas merges, {len(HEAVY)} heaviest views",
    }
    for side, label in labels.items():
        best, each = results[side], ", ".join(f"{r['seconds']:.2f}" for r in runs[side])
        print(f"{label:46s} {best['seconds']:9.2f} ({each:>14s}) {best['peak_mib']:9.0f}")
    print(f"  of which the unmapped-descriptor scan (all views only): {full['unmapped_s']:.2f}s")
    print(f"{'view':42s} {'DuckDB s':>9s} {'DuckDB rows':>12s} {'pandas rows':>12s}")
    for view in HEAVY:
        print(
            f"{view:42s} {heavy['view_seconds'][view]:9.2f} {heavy['rows'][view]:12,d} "
            f"{pandas_['rows'][view]:12,d}"
        )
    print(
        f"speed-up on the heaviest views: {pandas_['seconds'] / heavy['seconds']:.1f}x "
        f"(target >= 10x); peak memory pandas / DuckDB: "
        f"{pandas_['peak_mib'] / heavy['peak_mib']:.1f}x"
    )


if __name__ == "__main__":
    main()
