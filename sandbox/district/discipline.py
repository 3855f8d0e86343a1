"""Discipline incidents, the students' behaviors in them, and actions."""

from __future__ import annotations

from collections.abc import Iterator

from .plan import _Incident, _Plan
from .vocabulary import Record


def _discipline_incidents(p: _Plan) -> Iterator[Record]:
    for inc in p.incidents:
        yield {
            "incidentIdentifier": inc.ident,
            "schoolReference": {"schoolId": inc.school_id},
            "incidentDate": p.iso[inc.day],
            "incidentDescription": "Behavior incident reported by staff",
            "behaviors": [{"behaviorDescriptor": p.d("behavior", inc.behavior)}],
        }


def _sdiba_ref(p: _Plan, inc: _Incident) -> Record:
    return {
        "behaviorDescriptor": p.d("behavior", inc.behavior),
        "incidentIdentifier": inc.ident,
        "schoolId": inc.school_id,
        "studentUniqueId": p.students[inc.student].uid,
    }


def _sdiba(p: _Plan) -> Iterator[Record]:
    for inc in p.incidents:
        yield {
            "behaviorDescriptor": p.d("behavior", inc.behavior),
            "disciplineIncidentReference": {
                "incidentIdentifier": inc.ident,
                "schoolId": inc.school_id,
            },
            "studentReference": {"studentUniqueId": p.students[inc.student].uid},
            "disciplineIncidentParticipationCodes": [
                {
                    "disciplineIncidentParticipationCodeDescriptor": p.d(
                        "disciplineIncidentParticipationCode", "Perpetrator"
                    )
                }
            ],
        }


def _discipline_actions(p: _Plan) -> Iterator[Record]:
    for n, inc in enumerate(p.incidents):
        school = next(s for s in p.schools if s.school_id == inc.school_id)
        length = 1.0 if inc.discipline == "Detention" else 2.0
        yield {
            "disciplineActionIdentifier": f"DA{n + 1:06d}",
            "disciplineDate": p.iso[inc.day],
            "studentReference": {"studentUniqueId": p.students[inc.student].uid},
            "responsibilitySchoolReference": {"schoolId": inc.school_id},
            "disciplines": [{"disciplineDescriptor": p.d("discipline", inc.discipline)}],
            "staffs": [{"staffReference": {"staffUniqueId": school.principal}}],
            "studentDisciplineIncidentBehaviorAssociations": [
                {"studentDisciplineIncidentBehaviorAssociationReference": _sdiba_ref(p, inc)}
            ],
            "disciplineActionLength": length,
            "actualDisciplineActionLength": length,
        }
