"""The harmonizer against a running sandbox: matching, stored ids, planned lmsx, reports."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from edfi.client import EdFiClient
from edfi.lms import load_directory
from edfi.lms.harmonize import (
    ASSIGNMENTS,
    SUBMISSIONS,
    Exceptions,
    Rules,
    changes,
    fetch_index,
    harmonize,
    match,
    plan,
)
from edfi.lms.schema import tables
from edfi.lms.store import create_engine
from sandbox.lms_csv import build_extract, write_day
from sandbox.server import RunningSandbox
from tests.conftest import connection_block
from tests.test_lms_load import engine, pg_server  # noqa: F401  (SQLite and PostgreSQL stores)

NOW = datetime(2024, 9, 20)


async def _index(sb: RunningSandbox) -> tuple[Any, str]:
    async with EdFiClient(connection_block(sb).connection()) as client:
        await client.discover()
        base = client.url("dataManagementApi")
        return await fetch_index(client, base), base


def test_match_and_plan_against_the_sandbox(small_district: RunningSandbox, tmp_path: Path) -> None:
    extract = build_extract(60, seed=7, days=1)
    write_day(extract, 0, str(tmp_path / "x"))
    store = create_engine(f"sqlite:///{tmp_path / 'lms.sqlite'}")
    assert load_directory(str(tmp_path / "x"), store, now=extract.day_times[0]).parentless == 0
    index, _ = asyncio.run(_index(small_district))
    ex = Exceptions()
    with store.begin() as conn:
        matched = match(conn, index, Rules(), ex)
    wanted_users = {
        (lms, ident): uid
        for lms, users in extract.matched_users.items()
        for ident, uid in users.items()
    }
    assert matched == {
        "users": len(wanted_users),
        "sections": sum(len(v) for v in extract.matched_sections.values()),
    }
    assert sorted((r["SourceSystem"], r["SourceSystemIdentifier"]) for r in ex.users) == sorted(
        (lms, ident) for lms, idents in extract.unmatched_users.items() for ident in idents
    )
    assert (
        sorted(r["Reason"] for r in ex.sections)
        == ["no section has sectionIdentifier 'NO-SUCH-SECTION'"] * 3
    )
    t = tables("sqlite")
    users = t.main["users"]
    with store.connect() as conn:
        stored = {
            (system, ident): student
            for system, ident, student in conn.execute(
                sa.select(
                    users.c.SourceSystem, users.c.SourceSystemIdentifier, users.c.EdFiStudentId
                )
            )
        }
    for key, uid in wanted_users.items():
        assert stored[key] is not None
        assert str(stored[key]).replace("-", "") == index.students[uid].replace("-", "")
    with store.connect() as conn:
        planned = plan(conn, index, Rules(), ex, NOW)
    # every assignment of a matched section is planned or reported, never both, never lost
    with store.connect() as conn:
        all_assignments = int(
            conn.execute(sa.select(sa.func.count()).select_from(t.main["assignments"])).scalar_one()
        )
    assert len(planned.assignments) + len(ex.assignments) == all_assignments
    reported = {r["SourceSystemIdentifier"] for r in ex.assignments}
    assert {k[0] for k in planned.assignments}.isdisjoint(reported)
    for lms in ("Canvas", "Google", "Schoology"):
        source = f"uri://ed-fi.org/edfilms/LMSSourceSystemDescriptor#{lms}"
        if source.lower() not in index.descriptors:
            assert source in ex.descriptors
            assert not [k for k in planned.assignments if k[1] == Rules().namespace(lms)]
    canvas = [b for k, b in planned.assignments.items() if k[1] == "uri://instructure.com/canvas"]
    assert canvas, "the sandbox has Canvas's lmsx descriptors"
    first = canvas[0]
    assert first["assignmentCategoryDescriptor"] == (
        "uri://ed-fi.org/edfilms/AssignmentCategoryDescriptor/Canvas#Assignment"
    )
    assert first["sectionReference"]["sectionIdentifier"] in index.sections
    # a descriptor the target lacks: its submissions are reported with the reason, the
    # descriptor with how many records needed it, everything else planned as before
    uri = "uri://ed-fi.org/edfilms/SubmissionStatusDescriptor/Google#TURNED_IN"
    needing = {k for k, b in planned.submissions.items() if b["submissionStatusDescriptor"] == uri}
    assert needing
    without = dataclasses.replace(
        index, descriptors={k: v for k, v in index.descriptors.items() if k != uri.lower()}
    )
    ex2 = Exceptions()
    with store.connect() as conn:
        lacking = plan(conn, without, Rules(), ex2, NOW)
    assert set(lacking.submissions) == set(planned.submissions) - needing
    assert dict(ex2.descriptors) == {**ex.descriptors, uri: len(needing)}
    new = [r for r in ex2.submissions if r not in ex.submissions]
    assert sorted(r["SourceSystemIdentifier"] for r in new) == sorted(k[0] for k in needing)
    assert {r["Reason"] for r in new} == {
        "the target lacks the SubmissionStatus descriptor for 'TURNED_IN'"
    }
    todo = changes(index, planned)
    assert len(todo.upsert_assignments) == len(planned.assignments)
    assert len(todo.upsert_submissions) == len(planned.submissions)
    assert todo.delete_assignments == [] and todo.delete_submissions == []


def test_reports_written_without_a_writer(small_district: RunningSandbox, tmp_path: Path) -> None:
    extract = build_extract(60, seed=7, days=1)
    write_day(extract, 0, str(tmp_path / "x"))
    store = create_engine(f"sqlite:///{tmp_path / 'lms.sqlite'}")
    load_directory(str(tmp_path / "x"), store, now=extract.day_times[0])

    async def run() -> Any:
        async with EdFiClient(connection_block(small_district).connection()) as client:
            await client.discover()
            return await harmonize(
                client,
                store,
                None,
                base_url=client.url("dataManagementApi"),
                exceptions_url=str(tmp_path / "reports"),
                now=NOW,
            )

    result = asyncio.run(run())
    assert result.exceptions["unmatched_users"] == 3
    assert result.exceptions["unmatched_sections"] == 3
    with open(tmp_path / "reports" / "unmatched_users.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert sorted(r["SourceSystemIdentifier"] for r in rows) == ["XC900", "XG900", "XS900"]
    assert {r["Reason"] for r in rows if r["SourceSystem"] == "Google"} == {
        "no student has the electronic mail 'stray.google@example.com'"
    }
    assert result.changes["upsert_assignments"] > 0
    assert set(result.changes) == {
        "upsert_assignments",
        "upsert_submissions",
        "delete_submissions",
        "delete_assignments",
    }
    assert ASSIGNMENTS != SUBMISSIONS


async def _harmonize(sb: RunningSandbox, store: Any, reports: str, now: datetime) -> Any:
    from edfi.send import Sender, write_connection

    async with EdFiClient(write_connection(connection_block(sb).connection())) as client:
        await client.discover()
        base = client.url("dataManagementApi")
        model = await client.load_model()
        sender = Sender(client, model, base)
        result = await harmonize(
            client, store, sender, base_url=base, exceptions_url=reports, now=now
        )
        assert sender.rejects == []
        index = await fetch_index(client, base)
        return result, index


Sets = tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]


def _expected(extract: Any, day: int, lms: str) -> Sets:
    """What the CSVs say an LMS's lmsx records are after ``day`` (each file a full snapshot)."""
    assignments: dict[str, dict[str, tuple[Any, ...]]] = {}
    submissions: dict[str, dict[str, tuple[Any, ...]]] = {}
    submitted: dict[str, set[str]] = {}  # assignment -> users with a submission row
    enrolled: dict[str, set[str]] = {}  # section -> users associated with it
    active_users: set[str] = set()
    uids = extract.matched_users[lms]
    stray = f"section={lms[0]}S9999"
    for files in extract.days[: day + 1]:
        for f in files:
            if f.source_system != lms:
                continue
            scope = [p.lower() if "=" in p else p for p in f.relative.split("/")]
            scope = [p.split("=", 1)[0] + "=" + q.split("=", 1)[1] if "=" in p else p
                     for p, q in zip(scope, f.relative.split("/"), strict=True)]  # fmt: skip
            if f.resource == "assignments" and scope[0] != stray:
                assignments[scope[0]] = {
                    r["SourceSystemIdentifier"]: (r["SourceSystemIdentifier"], r["Title"])
                    for r in f.rows
                }
            if f.resource == "users":
                active_users = {r["SourceSystemIdentifier"] for r in f.rows}
            if f.resource == "section-associations":
                enrolled[scope[0]] = {r["LMSUserSourceSystemIdentifier"] for r in f.rows}
            if f.resource == "submissions":
                submitted[scope[1].split("=", 1)[1]] = {
                    r["LMSUserSourceSystemIdentifier"] for r in f.rows
                }
            if f.resource == "submissions" and scope[0] != stray:
                submissions[scope[1]] = {
                    r["SourceSystemIdentifier"]: (
                        r["SourceSystemIdentifier"],
                        uids[r["LMSUserSourceSystemIdentifier"]],
                        r["Grade"] or None,
                        int(r["EarnedPoints"]) if r["EarnedPoints"] else None,
                    )
                    for r in f.rows
                    if r["LMSUserSourceSystemIdentifier"] in uids
                }
    live = {a for group in assignments.values() for a in group}
    sent = {
        s
        for key, group in submissions.items()
        if key.split("=", 1)[1] in live
        for s in group.values()
    }
    if lms in Rules().synthesize_missing:
        # enrolled, matched students without a submission row get a missing/Upcoming one
        for section, group in assignments.items():
            for asg in group:
                for user in sorted(enrolled.get(section, set()) & active_users):
                    if user in uids and user not in submitted.get(asg, set()):
                        ident = f"{section.split('=', 1)[1]}#{asg}#{user}"
                        sent.add((ident, uids[user], None, None))
    return {a for group in assignments.values() for a in group.values()}, sent


