"""The harmonizer, through the API: LMS users and sections matched to Ed-Fi, lmsx written.

The Toolkit's harmonizer is SQL that must run inside the ODS database; this
one needs only the API. It reads what matching needs from the target
(students, their education organization associations' electronic mails,
sections), matches per source system by configurable rules (by default
Canvas and Schoology users by ``SISUserIdentifier`` = ``studentUniqueId``,
Google users by ``EmailAddress`` = a student's electronic mail; sections by
``SISSectionIdentifier`` = ``sectionIdentifier``, where an identifier used by
more than one school is an exception, never a guess), and stores the matches
in the LMS store (``EdFiStudentId``, ``EdFiSectionId``).

Then it plans the ``lmsx`` records the store implies (assignments of matched
sections, submissions of matched students, Schoology's synthesized
``missing``/``Upcoming`` submissions for enrolled students without one),
compares them with what the target already holds, and hands only the
differences to the sender: upserts, then deletes for soft-deleted LMS rows
(submissions before assignments). A rerun with nothing new sends nothing.
Everything that cannot be sent lands in exception reports: unmatched users,
sections, assignments and submissions, and missing descriptors (descriptor
codes compare case-insensitively, the target's spelling is sent).
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import fsspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from edfi.client import EdFiClient
from edfi.errors import LmsError
from edfi.lake import Lake, iter_batches
from edfi.model import builtin_model
from edfi.paging import read_all

from .read import parse_datetime
from .schema import tables
from .store import as_engine, transaction

LMS_NS = "uri://ed-fi.org/edfilms"
ASSIGNMENTS = "/lmsx/assignments"
SUBMISSIONS = "/lmsx/assignmentSubmissions"
DESCRIPTORS = {
    "source": "/lmsx/lmsSourceSystemDescriptors",
    "category": "/lmsx/assignmentCategoryDescriptors",
    "status": "/lmsx/submissionStatusDescriptors",
    "type": "/lmsx/submissionTypeDescriptors",
}


@dataclass(frozen=True)
class Rules:
    """How each source system's users match students, and each LMS's lmsx namespace."""

    users: Mapping[str, str] = field(
        default_factory=lambda: {"Canvas": "sis", "Schoology": "sis", "Google": "email"}
    )
    """Source system -> ``sis`` (SISUserIdentifier = studentUniqueId) or ``email``."""
    namespaces: Mapping[str, str] = field(
        default_factory=lambda: {
            "Canvas": "uri://instructure.com/canvas",
            "Google": "uri://google.com/classroom",
            "Schoology": "uri://schoology.com",
        }
    )
    synthesize_missing: frozenset[str] = frozenset({"Schoology"})
    """Source systems whose enrolled students without a submission get one (as the Toolkit)."""

    def user_rule(self, system: str) -> str:
        return self.users.get(system, "sis")

    def namespace(self, system: str) -> str:
        return self.namespaces.get(system, f"uri://lms/{system.lower()}")


class Writer(Protocol):
    """What the harmonizer needs of the sender (``edfi.send.Sender``)."""

    async def upsert(self, resource: str, items: Any) -> Any: ...

    async def delete(self, resource: str, items: Any) -> Any: ...


@dataclass
class EdFiIndex:
    """What matching needs from the target."""

    students: dict[str, str] = field(default_factory=dict)
    """studentUniqueId -> resource id."""
    emails: dict[str, set[str]] = field(default_factory=dict)
    """lower-cased electronic mail -> studentUniqueIds having it."""
    sections: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """sectionIdentifier -> section records (one per school using it)."""
    descriptors: dict[str, str] = field(default_factory=dict)
    """lower-cased ``namespace#codeValue`` -> the target's spelling."""
    lmsx: dict[str, dict[tuple[str, ...], dict[str, Any]]] = field(default_factory=dict)
    """resource -> natural key -> the target's record (lmsx only)."""


def _assignment_key(body: Mapping[str, Any]) -> tuple[str, ...]:
    return (body["assignmentIdentifier"], body["namespace"])


def _submission_key(body: Mapping[str, Any]) -> tuple[str, ...]:
    return (
        body["assignmentSubmissionIdentifier"],
        body["namespace"],
        body["studentReference"]["studentUniqueId"],
    )


KEYS = {ASSIGNMENTS: _assignment_key, SUBMISSIONS: _submission_key}


