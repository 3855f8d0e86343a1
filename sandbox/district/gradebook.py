"""Gradebook entries and the students' scores on them."""

from __future__ import annotations

import random
from collections.abc import Iterator

from .plan import _Plan, _Section
from .vocabulary import LOCAL_NS, Record, _letter


def _entries_per_section(sec: _Section) -> int:
    return 8 if sec.grade < 6 else 5


def _due_days(p: _Plan, sec: _Section, count: int) -> list[int]:
    lo, hi = p.session_bounds[sec.session]
    step = (hi - lo + 1) / count
    return [min(hi, lo + int(step * (k + 1)) - 1) for k in range(count)]


GB_TYPES = ("Homework", "Quiz", "Homework", "Test", "Quiz", "Homework", "Quiz", "Test")


def _gradebook_entries(p: _Plan) -> Iterator[Record]:
    types = {t: p.d("gradebookEntryType", t) for t in GB_TYPES}
    for sec in p.sections:
        n = _entries_per_section(sec)
        ref = p.section_ref(sec)
        for k, due in enumerate(_due_days(p, sec, n)):
            kind = GB_TYPES[k % len(GB_TYPES)]
            yield {
                "gradebookEntryIdentifier": f"{sec.ident}-GB{k + 1:02d}",
                "namespace": LOCAL_NS,
                "sourceSectionIdentifier": sec.ident,
                "title": f"{sec.title} {kind} {k + 1}",
                "dateAssigned": p.iso[max(0, due - 5)],
                "dueDate": p.iso[due],
                "maxPoints": 100.0,
                "gradebookEntryTypeDescriptor": types[kind],
                "gradingPeriodReference": p.gp_ref(sec.school_id, p.gp_of(due)),
                "sectionReference": dict(ref),
            }


def _student_gradebook(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:studentGradebookEntries")
    gauss = rng.gauss
    iso = p.iso
    students = p.students
    for sec in p.sections:
        dues = _due_days(p, sec, _entries_per_section(sec))
        ids = [f"{sec.ident}-GB{k + 1:02d}" for k in range(len(dues))]
        for stu in sec.students:
            st = students[stu]
            ex = st.exit_day
            uid = st.uid
            ability = st.ability
            for gid, due in zip(ids, dues, strict=True):
                if ex is not None and due >= ex:
                    break
                score = round(min(100.0, max(0.0, ability + gauss(0, 8))))
                yield {
                    "gradebookEntryReference": {
                        "gradebookEntryIdentifier": gid,
                        "namespace": LOCAL_NS,
                    },
                    "studentReference": {"studentUniqueId": uid},
                    "dateFulfilled": iso[due],
                    "pointsEarned": float(score),
                    "numericGradeEarned": float(score),
                    "letterGradeEarned": _letter(score),
                }
