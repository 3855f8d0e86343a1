"""School years and education organizations: SEA, ESC, LEA, schools."""

from __future__ import annotations

import random
from collections.abc import Iterator

from .plan import _address, _phone, _Plan
from .vocabulary import ESC_ID, GRADE_LEVELS, LEA_ID, LEA_NAME, SEA_ID, Record


def _school_year_types(p: _Plan) -> Iterator[Record]:
    for y in range(p.sy - 4, p.sy + 13):
        yield {
            "schoolYear": y,
            "currentSchoolYear": y == p.sy,
            "schoolYearDescription": f"{y - 1}-{y}",
        }


def _seas(p: _Plan) -> Iterator[Record]:
    yield {
        "stateEducationAgencyId": SEA_ID,
        "nameOfInstitution": "State Department of Education",
        "shortNameOfInstitution": "SDE",
        "categories": [
            {"educationOrganizationCategoryDescriptor": p.d("educationOrganizationCategory", c)}
            for c in ("State Education Agency",)
        ],
    }


def _escs(p: _Plan) -> Iterator[Record]:
    yield {
        "educationServiceCenterId": ESC_ID,
        "nameOfInstitution": "Region 99 Education Service Center",
        "shortNameOfInstitution": "ESC 99",
        "stateEducationAgencyReference": {"stateEducationAgencyId": SEA_ID},
        "categories": [
            {
                "educationOrganizationCategoryDescriptor": p.d(
                    "educationOrganizationCategory", "Education Service Center"
                )
            }
        ],
    }


def _leas(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:lea")
    yield {
        "localEducationAgencyId": LEA_ID,
        "nameOfInstitution": LEA_NAME,
        "shortNameOfInstitution": "GBISD",
        "localEducationAgencyCategoryDescriptor": p.d(
            "localEducationAgencyCategory", "Independent"
        ),
        "educationServiceCenterReference": {"educationServiceCenterId": ESC_ID},
        "stateEducationAgencyReference": {"stateEducationAgencyId": SEA_ID},
        "categories": [
            {
                "educationOrganizationCategoryDescriptor": p.d(
                    "educationOrganizationCategory", "Local Education Agency"
                )
            }
        ],
        "addresses": [_address(rng, "Physical", p)],
    }


def _schools(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:schools")
    category = {"high": "High School", "middle": "Middle School", "elementary": "Elementary School"}
    for s in p.schools:
        yield {
            "schoolId": s.school_id,
            "nameOfInstitution": s.name,
            "shortNameOfInstitution": "".join(w[0] for w in s.name.split()),
            "schoolTypeDescriptor": p.d("schoolType", "Regular"),
            "localEducationAgencyReference": {"localEducationAgencyId": LEA_ID},
            "educationOrganizationCategories": [
                {
                    "educationOrganizationCategoryDescriptor": p.d(
                        "educationOrganizationCategory", "School"
                    )
                }
            ],
            "gradeLevels": [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[g])} for g in s.grades
            ],
            "schoolCategories": [
                {"schoolCategoryDescriptor": p.d("schoolCategory", category[s.level])}
            ],
            "addresses": [_address(rng, "Physical", p)],
            "institutionTelephones": [
                {
                    "institutionTelephoneNumberTypeDescriptor": p.d(
                        "institutionTelephoneNumberType", "Main"
                    ),
                    "telephoneNumber": _phone(rng),
                }
            ],
        }