MATCHING = (
    "/ed-fi/students",
    "/ed-fi/studentEducationOrganizationAssociations",
    "/ed-fi/sections",
)
"""What matching reads, from the target or from an extract lake."""


def _add(index: EdFiIndex, path: str, record: Mapping[str, Any]) -> None:
    """One matching record into the index."""
    if path == "/ed-fi/students":
        index.students[record["studentUniqueId"]] = record["id"]
    elif path == "/ed-fi/sections":
        index.sections.setdefault(record["sectionIdentifier"], []).append(dict(record))
    else:
        uid = record["studentReference"]["studentUniqueId"]
        for mail in record.get("electronicMails") or ():
            address = str(mail.get("electronicMailAddress") or "").strip().lower()
            if address:
                index.emails.setdefault(address, set()).add(uid)


def index_from_lake(lake: Lake, school_year: int = 0) -> EdFiIndex:
    """Students, their mails and sections from an extract lake's committed tables."""
    model = builtin_model()
    index = EdFiIndex()
    for path in MATCHING:
        files = lake.committed_files(model[path], school_year)
        if not files:
            raise LmsError(
                f"The lake {lake.url} holds no committed {path} for school year {school_year}; "
                "run the extract flow first, or match against the API (no lake)."
            )
        for batch in iter_batches(lake, files):
            for record in batch.to_pylist():
                _add(index, path, record)
    return index


async def fetch_index(
    client: EdFiClient, base: str, matching: EdFiIndex | None = None
) -> EdFiIndex:
    """Read what matching needs (unless given, e.g. from a lake), lmsx descriptors and records."""
    index = matching or EdFiIndex()
    if matching is None:
        for path in MATCHING:
            async for record in read_all(client, base, path):
                _add(index, path, record)
    for path in DESCRIPTORS.values():
        async for d in read_all(client, base, path):
            uri = f"{d['namespace']}#{d['codeValue']}"
            index.descriptors[uri.lower()] = uri
    for path, key in KEYS.items():
        records = index.lmsx.setdefault(path, {})
        async for rec in read_all(client, base, path):
            records[key(rec)] = rec
    return index


# -- matching -----------------------------------------------------------------------------


@dataclass
class Exceptions:
    """Rows of each exception report."""

    users: list[dict[str, Any]] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)
    assignments: list[dict[str, Any]] = field(default_factory=list)
    submissions: list[dict[str, Any]] = field(default_factory=list)
    descriptors: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, int]:
        return {
            "unmatched_users": len(self.users),
            "unmatched_sections": len(self.sections),
            "unmatched_assignments": len(self.assignments),
            "unmatched_submissions": len(self.submissions),
            "missing_descriptors": len(self.descriptors),
        }


def match(conn: Connection, index: EdFiIndex, rules: Rules, ex: Exceptions) -> dict[str, int]:
    """Store each active LMS student's EdFiStudentId and each section's EdFiSectionId."""
    t = tables(conn.dialect.name)
    users, sections = t.main["users"], t.main["sections"]
    matched = {"users": 0, "sections": 0}
    student_ids: dict[int, str | None] = {}
    query = sa.select(
        users.c.LMSUserIdentifier,
        users.c.SourceSystemIdentifier,
        users.c.SourceSystem,
        users.c.UserRole,
        users.c.SISUserIdentifier,
        users.c.EmailAddress,
        users.c.EdFiStudentId,
    ).where(users.c.DeletedAt.is_(None))
    for ident, ssi, system, role, sis, email, current in conn.execute(query):
        if str(role).lower() != "student":
            continue
        rule = rules.user_rule(system)
        found: str | None = None
        reason = ""
        if rule == "email":
            uids = index.emails.get(str(email or "").strip().lower(), set())
            if len(uids) == 1:
                found = index.students.get(next(iter(uids)))
            reason = (
                f"EmailAddress {email!r} is the electronic mail of {len(uids)} students"
                if len(uids) > 1
                else f"no student has the electronic mail {email!r}"
            )
        else:
            found = index.students.get(str(sis or ""))
            reason = f"no student has studentUniqueId {sis!r} (SISUserIdentifier)"
        if found is None:
            ex.users.append(
                {
                    "SourceSystem": system,
                    "SourceSystemIdentifier": ssi,
                    "SISUserIdentifier": sis,
                    "EmailAddress": email,
                    "Reason": reason,
                }
            )
        else:
            matched["users"] += 1
        if _uuid(current) != _uuid(found):
            student_ids[ident] = found
    for ident, found in student_ids.items():
        conn.execute(
            sa.update(users)
            .where(users.c.LMSUserIdentifier == ident)
            .values({users.c.EdFiStudentId: found})
        )
    query_s = sa.select(
        sections.c.LMSSectionIdentifier,
        sections.c.SourceSystemIdentifier,
        sections.c.SourceSystem,
        sections.c.SISSectionIdentifier,
        sections.c.EdFiSectionId,
    ).where(sections.c.DeletedAt.is_(None))
    for ident, ssi, system, sis, current in conn.execute(query_s):
        candidates = index.sections.get(str(sis or ""), [])
        found = candidates[0]["id"] if len(candidates) == 1 else None
        if found is None:
            schools = sorted(str(c["courseOfferingReference"]["schoolId"]) for c in candidates)
            ex.sections.append(
                {
                    "SourceSystem": system,
                    "SourceSystemIdentifier": ssi,
                    "SISSectionIdentifier": sis,
                    "Reason": (
                        f"sectionIdentifier {sis!r} is used by schools {', '.join(schools)}"
                        if candidates
                        else f"no section has sectionIdentifier {sis!r}"
                    ),
                }
            )
        else:
            matched["sections"] += 1
        if _uuid(current) != _uuid(found):
            conn.execute(
                sa.update(sections)
                .where(sections.c.LMSSectionIdentifier == ident)
                .values({sections.c.EdFiSectionId: found})
            )
    return matched


