"""A synthetic school district ("Grand Bend ISD") for the sandbox.

The sandbox needs data that behaves like a real district -- enrollments that
line up with calendars, sections, attendance, grades and LMS submissions -- so
the extract, gold (AMT) and publish flows can be exercised end to end. Bodies
are what a client would POST to an Ed-Fi ODS/API 7.3 (Data Standard 5), and
every reference and descriptor resolves, so a strict server accepts all of it.

Everything is planned once from a single ``random.Random(seed)`` (a small
roster per student: school, grade, sections, absences, grades), then every
resource is streamed from that plan in the model's load order. The bulky
resources (attendance events, submissions, gradebook scores, grades) are
produced lazily in batches, so 25,000 students need only the plan in memory.

The package: ``vocabulary`` (identifiers, namespaces, descriptor values, names,
courses), ``plan`` (the seeded skeleton every stream reads) and one module of
resource streams per domain (``edorgs``, ``calendar``, ``courses``, ``staff``,
``students``, ``programs``, ``discipline``, ``attendance``, ``gradebook``,
``lms``, ``grades``, ``assessments``); ``GENERATORS`` names each resource's stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from edfi.model import builtin_model

from .assessments import _assessments, _objective_assessments, _student_assessments
from .attendance import _school_attendance, _section_attendance, _ssec
from .calendar import (
    _bell_schedules,
    _calendar_dates,
    _calendars,
    _class_periods,
    _grading_periods,
    _locations,
    _sessions,
)
from .courses import _course_offerings, _courses, _sections
from .discipline import _discipline_actions, _discipline_incidents, _sdiba
from .edorgs import _escs, _leas, _school_year_types, _schools, _seas
from .gradebook import _gradebook_entries, _student_gradebook
from .grades import _academic_records, _course_transcripts, _grade_records
from .lms import _lms_assignments, _lms_submissions
from .plan import Gen, _Plan
from .programs import (
    _cohorts,
    _programs,
    _student_cohorts,
    _student_food,
    _student_programs,
    _student_sped,
)
from .staff import _assignments_staff, _employment, _staff_schools, _staff_sections, _staffs
from .students import _contacts, _graduation_plans, _seoa, _ssa, _student_contacts, _students
from .vocabulary import (
    ASSESSMENT_NS,
    ATTENDANCE_CATEGORIES,
    BATCH_SIZE,
    CANVAS_NS,
    DESCRIPTOR_VALUES,
    EARLY,
    ELEMENTARY,
    ESC_ID,
    EXCUSED,
    FIRST_F,
    FIRST_M,
    GRADE_LEVELS,
    HIGH,
    HS_COURSES,
    LAST,
    LEA_ID,
    LEA_NAME,
    LETTERS,
    LMS,
    LOCAL_NS,
    MIDDLE,
    OTHER_GRADE_LEVELS,
    PLACES,
    SEA_ID,
    SLOT_SUBJECTS,
    STREETS,
    TARDY,
    UNEXCUSED,
    Record,
)

__all__ = [
    "ASSESSMENT_NS",
    "ATTENDANCE_CATEGORIES",
    "BATCH_SIZE",
    "CANVAS_NS",
    "DESCRIPTOR_VALUES",
    "EARLY",
    "ELEMENTARY",
    "ESC_ID",
    "EXCUSED",
    "FIRST_F",
    "FIRST_M",
    "GENERATORS",
    "GRADE_LEVELS",
    "HIGH",
    "HS_COURSES",
    "LAST",
    "LEA_ID",
    "LEA_NAME",
    "LETTERS",
    "LMS",
    "LOCAL_NS",
    "MIDDLE",
    "OTHER_GRADE_LEVELS",
    "PLACES",
    "SEA_ID",
    "SLOT_SUBJECTS",
    "STREETS",
    "TARDY",
    "UNEXCUSED",
    "Gen",
    "Record",
    "generate",
]


GENERATORS: dict[str, Gen] = {
    "/ed-fi/schoolYearTypes": _school_year_types,
    "/ed-fi/stateEducationAgencies": _seas,
    "/ed-fi/educationServiceCenters": _escs,
    "/ed-fi/localEducationAgencies": _leas,
    "/ed-fi/schools": _schools,
    "/ed-fi/calendars": _calendars,
    "/ed-fi/calendarDates": _calendar_dates,
    "/ed-fi/gradingPeriods": _grading_periods,
    "/ed-fi/sessions": _sessions,
    "/ed-fi/classPeriods": _class_periods,
    "/ed-fi/bellSchedules": _bell_schedules,
    "/ed-fi/locations": _locations,
    "/ed-fi/courses": _courses,
    "/ed-fi/courseOfferings": _course_offerings,
    "/ed-fi/sections": _sections,
    "/ed-fi/programs": _programs,
    "/ed-fi/staffs": _staffs,
    "/ed-fi/staffEducationOrganizationEmploymentAssociations": _employment,
    "/ed-fi/staffEducationOrganizationAssignmentAssociations": _assignments_staff,
    "/ed-fi/staffSchoolAssociations": _staff_schools,
    "/ed-fi/staffSectionAssociations": _staff_sections,
    "/ed-fi/contacts": _contacts,
    "/ed-fi/students": _students,
    "/ed-fi/studentContactAssociations": _student_contacts,
    "/ed-fi/graduationPlans": _graduation_plans,
    "/ed-fi/studentSchoolAssociations": _ssa,
    "/ed-fi/studentEducationOrganizationAssociations": _seoa,
    "/ed-fi/studentProgramAssociations": _student_programs,
    "/ed-fi/studentSpecialEducationProgramAssociations": _student_sped,
    "/ed-fi/studentSchoolFoodServiceProgramAssociations": _student_food,
    "/ed-fi/cohorts": _cohorts,
    "/ed-fi/studentCohortAssociations": _student_cohorts,
    "/ed-fi/disciplineIncidents": _discipline_incidents,
    "/ed-fi/studentDisciplineIncidentBehaviorAssociations": _sdiba,
    "/ed-fi/disciplineActions": _discipline_actions,
    "/ed-fi/studentSectionAssociations": _ssec,
    "/ed-fi/studentSchoolAttendanceEvents": _school_attendance,
    "/ed-fi/studentSectionAttendanceEvents": _section_attendance,
    "/ed-fi/gradebookEntries": _gradebook_entries,
    "/ed-fi/studentGradebookEntries": _student_gradebook,
    "/ed-fi/grades": _grade_records,
    "/ed-fi/studentAcademicRecords": _academic_records,
    "/ed-fi/courseTranscripts": _course_transcripts,
    "/ed-fi/assessments": _assessments,
    "/ed-fi/objectiveAssessments": _objective_assessments,
    "/ed-fi/studentAssessments": _student_assessments,
    "/lmsx/assignments": _lms_assignments,
    "/lmsx/assignmentSubmissions": _lms_submissions,
}


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for r in records:
        batch.append(r)
        if len(batch) >= BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def generate(
    students: int, seed: int = 1, school_year: int = 2025
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yields (resource path, batch of record bodies) for a whole synthetic district.

    Batches come in the model's load order, so a loader can POST them as they
    arrive; output depends only on the arguments.
    """
    model = builtin_model()
    plan = _Plan(model, students, seed, school_year)
    for path in model.load_order():
        resource = model[path]
        if resource.is_descriptor:
            records: Iterable[Record] = plan.descriptor_records.get(path, ())
        else:
            gen = GENERATORS.get(path)
            if gen is None:
                continue
            records = gen(plan)
        for batch in _batches(records):
            yield path, batch
