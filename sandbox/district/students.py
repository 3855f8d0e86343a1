"""Students, contacts, graduation plans, school and organization associations."""

from __future__ import annotations

import random
from collections.abc import Iterator

from .plan import _address, _phone, _Plan
from .vocabulary import FIRST_F, FIRST_M, GRADE_LEVELS, LEA_ID, SEA_ID, SLOT_SUBJECTS, Record


def _contacts(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:contacts")
    for i, st in enumerate(p.students):
        for k in range(st.contacts):
            female = k == 0
            first = rng.choice(FIRST_F if female else FIRST_M)
            uid = _contact_uid(i, k)
            yield {
                "contactUniqueId": uid,
                "firstName": first,
                "lastSurname": st.last,
                "sexDescriptor": p.d("sex", "Female" if female else "Male"),
                "addresses": [_address(rng, "Home", p)],
                "telephones": [
                    {
                        "telephoneNumberTypeDescriptor": p.d("telephoneNumberType", "Mobile"),
                        "telephoneNumber": _phone(rng),
                        "orderOfPriority": 1,
                        "textMessageCapabilityIndicator": True,
                    },
                    {
                        "telephoneNumberTypeDescriptor": p.d("telephoneNumberType", "Work"),
                        "telephoneNumber": _phone(rng),
                        "orderOfPriority": 2,
                    },
                ],
                "electronicMails": [
                    {
                        "electronicMailTypeDescriptor": p.d("electronicMailType", "Home/Personal"),
                        "electronicMailAddress": f"{first}.{st.last}{uid}@example.com".lower(),
                        "primaryEmailAddressIndicator": True,
                    }
                ],
            }


def _contact_uid(i: int, k: int) -> str:
    return str(800000 + 2 * i + k)


def _students(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        yield {
            "studentUniqueId": st.uid,
            "firstName": st.first,
            "lastSurname": st.last,
            "birthDate": st.birth.isoformat(),
            "birthSexDescriptor": p.d("sex", "Female" if st.female else "Male"),
            "birthCity": "Grand Bend",
            "birthStateAbbreviationDescriptor": p.d("stateAbbreviation", "TX"),
        }


def _student_contacts(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:studentContacts")
    for i, st in enumerate(p.students):
        for k in range(st.contacts):
            if k == 0:
                relation = rng.choice(
                    ("Mother", "Mother", "Mother", "Guardian", "Grandmother", "Aunt")
                )
            else:
                relation = rng.choice(("Father", "Father", "Father", "Grandfather", "Uncle"))
            yield {
                "contactReference": {"contactUniqueId": _contact_uid(i, k)},
                "studentReference": {"studentUniqueId": st.uid},
                "relationDescriptor": p.d("relation", relation),
                "primaryContactStatus": k == 0,
                "livesWith": k == 0 or rng.random() < 0.7,
                "emergencyContactStatus": True,
                "legalGuardian": relation in ("Mother", "Father", "Guardian"),
                "contactPriority": k + 1,
            }


def _grad_year(p: _Plan, grade: int) -> int:
    return p.sy + 12 - grade


def _graduation_plans(p: _Plan) -> Iterator[Record]:
    for year in range(p.sy, p.sy + 4):
        yield {
            "graduationPlanTypeDescriptor": p.d("graduationPlanType", "Recommended"),
            "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
            "graduationSchoolYearTypeReference": {"schoolYear": year},
            "totalRequiredCredits": 26.0,
            "totalRequiredCreditTypeDescriptor": p.d("creditType", "Carnegie unit"),
            "creditsBySubjects": [
                {"academicSubjectDescriptor": p.d("academicSubject", subj), "credits": 4.0}
                for subj in SLOT_SUBJECTS[:4]
            ],
        }


def _ssa(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        school = p.schools[st.school]
        body: Record = {
            "entryDate": p.iso[0],
            "entryGradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[st.grade]),
            "schoolReference": {"schoolId": school.school_id},
            "studentReference": {"studentUniqueId": st.uid},
            "schoolYearTypeReference": {"schoolYear": p.sy},
            "calendarReference": {
                "calendarCode": str(school.school_id),
                "schoolId": school.school_id,
                "schoolYear": p.sy,
            },
            "classOfSchoolYearTypeReference": {"schoolYear": _grad_year(p, st.grade)},
            "primarySchool": True,
        }
        if st.grade >= 9:
            body["graduationPlanReference"] = {
                "educationOrganizationId": LEA_ID,
                "graduationPlanTypeDescriptor": p.d("graduationPlanType", "Recommended"),
                "graduationSchoolYear": _grad_year(p, st.grade),
            }
        if st.exit_day is not None:
            body["exitWithdrawDate"] = p.iso[st.exit_day]
            body["exitWithdrawTypeDescriptor"] = p.d("exitWithdrawType", "Student withdrew")
        yield body


def _seoa(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:seoa")
    for st in p.students:
        body: Record = {
            "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
            "studentReference": {"studentUniqueId": st.uid},
            "sexDescriptor": p.d("sex", "Female" if st.female else "Male"),
            "hispanicLatinoEthnicity": st.hispanic,
            "limitedEnglishProficiencyDescriptor": p.d(
                "limitedEnglishProficiency", "Limited" if st.lep else "NotLimited"
            ),
            "races": [{"raceDescriptor": p.d("race", st.race)}],
            "addresses": [_address(rng, "Home", p)],
            "electronicMails": [
                {
                    "electronicMailTypeDescriptor": p.d("electronicMailType", "Organizational"),
                    "electronicMailAddress": f"{st.uid}@students.grandbend.edu",
                    "primaryEmailAddressIndicator": True,
                }
            ],
            "studentIdentificationCodes": [
                {
                    "studentIdentificationSystemDescriptor": p.d(
                        "studentIdentificationSystem", "District"
                    ),
                    "assigningOrganizationIdentificationCode": str(LEA_ID),
                    "identificationCode": st.uid,
                },
                {
                    "studentIdentificationSystemDescriptor": p.d(
                        "studentIdentificationSystem", "State"
                    ),
                    "assigningOrganizationIdentificationCode": str(SEA_ID),
                    "identificationCode": f"S{int(st.uid) * 7 + 1000000}",
                },
            ],
            "studentIndicators": [
                {
                    "indicatorName": "Economic Disadvantaged",
                    "indicator": "Yes" if st.lunch else "No",
                },
                {
                    "indicatorName": "At Risk",
                    "indicator": "Yes" if st.absence_rate > 0.1 or st.ability < 65 else "No",
                },
            ],
        }
        if st.grade >= 9:
            body["cohortYears"] = [
                {
                    "cohortYearTypeDescriptor": p.d("cohortYearType", "Ninth grade"),
                    "schoolYearTypeReference": {"schoolYear": p.sy - (st.grade - 9)},
                }
            ]
        yield body
