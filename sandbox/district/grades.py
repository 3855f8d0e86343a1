"""Grading-period and semester grades, academic records, course transcripts."""

from __future__ import annotations

from collections.abc import Iterator

from .plan import _Plan, _Student
from .vocabulary import GRADE_LEVELS, LEA_ID, Record, _courses_for, _letter


def _grade_records(p: _Plan) -> Iterator[Record]:
    gp_type = p.d("gradeType", "Grading Period")
    sem_type = p.d("gradeType", "Semester")
    for st in p.students:
        ex = st.exit_day
        sid = p.schools[st.school].school_id
        for idx in st.sections:
            sec = p.sections[idx]
            lo = p.session_bounds[sec.session][0]
            if ex is not None and ex <= lo:
                continue
            ssa_ref = p.section_ref(sec)
            ssa_ref["beginDate"] = p.iso[lo]
            ssa_ref["studentUniqueId"] = st.uid
            scores = []
            for gp in (2 * sec.session, 2 * sec.session + 1):
                if ex is not None and ex <= p.gp_bounds[gp][1]:
                    break
                score = st.gp_scores[sec.slot * 4 + gp]
                scores.append(score)
                yield {
                    "gradeTypeDescriptor": gp_type,
                    "gradingPeriodReference": p.gp_ref(sid, gp),
                    "studentSectionAssociationReference": dict(ssa_ref),
                    "letterGradeEarned": _letter(score),
                    "numericGradeEarned": float(score),
                }
            if len(scores) == 2:
                sem = round(sum(scores) / 2)
                yield {
                    "gradeTypeDescriptor": sem_type,
                    "gradingPeriodReference": p.gp_ref(sid, 2 * sec.session + 1),
                    "studentSectionAssociationReference": dict(ssa_ref),
                    "letterGradeEarned": _letter(sem),
                    "numericGradeEarned": float(sem),
                }


def _completed_sessions(p: _Plan, st: _Student) -> list[int]:
    return [
        k for k, (_, hi) in enumerate(p.session_bounds) if st.exit_day is None or st.exit_day > hi
    ]


def _semester_score(st: _Student, slot: int, session: int) -> int:
    a = st.gp_scores[slot * 4 + 2 * session]
    b = st.gp_scores[slot * 4 + 2 * session + 1]
    return round((a + b) / 2)


TERMS = ("Fall Semester", "Spring Semester")


def _academic_records(p: _Plan) -> Iterator[Record]:
    credit = p.d("creditType", "Carnegie unit")
    for st in p.students:
        if st.grade < 9:
            continue
        sid = p.schools[st.school].school_id
        earned = (st.grade - 9) * 6.0
        for session in _completed_sessions(p, st):
            scores = [_semester_score(st, slot, session) for slot in range(6)]
            session_credits = sum(0.5 for s in scores if s >= 70)
            earned += session_credits
            yield {
                "termDescriptor": p.d("term", TERMS[session]),
                "educationOrganizationReference": {"educationOrganizationId": sid},
                "schoolYearTypeReference": {"schoolYear": p.sy},
                "studentReference": {"studentUniqueId": st.uid},
                "sessionAttemptedCredits": 3.0,
                "sessionEarnedCredits": session_credits,
                "sessionEarnedCreditTypeDescriptor": credit,
                "cumulativeEarnedCredits": earned,
                "cumulativeEarnedCreditTypeDescriptor": credit,
            }


def _course_transcripts(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        if st.grade < 9:
            continue
        sid = p.schools[st.school].school_id
        courses = _courses_for(st.grade)
        teachers = {p.sections[i].slot: p.sections[i].teacher for i in st.sections}
        for session in _completed_sessions(p, st):
            sar = {
                "educationOrganizationId": sid,
                "schoolYear": p.sy,
                "studentUniqueId": st.uid,
                "termDescriptor": p.d("term", TERMS[session]),
            }
            for slot, (code, title, subject) in enumerate(courses):
                score = _semester_score(st, slot, session)
                passed = score >= 70
                yield {
                    "courseAttemptResultDescriptor": p.d(
                        "courseAttemptResult", "Pass" if passed else "Fail"
                    ),
                    "courseReference": {"courseCode": code, "educationOrganizationId": LEA_ID},
                    "studentAcademicRecordReference": dict(sar),
                    "courseTitle": title,
                    "attemptedCredits": 0.5,
                    "earnedCredits": 0.5 if passed else 0.0,
                    "earnedCreditTypeDescriptor": p.d("creditType", "Carnegie unit"),
                    "finalLetterGradeEarned": _letter(score),
                    "finalNumericGradeEarned": float(score),
                    "whenTakenGradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[st.grade]),
                    "responsibleTeacherStaffReference": {"staffUniqueId": teachers[slot]},
                    "academicSubjects": [
                        {"academicSubjectDescriptor": p.d("academicSubject", subject)}
                    ],
                }
