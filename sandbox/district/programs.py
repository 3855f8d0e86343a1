"""Programs and cohorts, and the students in them."""

from __future__ import annotations

from collections.abc import Iterator

from .plan import _Plan, _Student
from .vocabulary import LEA_ID, Record

PROGRAMS = (
    ("Special Education", "Special Education", "Federal"),
    ("Gifted and Talented", "Gifted and Talented", "Local Education Agency"),
    ("Title I Part A", "Title I Part A", "Federal"),
    ("English as a Second Language", "English as a Second Language (ESL)", "Federal"),
    ("School Food Service", "Other", "Federal"),
)


def _program_ref(p: _Plan, k: int) -> Record:
    name, kind, _ = PROGRAMS[k]
    return {
        "educationOrganizationId": LEA_ID,
        "programName": name,
        "programTypeDescriptor": p.d("programType", kind),
    }


def _programs(p: _Plan) -> Iterator[Record]:
    for k, (name, kind, sponsor) in enumerate(PROGRAMS):
        yield {
            "programName": name,
            "programTypeDescriptor": p.d("programType", kind),
            "programId": f"GB{k + 1:03d}",
            "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
            "sponsors": [{"programSponsorDescriptor": p.d("programSponsor", sponsor)}],
        }


def _exit_iso(p: _Plan, st: _Student) -> str | None:
    return None if st.exit_day is None else p.iso[st.exit_day]


def _program_assoc(p: _Plan, st: _Student, k: int, begin: str) -> Record:
    body: Record = {
        "beginDate": begin,
        "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
        "programReference": _program_ref(p, k),
        "studentReference": {"studentUniqueId": st.uid},
    }
    end = _exit_iso(p, st)
    if end:
        body["endDate"] = end
    return body


def _student_programs(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        if st.gifted:
            yield _program_assoc(p, st, 1, p.iso[0])
        if st.lunch and st.grade < 6:
            yield _program_assoc(p, st, 2, p.iso[0])
        if st.lep:
            yield _program_assoc(p, st, 3, p.iso[0])


def _student_sped(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        if not st.sped:
            continue
        body = _program_assoc(p, st, 0, p.iso[0])
        body["ideaEligibility"] = True
        body["iepBeginDate"] = p.iso[0]
        body["serviceProviders"] = [
            {
                "primaryProvider": True,
                "staffReference": {"staffUniqueId": p.schools[st.school].counselor},
            }
        ]
        yield body


def _student_food(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        if not st.lunch:
            continue
        body = _program_assoc(p, st, 4, p.iso[0])
        body["directCertification"] = st.lunch == "Free Lunch"
        body["schoolFoodServiceProgramServices"] = [
            {
                "schoolFoodServiceProgramServiceDescriptor": p.d(
                    "schoolFoodServiceProgramService", st.lunch
                ),
                "primaryIndicator": True,
            }
        ]
        yield body


def _cohort_id(school_id: int, kind: str) -> str:
    return f"{school_id}-{'ATT' if kind.startswith('Attendance') else 'ACA'}"


def _cohorts(p: _Plan) -> Iterator[Record]:
    for s in p.schools:
        for kind in ("Attendance Intervention", "Academic Intervention"):
            body: Record = {
                "cohortIdentifier": _cohort_id(s.school_id, kind),
                "educationOrganizationReference": {"educationOrganizationId": s.school_id},
                "cohortDescription": f"{s.name} {kind}",
                "cohortTypeDescriptor": p.d("cohortType", kind),
                "cohortScopeDescriptor": p.d("cohortScope", "School"),
            }
            if kind == "Academic Intervention":
                body["programs"] = [{"programReference": _program_ref(p, 2)}]
            yield body


def _student_cohorts(p: _Plan) -> Iterator[Record]:
    begin = p.iso[min(30, len(p.iso) - 1)]
    for st in p.students:
        sid = p.schools[st.school].school_id
        kinds = []
        if st.absence_rate > 0.1:
            kinds.append("Attendance Intervention")
        if st.ability < 70:
            kinds.append("Academic Intervention")
        for kind in kinds:
            yield {
                "beginDate": begin,
                "cohortReference": {
                    "cohortIdentifier": _cohort_id(sid, kind),
                    "educationOrganizationId": sid,
                },
                "studentReference": {"studentUniqueId": st.uid},
            }