def _uuid(value: Any) -> str | None:
    return None if value is None else str(value).replace("-", "").lower()


# -- planning -----------------------------------------------------------------------------


def _when(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _descriptor(
    index: EdFiIndex, ex: Exceptions, kind: str, system: str, code: str | None
) -> str | None:
    if not code:
        return None
    if kind == "source":
        uri = f"{LMS_NS}/LMSSourceSystemDescriptor#{system}"
    else:
        name = {
            "category": "AssignmentCategoryDescriptor",
            "status": "SubmissionStatusDescriptor",
            "type": "SubmissionTypeDescriptor",
        }[kind]
        uri = f"{LMS_NS}/{name}/{system}#{code}"
    found = index.descriptors.get(uri.lower())
    if found is None:
        ex.descriptors[uri] += 1
    return found


@dataclass
class Plan:
    """The lmsx records the store implies, and the LMS rows whose records must go."""

    assignments: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    submissions: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)
    deleted_assignments: set[tuple[str, ...]] = field(default_factory=set)
    deleted_submissions: set[tuple[str, str]] = field(default_factory=set)
    """(assignmentSubmissionIdentifier, namespace): the student may no longer match."""
    stored_submissions: set[tuple[str, str]] = field(default_factory=set)
    """(identifier, namespace) of every submission row in the store, deleted or not."""
    synthesizing: set[str] = field(default_factory=set)
    """Namespaces whose assignments got synthesized submissions."""


