"""Grand Bend's vocabulary: identifiers, namespaces, descriptor values, names, courses, marks."""

from __future__ import annotations

from typing import Any

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
