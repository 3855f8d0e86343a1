"""Staff, their employment, assignments, schools and sections."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date

from .plan import _Plan, _Staff
from .vocabulary import GRADE_LEVELS, LEA_ID, Record


def _staffs(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:staffs")
    for s in p.staff:
        yield {
            "staffUniqueId": s.uid,
            "firstName": s.first,
            "lastSurname": s.last,
            "sexDescriptor": p.d("sex", "Female" if s.female else "Male"),
            "birthDate": date(
                p.sy - rng.randrange(25, 63), rng.randrange(1, 13), rng.randrange(1, 29)
            ).isoformat(),
            "highestCompletedLevelOfEducationDescriptor": p.d(
                "levelOfEducation",
                rng.choice(("Bachelor's", "Bachelor's", "Master's", "Doctorate")),
            ),
            "yearsOfPriorTeachingExperience": rng.randrange(0, 30),
            "electronicMails": [
                {
                    "electronicMailTypeDescriptor": p.d("electronicMailType", "Work"),
                    "electronicMailAddress": f"{s.first}.{s.last}.{s.uid}@grandbend.edu".lower(),
                    "primaryEmailAddressIndicator": True,
                }
            ],
            "identificationCodes": [
                {
                    "staffIdentificationSystemDescriptor": p.d(
                        "staffIdentificationSystem", "District"
                    ),
                    "identificationCode": s.uid,
                }
            ],
        }


def _hire_date(p: _Plan, s: _Staff) -> str:
    n = int(s.uid)
    return date(p.sy - 1 - n % 20, 8, 1 + n % 20).isoformat()


def _employment_status(p: _Plan, s: _Staff) -> str:
    return p.d(
        "employmentStatus", "Probationary" if int(s.uid) % 20 < 2 else "Tenured or permanent"
    )


def _employment(p: _Plan) -> Iterator[Record]:
    for s in p.staff:
        yield {
            "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
            "staffReference": {"staffUniqueId": s.uid},
            "employmentStatusDescriptor": _employment_status(p, s),
            "hireDate": _hire_date(p, s),
            "fullTimeEquivalency": 1.0,
        }


def _assignments_staff(p: _Plan) -> Iterator[Record]:
    for s in p.staff:
        yield {
            "educationOrganizationReference": {"educationOrganizationId": s.school_id or LEA_ID},
            "staffReference": {"staffUniqueId": s.uid},
            "staffClassificationDescriptor": p.d("staffClassification", s.role),
            "beginDate": _hire_date(p, s),
            "positionTitle": s.role,
            "employmentStaffEducationOrganizationEmploymentAssociationReference": {
                "educationOrganizationId": LEA_ID,
                "employmentStatusDescriptor": _employment_status(p, s),
                "hireDate": _hire_date(p, s),
                "staffUniqueId": s.uid,
            },
        }


def _staff_schools(p: _Plan) -> Iterator[Record]:
    for s in p.staff:
        if s.school_id is None:
            continue
        body: Record = {
            "programAssignmentDescriptor": p.d("programAssignment", "Regular Education"),
            "schoolReference": {"schoolId": s.school_id},
            "staffReference": {"staffUniqueId": s.uid},
            "schoolYearTypeReference": {"schoolYear": p.sy},
            "calendarReference": {
                "calendarCode": str(s.school_id),
                "schoolId": s.school_id,
                "schoolYear": p.sy,
            },
        }
        if s.subjects:
            body["academicSubjects"] = [
                {"academicSubjectDescriptor": p.d("academicSubject", x)} for x in s.subjects
            ]
        if s.grades:
            body["gradeLevels"] = [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[g])} for g in s.grades
            ]
        yield body


def _staff_sections(p: _Plan) -> Iterator[Record]:
    for sec in p.sections:
        lo, hi = p.session_bounds[sec.session]
        yield {
            "beginDate": p.iso[lo],
            "endDate": p.iso[hi],
            "sectionReference": p.section_ref(sec),
            "staffReference": {"staffUniqueId": sec.teacher},
            "classroomPositionDescriptor": p.d("classroomPosition", "Teacher of Record"),
            "highlyQualifiedTeacher": True,
            "percentageContribution": 1.0,
        }