def plan(conn: Connection, index: EdFiIndex, rules: Rules, ex: Exceptions, now: datetime) -> Plan:
    """Every lmsx assignment and submission the store implies, as request bodies."""
    t = tables(conn.dialect.name)
    users, sections = t.main["users"], t.main["sections"]
    asg, subs, types = t.main["assignments"], t.main["submissions"], t.submission_types
    assoc = t.main["section-associations"]
    out = Plan()
    section_by_id: dict[str, dict[str, Any]] = {
        s["id"].replace("-", "").lower(): s for group in index.sections.values() for s in group
    }
    uid_by_id = {v.replace("-", "").lower(): k for k, v in index.students.items()}
    kinds: dict[int, list[str]] = {}
    for a_id, kind in conn.execute(
        sa.select(types.c.AssignmentIdentifier, types.c.SubmissionType)
        .where(types.c.DeletedAt.is_(None))
        .order_by(types.c.AssignmentIdentifier, types.c.SubmissionType)
    ):
        kinds.setdefault(a_id, []).append(kind)
    sent_assignments: dict[int, tuple[tuple[str, ...], datetime | None, str]] = {}
    gone: set[int] = set()
    rows = conn.execute(
        sa.select(
            asg.c.AssignmentIdentifier,
            asg.c.SourceSystemIdentifier,
            asg.c.SourceSystem,
            asg.c.Title,
            asg.c.AssignmentCategory,
            asg.c.AssignmentDescription,
            asg.c.StartDateTime,
            asg.c.EndDateTime,
            asg.c.DueDateTime,
            asg.c.MaxPoints,
            asg.c.DeletedAt,
            sections.c.EdFiSectionId,
            sections.c.SourceSystemIdentifier,
        ).join(sections, sections.c.LMSSectionIdentifier == asg.c.LMSSectionIdentifier)
    )
    for (
        a_id,
        ssi,
        system,
        title,
        cat,
        desc,
        start,
        end,
        due,
        points,
        deleted,
        sec_id,
        sec_ssi,
    ) in rows:
        ns = rules.namespace(system)
        key = (ssi, ns)
        if deleted is not None:
            out.deleted_assignments.add(key)
            gone.add(a_id)
            continue
        section = section_by_id.get(_uuid(sec_id) or "")
        if section is None:
            ex.assignments.append(
                {
                    "SourceSystem": system,
                    "SourceSystemIdentifier": ssi,
                    "Reason": f"its section {sec_ssi!r} matches no Ed-Fi section",
                }
            )
            continue
        source = _descriptor(index, ex, "source", system, system)
        category = _descriptor(index, ex, "category", system, cat)
        submission_types = [
            d for d in (_descriptor(index, ex, "type", system, k) for k in kinds.get(a_id, [])) if d
        ]
        if source is None or category is None:
            missing = "LMSSourceSystemDescriptor" if source is None else "AssignmentCategory"
            ex.assignments.append(
                {
                    "SourceSystem": system,
                    "SourceSystemIdentifier": ssi,
                    "Reason": f"the target lacks its {missing} descriptor",
                }
            )
            continue
        ref = section["courseOfferingReference"]
        body: dict[str, Any] = {
            "assignmentIdentifier": ssi,
            "namespace": ns,
            "lmsSourceSystemDescriptor": source,
            "title": title,
            "assignmentCategoryDescriptor": category,
            "sectionReference": {
                "localCourseCode": ref["localCourseCode"],
                "schoolId": ref["schoolId"],
                "schoolYear": ref["schoolYear"],
                "sectionIdentifier": section["sectionIdentifier"],
                "sessionName": ref["sessionName"],
            },
        }
        optional = {
            "assignmentDescription": desc or None,
            "startDateTime": _when(start),
            "endDateTime": _when(end),
            "dueDateTime": _when(due),
            "maxPoints": points,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        if submission_types:
            body["submissionTypes"] = [{"submissionTypeDescriptor": d} for d in submission_types]
        out.assignments[key] = body
        sent_assignments[a_id] = (key, due, system)
    seen: set[tuple[int, int]] = set()
    rows = conn.execute(
        sa.select(
            subs.c.AssignmentIdentifier,
            subs.c.LMSUserIdentifier,
            subs.c.SourceSystemIdentifier,
            subs.c.SourceSystem,
            subs.c.SubmissionStatus,
            subs.c.SubmissionDateTime,
            subs.c.EarnedPoints,
            subs.c.Grade,
            subs.c.DeletedAt,
            users.c.EdFiStudentId,
            users.c.SourceSystemIdentifier,
        ).join(users, users.c.LMSUserIdentifier == subs.c.LMSUserIdentifier)
    )
    for a_id, u_id, ssi, system, status, when, points, grade, deleted, student, u_ssi in rows:
        ns = rules.namespace(system)
        out.stored_submissions.add((ssi, ns))
        if deleted is not None or a_id in gone:
            # a submission goes with its soft-deleted assignment
            out.deleted_submissions.add((ssi, ns))
            continue
        seen.add((a_id, u_id))
        _submission(
            out, index, ex, rules, sent_assignments.get(a_id), uid_by_id,
            (ssi, system, status, when, points, grade, student, u_ssi),
        )  # fmt: skip
    synth = [
        a for a, (_, _, system) in sent_assignments.items() if system in rules.synthesize_missing
    ]
    out.synthesizing = {sent_assignments[a][0][1] for a in synth}
    if synth:
        enrolled = conn.execute(
            sa.select(
                asg.c.AssignmentIdentifier,
                users.c.LMSUserIdentifier,
                users.c.SourceSystemIdentifier,
                users.c.EdFiStudentId,
                asg.c.SourceSystem,
                sections.c.SourceSystemIdentifier,
            )
            .join(sections, sections.c.LMSSectionIdentifier == asg.c.LMSSectionIdentifier)
            .join(assoc, assoc.c.LMSSectionIdentifier == asg.c.LMSSectionIdentifier)
            .join(users, users.c.LMSUserIdentifier == assoc.c.LMSUserIdentifier)
            .where(
                asg.c.AssignmentIdentifier.in_(synth),
                assoc.c.DeletedAt.is_(None),
                users.c.DeletedAt.is_(None),
                sa.func.lower(users.c.UserRole) == "student",
            )
        )
        for a_id, u_id, u_ssi, student, system, sec_ssi in enrolled:
            if (a_id, u_id) in seen:
                continue
            a_key, due, _ = sent_assignments[a_id]
            status = "missing" if due is not None and due < now else "Upcoming"
            # the Toolkit's identifier, which is also the one Schoology's extractor gives
            # the student's real submission: when it comes, it replaces this one in place
            ident = f"{sec_ssi}#{a_key[0]}#{u_ssi}"
            _submission(
                out, index, ex, rules, sent_assignments[a_id], uid_by_id,
                (ident, system, status, None, None, None, student, u_ssi),
            )  # fmt: skip
    return out


def _submission(
    out: Plan,
    index: EdFiIndex,
    ex: Exceptions,
    rules: Rules,
    assignment: tuple[tuple[str, ...], datetime | None, str] | None,
    uid_by_id: dict[str, str],
    row: tuple[Any, ...],
) -> None:
    ssi, system, status, when, points, grade, student, u_ssi = row
    ns = rules.namespace(system)
    uid = uid_by_id.get(_uuid(student) or "")
    reason = None
    if assignment is None:
        reason = "its assignment is not sent (see the assignments report)"
    elif uid is None:
        reason = f"its user {u_ssi!r} matches no student"
    descriptor = _descriptor(index, ex, "status", system, status) if reason is None else None
    if reason is None and descriptor is None:
        reason = f"the target lacks the SubmissionStatus descriptor for {status!r}"
    if reason is not None or assignment is None or uid is None or descriptor is None:
        ex.submissions.append(
            {"SourceSystem": system, "SourceSystemIdentifier": ssi, "Reason": reason}
        )
        return
    body: dict[str, Any] = {
        "assignmentSubmissionIdentifier": ssi,
        "namespace": ns,
        "studentReference": {"studentUniqueId": uid},
        "assignmentReference": {
            "assignmentIdentifier": assignment[0][0],
            "namespace": assignment[0][1],
        },
        "submissionStatusDescriptor": descriptor,
    }
    optional = {"submissionDateTime": _when(when), "earnedPoints": points, "grade": grade or None}
    body.update({k: v for k, v in optional.items() if v is not None})
    out.submissions[_submission_key(body)] = body


# -- comparing with the target ------------------------------------------------------------


def _normal(value: Any) -> Any:
    """A record's value as sent (no ids, links or etags; date-times in one format)."""
    if isinstance(value, dict):
        return {
            k: _normal(v)
            for k, v in value.items()
            if k not in ("id", "link", "_etag", "_lastModifiedDate") and v is not None
        }
    if isinstance(value, list):
        return sorted((_normal(v) for v in value), key=repr)
    if isinstance(value, str) and len(value) >= 19 and value[4] == "-" and value[10] == "T":
        parsed = parse_datetime(value)
        return _when(parsed) if parsed is not None else value
    return value


@dataclass
class Changes:
    upsert_assignments: list[dict[str, Any]] = field(default_factory=list)
    upsert_submissions: list[dict[str, Any]] = field(default_factory=list)
    delete_submissions: list[dict[str, Any]] = field(default_factory=list)
    delete_assignments: list[dict[str, Any]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.__dict__.items()}


def changes(index: EdFiIndex, planned: Plan) -> Changes:
    """What must be written for the target to hold exactly the plan (for the LMS's records)."""
    out = Changes()
    on_target = index.lmsx
    for resource, bodies, target in (
        (ASSIGNMENTS, planned.assignments, out.upsert_assignments),
        (SUBMISSIONS, planned.submissions, out.upsert_submissions),
    ):
        existing = on_target.get(resource, {})
        for key, body in bodies.items():
            current = existing.get(key)
            if current is None or _normal(current) != _normal(body):
                target.append(body)
    for key, rec in on_target.get(SUBMISSIONS, {}).items():
        ref = rec.get("assignmentReference") or {}
        parent = (ref.get("assignmentIdentifier"), ref.get("namespace"))
        if key in planned.submissions:
            continue
        # a synthesized submission no longer implied (the student left the section or
        # submitted under another identifier) is ours to take back; the Toolkit leaves it
        stale = (
            key[1] in planned.synthesizing
            and parent in planned.assignments
            and (key[0], key[1]) not in planned.stored_submissions
        )
        if (
            stale
            or (key[0], key[1]) in planned.deleted_submissions
            or parent in planned.deleted_assignments
        ):
            out.delete_submissions.append(
                {
                    "assignmentSubmissionIdentifier": key[0],
                    "namespace": key[1],
                    "studentUniqueId": key[2],
                }
            )
    for key in on_target.get(ASSIGNMENTS, {}):
        if key in planned.deleted_assignments and key not in planned.assignments:
            out.delete_assignments.append({"assignmentIdentifier": key[0], "namespace": key[1]})
    return out


# -- reports ------------------------------------------------------------------------------


def write_reports(
    ex: Exceptions, url: str, storage_options: dict[str, Any] | None = None
) -> list[str]:
    """The exception reports as CSVs under ``url``; returns the paths written."""
    fs, root = fsspec.core.url_to_fs(url, **(storage_options or {}))
    root = root.rstrip("/")
    fs.makedirs(root, exist_ok=True)
    reports: dict[str, Iterable[dict[str, Any]]] = {
        "unmatched_users": ex.users,
        "unmatched_sections": ex.sections,
        "unmatched_assignments": ex.assignments,
        "unmatched_submissions": ex.submissions,
        "missing_descriptors": (
            {"Descriptor": uri, "Records": n} for uri, n in sorted(ex.descriptors.items())
        ),
    }
    written = []
    for name, rows in reports.items():
        rows = list(rows)
        path = f"{root}/{name}.csv"
        if not rows:
            if fs.exists(path):
                fs.rm(path)
            continue
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        with fs.open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(out.getvalue())
        written.append(path)
    return written


@dataclass
class HarmonizeResult:
    matched: dict[str, int]
    exceptions: dict[str, int]
    changes: dict[str, int]
    reports: list[str]
    written: dict[str, Any] = field(default_factory=dict)


async def harmonize(
    client: EdFiClient,
    engine: Engine,
    writer: Writer | None,
    *,
    base_url: str,
    exceptions_url: str,
    rules: Rules | None = None,
    now: datetime | None = None,
    storage_options: dict[str, Any] | None = None,
    lake: Lake | None = None,
    school_year: int = 0,
) -> HarmonizeResult:
    """Match, store the matches, plan lmsx and send the differences (``writer=None``: plan only).

    With ``lake`` the students, mails and sections come from that extract lake's
    committed tables instead of the API (descriptors and lmsx records always come
    from the target, since the plan is compared with what it holds now).
    """
    rules = rules or Rules()
    engine = as_engine(engine)
    when = now or datetime.now(UTC).replace(tzinfo=None)
    matching = index_from_lake(lake, school_year) if lake is not None else None
    index = await fetch_index(client, base_url, matching)
    ex = Exceptions()
    with transaction(engine) as conn:
        matched = match(conn, index, rules, ex)
    with engine.connect() as conn:
        planned = plan(conn, index, rules, ex, when)
    todo = changes(index, planned)
    reports = write_reports(ex, exceptions_url, storage_options)
    result = HarmonizeResult(matched, ex.counts(), todo.counts(), reports)
    if writer is not None:
        from edfi.send import Item

        for resource, bodies in (
            (ASSIGNMENTS, todo.upsert_assignments),
            (SUBMISSIONS, todo.upsert_submissions),
        ):
            if bodies:
                result.written[f"upsert {resource}"] = await writer.upsert(
                    resource, [Item(body=b, origin=f"lms {b.get('namespace')}") for b in bodies]
                )
        for resource, keys in (
            (SUBMISSIONS, todo.delete_submissions),
            (ASSIGNMENTS, todo.delete_assignments),
        ):
            if keys:
                result.written[f"delete {resource}"] = await writer.delete(
                    resource, [Item(body=None, key=k, origin="lms soft delete") for k in keys]
                )
    return result
