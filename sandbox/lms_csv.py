"""LMS extractor CSVs for the sandbox district: Canvas-, Google- and Schoology-shaped.

Each school of the synthetic district uses one LMS (school 0 Canvas, 1 Google,
2 Schoology, ...). Its students, fall sections and enrollments become LMS
users, sections and section associations; each section gets assignments and
each enrolled student a submission; Canvas adds grades and sign-ins,
Schoology attendance, Google section activities. Over several days the
extract changes as a real one does: day 1 adds an assignment, changes a
submission's grade (Schoology: its status) and a user's name, and drops a user
and a submission; day 2 brings both back, drops an assignment, and a student
leaves a section (their submissions stay). A few users and sections
deliberately match nothing in Ed-Fi (an unknown SIS id, an unknown email, an
unknown section identifier), for the harmonizer's exception reports.

The shapes differ the way the real extractors' do: Google files start with a
UTF-8 byte-order mark and write ISO dates with ``T`` and ``Z``. Schoology's
follow the Toolkit's Schoology extractor: a submission is identified as
``<section>#<assignment>#<user>``, has a status (``on-time``, ``late``,
``draft``) and a time but no points or grade (Schoology's API gives none), and
assignments have no submission types, start or end; Schoology has no
``missing`` submissions at all: the harmonizer synthesizes them.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import fsspec

from edfi.lms.udm import BY_NAME

from .district import generate

LMSES = ("Canvas", "Google", "Schoology")
EMAIL_DOMAIN = "students.grandbend.edu"


@dataclass(frozen=True, slots=True)
class CsvFile:
    """One extractor file: its path below the extract root and its rows (CSV text values)."""

    resource: str
    relative: str
    source_system: str
    rows: tuple[dict[str, str], ...]


@dataclass(slots=True)
class Extract:
    """Every day's files, and the district facts the harmonizer should find."""

    days: list[list[CsvFile]] = field(default_factory=list)
    day_times: list[datetime] = field(default_factory=list)
    matched_users: dict[str, dict[str, str]] = field(default_factory=dict)
    """source system -> LMS user id -> the studentUniqueId it should match."""
    matched_sections: dict[str, dict[str, str]] = field(default_factory=dict)
    """source system -> LMS section id -> the sectionIdentifier it should match."""
    unmatched_users: dict[str, list[str]] = field(default_factory=dict)
    unmatched_sections: dict[str, list[str]] = field(default_factory=dict)


def _fmt(lms: str, when: datetime | None) -> str:
    if when is None:
        return ""
    if lms == "Google":
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return when.strftime("%Y-%m-%d %H:%M:%S")


@dataclass(slots=True)
class _Section:
    lms: str
    lms_id: str
    sis_id: str
    title: str
    term: str
    students: list[str]
    teacher: str | None


@dataclass(slots=True)
class _World:
    """The LMS side of the district on day 0 (later days are edits of it)."""

    lmses: tuple[str, ...]
    users: dict[str, dict[str, dict[str, Any]]]  # lms -> user id -> fields
    sections: dict[str, list[_Section]]
    assignments: dict[str, dict[str, list[dict[str, Any]]]]  # lms -> section id -> rows
    submissions: dict[str, dict[str, list[dict[str, Any]]]]  # lms -> assignment id -> rows


_CATEGORIES = {"Canvas": "Assignment", "Google": "ASSIGNMENT", "Schoology": "assignment"}
_TYPES = {
    "Canvas": ("online_upload", "online_text_entry"),
    "Google": ("ASSIGNMENT",),
    "Schoology": (),
}
_STATUS = {
    "Canvas": ("graded", "late", "missing"),
    "Google": ("TURNED_IN", "RETURNED", "CREATED"),
    "Schoology": ("on-time", "late", "draft"),
}


def _district(students: int, seed: int, school_year: int) -> dict[str, list[dict[str, Any]]]:
    wanted = {
        "/ed-fi/schools",
        "/ed-fi/students",
        "/ed-fi/sections",
        "/ed-fi/studentSectionAssociations",
        "/ed-fi/staffSectionAssociations",
    }
    out: dict[str, list[dict[str, Any]]] = {p: [] for p in wanted}
    for path, batch in generate(students, seed=seed, school_year=school_year):
        if path in wanted:
            out[path].extend(batch)
    return out