def _on_target(index: Any, lms: str) -> Sets:
    ns = Rules().namespace(lms)
    prefix = f"{lms[0]}S"
    assignments = {
        (rec["assignmentIdentifier"], rec["title"])
        for key, rec in index.lmsx[ASSIGNMENTS].items()
        if key[1] == ns and key[0].startswith(prefix)
    }
    submissions = {
        (
            rec["assignmentSubmissionIdentifier"],
            rec["studentReference"]["studentUniqueId"],
            rec.get("grade"),
            rec.get("earnedPoints"),
        )
        for key, rec in index.lmsx[SUBMISSIONS].items()
        if key[1] == ns and key[0].startswith(prefix)
    }
    return assignments, submissions


def test_harmonize_writes_lmsx_through_the_sender_over_three_days(
    small_district: RunningSandbox,
    tmp_path: Path,
    engine: sa.Engine,  # noqa: F811  (the fixture imported above)
) -> None:
    store = engine
    extract = build_extract(60, seed=7, days=3)
    root = str(tmp_path / "x")
    reports = str(tmp_path / "reports")
    previous: dict[str, Sets] = {}
    for day in range(3):
        write_day(extract, day, root)
        load_directory(root, store, now=extract.day_times[day])
        result, index = asyncio.run(_harmonize(small_district, store, reports, NOW))
        sent = [lms for lms in ("Canvas", "Google", "Schoology") if _sent(index, lms)]
        assert sent == ["Canvas", "Google", "Schoology"]  # the sandbox has every lmsx descriptor
        removed = [0, 0]
        for lms in sent:
            want, got = _expected(extract, day, lms), _on_target(index, lms)
            assert got[0] == want[0], f"day {day} {lms} assignments"
            assert got[1] == want[1], f"day {day} {lms} submissions"
            if lms in previous:
                for i in (0, 1):
                    keys = {r[0] for r in want[i]}
                    removed[i] += len({r[0] for r in previous[lms][i]} - keys)
            previous[lms] = want
        assert [result.changes["delete_assignments"], result.changes["delete_submissions"]] == (
            removed
        )
        if day == 1:  # each LMS dropped one submission (Schoology's becomes a synthesized one)
            assert removed == [0, len([x for x in sent if x not in Rules().synthesize_missing])]
        if day == 2:  # ... brought it back, and dropped an assignment with its submissions
            assert removed[0] == len(sent) and removed[1] > 0
    # a rerun with no new files sends nothing
    rerun, _ = asyncio.run(_harmonize(small_district, store, reports, NOW))
    assert rerun.changes == {
        "upsert_assignments": 0,
        "upsert_submissions": 0,
        "delete_submissions": 0,
        "delete_assignments": 0,
    }
    assert rerun.written == {}


