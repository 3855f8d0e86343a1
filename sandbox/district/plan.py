"""The district's plan: schools, staff, students, sections and events, drawn once per seed.

Everything random is drawn here, in a fixed order, from one ``random.Random(seed)``;
the resource streams only read the plan (or draw from their own seeded generators),
so a district depends on its arguments alone.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from edfi.model import ApiModel

from .vocabulary import (
    DESCRIPTOR_VALUES,
    EARLY,
    ELEMENTARY,
    EXCUSED,
    FIRST_F,
    FIRST_M,
    HIGH,
    LAST,
    MIDDLE,
    PLACES,
    STREETS,
    TARDY,
    UNEXCUSED,
    Record,
    _courses_for,
)


@dataclass(slots=True)
class _School:
    school_id: int
    name: str
    level: str  # high, middle, elementary
    grades: tuple[int, ...]
    principal: str = ""
    counselor: str = ""
    teachers: list[str] = field(default_factory=list)
    rooms: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Section:
    school_id: int
    local_code: str
    session: int  # 0 fall, 1 spring
    ident: str
    period: str
    room: str
    teacher: str
    grade: int
    slot: int
    title: str
    students: list[int]


@dataclass(slots=True)
class _Student:
    uid: str
    first: str
    last: str
    female: bool
    school: int  # index into plan.schools
    grade: int
    birth: date
    ability: float
    absence_rate: float
    events: tuple[int, ...]  # day * 4 + category, sorted
    exit_day: int | None
    contacts: int
    sections: list[int] = field(default_factory=list)  # indices into plan.sections
    gp_scores: list[int] = field(default_factory=list)  # per slot, 4 grading periods
    lep: bool = False
    hispanic: bool = False
    race: str = "White"
    sped: bool = False
    gifted: bool = False
    lunch: str = ""


@dataclass(slots=True)
class _Staff:
    uid: str
    first: str
    last: str
    female: bool
    role: str  # staff classification
    school_id: int | None  # None: district office
    subjects: tuple[str, ...] = ()
    grades: tuple[int, ...] = ()


@dataclass(slots=True)
class _Incident:
    school_id: int
    ident: str
    day: int
    behavior: str
    student: int
    discipline: str


class _Plan:
    """The district's skeleton: everything the resource streams share."""

    def __init__(self, model: ApiModel, students: int, seed: int, school_year: int) -> None:
        self.model = model
        self.sy = school_year
        self.rng = random.Random(seed)
        self.seed = seed
        self.session_names = (
            f"{school_year - 1}-{school_year} Fall Semester",
            f"{school_year - 1}-{school_year} Spring Semester",
        )
        self._descriptors(model)
        self._calendar()
        self.schools = self._schools(students)
        self.staff: list[_Staff] = []
        self.staff_by_uid: dict[str, _Staff] = {}
        self.superintendent = self._new_staff("Superintendent", None)
        for s in self.schools:
            s.principal = self._new_staff("Principal", s.school_id).uid
            s.counselor = self._new_staff("Counselor", s.school_id).uid
        self.students = self._students(students)
        self.sections: list[_Section] = []
        self._sections()
        self._grades()
        self.incidents = self._incidents()

    # descriptors
    def _descriptors(self, model: ApiModel) -> None:
        self.descriptor_records: dict[str, list[Record]] = {}
        self.uris: dict[tuple[str, str], str] = {}
        for path, ns, codes in DESCRIPTOR_VALUES:
            if path not in model:
                raise KeyError(f"descriptor resource {path} is not in the model")
            name = path.rsplit("/", 1)[1]
            namespace = ns or f"uri://ed-fi.org/{name[0].upper()}{name[1:-1]}"
            records = self.descriptor_records.setdefault(path, [])
            for code in codes:
                records.append(
                    {
                        "namespace": namespace,
                        "codeValue": code,
                        "shortDescription": code,
                        "description": code,
                    }
                )
                self.uris[(name.removesuffix("Descriptors"), code)] = f"{namespace}#{code}"

    def d(self, kind: str, code: str) -> str:
        """The URI of a registered descriptor value (``kind`` as in ``gradeLevel``)."""
        return self.uris[(kind, code)]

    # calendar
    def _calendar(self) -> None:
        sy = self.sy
        start = date(sy - 1, 8, 14)
        while start.weekday() != 0:
            start += timedelta(days=1)
        holidays: set[date] = set()
        holidays.add(_nth_weekday(sy - 1, 9, 0, 1))  # Labor Day
        thanksgiving = _nth_weekday(sy - 1, 11, 3, 4)
        holidays.update(thanksgiving + timedelta(days=k) for k in range(-3, 2))
        d0 = date(sy - 1, 12, 21)
        while d0 <= date(sy, 1, 3):
            holidays.add(d0)
            d0 += timedelta(days=1)
        holidays.add(_nth_weekday(sy, 1, 0, 3))  # MLK day
        holidays.add(_nth_weekday(sy, 2, 0, 3))  # Presidents' Day
        spring_break = _nth_weekday(sy, 3, 0, 2)
        holidays.update(spring_break + timedelta(days=k) for k in range(5))
        teacher_days = {start - timedelta(days=k) for k in (3, 2, 1)}
        back = date(sy, 1, 4)
        while back.weekday() >= 5:
            back += timedelta(days=1)
        teacher_days.add(back)
        self.days: list[date] = []
        self.calendar: list[tuple[date, str]] = [
            (t, "Teacher only day") for t in sorted(teacher_days) if t < start
        ]
        d = start
        while len(self.days) < 180:
            if d.weekday() < 5:
                if d in teacher_days:
                    self.calendar.append((d, "Teacher only day"))
                elif d in holidays:
                    self.calendar.append((d, "Holiday"))
                else:
                    self.days.append(d)
                    self.calendar.append((d, "Instructional day"))
            d += timedelta(days=1)
        self.iso = [x.isoformat() for x in self.days]
        fall = sum(1 for x in self.days if x < date(sy - 1, 12, 21))
        self.session_bounds = ((0, fall - 1), (fall, len(self.days) - 1))
        self.gp_bounds = (
            (0, fall // 2 - 1),
            (fall // 2, fall - 1),
            (fall, fall + (len(self.days) - fall) // 2 - 1),
            (fall + (len(self.days) - fall) // 2, len(self.days) - 1),
        )
        self.gp_names = tuple(
            f"{sy - 1}-{sy} {n}"
            for n in (
                "First Nine Weeks",
                "Second Nine Weeks",
                "Third Nine Weeks",
                "Fourth Nine Weeks",
            )
        )
        self.gp_descriptors = tuple(
            self.d("gradingPeriod", n)
            for n in (
                "First Nine Weeks",
                "Second Nine Weeks",
                "Third Nine Weeks",
                "Fourth Nine Weeks",
            )
        )

    def session_of(self, day: int) -> int:
        return 0 if day <= self.session_bounds[0][1] else 1

    def gp_of(self, day: int) -> int:
        for k, (_, hi) in enumerate(self.gp_bounds):
            if day <= hi:
                return k
        return 3

    # schools
    def _schools(self, students: int) -> list[_School]:
        levels = (
            ("high", tuple(range(9, 13)), "High School"),
            ("middle", (6, 7, 8), "Middle School"),
            ("elementary", tuple(range(0, 6)), "Elementary School"),
        )
        base = {
            "high": (HIGH, "Grand Bend High School"),
            "middle": (MIDDLE, "Grand Bend Middle School"),
            "elementary": (ELEMENTARY, "Grand Bend Elementary School"),
        }
        counts = {
            level: max(1, round(students * len(grades) / 13 / 1000)) for level, grades, _ in levels
        }
        schools = [_School(base[lv][0], base[lv][1], lv, grades) for lv, grades, _ in levels]
        next_id = 255901002
        place = 0
        extra = max(counts.values())
        for k in range(1, extra):
            for level, grades, suffix in levels:
                if k < counts[level]:
                    while next_id in (MIDDLE, ELEMENTARY):
                        next_id += 1
                    name = f"{PLACES[place % len(PLACES)]} {suffix}"
                    if place >= len(PLACES):
                        name = f"{name} {place // len(PLACES) + 1}"
                    schools.append(_School(next_id, name, level, grades))
                    next_id += 1
                    place += 1
        return schools

    def _new_staff(self, role: str, school_id: int | None, **kw: Any) -> _Staff:
        rng = self.rng
        female = rng.random() < 0.7
        s = _Staff(
            uid=str(207000 + len(self.staff)),
            first=rng.choice(FIRST_F if female else FIRST_M),
            last=rng.choice(LAST),
            female=female,
            role=role,
            school_id=school_id,
            **kw,
        )
        self.staff.append(s)
        self.staff_by_uid[s.uid] = s
        return s

    # students
    def _students(self, n: int) -> list[_Student]:
        rng = self.rng
        by_level: dict[str, list[int]] = {"high": [], "middle": [], "elementary": []}
        for idx, s in enumerate(self.schools):
            by_level[s.level].append(idx)
        ndays = len(self.days)
        out: list[_Student] = []
        races = (
            ("White", 0.45),
            ("Black - African American", 0.18),
            ("Asian", 0.08),
            ("American Indian or Alaska Native", 0.02),
            ("Native Hawaiian - Pacific Islander", 0.01),
            ("Other", 0.2),
            ("Choose Not to Respond", 0.06),
        )
        race_names = [r for r, _ in races]
        race_weights = [w for _, w in races]
        for i in range(n):
            grade = i % 13
            level = "high" if grade >= 9 else "middle" if grade >= 6 else "elementary"
            school = rng.choice(by_level[level])
            female = rng.random() < 0.49
            age_days = rng.randrange(365)
            birth = date(self.sy - 6 - grade, 9, 1) - timedelta(days=age_days)
            rate = min(0.6, rng.expovariate(1 / 0.04))
            tardy = rng.random() * 0.02
            absent = int(rate * ndays + rng.random())
            exit_day = rng.randrange(20, ndays - 5) if rng.random() < 0.02 else None
            chosen = rng.sample(range(ndays), min(ndays, absent + int(tardy * ndays) + 1))
            events = []
            for k, day in enumerate(chosen):
                if k < absent:
                    cat = EXCUSED if rng.random() < 0.5 else UNEXCUSED
                elif k < len(chosen) - 1:
                    cat = TARDY
                elif rng.random() < 0.2:
                    cat = EARLY
                else:
                    continue
                if exit_day is None or day < exit_day:
                    events.append(day * 4 + cat)
            events.sort()
            lep = rng.random() < 0.12
            hispanic = rng.random() < 0.4
            st = _Student(
                uid=str(604000 + i),
                first=rng.choice(FIRST_F if female else FIRST_M),
                last=rng.choice(LAST),
                female=female,
                school=school,
                grade=grade,
                birth=birth,
                ability=min(99.0, max(45.0, rng.gauss(82, 9))),
                absence_rate=rate,
                events=tuple(events),
                exit_day=exit_day,
                contacts=1 if rng.random() < 0.35 else 2,
                lep=lep,
                hispanic=hispanic,
                race=rng.choices(race_names, race_weights)[0],
                sped=rng.random() < 0.12,
                gifted=rng.random() < 0.08,
                lunch=("Free Lunch" if rng.random() < 0.7 else "Reduced Price Lunch")
                if rng.random() < 0.5
                else "",
            )
            out.append(st)
        return out

    # sections and teachers
    def _sections(self) -> None:
        rng = self.rng
        for school_idx, school in enumerate(self.schools):
            sid = school.school_id
            elementary = school.level == "elementary"
            size = 22 if elementary else 25
            by_grade: dict[int, list[int]] = {g: [] for g in school.grades}
            for i, st in enumerate(self.students):
                if st.school == school_idx:
                    by_grade[st.grade].append(i)
            room_no = 100
            # per slot: list of (grade, group index, members)
            slots: dict[int, list[tuple[int, list[int]]]] = {}
            for grade in school.grades:
                members = by_grade[grade]
                nsec = max(1, math.ceil(len(members) / size))
                for slot in range(len(_courses_for(grade))):
                    order = members[:]
                    rng.shuffle(order)
                    groups: list[list[int]] = [[] for _ in range(nsec)]
                    for j, stu in enumerate(order):
                        groups[j % nsec].append(stu)
                    for grp in groups:
                        slots.setdefault(slot, []).append((grade, grp))
            for slot in sorted(slots):
                teacher: _Staff | None = None
                for n, (grade, grp) in enumerate(slots[slot]):
                    code, title, subject = _courses_for(grade)[slot]
                    per_teacher = 1 if elementary else 5
                    if n % per_teacher == 0 or teacher is None:
                        teacher = self._new_staff(
                            "Teacher", sid, subjects=(subject,), grades=(grade,)
                        )
                        room_no += 1
                        school.teachers.append(teacher.uid)
                        school.rooms.append(str(room_no))
                    elif grade not in teacher.grades:
                        teacher.grades = (*teacher.grades, grade)
                    period = 1 if elementary else n % 7 + 1
                    for session in (0, 1):
                        term = "S1" if session == 0 else "S2"
                        sec = _Section(
                            school_id=sid,
                            local_code=code,
                            session=session,
                            ident=f"{sid}-{code}-{term}-{n + 1:02d}",
                            period=f"{period:02d} - Traditional",
                            room=str(room_no),
                            teacher=teacher.uid,
                            grade=grade,
                            slot=slot,
                            title=title,
                            students=grp,
                        )
                        idx = len(self.sections)
                        self.sections.append(sec)
                        for stu in grp:
                            self.students[stu].sections.append(idx)

    def _grades(self) -> None:
        rng = self.rng
        for st in self.students:
            nslots = len(_courses_for(st.grade))
            scores = []
            for _ in range(nslots * 4):
                scores.append(round(min(100.0, max(40.0, st.ability + rng.gauss(0, 6)))))
            st.gp_scores = scores

    def _incidents(self) -> list[_Incident]:
        rng = self.rng
        out: list[_Incident] = []
        per_school: dict[int, int] = {}
        for i, st in enumerate(self.students):
            if st.grade < 6 or rng.random() >= 0.04:
                continue
            last = st.exit_day if st.exit_day is not None else len(self.days)
            day = rng.randrange(0, max(1, last - 1))
            sid = self.schools[st.school].school_id
            per_school[sid] = per_school.get(sid, 0) + 1
            out.append(
                _Incident(
                    school_id=sid,
                    ident=f"{sid}-{per_school[sid]:05d}",
                    day=day,
                    behavior=rng.choice(("School Code of Conduct", "State Offense")),
                    student=i,
                    discipline=rng.choice(
                        ("In School Suspension", "Out of School Suspension", "Detention")
                    ),
                )
            )
        if not out and self.students:
            sid = self.schools[0].school_id
            idx = next(
                (i for i, s in enumerate(self.students) if s.school == 0),
                0,
            )
            out.append(
                _Incident(sid, f"{sid}-00001", 10, "School Code of Conduct", idx, "Detention")
            )
        return out

    # references
    def section_ref(self, sec: _Section) -> Record:
        return {
            "localCourseCode": sec.local_code,
            "schoolId": sec.school_id,
            "schoolYear": self.sy,
            "sectionIdentifier": sec.ident,
            "sessionName": self.session_names[sec.session],
        }

    def gp_ref(self, school_id: int, gp: int) -> Record:
        return {
            "gradingPeriodDescriptor": self.gp_descriptors[gp],
            "gradingPeriodName": self.gp_names[gp],
            "schoolId": school_id,
            "schoolYear": self.sy,
        }

    def enrolled_on(self, st: _Student, day: int) -> bool:
        return st.exit_day is None or day < st.exit_day


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    d = date(year, month, 1)
    while d.weekday() != weekday:
        d += timedelta(days=1)
    return d + timedelta(weeks=n - 1)


def _address(rng: random.Random, kind: str, plan: _Plan) -> Record:
    return {
        "addressTypeDescriptor": plan.d("addressType", kind),
        "stateAbbreviationDescriptor": plan.d("stateAbbreviation", "TX"),
        "city": "Grand Bend",
        "postalCode": f"7870{rng.randrange(10)}",
        "streetNumberName": f"{rng.randrange(100, 9999)} {rng.choice(STREETS)} St",
        "nameOfCounty": "Bend County",
    }


def _phone(rng: random.Random) -> str:
    return f"(512) 555-{rng.randrange(10000):04d}"


Gen = Callable[[_Plan], Iterable[Record]]
