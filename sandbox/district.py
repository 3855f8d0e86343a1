"""A synthetic school district ("Grand Bend ISD") for the sandbox.

The sandbox needs data that behaves like a real district -- enrollments that
line up with calendars, sections, attendance, grades and LMS submissions -- so
the extract, gold (AMT) and publish flows can be exercised end to end. Bodies
are what a client would POST to an Ed-Fi ODS/API 7.3 (Data Standard 5), and
every reference and descriptor resolves, so a strict server accepts all of it.

Everything is planned once from a single ``random.Random(seed)`` (a small
roster per student: school, grade, sections, absences, grades), then every
resource is streamed from that plan in the model's load order. The bulky
resources (attendance events, submissions, gradebook scores, grades) are
produced lazily in batches, so 25,000 students need only the plan in memory.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from edfi.model import ApiModel, builtin_model

Record = dict[str, Any]

BATCH_SIZE = 5000

SEA_ID = 255
ESC_ID = 255950
LEA_ID = 255901
LEA_NAME = "Grand Bend ISD"
HIGH, MIDDLE, ELEMENTARY = 255901001, 255901044, 255901107

LOCAL_NS = "uri://grandbend.edu"
CANVAS_NS = "uri://instructure.com/canvas"
ASSESSMENT_NS = "uri://ed-fi.org/Assessment"
LMS = "uri://ed-fi.org/edfilms"

GRADE_LEVELS = (
    "Kindergarten",
    "First grade",
    "Second grade",
    "Third grade",
    "Fourth grade",
    "Fifth grade",
    "Sixth grade",
    "Seventh grade",
    "Eighth grade",
    "Ninth grade",
    "Tenth grade",
    "Eleventh grade",
    "Twelfth grade",
)
OTHER_GRADE_LEVELS = (
    "Infant/toddler",
    "Preschool/Prekindergarten",
    "Early Education",
    "Postsecondary",
    "Adult Education",
    "Ungraded",
    "Other",
)

EXCUSED, UNEXCUSED, TARDY, EARLY = 0, 1, 2, 3
ATTENDANCE_CATEGORIES = (
    "Excused Absence",
    "Unexcused Absence",
    "Tardy",
    "Early departure",
    "In Attendance",
)

# (descriptor resource, namespace or None for the standard one, code values used)
DESCRIPTOR_VALUES: tuple[tuple[str, str | None, tuple[str, ...]], ...] = (
    ("/ed-fi/gradeLevelDescriptors", None, GRADE_LEVELS + OTHER_GRADE_LEVELS),
    ("/ed-fi/attendanceEventCategoryDescriptors", None, ATTENDANCE_CATEGORIES),
    ("/ed-fi/sexDescriptors", None, ("Female", "Male", "Not Selected")),
    (
        "/ed-fi/raceDescriptors",
        None,
        (
            "American Indian or Alaska Native",
            "Asian",
            "Black - African American",
            "Native Hawaiian - Pacific Islander",
            "White",
            "Choose Not to Respond",
            "Other",
        ),
    ),
    (
        "/ed-fi/limitedEnglishProficiencyDescriptors",
        None,
        ("Limited", "NotLimited", "Formerly limited"),
    ),
    (
        "/ed-fi/calendarEventDescriptors",
        None,
        ("Instructional day", "Holiday", "Teacher only day", "Make-up day", "Weather day"),
    ),
    ("/ed-fi/calendarTypeDescriptors", None, ("School",)),
    ("/ed-fi/termDescriptors", None, ("Fall Semester", "Spring Semester")),
    (
        "/ed-fi/gradingPeriodDescriptors",
        None,
        ("First Nine Weeks", "Second Nine Weeks", "Third Nine Weeks", "Fourth Nine Weeks"),
    ),
    ("/ed-fi/gradeTypeDescriptors", None, ("Grading Period", "Semester", "Final")),
    (
        "/ed-fi/educationOrganizationCategoryDescriptors",
        None,
        ("State Education Agency", "Education Service Center", "Local Education Agency", "School"),
    ),
    ("/ed-fi/localEducationAgencyCategoryDescriptors", None, ("Independent",)),
    ("/ed-fi/schoolTypeDescriptors", None, ("Regular",)),
    (
        "/ed-fi/schoolCategoryDescriptors",
        None,
        ("Elementary School", "Middle School", "High School"),
    ),
    ("/ed-fi/addressTypeDescriptors", None, ("Physical", "Mailing", "Home", "Work", "Temporary")),
    ("/ed-fi/stateAbbreviationDescriptors", None, ("TX",)),
    ("/ed-fi/telephoneNumberTypeDescriptors", None, ("Home", "Mobile", "Work")),
    ("/ed-fi/institutionTelephoneNumberTypeDescriptors", None, ("Main",)),
    ("/ed-fi/electronicMailTypeDescriptors", None, ("Home/Personal", "Work", "Organizational")),
    ("/ed-fi/studentIdentificationSystemDescriptors", None, ("District", "State")),
    ("/ed-fi/staffIdentificationSystemDescriptors", None, ("District",)),
    (
        "/ed-fi/staffClassificationDescriptors",
        None,
        ("Superintendent", "Principal", "Assistant Principal", "Counselor", "Teacher"),
    ),
    ("/ed-fi/employmentStatusDescriptors", None, ("Tenured or permanent", "Probationary")),
    ("/ed-fi/programAssignmentDescriptors", None, ("Regular Education", "Special Education")),
    ("/ed-fi/classroomPositionDescriptors", None, ("Teacher of Record",)),
    (
        "/ed-fi/academicSubjectDescriptors",
        None,
        (
            "English Language Arts",
            "Mathematics",
            "Science",
            "Social Studies",
            "Physical, Health, and Safety Education",
            "Fine and Performing Arts",
            "Foreign Language and Literature",
            "Career and Technical Education",
            "Reading",
            "Composite",
        ),
    ),
    ("/ed-fi/courseIdentificationSystemDescriptors", None, ("LEA course code",)),
    ("/ed-fi/creditTypeDescriptors", None, ("Carnegie unit",)),
    (
        "/ed-fi/relationDescriptors",
        None,
        ("Mother", "Father", "Guardian", "Grandmother", "Grandfather", "Aunt", "Uncle"),
    ),
    ("/ed-fi/levelOfEducationDescriptors", None, ("Bachelor's", "Master's", "Doctorate")),
    (
        "/ed-fi/programTypeDescriptors",
        None,
        (
            "Special Education",
            "Gifted and Talented",
            "Title I Part A",
            "English as a Second Language (ESL)",
            "Other",
        ),
    ),
    ("/ed-fi/programSponsorDescriptors", None, ("Local Education Agency", "Federal")),
    (
        "/ed-fi/schoolFoodServiceProgramServiceDescriptors",
        None,
        ("Free Lunch", "Reduced Price Lunch"),
    ),
    (
        "/ed-fi/cohortTypeDescriptors",
        None,
        ("Attendance Intervention", "Academic Intervention"),
    ),
    ("/ed-fi/cohortScopeDescriptors", None, ("School",)),
    ("/ed-fi/cohortYearTypeDescriptors", None, ("Ninth grade",)),
    ("/ed-fi/behaviorDescriptors", None, ("School Code of Conduct", "State Offense")),
    (
        "/ed-fi/disciplineDescriptors",
        None,
        ("In School Suspension", "Out of School Suspension", "Detention"),
    ),
    ("/ed-fi/disciplineIncidentParticipationCodeDescriptors", None, ("Perpetrator",)),
    ("/ed-fi/assessmentCategoryDescriptors", None, ("State summative assessment",)),
    ("/ed-fi/assessmentIdentificationSystemDescriptors", None, ("State",)),
    ("/ed-fi/assessmentReportingMethodDescriptors", None, ("Scale score", "Raw score")),
    ("/ed-fi/resultDatatypeTypeDescriptors", None, ("Integer", "Level")),
    (
        "/ed-fi/performanceLevelDescriptors",
        None,
        ("Below Basic", "Basic", "Proficient", "Advanced"),
    ),
    ("/ed-fi/courseAttemptResultDescriptors", None, ("Pass", "Fail")),
    ("/ed-fi/graduationPlanTypeDescriptors", None, ("Recommended",)),
    ("/ed-fi/exitWithdrawTypeDescriptors", None, ("Student withdrew",)),
    ("/ed-fi/gradebookEntryTypeDescriptors", None, ("Homework", "Quiz", "Test")),
    ("/lmsx/lmsSourceSystemDescriptors", f"{LMS}/LMSSourceSystemDescriptor", ("Canvas",)),
    (
        "/lmsx/assignmentCategoryDescriptors",
        f"{LMS}/AssignmentCategoryDescriptor/Canvas",
        ("Assignment",),
    ),
    (
        "/lmsx/submissionStatusDescriptors",
        f"{LMS}/SubmissionStatusDescriptor/Canvas",
        ("on-time", "late", "missing", "graded"),
    ),
    (
        "/lmsx/submissionTypeDescriptors",
        f"{LMS}/SubmissionTypeDescriptor/Canvas",
        ("online_upload", "online_text_entry", "online_quiz"),
    ),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FIRST_F = _words(
    "Olivia Emma Ava Sophia Isabella Mia Amelia Harper Evelyn Abigail Emily Ella Elizabeth "
    "Camila Luna Sofia Avery Mila Aria Scarlett Penelope Layla Chloe Victoria Madison Eleanor "
    "Grace Nora Riley Zoey Hannah Hazel Lily Ellie Violet Lillian Zoe Stella Aurora Natalie"
)
FIRST_M = _words(
    "Liam Noah William James Oliver Benjamin Elijah Lucas Mason Logan Alexander Ethan Jacob "
    "Michael Daniel Henry Jackson Sebastian Aiden Matthew Samuel David Joseph Carter Owen "
    "Wyatt John Jack Luke Jayden Dylan Grayson Levi Isaac Gabriel Julian Mateo Anthony Jaxon"
)
LAST = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez "
    "Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White "
    "Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres "
    "Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts "
    "Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris Morales"
)
STREETS = _words(
    "Oak Maple Cedar Pecan Elm Willow Mesquite Bluebonnet Cypress Magnolia Live Oak Post Oak "
    "Hickory Walnut Juniper Sycamore"
)
PLACES = (
    "Cedar Creek",
    "Lone Oak",
    "Pecan Valley",
    "Bluebonnet",
    "Riverbend",
    "Willow Springs",
    "Mesquite Hills",
    "Prairie View",
    "Stone Ridge",
    "Sycamore",
    "Live Oak",
    "Bear Creek",
    "Twin Lakes",
    "Shady Grove",
    "Eagle Point",
    "Cypress Trail",
    "Red Rock",
    "Meadowbrook",
    "Hidden Valley",
    "Walnut Grove",
    "Fox Run",
    "Spring Hill",
    "Clear Fork",
    "Oak Hollow",
    "Canyon Lake",
    "Sunset Ridge",
    "Brushy Creek",
    "Granite Falls",
    "Deer Park",
    "Mill Creek",
)

# Courses per grade: (code, title, subject). Kindergarten to 5th grade learn in homerooms.
SLOT_SUBJECTS = (
    "English Language Arts",
    "Mathematics",
    "Science",
    "Social Studies",
    "Physical, Health, and Safety Education",
)
HS_COURSES: dict[int, tuple[tuple[str, str, str], ...]] = {
    9: (
        ("ENG1", "English I", SLOT_SUBJECTS[0]),
        ("ALG1", "Algebra I", SLOT_SUBJECTS[1]),
        ("BIO", "Biology", SLOT_SUBJECTS[2]),
        ("WGEO", "World Geography", SLOT_SUBJECTS[3]),
        ("PE1", "Physical Education I", SLOT_SUBJECTS[4]),
        ("SPAN1", "Spanish I", "Foreign Language and Literature"),
    ),
    10: (
        ("ENG2", "English II", SLOT_SUBJECTS[0]),
        ("GEOM", "Geometry", SLOT_SUBJECTS[1]),
        ("CHEM", "Chemistry", SLOT_SUBJECTS[2]),
        ("WHIST", "World History", SLOT_SUBJECTS[3]),
        ("HLTH", "Health", SLOT_SUBJECTS[4]),
        ("SPAN2", "Spanish II", "Foreign Language and Literature"),
    ),
    11: (
        ("ENG3", "English III", SLOT_SUBJECTS[0]),
        ("ALG2", "Algebra II", SLOT_SUBJECTS[1]),
        ("PHYS", "Physics", SLOT_SUBJECTS[2]),
        ("USHIST", "United States History", SLOT_SUBJECTS[3]),
        ("PE2", "Physical Education II", SLOT_SUBJECTS[4]),
        ("CSP", "Computer Science Principles", "Career and Technical Education"),
    ),
    12: (
        ("ENG4", "English IV", SLOT_SUBJECTS[0]),
        ("PRECAL", "Precalculus", SLOT_SUBJECTS[1]),
        ("ENVS", "Environmental Systems", SLOT_SUBJECTS[2]),
        ("GOVECO", "Government and Economics", SLOT_SUBJECTS[3]),
        ("PE3", "Lifetime Fitness", SLOT_SUBJECTS[4]),
        ("ART1", "Art I", "Fine and Performing Arts"),
    ),
}


def _courses_for(grade: int) -> tuple[tuple[str, str, str], ...]:
    if grade in HS_COURSES:
        return HS_COURSES[grade]
    if grade >= 6:
        n = f"{grade:02d}"
        return (
            (f"ELA{n}", f"English Language Arts {grade}", SLOT_SUBJECTS[0]),
            (f"MATH{n}", f"Mathematics {grade}", SLOT_SUBJECTS[1]),
            (f"SCI{n}", f"Science {grade}", SLOT_SUBJECTS[2]),
            (f"SS{n}", f"Social Studies {grade}", SLOT_SUBJECTS[3]),
            (f"PE{n}", f"Physical Education {grade}", SLOT_SUBJECTS[4]),
            (f"MUS{n}", f"Music {grade}", "Fine and Performing Arts"),
        )
    label = "Kindergarten" if grade == 0 else GRADE_LEVELS[grade]
    return ((f"HR{grade:02d}", f"{label} Homeroom", "Composite"),)


LETTERS = ((90, "A"), (80, "B"), (70, "C"), (60, "D"), (0, "F"))


def _letter(score: float) -> str:
    for floor, letter in LETTERS:
        if score >= floor:
            return letter
    return "F"


# -- plan -------------------------------------------------------------------------


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


# -- resource streams ---------------------------------------------------------------

Gen = Callable[[_Plan], Iterable[Record]]


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


def _course_catalog() -> list[tuple[int, str, str, str]]:
    return [(g, c, t, subj) for g in range(13) for c, t, subj in _courses_for(g)]


def _courses(p: _Plan) -> Iterator[Record]:
    for grade, code, title, subject in _course_catalog():
        yield {
            "courseCode": code,
            "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
            "courseTitle": title,
            "numberOfParts": 2,
            "academicSubjects": [{"academicSubjectDescriptor": p.d("academicSubject", subject)}],
            "identificationCodes": [
                {
                    "courseIdentificationSystemDescriptor": p.d(
                        "courseIdentificationSystem", "LEA course code"
                    ),
                    "identificationCode": code,
                }
            ],
            "offeredGradeLevels": [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[grade])}
            ],
            "maximumAvailableCredits": 1.0 if grade >= 9 else 0.0,
            "maximumAvailableCreditTypeDescriptor": p.d("creditType", "Carnegie unit"),
        }


def _course_offerings(p: _Plan) -> Iterator[Record]:
    seen: set[tuple[int, str, int]] = set()
    for sec in p.sections:
        key = (sec.school_id, sec.local_code, sec.session)
        if key in seen:
            continue
        seen.add(key)
        yield {
            "localCourseCode": sec.local_code,
            "localCourseTitle": sec.title,
            "courseReference": {"courseCode": sec.local_code, "educationOrganizationId": LEA_ID},
            "schoolReference": {"schoolId": sec.school_id},
            "sessionReference": {
                "schoolId": sec.school_id,
                "schoolYear": p.sy,
                "sessionName": p.session_names[sec.session],
            },
            "offeredGradeLevels": [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[sec.grade])}
            ],
        }


def _sections(p: _Plan) -> Iterator[Record]:
    for sec in p.sections:
        yield {
            "sectionIdentifier": sec.ident,
            "sectionName": f"{sec.title} ({sec.period[:2]})",
            "courseOfferingReference": {
                "localCourseCode": sec.local_code,
                "schoolId": sec.school_id,
                "schoolYear": p.sy,
                "sessionName": p.session_names[sec.session],
            },
            "locationReference": {
                "classroomIdentificationCode": sec.room,
                "schoolId": sec.school_id,
            },
            "locationSchoolReference": {"schoolId": sec.school_id},
            "availableCredits": 0.5 if sec.grade >= 9 else 0.0,
            "availableCreditTypeDescriptor": p.d("creditType", "Carnegie unit"),
            "classPeriods": [
                {"classPeriodReference": {"classPeriodName": sec.period, "schoolId": sec.school_id}}
            ],
        }


PROGRAMS = (
    ("Special Education", "Special Education", "Federal"),
    ("Gifted and Talented", "Gifted and Talented", "Local Education Agency"),
    ("Title I Part A", "Title I Part A", "Federal"),
    ("English as a Second Language", "English as a Second Language (ESL)", "Federal"),
    ("School Food Service", "Other", "Federal"),
)


def _program_ref(p: _Plan, k: int) -> Record:
    name, kind, _ = PROGRAMS[k]
    return {
        "educationOrganizationId": LEA_ID,
        "programName": name,
        "programTypeDescriptor": p.d("programType", kind),
    }


def _programs(p: _Plan) -> Iterator[Record]:
    for k, (name, kind, sponsor) in enumerate(PROGRAMS):
        yield {
            "programName": name,
            "programTypeDescriptor": p.d("programType", kind),
            "programId": f"GB{k + 1:03d}",
            "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
            "sponsors": [{"programSponsorDescriptor": p.d("programSponsor", sponsor)}],
        }


def _staffs(p: _Plan) -> Iterator[Record]:
    rng = random.Random(f"{p.seed}:staffs")
    for s in p.staff:
        yield {
            "staffUniqueId": s.uid,
            "firstName": s.first,
            "lastSurname": s.last,
            "sexDescriptor": p.d("sex", "Female" if s.female else "Male"),
            "birthDate": date(
                p.sy - rng.randrange(25, 63), rng.randrange(1, 13), rng.randrange(1, 29)
            ).isoformat(),
            "highestCompletedLevelOfEducationDescriptor": p.d(
                "levelOfEducation",
                rng.choice(("Bachelor's", "Bachelor's", "Master's", "Doctorate")),
            ),
            "yearsOfPriorTeachingExperience": rng.randrange(0, 30),
            "electronicMails": [
                {
                    "electronicMailTypeDescriptor": p.d("electronicMailType", "Work"),
                    "electronicMailAddress": f"{s.first}.{s.last}.{s.uid}@grandbend.edu".lower(),
                    "primaryEmailAddressIndicator": True,
                }
            ],
            "identificationCodes": [
                {
                    "staffIdentificationSystemDescriptor": p.d(
                        "staffIdentificationSystem", "District"
                    ),
                    "identificationCode": s.uid,
                }
            ],
        }


def _hire_date(p: _Plan, s: _Staff) -> str:
    n = int(s.uid)
    return date(p.sy - 1 - n % 20, 8, 1 + n % 20).isoformat()


def _employment_status(p: _Plan, s: _Staff) -> str:
    return p.d(
        "employmentStatus", "Probationary" if int(s.uid) % 20 < 2 else "Tenured or permanent"
    )


def _employment(p: _Plan) -> Iterator[Record]:
    for s in p.staff:
        yield {
            "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
            "staffReference": {"staffUniqueId": s.uid},
            "employmentStatusDescriptor": _employment_status(p, s),
            "hireDate": _hire_date(p, s),
            "fullTimeEquivalency": 1.0,
        }


def _assignments_staff(p: _Plan) -> Iterator[Record]:
    for s in p.staff:
        yield {
            "educationOrganizationReference": {"educationOrganizationId": s.school_id or LEA_ID},
            "staffReference": {"staffUniqueId": s.uid},
            "staffClassificationDescriptor": p.d("staffClassification", s.role),
            "beginDate": _hire_date(p, s),
            "positionTitle": s.role,
            "employmentStaffEducationOrganizationEmploymentAssociationReference": {
                "educationOrganizationId": LEA_ID,
                "employmentStatusDescriptor": _employment_status(p, s),
                "hireDate": _hire_date(p, s),
                "staffUniqueId": s.uid,
            },
        }


def _staff_schools(p: _Plan) -> Iterator[Record]:
    for s in p.staff:
        if s.school_id is None:
            continue
        body: Record = {
            "programAssignmentDescriptor": p.d("programAssignment", "Regular Education"),
            "schoolReference": {"schoolId": s.school_id},
            "staffReference": {"staffUniqueId": s.uid},
            "schoolYearTypeReference": {"schoolYear": p.sy},
            "calendarReference": {
                "calendarCode": str(s.school_id),
                "schoolId": s.school_id,
                "schoolYear": p.sy,
            },
        }
        if s.subjects:
            body["academicSubjects"] = [
                {"academicSubjectDescriptor": p.d("academicSubject", x)} for x in s.subjects
            ]
        if s.grades:
            body["gradeLevels"] = [
                {"gradeLevelDescriptor": p.d("gradeLevel", GRADE_LEVELS[g])} for g in s.grades
            ]
        yield body


def _staff_sections(p: _Plan) -> Iterator[Record]:
    for sec in p.sections:
        lo, hi = p.session_bounds[sec.session]
        yield {
            "beginDate": p.iso[lo],
            "endDate": p.iso[hi],
            "sectionReference": p.section_ref(sec),
            "staffReference": {"staffUniqueId": sec.teacher},
            "classroomPositionDescriptor": p.d("classroomPosition", "Teacher of Record"),
            "highlyQualifiedTeacher": True,
            "percentageContribution": 1.0,
        }


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


def _exit_iso(p: _Plan, st: _Student) -> str | None:
    return None if st.exit_day is None else p.iso[st.exit_day]


def _program_assoc(p: _Plan, st: _Student, k: int, begin: str) -> Record:
    body: Record = {
        "beginDate": begin,
        "educationOrganizationReference": {"educationOrganizationId": LEA_ID},
        "programReference": _program_ref(p, k),
        "studentReference": {"studentUniqueId": st.uid},
    }
    end = _exit_iso(p, st)
    if end:
        body["endDate"] = end
    return body


def _student_programs(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        if st.gifted:
            yield _program_assoc(p, st, 1, p.iso[0])
        if st.lunch and st.grade < 6:
            yield _program_assoc(p, st, 2, p.iso[0])
        if st.lep:
            yield _program_assoc(p, st, 3, p.iso[0])


def _student_sped(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        if not st.sped:
            continue
        body = _program_assoc(p, st, 0, p.iso[0])
        body["ideaEligibility"] = True
        body["iepBeginDate"] = p.iso[0]
        body["serviceProviders"] = [
            {
                "primaryProvider": True,
                "staffReference": {"staffUniqueId": p.schools[st.school].counselor},
            }
        ]
        yield body


def _student_food(p: _Plan) -> Iterator[Record]:
    for st in p.students:
        if not st.lunch:
            continue
        body = _program_assoc(p, st, 4, p.iso[0])
        body["directCertification"] = st.lunch == "Free Lunch"
        body["schoolFoodServiceProgramServices"] = [
            {
                "schoolFoodServiceProgramServiceDescriptor": p.d(
                    "schoolFoodServiceProgramService", st.lunch
                ),
                "primaryIndicator": True,
            }
        ]
        yield body


def _cohort_id(school_id: int, kind: str) -> str:
    return f"{school_id}-{'ATT' if kind.startswith('Attendance') else 'ACA'}"


def _cohorts(p: _Plan) -> Iterator[Record]:
    for s in p.schools:
        for kind in ("Attendance Intervention", "Academic Intervention"):
            body: Record = {
                "cohortIdentifier": _cohort_id(s.school_id, kind),
                "educationOrganizationReference": {"educationOrganizationId": s.school_id},
                "cohortDescription": f"{s.name} {kind}",
                "cohortTypeDescriptor": p.d("cohortType", kind),
                "cohortScopeDescriptor": p.d("cohortScope", "School"),
            }
            if kind == "Academic Intervention":
                body["programs"] = [{"programReference": _program_ref(p, 2)}]
            yield body


def _student_cohorts(p: _Plan) -> Iterator[Record]:
    begin = p.iso[min(30, len(p.iso) - 1)]
    for st in p.students:
        sid = p.schools[st.school].school_id
        kinds = []
        if st.absence_rate > 0.1:
            kinds.append("Attendance Intervention")
        if st.ability < 70:
            kinds.append("Academic Intervention")
        for kind in kinds:
            yield {
                "beginDate": begin,
                "cohortReference": {
                    "cohortIdentifier": _cohort_id(sid, kind),
                    "educationOrganizationId": sid,
                },
                "studentReference": {"studentUniqueId": st.uid},
            }


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


GENERATORS: dict[str, Gen] = {
    "/ed-fi/schoolYearTypes": _school_year_types,
    "/ed-fi/stateEducationAgencies": _seas,
    "/ed-fi/educationServiceCenters": _escs,
    "/ed-fi/localEducationAgencies": _leas,
    "/ed-fi/schools": _schools,
    "/ed-fi/calendars": _calendars,
    "/ed-fi/calendarDates": _calendar_dates,
    "/ed-fi/gradingPeriods": _grading_periods,
    "/ed-fi/sessions": _sessions,
    "/ed-fi/classPeriods": _class_periods,
    "/ed-fi/bellSchedules": _bell_schedules,
    "/ed-fi/locations": _locations,
    "/ed-fi/courses": _courses,
    "/ed-fi/courseOfferings": _course_offerings,
    "/ed-fi/sections": _sections,
    "/ed-fi/programs": _programs,
    "/ed-fi/staffs": _staffs,
    "/ed-fi/staffEducationOrganizationEmploymentAssociations": _employment,
    "/ed-fi/staffEducationOrganizationAssignmentAssociations": _assignments_staff,
    "/ed-fi/staffSchoolAssociations": _staff_schools,
    "/ed-fi/staffSectionAssociations": _staff_sections,
    "/ed-fi/contacts": _contacts,
    "/ed-fi/students": _students,
    "/ed-fi/studentContactAssociations": _student_contacts,
    "/ed-fi/graduationPlans": _graduation_plans,
    "/ed-fi/studentSchoolAssociations": _ssa,
    "/ed-fi/studentEducationOrganizationAssociations": _seoa,
    "/ed-fi/studentProgramAssociations": _student_programs,
    "/ed-fi/studentSpecialEducationProgramAssociations": _student_sped,
    "/ed-fi/studentSchoolFoodServiceProgramAssociations": _student_food,
    "/ed-fi/cohorts": _cohorts,
    "/ed-fi/studentCohortAssociations": _student_cohorts,
    "/ed-fi/disciplineIncidents": _discipline_incidents,
    "/ed-fi/studentDisciplineIncidentBehaviorAssociations": _sdiba,
    "/ed-fi/disciplineActions": _discipline_actions,
    "/ed-fi/studentSectionAssociations": _ssec,
    "/ed-fi/studentSchoolAttendanceEvents": _school_attendance,
    "/ed-fi/studentSectionAttendanceEvents": _section_attendance,
    "/ed-fi/gradebookEntries": _gradebook_entries,
    "/ed-fi/studentGradebookEntries": _student_gradebook,
    "/ed-fi/grades": _grade_records,
    "/ed-fi/studentAcademicRecords": _academic_records,
    "/ed-fi/courseTranscripts": _course_transcripts,
    "/ed-fi/assessments": _assessments,
    "/ed-fi/objectiveAssessments": _objective_assessments,
    "/ed-fi/studentAssessments": _student_assessments,
    "/lmsx/assignments": _lms_assignments,
    "/lmsx/assignmentSubmissions": _lms_submissions,
}


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    batch: list[Record] = []
    for r in records:
        batch.append(r)
        if len(batch) >= BATCH_SIZE:
            yield batch
            batch = []
    if batch:
        yield batch


def generate(
    students: int, seed: int = 1, school_year: int = 2025
) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Yields (resource path, batch of record bodies) for a whole synthetic district.

    Batches come in the model's load order, so a loader can POST them as they
    arrive; output depends only on the arguments.
    """
    model = builtin_model()
    plan = _Plan(model, students, seed, school_year)
    for path in model.load_order():
        resource = model[path]
        if resource.is_descriptor:
            records: Iterable[Record] = plan.descriptor_records.get(path, ())
        else:
            gen = GENERATORS.get(path)
            if gen is None:
                continue
            records = gen(plan)
        for batch in _batches(records):
            yield path, batch
