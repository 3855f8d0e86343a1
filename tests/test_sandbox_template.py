"""Every data set starts as a fresh ODS/API: the default descriptors and school years.

Over real HTTP: ``--students 0`` is the minimal template (the Data Standard's
default descriptor values, the LMS Toolkit's ``edfilms`` values, school years,
nothing else), records that use a default value the district never uses are
accepted, and the district on top keeps exactly the records it had.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edfi.model import builtin_model
from sandbox.server import RunningSandbox, running_sandbox
from sandbox.template import default_descriptors

# The 1,000-student district (seed 1) record counts before the template existed:
# the template must not change a single non-descriptor count.
DISTRICT_1000 = {
    "/ed-fi/assessments": 2,
    "/ed-fi/bellSchedules": 3,
    "/ed-fi/calendarDates": 621,
    "/ed-fi/calendars": 3,
    "/ed-fi/classPeriods": 21,
    "/ed-fi/cohorts": 6,
    "/ed-fi/contacts": 1642,
    "/ed-fi/courseOfferings": 96,
    "/ed-fi/courseTranscripts": 3636,
    "/ed-fi/courses": 48,
    "/ed-fi/disciplineActions": 20,
    "/ed-fi/disciplineIncidents": 20,
    "/ed-fi/educationServiceCenters": 1,
    "/ed-fi/gradebookEntries": 2064,
    "/ed-fi/grades": 21861,
    "/ed-fi/gradingPeriods": 12,
    "/ed-fi/graduationPlans": 4,
    "/ed-fi/localEducationAgencies": 1,
    "/ed-fi/locations": 72,
    "/ed-fi/objectiveAssessments": 6,
    "/ed-fi/programs": 5,
    "/ed-fi/schoolYearTypes": 17,
    "/ed-fi/schools": 3,
    "/ed-fi/sections": 384,
    "/ed-fi/sessions": 6,
    "/ed-fi/staffEducationOrganizationAssignmentAssociations": 73,
    "/ed-fi/staffEducationOrganizationEmploymentAssociations": 73,
    "/ed-fi/staffSchoolAssociations": 72,
    "/ed-fi/staffSectionAssociations": 384,
    "/ed-fi/staffs": 73,
    "/ed-fi/stateEducationAgencies": 1,
    "/ed-fi/studentAcademicRecords": 606,
    "/ed-fi/studentAssessments": 1366,
    "/ed-fi/studentCohortAssociations": 183,
    "/ed-fi/studentContactAssociations": 1642,
    "/ed-fi/studentDisciplineIncidentBehaviorAssociations": 20,
    "/ed-fi/studentEducationOrganizationAssociations": 1000,
    "/ed-fi/studentGradebookEntries": 39282,
    "/ed-fi/studentProgramAssociations": 464,
    "/ed-fi/studentSchoolAssociations": 1000,
    "/ed-fi/studentSchoolAttendanceEvents": 8945,
    "/ed-fi/studentSchoolFoodServiceProgramAssociations": 502,
    "/ed-fi/studentSectionAssociations": 7345,
    "/ed-fi/studentSectionAttendanceEvents": 29665,
    "/ed-fi/studentSpecialEducationProgramAssociations": 102,
    "/ed-fi/students": 1000,
    "/lmsx/assignmentSubmissions": 73118,
    "/lmsx/assignments": 3840,
}
# district descriptor values that are not Data Standard defaults
DISTRICT_EXTRA_DESCRIPTORS = 9


class Api:
    def __init__(self, sb: RunningSandbox) -> None:
        r = httpx.post(
            f"{sb.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(sb.client_id, sb.client_secret),
        )
        assert r.status_code == 200, r.text
        self.http = httpx.Client(
            base_url=sb.base_url + "/data/v3",
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
            timeout=30,
        )

    def count(self, path: str) -> int:
        r = self.http.get(path, params={"limit": 0, "totalCount": "true"})
        assert r.status_code == 200, (path, r.text)
        return int(r.headers["Total-Count"])

    def all(self, path: str) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            r = self.http.get(path, params={"offset": offset, "limit": 500})
            assert r.status_code == 200, (path, r.text)
            page = r.json()
            yield from page
            if len(page) < 500:
                return
            offset += 500


@pytest.fixture(scope="module")
def minimal() -> Iterator[Api]:
    with running_sandbox(students=0) as sb:
        yield Api(sb)


def _shipped() -> dict[str, int]:
    model = builtin_model()
    return {p: len(v) for p, v in default_descriptors().items() if p in model}


def test_minimal_template_serves_every_default_descriptor_and_nothing_else(
    minimal: Api,
) -> None:
    model = builtin_model()
    shipped = _shipped()
    assert sum(shipped.values()) == sum(len(v) for v in default_descriptors().values()) == 3245
    served = {r.path: minimal.count(r.path) for r in model}
    assert {p: n for p, n in served.items() if model[p].is_descriptor and n} == shipped
    others = {p: n for p, n in served.items() if not model[p].is_descriptor and n}
    assert others == {"/ed-fi/schoolYearTypes": 17}


def test_minimal_template_school_years(minimal: Api) -> None:
    years = sorted(minimal.all("/ed-fi/schoolYearTypes"), key=lambda r: r["schoolYear"])
    assert [r["schoolYear"] for r in years] == list(range(2021, 2038))
    assert [r["schoolYear"] for r in years if r["currentSchoolYear"]] == [2025]
    assert years[4]["schoolYearDescription"] == "2024-2025"


def _xml_values(folder: Path) -> dict[str, set[tuple[str, str, str, str]]]:
    """The XML files' values, by descriptor type (lower-case element name)."""
    out: dict[str, set[tuple[str, str, str, str]]] = {}
    for f in folder.glob("*.xml"):
        for el in ET.parse(f).getroot():
            fields = {c.tag.rsplit("}", 1)[1]: (c.text or "").strip() for c in el}
            out.setdefault(el.tag.rsplit("}", 1)[1].lower(), set()).add(
                (
                    fields["Namespace"],
                    fields["CodeValue"],
                    fields["ShortDescription"],
                    fields["Description"],
                )
            )
    return out


