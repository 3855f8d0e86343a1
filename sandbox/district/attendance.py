"""Section enrolments and attendance events (only exceptions are recorded)."""

from __future__ import annotations

import random
from collections.abc import Iterator

from .plan import _Plan
from .vocabulary import ATTENDANCE_CATEGORIES, TARDY, UNEXCUSED, Record


def _ssec(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        ex = st.exit_day
        for idx in st.sections:
            sec = p.sections[idx]
            lo, hi = p.session_bounds[sec.session]
            if ex is not None and ex <= lo:
                continue
            yield {
                "beginDate": p.iso[lo],
                "endDate": p.iso[hi if ex is None or ex > hi else ex],
                "sectionReference": p.section_ref(sec),
                "studentReference": {"studentUniqueId": st.uid},
                "homeroomIndicator": st.grade < 6,
            }


def _school_attendance(p: _Plan) -> Iterator[Record]:
    cats = [p.d("attendanceEventCategory", c) for c in ATTENDANCE_CATEGORIES[:4]]
    iso = p.iso
    fall_end = p.session_bounds[0][1]
    names = p.session_names
    sy = p.sy
    for st in p.students:
        sid = p.schools[st.school].school_id
        uid = st.uid
        for ev in st.events:
            day = ev >> 2
            yield {
                "attendanceEventCategoryDescriptor": cats[ev & 3],
                "eventDate": iso[day],
                "schoolReference": {"schoolId": sid},
                "sessionReference": {
                    "schoolId": sid,
                    "schoolYear": sy,
                    "sessionName": names[0 if day <= fall_end else 1],
                },
                "studentReference": {"studentUniqueId": uid},
            }


def _section_attendance(p: _Plan) -> Iterator[Record]:
    cats = [p.d("attendanceEventCategory", c) for c in ATTENDANCE_CATEGORIES[:4]]
    iso = p.iso
    fall_end = p.session_bounds[0][1]
    rng = random.Random(f"{p.seed}:sectionAttendance")
    unexcused = cats[UNEXCUSED]
    for st in p.students:
        uid = st.uid
        by_session: tuple[list[Record], list[Record]] = ([], [])
        for idx in st.sections:
            sec = p.sections[idx]
            by_session[sec.session].append(p.section_ref(sec))
        for ev in st.events:
            day = ev >> 2
            cat = ev & 3
            refs = by_session[0 if day <= fall_end else 1]
            if not refs:
                continue
            chosen = refs if cat < TARDY else refs[:1] if cat == TARDY else refs[-1:]
            for ref in chosen:
                yield {
                    "attendanceEventCategoryDescriptor": cats[cat],
                    "eventDate": iso[day],
                    "sectionReference": dict(ref),
                    "studentReference": {"studentUniqueId": uid},
                }
        if st.grade >= 6 and st.absence_rate > 0.06:
            present = {ev >> 2 for ev in st.events}
            last = st.exit_day if st.exit_day is not None else len(iso)
            for _ in range(int(st.absence_rate * 20)):
                day = rng.randrange(last)
                refs = by_session[0 if day <= fall_end else 1]
                if day in present or not refs:
                    continue
                present.add(day)
                yield {
                    "attendanceEventCategoryDescriptor": unexcused,
                    "eventDate": iso[day],
                    "sectionReference": dict(rng.choice(refs)),
                    "studentReference": {"studentUniqueId": uid},
                }