def _sent(index: Any, lms: str) -> bool:
    ns = Rules().namespace(lms)
    return any(k[1] == ns for k in index.lmsx[ASSIGNMENTS])


def test_schoology_students_without_a_submission_get_missing_or_upcoming(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    extract = build_extract(60, seed=7, days=2)
    root = str(tmp_path / "x")
    store = create_engine(f"sqlite:///{tmp_path / 'lms.sqlite'}")
    for day in range(2):
        write_day(extract, day, root)
        load_directory(root, store, now=extract.day_times[day])
    index, _ = asyncio.run(_index(small_district))
    # a target that has Schoology's lmsx descriptors (spelled in its own case)
    ns = "uri://ed-fi.org/edfilms"
    for uri in (
        f"{ns}/LMSSourceSystemDescriptor#Schoology",
        f"{ns}/AssignmentCategoryDescriptor/Schoology#Assignment",
        *(f"{ns}/SubmissionStatusDescriptor/Schoology#{c}" for c in ("on-time", "late")),
        f"{ns}/SubmissionStatusDescriptor/Schoology#Missing",
        f"{ns}/SubmissionStatusDescriptor/Schoology#Upcoming",
        f"{ns}/SubmissionTypeDescriptor/Schoology#assignment",
    ):
        index.descriptors[uri.lower()] = uri
    ex = Exceptions()
    with store.begin() as conn:
        match(conn, index, Rules(), ex)
    # the assignment added on day 1 (due 2024-09-21 06:01) has no submissions at all
    first = sorted(extract.matched_sections["Schoology"])[0]
    new_assignment = f"{first}-A3"
    schoology = "uri://schoology.com"
    for now, status in ((datetime(2024, 9, 20), "Upcoming"), (datetime(2024, 9, 22), "Missing")):
        with store.connect() as conn:
            planned = plan(conn, index, Rules(), Exceptions(), now)
        synthesized = {
            key[2]: body["submissionStatusDescriptor"]
            for key, body in planned.submissions.items()
            if key[1] == schoology
            and body["assignmentReference"]["assignmentIdentifier"] == new_assignment
        }
        assert synthesized, "every enrolled, matched student gets one"
        assert set(synthesized.values()) == {f"{ns}/SubmissionStatusDescriptor/Schoology#{status}"}
        bodies = [
            b
            for b in planned.submissions.values()
            if b["assignmentReference"]["assignmentIdentifier"] == new_assignment
        ]
        assert all("submissionDateTime" not in b for b in bodies)


def test_ambiguous_section_or_mail_is_an_exception_never_a_guess(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    """A sectionIdentifier two schools use, a mail two students share: reported, and a match
    stored before is taken back (a later lmsx write must not go to the wrong record)."""
    extract = build_extract(60, seed=7, days=1)
    write_day(extract, 0, str(tmp_path / "x"))
    store = create_engine(f"sqlite:///{tmp_path / 'lms.sqlite'}")
    load_directory(str(tmp_path / "x"), store, now=extract.day_times[0])
    index, _ = asyncio.run(_index(small_district))
    with store.begin() as conn:
        first = match(conn, index, Rules(), Exceptions())
    lms_section, sis = sorted(extract.matched_sections["Canvas"].items())[0]
    other = dict(index.sections[sis][0])
    school = other["courseOfferingReference"]["schoolId"]
    other["courseOfferingReference"] = {**other["courseOfferingReference"], "schoolId": 999}
    other["id"] = "f" * 32
    index.sections[sis].append(other)
    google_user, uid = sorted(extract.matched_users["Google"].items())[0]
    mail = next(m for m, uids in index.emails.items() if uids == {uid})
    index.emails[mail] = {uid, "someone-else"}
    ex = Exceptions()
    with store.begin() as conn:
        second = match(conn, index, Rules(), ex)
    assert second == {"users": first["users"] - 1, "sections": first["sections"] - 1}
    reported = {(r["SourceSystemIdentifier"], r["Reason"]) for r in ex.sections}
    schools = ", ".join(sorted([str(school), "999"]))
    assert (lms_section, f"sectionIdentifier {sis!r} is used by schools {schools}") in reported
    assert (google_user, f"EmailAddress {mail!r} is the electronic mail of 2 students") in {
        (r["SourceSystemIdentifier"], r["Reason"]) for r in ex.users
    }
    t = tables("sqlite")
    users, sections = t.main["users"], t.main["sections"]
    with store.connect() as conn:
        assert (
            conn.execute(
                sa.select(sections.c.EdFiSectionId).where(
                    sections.c.SourceSystemIdentifier == lms_section
                )
            ).scalar_one()
            is None
        )
        assert (
            conn.execute(
                sa.select(users.c.EdFiStudentId).where(
                    users.c.SourceSystemIdentifier == google_user
                )
            ).scalar_one()
            is None
        )
