"""The schema layer of the validator (``edfi.validate``): exact problems, ODS/API wording.

Over HTTP the sandbox answers these same problems as 400s (tests/test_sandbox_ods.py);
here the core function is checked on its own, and against every record of a
generated district (which must pass untouched).
"""

from __future__ import annotations

from typing import Any

from edfi.model import builtin_model
from edfi.validate import Problem, bind_record, check_record
from sandbox.district import generate

MODEL = builtin_model()


def problems(path: str, body: Any, *, strict: bool = False) -> list[Problem]:
    return check_record(MODEL, MODEL[path], body, strict=strict)


def student(**extra: Any) -> dict[str, Any]:
    return {
        "studentUniqueId": "S1",
        "birthDate": "2010-05-04",
        "firstName": "Ana",
        "lastSurname": "Diaz",
        **extra,
    }


def test_a_generated_district_passes_untouched() -> None:
    n = 0
    for path, batch in generate(40, seed=11):
        resource = MODEL[path]
        for body in batch:
            bound, found = bind_record(MODEL, resource, body)
            assert found == [], (path, found)
            assert bound is body
            n += 1
    assert n > 5000


def test_required_empty_lengths_and_types() -> None:
    assert problems("/ed-fi/students", {"studentUniqueId": "", "firstName": "A" * 76}) == [
        Problem(
            "studentUniqueId",
            "required",
            "StudentUniqueId is required and should not be left empty.",
        ),
        Problem("birthDate", "required", "BirthDate is required."),
        Problem(
            "firstName",
            "max-length",
            "FirstName must be between 1 and 75 characters in length.",
        ),
        Problem("lastSurname", "required", "LastSurname is required."),
    ]
    assert problems("/ed-fi/students", student(birthCity="X", birthDate="04.05.2010")) == [
        Problem(
            "birthCity",
            "min-length",
            "BirthCity must be between 2 and 30 characters in length.",
        ),
        Problem("birthDate", "format", "The value '04.05.2010' is not valid for BirthDate."),
    ]
    assert problems("/ed-fi/students", student(firstName=7)) == [
        Problem("firstName", "type", "The value '7' is not valid for FirstName.")
    ]
    assert problems("/ed-fi/students", [student()]) == [
        Problem("", "type", "The request body must be a JSON object.")
    ]


def test_ranges_and_numeric_strings() -> None:
    event = {
        "attendanceEventCategoryDescriptor": "uri://ed-fi.org/AttendanceEventCategoryDescriptor#T",
        "eventDate": "2024-09-03",
        "schoolReference": {"schoolId": "255901001"},
        "sessionReference": {"schoolId": 255901001, "schoolYear": 2025, "sessionName": "Fall"},
        "studentReference": {"studentUniqueId": "S1"},
        "eventDuration": "1.5",
        "schoolAttendanceDuration": 1441,
    }
    resource = MODEL["/ed-fi/studentSchoolAttendanceEvents"]
    bound, found = bind_record(MODEL, resource, event)
    assert found == [
        Problem("eventDuration", "range", "EventDuration must be between 0 and 1."),
        Problem(
            "schoolAttendanceDuration",
            "range",
            "SchoolAttendanceDuration must be between 0 and 1440.",
        ),
    ]
    assert bound["schoolReference"] == {"schoolId": 255901001}
    assert bound["eventDuration"] == 1.5
    assert event["schoolReference"] == {"schoolId": "255901001"}  # the input is not modified
    assert Problem(
        "totalInstructionalDays",
        "type",
        "The value 'many' is not valid for TotalInstructionalDays.",
    ) in problems("/ed-fi/sessions", {"totalInstructionalDays": "many"})


def test_binding_is_case_insensitive_and_drops_unknown_properties() -> None:
    body = {
        "StudentUniqueId": "S1",
        "BIRTHDATE": "2010-05-04",
        "firstName": "Ana",
        "lastSurname": "Diaz",
        "favoriteColor": "blue",
    }
    bound, found = bind_record(MODEL, MODEL["/ed-fi/students"], body)
    assert found == []
    assert bound == student()
    assert problems("/ed-fi/students", body, strict=True) == [
        Problem("favoriteColor", "unknown-property", "favoriteColor is not a known property.")
    ]


