"""The LMS Unifying Data Model (LMS-UDM) as the extractors write it: one spec per resource.

Each spec says which CSV columns a file of that resource must have, how each
value is typed, which parent rows it points to (by source-system identifier),
and the scope a file is a full snapshot of. The loader, the generator and the
harmonizer all read these specs, so a column is named in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["str", "int", "datetime", "date", "list"]
Scope = Literal["source-system", "section", "assignment"]


@dataclass(frozen=True, slots=True)
class Column:
    """A CSV column: its UDM name, value type, whether a value may be empty, its length."""

    name: str
    kind: Kind = "str"
    nullable: bool = True
    length: int = 255
    optional: bool = False
    """The column may be absent from the file (then every value is empty)."""
    truncate: bool = False
    """A longer value is cut to the column's length (as the Toolkit does), not refused."""


@dataclass(frozen=True, slots=True)
class Parent:
    """A reference from a staged row to a row already in the store, by source-system id."""

    column: str
    """The CSV column holding the parent's SourceSystemIdentifier."""
    resource: str
    """The parent resource's name (``users``, ``sections`` ...)."""
    target: str
    """The identifier column the parent's key fills in this resource's table."""


@dataclass(frozen=True, slots=True)
class Resource:
    """One kind of extractor file and the ``lms`` table it loads."""

    name: str
    folder: str
    table: str
    identifier: str
    columns: tuple[Column, ...]
    parents: tuple[Parent, ...] = ()
    scope: Scope = "source-system"
    association: bool = False
    """Rows also point to the user's association with the section, found by that pair."""

    @property
    def staging(self) -> str:
        return f"stg_{self.table}"

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def parent_columns(self) -> frozenset[str]:
        return frozenset(p.column for p in self.parents)

    @property
    def data_columns(self) -> tuple[Column, ...]:
        """The columns stored in the table as they are (not parent refs, not the type list)."""
        return tuple(
            c for c in self.columns if c.name not in self.parent_columns and c.kind != "list"
        )


def _key() -> tuple[Column, Column]:
    return (
        Column("SourceSystemIdentifier", nullable=False),
        Column("SourceSystem", nullable=False),
    )


def _dates() -> tuple[Column, ...]:
    return (
        Column("SourceCreateDate", "datetime", optional=True),
        Column("SourceLastModifiedDate", "datetime", optional=True),
        Column("CreateDate", "datetime", nullable=False),
        Column("LastModifiedDate", "datetime", nullable=False),
    )


USERS = Resource(
    name="users",
    folder="users",
    table="LMSUser",
    identifier="LMSUserIdentifier",
    columns=(
        *_key(),
        Column("UserRole", nullable=False, length=60),
        Column("SISUserIdentifier"),
        Column("LocalUserIdentifier"),
        Column("Name", nullable=False),
        Column("EmailAddress", nullable=False),
        *_dates(),
    ),
)

SECTIONS = Resource(
    name="sections",
    folder="sections",
    table="LMSSection",
    identifier="LMSSectionIdentifier",
    columns=(
        *_key(),
        Column("SISSectionIdentifier"),
        Column("Title", nullable=False),
        Column("SectionDescription", length=1024),
        Column("Term", length=60),
        Column("LMSSectionStatus", length=60),
        *_dates(),
    ),
)

SECTION_ASSOCIATIONS = Resource(
    name="section-associations",
    folder="section-associations",
    table="LMSUserLMSSectionAssociation",
    identifier="LMSUserLMSSectionAssociationIdentifier",
    columns=(
        *_key(),
        Column("LMSUserSourceSystemIdentifier", nullable=False),
        Column("LMSSectionSourceSystemIdentifier", nullable=False),
        Column("EnrollmentStatus", nullable=False, length=60),
        *_dates(),
    ),
    parents=(
        Parent("LMSSectionSourceSystemIdentifier", "sections", "LMSSectionIdentifier"),
        Parent("LMSUserSourceSystemIdentifier", "users", "LMSUserIdentifier"),
    ),
    scope="section",
)

ASSIGNMENTS = Resource(
    name="assignments",
    folder="assignments",
    table="Assignment",
    identifier="AssignmentIdentifier",
    columns=(
        *_key(),
        Column("LMSSectionSourceSystemIdentifier", nullable=False),
        Column("Title", nullable=False),
        Column("AssignmentCategory", nullable=False, length=60),
        Column("AssignmentDescription", length=1024, truncate=True),
        Column("StartDateTime", "datetime"),
        Column("EndDateTime", "datetime"),
        Column("DueDateTime", "datetime"),
        Column("SubmissionType", "list"),
        Column("MaxPoints", "int"),
        *_dates(),
    ),
    parents=(Parent("LMSSectionSourceSystemIdentifier", "sections", "LMSSectionIdentifier"),),
    scope="section",
)

