"""Calendars, sessions, grading periods, class periods, bell schedules, rooms."""

from __future__ import annotations

from collections.abc import Iterator

from .plan import _Plan
from .vocabulary import GRADE_LEVELS, Record


def _calendars(p: _Plan) -> Iterator[Record]:
    for s in p.schools:
        yield {
            "calendarCode": str(s.school_id),
            "schoolReference": {"schoolId": s.school_id},
            "schoolYearTypeReference": {"schoolYear": p.sy},
            "calendarTypeDescriptor": p.d("calendarType", "School"),
            "gradeLevels": [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[g])} for g in s.grades
            ],
        }


def _calendar_dates(p: _Plan) -> Iterator[Record]:
    events = {e: p.d("calendarEvent", e) for _, e in p.calendar}
    for s in p.schools:
        cal = {"calendarCode": str(s.school_id), "schoolId": s.school_id, "schoolYear": p.sy}
        for day, event in p.calendar:
            yield {
                "date": day.isoformat(),
                "calendarReference": dict(cal),
                "calendarEvents": [{"calendarEventDescriptor": events[event]}],
            }


def _grading_periods(p: _Plan) -> Iterator[Record]:
    for s in p.schools:
        for k, (lo, hi) in enumerate(p.gp_bounds):
            yield {
                "gradingPeriodDescriptor": p.gp_descriptors[k],
                "gradingPeriodName": p.gp_names[k],
                "schoolReference": {"schoolId": s.school_id},
                "schoolYearTypeReference": {"schoolYear": p.sy},
                "beginDate": p.iso[lo],
                "endDate": p.iso[hi],
                "periodSequence": k + 1,
                "totalInstructionalDays": hi - lo + 1,
            }


def _sessions(p: _Plan) -> Iterator[Record]:
    terms = ("Fall Semester", "Spring Semester")
    for s in p.schools:
        for k, (lo, hi) in enumerate(p.session_bounds):
            yield {
                "sessionName": p.session_names[k],
                "schoolReference": {"schoolId": s.school_id},
                "schoolYearTypeReference": {"schoolYear": p.sy},
                "beginDate": p.iso[lo],
                "endDate": p.iso[hi],
                "termDescriptor": p.d("term", terms[k]),
                "totalInstructionalDays": hi - lo + 1,
                "gradingPeriods": [
                    {"gradingPeriodReference": p.gp_ref(s.school_id, gp)}
                    for gp in (2 * k, 2 * k + 1)
                ],
            }


PERIOD_TIMES = tuple(
    (
        f"{8 + (50 * k) // 60:02d}:{(50 * k) % 60:02d}:00",
        f"{8 + (50 * k + 45) // 60:02d}:{(50 * k + 45) % 60:02d}:00",
    )
    for k in range(7)
)


def _class_periods(p: _Plan) -> Iterator[Record]:
    for s in p.schools:
        for k in range(7):
            start, end = PERIOD_TIMES[k]
            yield {
                "classPeriodName": f"{k + 1:02d} - Traditional",
                "schoolReference": {"schoolId": s.school_id},
                "officialAttendancePeriod": k == 0,
                "meetingTimes": [{"startTime": start, "endTime": end}],
            }


def _bell_schedules(p: _Plan) -> Iterator[Record]:
    for s in p.schools:
        yield {
            "bellScheduleName": "Normal Schedule",
            "schoolReference": {"schoolId": s.school_id},
            "startTime": "08:00:00",
            "endTime": "13:45:00",
            "totalInstructionalTime": 315,
            "classPeriods": [
                {
                    "classPeriodReference": {
                        "classPeriodName": f"{k + 1:02d} - Traditional",
                        "schoolId": s.school_id,
                    }
                }
                for k in range(7)
            ],
            "gradeLevels": [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[g])} for g in s.grades
            ],
        }


def _locations(p: _Plan) -> Iterator[Record]:
    for s in p.schools:
        for room in [*s.rooms, "GYM", "LIBRARY"]:
            yield {
                "classroomIdentificationCode": room,
                "schoolReference": {"schoolId": s.school_id},
                "maximumNumberOfSeats": 30 if room[0].isdigit() else 120,
                "optimalNumberOfSeats": 25 if room[0].isdigit() else 100,
            }
