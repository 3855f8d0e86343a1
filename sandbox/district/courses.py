"""Courses, course offerings and sections."""

from __future__ import annotations

from collections.abc import Iterator

from .plan import _Plan
from .vocabulary import GRADE_LEVELS, LEA_ID, Record, _courses_for


def _course_catalog() -> list[tuple[int, str, str, str]]:
    return [(g, c, t, subj) for g in range(13) for c, t, subj in _courses_for(g)]


def _courses(p: _Plan) -> Iterator[Record]:
    for grade, code, title, subject in _course_catalog():
        yield {
            "courseCode": code,
            "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
            "courseTitle": title,
            "numberOfParts": 2,
            "academicSubjects": [{"academicSubjectDescriptor": p.d("academicSubject", subject)}],
            "identificationCodes": [
                {
                    "courseIdentificationSystemDescriptor": p.d(
                        "courseIdentificationSystem", "LEA course code"
                    ),
                    "identificationCode": code,
                }
            ],
            "offeredGradeLevels": [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[grade])}
            ],
            "maximumAvailableCredits": 1.0 if grade >= 9 else 0.0,
            "maximumAvailableCreditTypeDescriptor": p.d("creditType", "Carnegie unit"),
        }


def _course_offerings(p: _Plan) -> Iterator[Record]:
    seen: set[tuple[int, str, int]] = set()
    for sec in p.sections:
        key = (sec.school_id, sec.local_code, sec.session)
        if key in seen:
            continue
        seen.add(key)
        yield {
            "localCourseCode": sec.local_code,
            "localCourseTitle": sec.title,
            "courseReference": {"courseCode": sec.local_code, "educationOrganizationId": LEA_ID},
            "schoolReference": {"schoolId": sec.school_id},
            "sessionReference": {
                "schoolId": sec.school_id,
                "schoolYear": p.sy,
                "sessionName": p.session_names[sec.session],
            },
            "offeredGradeLevels": [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[sec.grade])}
            ],
        }


def _sections(p: _Plan) -> Iterator[Record]:
    for sec in p.sections:
        yield {
            "sectionIdentifier": sec.ident,
            "sectionName": f"{sec.title} ({sec.period[:2]})",
            "courseOfferingReference": {
                "localCourseCode": sec.local_code,
                "schoolId": sec.school_id,
                "schoolYear": p.sy,
                "sessionName": p.session_names[sec.session],
            },
            "locationReference": {
                "classroomIdentificationCode": sec.room,
                "schoolId": sec.school_id,
            },
            "locationSchoolReference": {"schoolId": sec.school_id},
            "availableCredits": 0.5 if sec.grade >= 9 else 0.0,
            "availableCreditTypeDescriptor": p.d("creditType", "Carnegie unit"),
            "classPeriods": [
                {"classPeriodReference": {"classPeriodName": sec.period, "schoolId": sec.school_id}}
            ],
        }