def _world(
    district: dict[str, list[dict[str, Any]]],
    rng: random.Random,
    base: datetime,
    lmses: tuple[str, ...],
    per_section: int,
) -> _World:
    schools = [s["schoolId"] for s in district["/ed-fi/schools"]]
    lms_of = {sid: lmses[i % len(lmses)] for i, sid in enumerate(schools)}
    students = {s["studentUniqueId"]: s for s in district["/ed-fi/students"]}
    enrolled: dict[str, list[str]] = {}
    student_school: dict[str, int] = {}
    for ssa in district["/ed-fi/studentSectionAssociations"]:
        ref = ssa["sectionReference"]
        uid = ssa["studentReference"]["studentUniqueId"]
        enrolled.setdefault(ref["sectionIdentifier"], []).append(uid)
        student_school.setdefault(uid, ref["schoolId"])
    teacher_of = {
        a["sectionReference"]["sectionIdentifier"]: a["staffReference"]["staffUniqueId"]
        for a in district["/ed-fi/staffSectionAssociations"]
    }
    users: dict[str, dict[str, dict[str, Any]]] = {lms: {} for lms in lmses}
    user_id: dict[tuple[str, str], str] = {}
    for n, (uid, st) in enumerate(sorted(students.items())):
        school = student_school.get(uid)
        if school is None:
            continue
        lms = lms_of[school]
        ident = {"Canvas": f"{10000 + n}", "Google": f"1{n:017d}", "Schoology": f"9{n:07d}"}[lms]
        user_id[(lms, uid)] = ident
        users[lms][ident] = {
            "UserRole": "student",
            "SISUserIdentifier": "" if lms == "Google" else uid,
            "LocalUserIdentifier": f"L{uid}",
            "Name": f"{st['firstName']} {st['lastSurname']}",
            "EmailAddress": f"{uid}@{EMAIL_DOMAIN}",
            "SISMatch": uid,
        }
    sections: dict[str, list[_Section]] = {lms: [] for lms in lmses}
    for n, sec in enumerate(district["/ed-fi/sections"]):
        ref = sec["courseOfferingReference"]
        if "Fall" not in ref["sessionName"]:
            continue
        lms = lms_of[ref["schoolId"]]
        members = [user_id[(lms, u)] for u in enrolled.get(sec["sectionIdentifier"], [])]
        if not members:
            continue
        teacher = teacher_of.get(sec["sectionIdentifier"])
        teacher_id = None
        if teacher is not None:
            teacher_id = f"T{lms[0]}{teacher}"
            users[lms].setdefault(
                teacher_id,
                {
                    "UserRole": "teacher",
                    "SISUserIdentifier": teacher,
                    "LocalUserIdentifier": f"L{teacher}",
                    "Name": f"Teacher {teacher}",
                    "EmailAddress": f"{teacher}@staff.grandbend.edu",
                    "SISMatch": None,
                },
            )
        sections[lms].append(
            _Section(
                lms=lms,
                lms_id=f"{lms[0]}S{5000 + n}",
                sis_id=sec["sectionIdentifier"],
                title=sec["sectionName"],
                term=ref["sessionName"],
                students=sorted(members),
                teacher=teacher_id,
            )
        )
    for lms in lmses:
        # deliberate mismatches: a student unknown to Ed-Fi, and a section unknown to it
        stray = f"X{lms[0]}900"
        users[lms][stray] = {
            "UserRole": "student",
            "SISUserIdentifier": "" if lms == "Google" else "999999001",
            "LocalUserIdentifier": "Lstray",
            "Name": "Stray Student",
            "EmailAddress": f"stray.{lms.lower()}@example.com",
            "SISMatch": None,
        }
        if sections[lms]:
            model = sections[lms][0]
            sections[lms].append(
                _Section(
                    lms=lms,
                    lms_id=f"{lms[0]}S9999",
                    sis_id="NO-SUCH-SECTION",
                    title="Sandbox club (no SIS section)",
                    term=model.term,
                    students=[*model.students[:2], stray],
                    teacher=None,
                )
            )
    assignments: dict[str, dict[str, list[dict[str, Any]]]] = {lms: {} for lms in lmses}
    submissions: dict[str, dict[str, list[dict[str, Any]]]] = {lms: {} for lms in lmses}
    for lms in lmses:
        for lms_sec in sections[lms]:
            rows = assignments[lms].setdefault(lms_sec.lms_id, [])
            for k in range(per_section):
                rows.append(_assignment(lms, lms_sec, k, base))
            for a in rows:
                submissions[lms][a["SourceSystemIdentifier"]] = [
                    _submission(lms, a, user, rng) for user in lms_sec.students
                ]
    return _World(lmses, users, sections, assignments, submissions)