def test_default_descriptors_served_as_the_data_standard_ships_them(
    minimal: Api, spec_dir: Path
) -> None:
    xml = _xml_values(spec_dir / "descriptors-ds5.2")
    assert sum(len(v) for v in xml.values()) == 3298
    model = builtin_model()
    compared = 0
    for r in model:
        if not r.is_descriptor or r.namespace != "ed-fi":
            continue
        served = {
            (d["namespace"], d["codeValue"], d["shortDescription"], d["description"])
            for d in minimal.all(r.path)
        }
        assert served == xml.get(r.name.lower()[:-1], set()), r.path
        compared += len(served)
    # the DS 5.2 descriptor types DS 5.0 lacks (crisis types, immunizations, ...) are left out
    assert compared == 3203
    reporting = {d["codeValue"] for d in minimal.all("/ed-fi/assessmentReportingMethodDescriptors")}
    assert {"Scale score", "Percentile", "Lexile Measure", "RIT scale score"} <= reporting
    assert len(reporting) == 44


def test_lms_toolkit_descriptors_per_source_system(minimal: Api) -> None:
    systems = {
        (d["namespace"], d["codeValue"]) for d in minimal.all("/lmsx/lmsSourceSystemDescriptors")
    }
    assert systems == {
        ("uri://ed-fi.org/edfilms/LMSSourceSystemDescriptor", s)
        for s in ("Canvas", "Google", "Schoology")
    }
    statuses: dict[str, set[str]] = {}
    for d in minimal.all("/lmsx/submissionStatusDescriptors"):
        statuses.setdefault(d["namespace"], set()).add(d["codeValue"])
    base = "uri://ed-fi.org/edfilms/SubmissionStatusDescriptor/"
    assert statuses == {
        base + "Canvas": {"on-time", "late", "missing", "graded"},
        base + "Google": {
            "SUBMISSION_STATE_UNSPECIFIED",
            "NEW",
            "CREATED",
            "TURNED_IN",
            "RETURNED",
            "RECLAIMED_BY_STUDENT",
            "LATE",
            "MISSING",
        },
        base + "Schoology": {"on-time", "late", "missing", "draft", "Upcoming"},
    }
    categories = {d["namespace"] for d in minimal.all("/lmsx/assignmentCategoryDescriptors")}
    assert categories == {
        f"uri://ed-fi.org/edfilms/AssignmentCategoryDescriptor/{s}"
        for s in ("Canvas", "Google", "Schoology")
    }
    # Google Classroom's extractor sends its workType as the submission type too (ASSIGNMENT
    # used to be reported missing on every Google assignment); Schoology's sends none
    types: dict[str, set[str]] = {}
    for d in minimal.all("/lmsx/submissionTypeDescriptors"):
        types.setdefault(d["namespace"], set()).add(d["codeValue"])
    base = "uri://ed-fi.org/edfilms/SubmissionTypeDescriptor/"
    assert set(types) == {base + "Canvas", base + "Google"}
    assert types[base + "Google"] == {
        "COURSE_WORK_TYPE_UNSPECIFIED",
        "ASSIGNMENT",
        "SHORT_ANSWER_QUESTION",
        "MULTIPLE_CHOICE_QUESTION",
    }
    assert len(types[base + "Canvas"]) == 10
    assignment = minimal.http.get(
        "/lmsx/submissionTypeDescriptors",
        params={"namespace": base + "Google", "codeValue": "ASSIGNMENT"},
    )
    assert [d["shortDescription"] for d in assignment.json()] == ["ASSIGNMENT"]


