"""The LMS data store's tables: the Toolkit's ``lms`` schema, created and migrated here.

Tables and columns are the LMS Toolkit's (LMSUser, LMSSection,
LMSUserLMSSectionAssociation, Assignment, AssignmentSubmissionType,
AssignmentSubmission, LMSUserAttendanceEvent, LMSSectionActivity,
LMSSystemActivity, ProcessedFiles, their ``stg_`` staging tables), plus
LMSGrade, which the Toolkit's model has and its loader never loaded; so reports
written for a Toolkit store keep working. On PostgreSQL the names are lower
case and unquoted, as the Toolkit's scripts create them (``lms.lmsuser``); on
SQLite, which has no schemas, the tables live in the main database. Code
refers to tables and columns by their Toolkit names whatever the dialect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.engine import Connection

from .udm import RESOURCES, Column, Resource

SCHEMA = "lms"

_DATETIME = sa.DateTime().with_variant(mssql.DATETIME2(), "mssql")


def _type(col: Column) -> sa.types.TypeEngine:
    if col.kind == "datetime":
        return _DATETIME
    if col.kind == "date":
        return sa.Date()
    if col.kind == "int":
        return sa.Integer()
    return sa.Unicode(col.length)


@dataclass(frozen=True)
class Tables:
    """Every table of the store for one dialect, by Toolkit name."""

    metadata: sa.MetaData
    main: dict[str, sa.Table]
    staging: dict[str, sa.Table]
    processed_files: sa.Table
    migrations: sa.Table
    submission_types: sa.Table
    stg_submission_types: sa.Table

    def of(self, resource: Resource) -> sa.Table:
        return self.main[resource.name]

    def stg(self, resource: Resource) -> sa.Table:
        return self.staging[resource.name]


@cache
def tables(dialect: str) -> Tables:
    """The store's tables as ``dialect`` names them (lower case on PostgreSQL)."""
    lower = dialect == "postgresql"

    def n(name: str) -> str:
        return name.lower() if lower else name

    def c(name: str, type_: Any, *args: Any, **kw: Any) -> sa.Column[Any]:
        return sa.Column(n(name), type_, *args, key=name, **kw)

    md = sa.MetaData(schema=SCHEMA)
    main: dict[str, sa.Table] = {}
    staging: dict[str, sa.Table] = {}
    for res in RESOURCES:
        cols: list[sa.Column] = [
            c(res.identifier, sa.Integer, primary_key=True, autoincrement=True),
            c("SourceSystemIdentifier", sa.Unicode(255), nullable=False),
            c("SourceSystem", sa.Unicode(255), nullable=False),
        ]
        for parent in res.parents:
            target = main[parent.resource]
            cols.append(
                c(
                    parent.target,
                    sa.Integer,
                    sa.ForeignKey(target.c[parent.target]),
                    nullable=False,
                    index=True,
                )
            )
        if res.association:
            assoc = main["section-associations"]
            ident = "LMSUserLMSSectionAssociationIdentifier"
            cols.append(c(ident, sa.Integer, sa.ForeignKey(assoc.c[ident]), nullable=True))
        for col in res.data_columns:
            if col.name in ("SourceSystemIdentifier", "SourceSystem"):
                continue
            cols.append(c(col.name, _type(col), nullable=col.nullable))
        cols.append(c("DeletedAt", _DATETIME, nullable=True))
        if res.name == "users":
            cols.append(c("EdFiStudentId", sa.Uuid(as_uuid=False), nullable=True))
        if res.name == "sections":
            cols.append(c("EdFiSectionId", sa.Uuid(as_uuid=False), nullable=True))
        main[res.name] = sa.Table(
            n(res.table),
            md,
            *cols,
            sa.UniqueConstraint(
                "SourceSystemIdentifier", "SourceSystem", name=n(f"{res.table}_UK_SourceSystem")
            ),
        )
        stg_cols: list[sa.Column] = [
            c("StagingId", sa.Integer, primary_key=True, autoincrement=True),
        ]
        for col in res.columns:
            if col.kind != "list":
                stg_cols.append(c(col.name, _type(col), nullable=col.nullable))
        staging[res.name] = sa.Table(
            n(res.staging),
            md,
            *stg_cols,
            sa.Index(
                n(f"IX_{res.staging}_Natural_Key"),
                "SourceSystemIdentifier",
                "SourceSystem",
                "LastModifiedDate",
            ),
        )
    assignment = main["assignments"]
    submission_types = sa.Table(
        n("AssignmentSubmissionType"),
        md,
        c(
            "AssignmentIdentifier",
            sa.Integer,
            sa.ForeignKey(assignment.c.AssignmentIdentifier, ondelete="CASCADE"),
            primary_key=True,
        ),
        c("SubmissionType", sa.Unicode(60), primary_key=True),
        c("CreateDate", _DATETIME, nullable=False),
        c("DeletedAt", _DATETIME, nullable=True),
    )
    stg_submission_types = sa.Table(
        n("stg_AssignmentSubmissionType"),
        md,
        c("StagingId", sa.Integer, primary_key=True, autoincrement=True),
        c("SourceSystemIdentifier", sa.Unicode(255), nullable=False),
        c("SourceSystem", sa.Unicode(255), nullable=False),
        c("SubmissionType", sa.Unicode(60), nullable=False),
        c("CreateDate", _DATETIME, nullable=False),
    )
    processed = sa.Table(
        n("ProcessedFiles"),
        md,
        c("FullPath", sa.Unicode(450), primary_key=True),
        c("ResourceName", sa.Unicode(128), nullable=False),
        c("NumberOfRows", sa.Integer, nullable=False),
        c("UploadDateTime", _DATETIME, nullable=False),
    )
    migrations = sa.Table(
        n("SchemaMigration"),
        md,
        c("Version", sa.Unicode(60), primary_key=True),
        c("AppliedAt", _DATETIME, nullable=False),
    )
    return Tables(
        metadata=md,
        main=main,
        staging=staging,
        processed_files=processed,
        migrations=migrations,
        submission_types=submission_types,
        stg_submission_types=stg_submission_types,
    )


def _create_all(conn: Connection, t: Tables) -> None:
    """Version 1: every table (an existing Toolkit table of the same name is kept)."""
    t.metadata.create_all(conn, checkfirst=True)


Migration = Callable[[Connection, Tables], None]

MIGRATIONS: tuple[tuple[str, Migration], ...] = (("0001-lms-schema", _create_all),)
"""Applied in order, each once, recorded in ``lms.SchemaMigration``; append, never edit."""


def _create_schema(conn: Connection) -> None:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    elif dialect == "mssql":
        conn.execute(sa.text(f"IF SCHEMA_ID('{SCHEMA}') IS NULL EXEC('CREATE SCHEMA {SCHEMA}')"))


def migrate(conn: Connection) -> list[str]:
    """Bring the store's schema up to date; returns the migrations it applied."""
    t = tables(conn.dialect.name)
    _create_schema(conn)
    t.migrations.create(conn, checkfirst=True)
    done = set(conn.execute(sa.select(t.migrations.c.Version)).scalars())
    applied: list[str] = []
    for version, step in MIGRATIONS:
        if version in done:
            continue
        step(conn, t)
        conn.execute(
            sa.insert(t.migrations).values(
                Version=version, AppliedAt=datetime.now(UTC).replace(tzinfo=None)
            )
        )
        applied.append(version)
    return applied