def _assignment(lms: str, sec: _Section, k: int, base: datetime) -> dict[str, Any]:
    due = base + timedelta(days=3 + 7 * k, hours=23, minutes=59)
    return {
        "SourceSystemIdentifier": f"{sec.lms_id}-A{k + 1}",
        "LMSSectionSourceSystemIdentifier": sec.lms_id,
        "Title": f"{sec.title}: Assignment {k + 1}",
        "AssignmentCategory": _CATEGORIES[lms],
        "AssignmentDescription": f"Week {k + 1} work",
        "StartDateTime": base - timedelta(days=2),
        "EndDateTime": due + timedelta(days=7),
        "DueDateTime": due,
        "SubmissionType": list(_TYPES[lms]) or None,
        "MaxPoints": 100,
    } | ({"StartDateTime": None, "EndDateTime": None} if lms == "Schoology" else {})


def _submission(
    lms: str, assignment: dict[str, Any], user: str, rng: random.Random
) -> dict[str, Any]:
    status = rng.choice(_STATUS[lms])
    points = rng.randint(55, 100) if status != _STATUS[lms][2] else None
    ident = assignment["SourceSystemIdentifier"]
    if lms == "Schoology":
        section = assignment["LMSSectionSourceSystemIdentifier"]
        return {
            "SourceSystemIdentifier": f"{section}#{ident}#{user}",
            "AssignmentSourceSystemIdentifier": ident,
            "LMSUserSourceSystemIdentifier": user,
            "SubmissionStatus": status,
            "SubmissionDateTime": assignment["DueDateTime"] - timedelta(hours=5),
        }
    return {
        "SourceSystemIdentifier": f"{ident}-{user}",
        "AssignmentSourceSystemIdentifier": assignment["SourceSystemIdentifier"],
        "LMSUserSourceSystemIdentifier": user,
        "SubmissionStatus": status,
        "SubmissionDateTime": assignment["DueDateTime"] - timedelta(hours=5)
        if points is not None
        else None,
        "EarnedPoints": points,
        "Grade": "" if points is None else ("A" if points >= 90 else "B" if points >= 80 else "C"),
    }


def _columns(resource: str) -> list[str]:
    return [c.name for c in BY_NAME[resource].columns]


def _row(resource: str, lms: str, values: dict[str, Any], stamp: datetime) -> dict[str, str]:
    row: dict[str, str] = {}
    for col in BY_NAME[resource].columns:
        value = values.get(col.name)
        if col.name == "SourceSystem":
            value = lms
        elif col.name in ("CreateDate", "SourceCreateDate"):
            value = values.get(col.name, stamp)
        elif col.name in ("LastModifiedDate", "SourceLastModifiedDate"):
            value = values.get("LastModifiedDate", values.get("CreateDate", stamp))
        if isinstance(value, datetime):
            text = _fmt(lms, value)
        elif col.kind == "list":
            text = "" if value is None else str(list(value))
        elif value is None:
            text = ""
        else:
            text = str(value)
        row[col.name] = text
    return row