def _vendor_assessment(method: str) -> dict[str, Any]:
    return {
        "assessmentIdentifier": "VENDOR-READING",
        "namespace": "uri://vendor.example/Assessment",
        "assessmentTitle": "Vendor Reading",
        "academicSubjects": [
            {"academicSubjectDescriptor": "uri://ed-fi.org/AcademicSubjectDescriptor#Reading"}
        ],
        "scores": [
            {
                "assessmentReportingMethodDescriptor": (
                    f"uri://ed-fi.org/AssessmentReportingMethodDescriptor#{method}"
                ),
                "resultDatatypeTypeDescriptor": (
                    "uri://ed-fi.org/ResultDatatypeTypeDescriptor#Percentile"
                ),
            }
        ],
    }


def test_records_using_defaults_the_district_never_uses_are_accepted(
    small_district: RunningSandbox,
) -> None:
    api = Api(small_district)
    # the district scores its assessments by scale score only
    methods = {
        s["assessmentReportingMethodDescriptor"]
        for a in api.all("/ed-fi/assessments")
        for s in a.get("scores", [])
    }
    assert {m.rsplit("#", 1)[1] for m in methods} == {"Scale score"}
    r = api.http.post("/ed-fi/assessments", json=_vendor_assessment("Percentile"))
    assert r.status_code == 201, r.text
    r = api.http.post("/ed-fi/assessments", json=_vendor_assessment("Not a method"))
    assert r.status_code == 400, r.text
    assert "AssessmentReportingMethodDescriptor#Not a method" in r.text
    section = next(api.all("/ed-fi/sections"))
    google = "uri://ed-fi.org/edfilms"
    r = api.http.post(
        "/lmsx/assignments",
        json={
            "assignmentIdentifier": "gc-1",
            "namespace": "uri://google.com/classroom",
            "lmsSourceSystemDescriptor": f"{google}/LMSSourceSystemDescriptor#Google",
            "title": "Short answer",
            "assignmentCategoryDescriptor": (
                f"{google}/AssignmentCategoryDescriptor/Google#SHORT_ANSWER_QUESTION"
            ),
            "sectionReference": {
                "sectionIdentifier": section["sectionIdentifier"],
                **{k: v for k, v in section["courseOfferingReference"].items() if k != "link"},
            },
        },
    )
    assert r.status_code == 201, r.text


def test_empty_without_the_template() -> None:
    with running_sandbox(students=0, template=False) as sb:
        api = Api(sb)
        assert api.count("/ed-fi/assessmentReportingMethodDescriptors") == 0
        assert api.count("/ed-fi/schoolYearTypes") == 0
        r = api.http.post("/ed-fi/assessments", json=_vendor_assessment("Percentile"))
        assert r.status_code == 400, r.text


def test_district_counts_unchanged_by_the_template(district: RunningSandbox) -> None:
    api = Api(district)
    model = builtin_model()
    served = {r.path: api.count(r.path) for r in model}
    assert {p: n for p, n in served.items() if not model[p].is_descriptor and n} == DISTRICT_1000
    descriptors = sum(n for p, n in served.items() if model[p].is_descriptor)
    assert descriptors == sum(_shipped().values()) + DISTRICT_EXTRA_DESCRIPTORS