SUBMISSIONS = Resource(
    name="submissions",
    folder="submissions",
    table="AssignmentSubmission",
    identifier="AssignmentSubmissionIdentifier",
    columns=(
        *_key(),
        Column("AssignmentSourceSystemIdentifier", nullable=False),
        Column("LMSUserSourceSystemIdentifier", nullable=False),
        Column("SubmissionStatus"),
        Column("SubmissionDateTime", "datetime"),
        Column("EarnedPoints", "int"),
        Column("Grade", length=20),
        *_dates(),
    ),
    parents=(
        Parent("AssignmentSourceSystemIdentifier", "assignments", "AssignmentIdentifier"),
        Parent("LMSUserSourceSystemIdentifier", "users", "LMSUserIdentifier"),
    ),
    scope="assignment",
)

ATTENDANCE = Resource(
    name="attendance-events",
    folder="attendance-events",
    table="LMSUserAttendanceEvent",
    identifier="LMSUserAttendanceEventIdentifier",
    columns=(
        *_key(),
        Column("LMSUserSourceSystemIdentifier", nullable=False),
        Column("LMSSectionSourceSystemIdentifier", nullable=False),
        Column("EventDate", "date", nullable=False),
        Column("AttendanceStatus", nullable=False, length=60),
        *_dates(),
    ),
    parents=(
        Parent("LMSUserSourceSystemIdentifier", "users", "LMSUserIdentifier"),
        Parent("LMSSectionSourceSystemIdentifier", "sections", "LMSSectionIdentifier"),
    ),
    scope="section",
    association=True,
)

SECTION_ACTIVITIES = Resource(
    name="section-activities",
    folder="section-activities",
    table="LMSSectionActivity",
    identifier="LMSSectionActivityIdentifier",
    columns=(
        *_key(),
        Column("LMSUserSourceSystemIdentifier", nullable=False),
        Column("LMSSectionSourceSystemIdentifier", nullable=False),
        Column("ActivityType", nullable=False, length=60),
        Column("ActivityDateTime", "datetime", nullable=False),
        Column("ActivityStatus", nullable=False, length=60),
        Column("ParentSourceSystemIdentifier"),
        Column("ActivityTimeInMinutes", "int"),
        *_dates(),
    ),
    parents=(
        Parent("LMSUserSourceSystemIdentifier", "users", "LMSUserIdentifier"),
        Parent("LMSSectionSourceSystemIdentifier", "sections", "LMSSectionIdentifier"),
    ),
    scope="section",
)

SYSTEM_ACTIVITIES = Resource(
    name="system-activities",
    folder="system-activities",
    table="LMSSystemActivity",
    identifier="LMSSystemActivityIdentifier",
    columns=(
        *_key(),
        Column("LMSUserSourceSystemIdentifier", nullable=False),
        Column("ActivityType", nullable=False, length=60),
        Column("ActivityDateTime", "datetime", nullable=False),
        Column("ActivityStatus", nullable=False, length=60),
        Column("ParentSourceSystemIdentifier"),
        Column("ActivityTimeInMinutes", "int"),
        *_dates(),
    ),
    parents=(Parent("LMSUserSourceSystemIdentifier", "users", "LMSUserIdentifier"),),
)

GRADES = Resource(
    name="grades",
    folder="grades",
    table="LMSGrade",
    identifier="LMSGradeIdentifier",
    columns=(
        *_key(),
        Column("LMSUserLMSSectionAssociationSourceSystemIdentifier", nullable=False),
        Column("Grade", nullable=False, length=20),
        Column("GradeType", length=60),
        *_dates(),
    ),
    parents=(
        Parent(
            "LMSUserLMSSectionAssociationSourceSystemIdentifier",
            "section-associations",
            "LMSUserLMSSectionAssociationIdentifier",
        ),
    ),
    scope="section",
)

RESOURCES: tuple[Resource, ...] = (
    USERS,
    SECTIONS,
    SECTION_ASSOCIATIONS,
    ASSIGNMENTS,
    SUBMISSIONS,
    ATTENDANCE,
    SECTION_ACTIVITIES,
    SYSTEM_ACTIVITIES,
    GRADES,
)
"""In dependency order: a file is loaded after every file its parents come from."""

BY_NAME = {r.name: r for r in RESOURCES}