def _day_files(world: _World, lms: str, stamp: datetime, day: int) -> list[CsvFile]:
    """One LMS's full snapshot for one day."""
    name = f"{stamp:%Y-%m-%d-%H-%M-%S}.csv"
    created = stamp - timedelta(days=day)
    files: list[CsvFile] = []

    def add(resource: str, folder: str, rows: Iterable[dict[str, Any]]) -> None:
        out = tuple(_row(resource, lms, {"CreateDate": created, **r}, stamp) for r in rows)
        files.append(CsvFile(resource, f"{folder}/{name}", lms, out))

    users = [{"SourceSystemIdentifier": k, **v} for k, v in sorted(world.users[lms].items())]
    add("users", "users", users)
    sections = world.sections[lms]
    add(
        "sections",
        "sections",
        (
            {
                "SourceSystemIdentifier": s.lms_id,
                "SISSectionIdentifier": s.sis_id,
                "Title": s.title,
                "SectionDescription": f"{s.title} in {lms}",
                "Term": s.term,
                "LMSSectionStatus": "active",
                "LastModifiedDate": created,
            }
            for s in sections
        ),
    )
    for s in sections:
        base = f"section={s.lms_id}"
        members = [u for u in s.students if u in world.users[lms]]
        if s.teacher:
            members = [s.teacher, *members]
        add(
            "section-associations",
            f"{base}/section-associations",
            (
                {
                    "SourceSystemIdentifier": f"{s.lms_id}-{u}",
                    "LMSUserSourceSystemIdentifier": u,
                    "LMSSectionSourceSystemIdentifier": s.lms_id,
                    "EnrollmentStatus": "active",
                    "LastModifiedDate": created,
                }
                for u in members
            ),
        )
        assignments = world.assignments[lms].get(s.lms_id, [])
        add("assignments", f"{base}/assignments", assignments)
        for a in assignments:
            ident = a["SourceSystemIdentifier"]
            add(
                "submissions",
                f"{base}/assignment={ident}/submissions",
                world.submissions[lms].get(ident, []),
            )
        students = [u for u in members if world.users[lms][u]["UserRole"] == "student"]
        if lms == "Canvas":
            add(
                "grades",
                f"{base}/grades",
                (
                    {
                        "SourceSystemIdentifier": f"g#{s.lms_id}-{u}",
                        "LMSUserLMSSectionAssociationSourceSystemIdentifier": f"{s.lms_id}-{u}",
                        "Grade": "B",
                        "GradeType": "current",
                        "LastModifiedDate": created,
                    }
                    for u in students
                ),
            )
        if lms == "Schoology":
            add(
                "attendance-events",
                f"{base}/attendance-events",
                (
                    {
                        "SourceSystemIdentifier": f"{s.lms_id}-{u}-{created:%Y%m%d}",
                        "LMSUserSourceSystemIdentifier": u,
                        "LMSSectionSourceSystemIdentifier": s.lms_id,
                        "EventDate": created.date().isoformat(),
                        "AttendanceStatus": "present",
                        "LastModifiedDate": created,
                    }
                    for u in students
                ),
            )
        if lms == "Google":
            add(
                "section-activities",
                f"{base}/section-activities",
                (
                    {
                        "SourceSystemIdentifier": f"act-{s.lms_id}-{u}",
                        "LMSUserSourceSystemIdentifier": u,
                        "LMSSectionSourceSystemIdentifier": s.lms_id,
                        "ActivityType": "post",
                        "ActivityDateTime": created + timedelta(hours=9),
                        "ActivityStatus": "published",
                        "ActivityTimeInMinutes": 5,
                        "LastModifiedDate": created,
                    }
                    for u in students[:2]
                ),
            )
    if lms == "Canvas":
        add(
            "system-activities",
            f"system-activities/date={stamp:%Y-%m-%d}",
            (
                {
                    "SourceSystemIdentifier": f"in#{u}#{created:%Y%m%d}",
                    "LMSUserSourceSystemIdentifier": u,
                    "ActivityType": "sign-in",
                    "ActivityDateTime": created + timedelta(hours=8),
                    "ActivityStatus": "active",
                    "LastModifiedDate": created,
                }
                for u in sorted(world.users[lms])[:5]
            ),
        )
    return files


