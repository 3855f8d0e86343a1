"""Assessments, their objectives, and the students' results."""

from __future__ import annotations

import random
from collections.abc import Iterator

from .plan import _Plan
from .vocabulary import ASSESSMENT_NS, GRADE_LEVELS, SEA_ID, Record

ASSESSMENTS = (
    (
        "GB-STATE-MATH",
        "State Mathematics Assessment",
        "Mathematics",
        ("Number and Operations", "Algebraic Reasoning", "Geometry and Measurement"),
    ),
    (
        "GB-STATE-READING",
        "State Reading Assessment",
        "Reading",
        ("Comprehension", "Vocabulary", "Literary Analysis"),
    ),
)
LEVEL_CUTS = (
    (1000, 1399, "Below Basic"),
    (1400, 1549, "Basic"),
    (1550, 1699, "Proficient"),
    (1700, 2000, "Advanced"),
)
ASSESSED_GRADES = range(3, 12)


def _assessments(p: _Plan) -> Iterator[Record]:
    scale = p.d("assessmentReportingMethod", "Scale score")
    for ident, title, subject, _ in ASSESSMENTS:
        yield {
            "assessmentIdentifier": ident,
            "namespace": ASSESSMENT_NS,
            "assessmentTitle": title,
            "assessmentCategoryDescriptor": p.d("assessmentCategory", "State summative assessment"),
            "assessmentVersion": p.sy,
            "maxRawScore": 60.0,
            "educationOrganizationReference": {"educationOrganizationId": SEA_ID},
            "academicSubjects": [{"academicSubjectDescriptor": p.d("academicSubject", subject)}],
            "assessedGradeLevels": [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[g])}
                for g in ASSESSED_GRADES
            ],
            "identificationCodes": [
                {
                    "assessmentIdentificationSystemDescriptor": p.d(
                        "assessmentIdentificationSystem", "State"
                    ),
                    "identificationCode": ident,
                }
            ],
            "scores": [
                {
                    "assessmentReportingMethodDescriptor": scale,
                    "resultDatatypeTypeDescriptor": p.d("resultDatatypeType", "Integer"),
                    "minimumScore": "1000",
                    "maximumScore": "2000",
                }
            ],
            "performanceLevels": [
                {
                    "assessmentReportingMethodDescriptor": scale,
                    "performanceLevelDescriptor": p.d("performanceLevel", level),
                    "resultDatatypeTypeDescriptor": p.d("resultDatatypeType", "Integer"),
                    "minimumScore": str(lo),
                    "maximumScore": str(hi),
                }
                for lo, hi, level in LEVEL_CUTS
            ],
        }


def _objective_assessments(p: _Plan) -> Iterator[Record]:
    raw = p.d("assessmentReportingMethod", "Raw score")
    for ident, _title, subject, objectives in ASSESSMENTS:
        for k, name in enumerate(objectives):
            yield {
                "identificationCode": f"{ident}-{k + 1}",
                "assessmentReference": {"assessmentIdentifier": ident, "namespace": ASSESSMENT_NS},
                "academicSubjectDescriptor": p.d("academicSubject", subject),
                "description": name,
                "maxRawScore": 20.0,
                "percentOfAssessment": round(1 / len(objectives), 4),
                "scores": [
                    {
                        "assessmentReportingMethodDescriptor": raw,
                        "resultDatatypeTypeDescriptor": p.d("resultDatatypeType", "Integer"),
                        "minimumScore": "0",
                        "maximumScore": "20",
                    }
                ],
            }


def _student_assessments(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:studentAssessments")
    scale = p.d("assessmentReportingMethod", "Scale score")
    raw = p.d("assessmentReportingMethod", "Raw score")
    integer = p.d("resultDatatypeType", "Integer")
    test_day = min(len(p.iso) - 1, p.gp_bounds[3][0] + 10)
    when = f"{p.iso[test_day]}T09:00:00Z"
    for st in p.students:
        if st.grade not in ASSESSED_GRADES or (st.exit_day is not None and st.exit_day <= test_day):
            continue
        sid = p.schools[st.school].school_id
        for ident, _title, _subject, objectives in ASSESSMENTS:
            value = round(min(2000, max(1000, 1000 + (st.ability - 45) * 14 + rng.gauss(0, 60))))
            level = next(lv for lo, hi, lv in LEVEL_CUTS if lo <= value <= hi)
            yield {
                "studentAssessmentIdentifier": f"{st.uid}-{ident}-{p.sy}",
                "assessmentReference": {"assessmentIdentifier": ident, "namespace": ASSESSMENT_NS},
                "studentReference": {"studentUniqueId": st.uid},
                "schoolYearTypeReference": {"schoolYear": p.sy},
                "reportedSchoolReference": {"schoolId": sid},
                "administrationDate": when,
                "whenAssessedGradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[st.grade]),
                "scoreResults": [
                    {
                        "assessmentReportingMethodDescriptor": scale,
                        "resultDatatypeTypeDescriptor": integer,
                        "result": str(value),
                    }
                ],
                "performanceLevels": [
                    {
                        "assessmentReportingMethodDescriptor": scale,
                        "performanceLevelDescriptor": p.d("performanceLevel", level),
                        "performanceLevelIndicatorName": level,
                    }
                ],
                "studentObjectiveAssessments": [
                    {
                        "objectiveAssessmentReference": {
                            "assessmentIdentifier": ident,
                            "identificationCode": f"{ident}-{k + 1}",
                            "namespace": ASSESSMENT_NS,
                        },
                        "scoreResults": [
                            {
                                "assessmentReportingMethodDescriptor": raw,
                                "resultDatatypeTypeDescriptor": integer,
                                "result": str(
                                    max(0, min(20, round((value - 1000) / 50 + rng.gauss(0, 2))))
                                ),
                            }
                        ],
                    }
                    for k in range(len(objectives))
                ],
            }
