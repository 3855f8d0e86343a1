"""LMS (``lmsx``) assignments and submissions."""

from __future__ import annotations

import random
from collections.abc import Iterator

from .gradebook import _due_days
from .plan import _Plan, _Section
from .vocabulary import CANVAS_NS, Record, _letter


def _assignments_per_section(sec: _Section) -> int:
    return 10


def _lms_assignments(p: _Plan) -> Iterator[Record]:
    source = p.d("lmsSourceSystem", "Canvas")
    category = p.d("assignmentCategory", "Assignment")
    types = [
        p.d("submissionType", t) for t in ("online_upload", "online_text_entry", "online_quiz")
    ]
    for sec in p.sections:
        ref = p.section_ref(sec)
        dues = _due_days(p, sec, _assignments_per_section(sec))
        for k, due in enumerate(dues):
            start = p.iso[max(0, due - 4)]
            yield {
                "assignmentIdentifier": f"{sec.ident}-A{k + 1:02d}",
                "namespace": CANVAS_NS,
                "lmsSourceSystemDescriptor": source,
                "title": f"{sec.title}: Assignment {k + 1}",
                "assignmentCategoryDescriptor": category,
                "assignmentDescription": f"Week {k + 1} assignment for {sec.title}",
                "startDateTime": f"{start}T08:00:00Z",
                "endDateTime": f"{p.iso[min(len(p.iso) - 1, due + 5)]}T23:59:00Z",
                "dueDateTime": f"{p.iso[due]}T23:59:00Z",
                "maxPoints": 100,
                "sectionReference": dict(ref),
                "submissionTypes": [{"submissionTypeDescriptor": types[k % 3]}],
            }


def _lms_submissions(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:assignmentSubmissions")
    rand = rng.random
    gauss = rng.gauss
    status = {s: p.d("submissionStatus", s) for s in ("on-time", "late", "missing", "graded")}
    iso = p.iso
    last_day = len(iso) - 1
    students = p.students
    for sec in p.sections:
        dues = _due_days(p, sec, _assignments_per_section(sec))
        ids = [f"{sec.ident}-A{k + 1:02d}" for k in range(len(dues))]
        for stu in sec.students:
            st = students[stu]
            ex = st.exit_day
            uid = st.uid
            miss = 0.03 + st.absence_rate + max(0.0, (75 - st.ability) / 100)
            ability = st.ability
            for aid, due in zip(ids, dues, strict=True):
                if ex is not None and due >= ex:
                    break
                body: Record = {
                    "assignmentSubmissionIdentifier": f"{aid}-{uid}",
                    "namespace": CANVAS_NS,
                    "assignmentReference": {"assignmentIdentifier": aid, "namespace": CANVAS_NS},
                    "studentReference": {"studentUniqueId": uid},
                }
                r = rand()
                if r < miss:
                    body["submissionStatusDescriptor"] = status["missing"]
                    yield body
                    continue
                score = round(min(100.0, max(0.0, ability + gauss(0, 8))))
                if r < miss + 0.1:
                    body["submissionStatusDescriptor"] = status["late"]
                    body["submissionDateTime"] = f"{iso[min(last_day, due + 1)]}T20:15:00Z"
                    score = max(0, score - 10)
                else:
                    kind = "graded" if r < 0.95 else "on-time"
                    body["submissionStatusDescriptor"] = status[kind]
                    body["submissionDateTime"] = f"{iso[due]}T18:30:00Z"
                body["earnedPoints"] = score
                body["grade"] = _letter(score)
                yield body