def _edit(world: _World, day: int, stamp: datetime, removed: dict[str, Any]) -> None:
    """Day ``day``'s changes to the LMS side (day 0 is the world as built)."""
    for lms in world.lmses:
        sections = [s for s in world.sections[lms] if s.sis_id != "NO-SUCH-SECTION"]
        if not sections:
            continue
        first, last = sections[0], sections[-1]
        if day == 1:
            existing = world.assignments[lms][first.lms_id]
            existing.append(_assignment(lms, first, len(existing), stamp))
            new = world.assignments[lms][first.lms_id][-1]
            world.submissions[lms][new["SourceSystemIdentifier"]] = []
            first_asg = world.assignments[lms][first.lms_id][0]["SourceSystemIdentifier"]
            subs = world.submissions[lms][first_asg]
            # Schoology submissions carry no grade: their status changes instead
            change: dict[str, Any] = (
                {"SubmissionStatus": "late"}
                if lms == "Schoology"
                else {"Grade": "A", "EarnedPoints": 99}
            )
            subs[0] = {**subs[0], **change, "LastModifiedDate": stamp}
            removed[f"{lms}:submission"] = (first_asg, subs.pop())
            student = last.students[0]
            removed[f"{lms}:user"] = (student, world.users[lms].pop(student))
            renamed = sorted(u for u in world.users[lms] if u.startswith(("1", "9")))[:1]
            for u in renamed:
                world.users[lms][u] = {
                    **world.users[lms][u],
                    "Name": world.users[lms][u]["Name"] + " Jr.",
                    "LastModifiedDate": stamp,
                }
        if day == 2:
            user, fields = removed.pop(f"{lms}:user")
            world.users[lms][user] = fields
            asg, sub = removed.pop(f"{lms}:submission")
            world.submissions[lms][asg].append(sub)
            gone = world.assignments[lms][last.lms_id].pop()
            world.submissions[lms].pop(gone["SourceSystemIdentifier"], None)
            if len(first.students) > 2:
                # a student leaves the first section; their submissions stay in the LMS
                first.students.pop(1)


def build_extract(
    students: int = 60,
    *,
    seed: int = 7,
    days: int = 3,
    school_year: int = 2025,
    start: datetime = datetime(2024, 9, 2, 6, 0, 0),
    lmses: tuple[str, ...] = LMSES,
    assignments_per_section: int = 2,
    resources: frozenset[str] | None = None,
) -> Extract:
    """Every day's extractor files for the district (deterministic for the arguments).

    ``lmses`` are handed to schools in turn; ``resources`` keeps only those files
    (e.g. what the Toolkit's loader can load, for the benchmark).
    """
    rng = random.Random(f"{seed}:lms")
    district = _district(students, seed, school_year)
    world = _world(district, rng, start, lmses, assignments_per_section)
    extract = Extract()
    for lms in lmses:
        extract.matched_users[lms] = {
            k: v["SISMatch"] for k, v in world.users[lms].items() if v["SISMatch"]
        }
        extract.unmatched_users[lms] = [
            k
            for k, v in world.users[lms].items()
            if v["UserRole"] == "student" and not v["SISMatch"]
        ]
        extract.matched_sections[lms] = {
            s.lms_id: s.sis_id for s in world.sections[lms] if s.sis_id != "NO-SUCH-SECTION"
        }
        extract.unmatched_sections[lms] = [
            s.lms_id for s in world.sections[lms] if s.sis_id == "NO-SUCH-SECTION"
        ]
    removed: dict[str, Any] = {}
    for day in range(days):
        stamp = start + timedelta(days=day)
        _edit(world, min(day, 3), stamp, removed)
        files: list[CsvFile] = []
        for k, lms in enumerate(lmses):
            files.extend(_day_files(world, lms, stamp + timedelta(minutes=k), day))
        if resources is not None:
            files = [f for f in files if f.resource in resources]
        extract.days.append(files)
        extract.day_times.append(stamp)
    return extract


def csv_text(file: CsvFile, *, bom: bool = False) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=_columns(file.resource), lineterminator="\n")
    writer.writeheader()
    writer.writerows(file.rows)
    return ("\ufeff" if bom else "") + out.getvalue()


def write_day(
    extract: Extract,
    day: int,
    url: str,
    storage_options: dict[str, Any] | None = None,
) -> list[str]:
    """Write one day's files under ``url``; returns their relative paths."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    written: list[str] = []
    for file in extract.days[day]:
        path = f"{root}/{file.relative}"
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(csv_text(file, bom=file.source_system == "Google"))
        written.append(file.relative)
    return written


def write_extract(
    url: str,
    students: int = 60,
    *,
    seed: int = 7,
    days: int = 3,
    storage_options: dict[str, Any] | None = None,
) -> Extract:
    """Build and write every day's files under ``url`` (the demo's one call)."""
    extract = build_extract(students, seed=seed, days=days)
    for day in range(days):
        write_day(extract, day, url, storage_options)
    return extract