def test_month_day_year_dates_bind_to_iso() -> None:
    bound, found = bind_record(MODEL, MODEL["/ed-fi/students"], student(birthDate="5/4/2010"))
    assert (found, bound["birthDate"]) == ([], "2010-05-04")


def test_date_only_for_a_date_time() -> None:
    body = {
        "studentAssessmentIdentifier": "A1",
        "assessmentReference": {"assessmentIdentifier": "X", "namespace": "uri://x"},
        "studentReference": {"studentUniqueId": "S1"},
        "administrationDate": "2024-05-01",
    }
    bound, found = bind_record(MODEL, MODEL["/ed-fi/studentAssessments"], body)
    assert found == []
    assert bound["administrationDate"] == "2024-05-01T00:00:00Z"


def test_month_day_year_dates_bind_as_the_ods_binds_them() -> None:
    """.NET's invariant culture reads 1/14/2026; vendor files (and the i-Ready bundle) send it."""
    body = {
        "studentAssessmentIdentifier": "A1",
        "assessmentReference": {"assessmentIdentifier": "X", "namespace": "uri://x"},
        "studentReference": {"studentUniqueId": "S1"},
        "administrationDate": "1/14/2026",
    }
    bound, found = bind_record(MODEL, MODEL["/ed-fi/studentAssessments"], body)
    assert found == []
    assert bound["administrationDate"] == "2026-01-14T00:00:00Z"
    assert (
        bind_record(MODEL, MODEL["/ed-fi/students"], student(birthDate="5/4/2010"))[0]["birthDate"]
        == "2010-05-04"
    )
    assert problems("/ed-fi/students", student(birthDate="2/30/2010")) == [
        Problem("birthDate", "format", "The value '2/30/2010' is not valid for BirthDate.")
    ]


def test_duplicate_collection_items() -> None:
    grade = {"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"}
    school = {
        "schoolId": 1,
        "nameOfInstitution": "X",
        "educationOrganizationCategories": [
            {"educationOrganizationCategoryDescriptor": "uri://ed-fi.org/X#School"}
        ],
        "gradeLevels": [grade, {"gradeLevelDescriptor": grade["gradeLevelDescriptor"].upper()}],
    }
    assert problems("/ed-fi/schools", school) == [
        Problem(
            "gradeLevels[1]",
            "duplicate-item",
            "The 2nd item of the SchoolGradeLevels collection is a duplicate of the 1st.",
        )
    ]


def test_key_unification() -> None:
    offering = {
        "localCourseCode": "ALG-1",
        "courseReference": {"courseCode": "ALG-1", "educationOrganizationId": 255901},
        "schoolReference": {"schoolId": 725},
        "sessionReference": {"schoolId": 999, "schoolYear": 2025, "sessionName": "Fall"},
    }
    message = (
        "All values supplied for 'schoolId' must match. Review all references and align "
        "the following conflicting values: '725', '999'"
    )
    assert problems("/ed-fi/courseOfferings", offering) == [
        Problem("schoolReference.schoolId", "key-unification", message),
        Problem("sessionReference.schoolId", "key-unification", message),
    ]
    offering["sessionReference"]["schoolId"] = "725"  # a numeric string binds first
    assert problems("/ed-fi/courseOfferings", offering) == []


def test_extensions_are_part_of_the_model() -> None:
    school = MODEL["/ed-fi/schools"]
    assert set(school.shape.extensions) == {"tpdm"}
    body = {
        "schoolId": 1,
        "nameOfInstitution": "X",
        "educationOrganizationCategories": [
            {"educationOrganizationCategoryDescriptor": "uri://ed-fi.org/X#School"}
        ],
        "gradeLevels": [{"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth"}],
        "_ext": {"tpdm": {}, "nowhere": {"a": 1}},
    }
    assert problems("/ed-fi/schools", body) == []
    assert problems("/ed-fi/schools", body, strict=True) == [
        Problem(
            "_ext.nowhere", "unknown-property", "'nowhere' is not an extension of this resource."
        )
    ]
