"""Extractor CSVs into the LMS data store, one file per transaction.

Per file, in dependency order (users, sections, associations, assignments,
submissions, attendance, activities, grades) and time order within each:
stage the rows (COPY on PostgreSQL, executemany elsewhere); report rows
whose parent is missing; update rows whose LastModifiedDate changed and
restore soft-deleted rows that reappear; insert new rows; soft-delete rows
missing from the snapshot within the file's scope (its source system, its
section, or its assignment); record the file as processed. A processed file
is skipped on a rerun. Every unprocessed file is read and checked before the
first one is applied, so a malformed file stops the run before any change.

Parentless rows are never dropped silently: each file's are counted and
written, with the reason, to an exceptions CSV beside the extract.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any

import fsspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import LmsDatabaseError, LmsFileError
from .layout import LmsFile, find_files
from .read import ParsedFile, read_file
from .schema import SCHEMA, Tables, migrate, tables
from .store import as_engine, scrub, transaction
from .udm import BY_NAME, Parent, Resource

log = logging.getLogger(__name__)

EXCEPTIONS_FOLDER = "_exceptions"
ANALYZE_AFTER = 500
VACUUM_EVERY = 100
"""Files of one resource between two VACUUMs of its staging table (PostgreSQL)."""
"""Rows a file inserts after which PostgreSQL re-reads the table's statistics."""


@dataclass(slots=True)
class FileResult:
    """What loading one file did."""

    path: str
    resource: str
    rows: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    parentless: int = 0
    exceptions_path: str | None = None
    skipped: bool = False


@dataclass(slots=True)
class LoadResult:
    """What a load run did, file by file."""

    files: list[FileResult] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)

    @property
    def loaded(self) -> list[FileResult]:
        return [f for f in self.files if not f.skipped]

    @property
    def skipped(self) -> list[FileResult]:
        return [f for f in self.files if f.skipped]

    @property
    def parentless(self) -> int:
        return sum(f.parentless for f in self.files)

    def summary(self) -> dict[str, Any]:
        loaded = self.loaded
        return {
            "files_loaded": len(loaded),
            "files_skipped": len(self.skipped),
            "rows": sum(f.rows for f in loaded),
            "inserted": sum(f.inserted for f in loaded),
            "updated": sum(f.updated for f in loaded),
            "deleted": sum(f.deleted for f in loaded),
            "parentless": self.parentless,
            "exceptions": [f.exceptions_path for f in loaded if f.exceptions_path],
        }


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _count(conn: Connection, stmt: sa.Executable, params: dict[str, Any] | None = None) -> int:
    """Rows a statement changed (drivers report it only when asked to keep it)."""
    result = conn.execute(stmt, params, execution_options={"preserve_rowcount": True})
    return int(result.rowcount)


def _clear(conn: Connection, stg: sa.Table) -> None:
    """Empty a staging table (DELETE: on a table this small, TRUNCATE's new file per file
    made a load 3-4x slower on PostgreSQL).

    On PostgreSQL the same round trip makes the file's commit not wait for its WAL
    flush: a crash can lose only the last files' commits, whole (they are not in
    ProcessedFiles, so the next run loads them again).
    """
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(
            f"SET LOCAL synchronous_commit TO OFF; DELETE FROM {SCHEMA}.{stg.name}"
        )
    else:
        conn.execute(sa.delete(stg))


def _stage(conn: Connection, stg: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Bulk-insert a file's rows into its staging table, emptied first (as the Toolkit, the
    last file's rows stay staged after its commit)."""
    _clear(conn, stg)
    if not rows:
        return
    keys = [c.key for c in stg.columns if c.key != "StagingId"]
    if conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg":
        dbapi: Any = conn.connection.dbapi_connection
        names = ", ".join(stg.c[k].name for k in keys)
        with (
            dbapi.cursor() as cur,
            cur.copy(f"COPY {SCHEMA}.{stg.name} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row([row.get(k) for k in keys])
        return
    conn.execute(sa.insert(stg), [{k: row.get(k) for k in keys} for row in rows])


class _Plan:
    """One resource's SQL, built once per dialect and reused for every file.

    Per-file values (the run's time, the file's source systems, its section or
    assignment key) are bind parameters, so SQLAlchemy compiles each statement
    once per process.
    """

    def __init__(self, t: Tables, resource: Resource) -> None:
        self.t = t
        self.res = resource
        self.main = t.of(resource)
        self.stg = t.stg(resource)
        self.parents = [
            (p, t.main[p.resource].alias(f"p{i}")) for i, p in enumerate(resource.parents)
        ]
        now = sa.bindparam("now", type_=self.main.c.DeletedAt.type)
        self.missing_parent = [
            self._missing_parent(i, p, table) for i, (p, table) in enumerate(self.parents)
        ]
        # one round trip for every parent (ordered, so the first missing parent is named)
        self.missing_parents: sa.CompoundSelect[Any] | sa.Select[Any] | None = None
        if len(self.missing_parent) == 1:
            self.missing_parents = self.missing_parent[0]
        elif self.missing_parent:
            self.missing_parents = sa.union_all(*self.missing_parent).order_by(sa.text("1"))
        self.update, self.insert = self._merge()
        present = sa.exists().where(self.key_match(self.main))
        self.soft_delete: dict[bool, sa.Update | None] = {}
        for with_systems in (True, False):
            scope = self._scope(with_systems)
            self.soft_delete[with_systems] = (
                None
                if scope is None
                else sa.update(self.main)
                .where(self.main.c.DeletedAt.is_(None), scope, ~present)
                .values({self.main.c.DeletedAt: now})
            )

    def key_match(self, target: sa.Table) -> sa.ColumnElement[bool]:
        return sa.and_(
            target.c.SourceSystemIdentifier == self.stg.c.SourceSystemIdentifier,
            target.c.SourceSystem == self.stg.c.SourceSystem,
        )

    def parent_match(self) -> list[sa.ColumnElement[bool]]:
        return [
            sa.and_(
                table.c.SourceSystemIdentifier == self.stg.c[p.column],
                table.c.SourceSystem == self.stg.c.SourceSystem,
            )
            for p, table in self.parents
        ]

    def _missing_parent(self, i: int, p: Parent, table: Any) -> sa.Select[Any]:
        stg = self.stg
        exists = sa.exists().where(
            table.c.SourceSystemIdentifier == stg.c[p.column],
            table.c.SourceSystem == stg.c.SourceSystem,
        )
        return sa.select(
            sa.literal(i).label("parent"),
            stg.c.SourceSystemIdentifier,
            stg.c[p.column],
            stg.c.SourceSystem,
        ).where(~exists)

    def values(self) -> dict[str, sa.ColumnElement[Any]]:
        """Target column -> expression over the staging row and its parents."""
        out: dict[str, sa.ColumnElement[Any]] = {}
        for col in self.res.data_columns:
            out[col.name] = self.stg.c[col.name]
        for p, table in self.parents:
            out[p.target] = table.c[p.target]
        if self.res.association:
            assoc = self.t.main["section-associations"]
            by_name = {p.resource: table for p, table in self.parents}
            out["LMSUserLMSSectionAssociationIdentifier"] = (
                sa.select(sa.func.min(assoc.c.LMSUserLMSSectionAssociationIdentifier))
                .where(
                    assoc.c.LMSUserIdentifier == by_name["users"].c.LMSUserIdentifier,
                    assoc.c.LMSSectionIdentifier == by_name["sections"].c.LMSSectionIdentifier,
                )
                .scalar_subquery()
            )
        return out

    def _merge(self) -> tuple[sa.Update, sa.Insert]:
        """Update changed and reappearing rows; insert new ones (rows with all parents)."""
        main, stg = self.main, self.stg
        values = self.values()
        changed = sa.or_(
            main.c.LastModifiedDate != stg.c.LastModifiedDate,
            main.c.DeletedAt.is_not(None),
        )
        update = (
            sa.update(main)
            .where(self.key_match(main), *self.parent_match(), changed)
            .values({**{main.c[k]: v for k, v in values.items()}, main.c.DeletedAt: None})
        )
        select_from: Any = stg
        for cond, (_, table) in zip(self.parent_match(), self.parents, strict=True):
            select_from = select_from.join(table, cond)
        existing = sa.exists().where(self.key_match(main))
        insert = sa.insert(main).from_select(
            [main.c[n] for n in values],
            sa.select(*values.values()).select_from(select_from).where(~existing),
        )
        return update, insert

    def _scope(self, with_systems: bool) -> sa.ColumnElement[bool] | None:
        """Which stored rows a file is a full snapshot of (None: it cannot say)."""
        main = self.main
        systems: sa.BindParameter[Any] = sa.bindparam("systems", expanding=True)
        holder: sa.Column[Any] | None
        if self.res.scope == "source-system":
            return main.c.SourceSystem.in_(systems) if with_systems else None
        if self.res.scope == "assignment":
            parent = self.t.main["assignments"]
            ids = sa.select(parent.c.AssignmentIdentifier)
            holder = main.c.AssignmentIdentifier
        else:
            parent = self.t.main["sections"]
            ids = sa.select(parent.c.LMSSectionIdentifier)
            holder = main.c.LMSSectionIdentifier if "LMSSectionIdentifier" in main.c else None
        ids = ids.where(parent.c.SourceSystemIdentifier == sa.bindparam("scope_key"))
        if with_systems:
            ids = ids.where(parent.c.SourceSystem.in_(systems))
        if holder is None:
            assoc = self.t.main["section-associations"]
            in_section = sa.select(assoc.c.LMSUserLMSSectionAssociationIdentifier).where(
                assoc.c.LMSSectionIdentifier.in_(ids)
            )
            return main.c.LMSUserLMSSectionAssociationIdentifier.in_(in_section)
        return holder.in_(ids)


@cache
def _plan(dialect: str, resource: str) -> _Plan:
    return _Plan(tables(dialect), BY_NAME[resource])


def _parentless(conn: Connection, plan: _Plan) -> dict[str, str]:
    """Staged rows whose parent is not in the store: their key -> the reason."""
    reasons: dict[str, str] = {}
    if plan.missing_parents is None:
        return reasons
    for i, key, ref, system in conn.execute(plan.missing_parents):
        p = plan.parents[i][0]
        reasons.setdefault(
            key, f"{p.column} {ref!r} is not a known {p.resource} record of {system!r}"
        )
    return reasons


def _soft_delete(
    conn: Connection, plan: _Plan, file: LmsFile, systems: set[str], now: datetime
) -> int:
    stmt = plan.soft_delete[bool(systems)]
    if stmt is None:
        return 0
    params: dict[str, Any] = {"now": now, "scope_key": file.section}
    if plan.res.scope == "assignment":
        params["scope_key"] = file.assignment
    if systems:
        params["systems"] = sorted(systems)
    if plan.res.scope == "source-system":
        params.pop("scope_key")
    return _count(conn, stmt, params)


class _TypesPlan:
    """AssignmentSubmissionType: restore, insert and (within the section) soft-delete."""

    def __init__(self, t: Tables) -> None:
        stg = self.stg = t.stg_submission_types
        types = t.submission_types
        assignment = t.main["assignments"]
        sections = t.main["sections"]
        now = sa.bindparam("now", type_=types.c.DeletedAt.type)
        joined = stg.join(
            assignment,
            sa.and_(
                assignment.c.SourceSystemIdentifier == stg.c.SourceSystemIdentifier,
                assignment.c.SourceSystem == stg.c.SourceSystem,
            ),
        )
        staged_pair = (
            sa.select(sa.literal(1))
            .select_from(joined)
            .where(
                assignment.c.AssignmentIdentifier == types.c.AssignmentIdentifier,
                stg.c.SubmissionType == types.c.SubmissionType,
            )
            .exists()
        )
        self.restore = (
            sa.update(types)
            .where(types.c.DeletedAt.is_not(None), staged_pair)
            .values({types.c.DeletedAt: None})
        )
        known = sa.exists().where(
            types.c.AssignmentIdentifier == assignment.c.AssignmentIdentifier,
            types.c.SubmissionType == stg.c.SubmissionType,
        )
        self.insert = sa.insert(types).from_select(
            [types.c.AssignmentIdentifier, types.c.SubmissionType, types.c.CreateDate],
            sa.select(assignment.c.AssignmentIdentifier, stg.c.SubmissionType, stg.c.CreateDate)
            .select_from(joined)
            .where(~known),
        )
        self.soft_delete: dict[bool, sa.Update] = {}
        for with_systems in (True, False):
            in_section = sa.select(sections.c.LMSSectionIdentifier).where(
                sections.c.SourceSystemIdentifier == sa.bindparam("scope_key")
            )
            if with_systems:
                in_section = in_section.where(
                    sections.c.SourceSystem.in_(sa.bindparam("systems", expanding=True))
                )
            section_assignments = sa.select(assignment.c.AssignmentIdentifier).where(
                assignment.c.LMSSectionIdentifier.in_(in_section)
            )
            self.soft_delete[with_systems] = (
                sa.update(types)
                .where(
                    types.c.DeletedAt.is_(None),
                    types.c.AssignmentIdentifier.in_(section_assignments),
                    ~staged_pair,
                )
                .values({types.c.DeletedAt: now})
            )


@cache
def _types_plan(dialect: str) -> _TypesPlan:
    return _TypesPlan(tables(dialect))


def _submission_types(
    conn: Connection, parsed: ParsedFile, systems: set[str], now: datetime
) -> None:
    """An assignment's SubmissionType list, kept in AssignmentSubmissionType, scoped by section."""
    plan = _types_plan(conn.dialect.name)
    rows = [
        {
            "SourceSystemIdentifier": row["SourceSystemIdentifier"],
            "SourceSystem": row["SourceSystem"],
            "SubmissionType": kind,
            "CreateDate": now,
        }
        for row in parsed.rows
        for kind in row["SubmissionType"]
    ]
    _stage(conn, plan.stg, rows)
    conn.execute(plan.restore)
    conn.execute(plan.insert)
    params: dict[str, Any] = {"now": now, "scope_key": parsed.file.section}
    if systems:
        params["systems"] = sorted(systems)
    conn.execute(plan.soft_delete[bool(systems)], params)


def _exceptions_csv(parsed: ParsedFile, reasons: dict[str, str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Line", *parsed.header, "ExceptionReason"])
    for line, raw, row in zip(parsed.lines, parsed.raw, parsed.rows, strict=True):
        reason = reasons.get(row["SourceSystemIdentifier"])
        if reason is not None:
            writer.writerow([line, *raw[: len(parsed.header)], reason])
    return out.getvalue()


def apply_file(
    conn: Connection,
    parsed: ParsedFile,
    *,
    now: datetime,
    exceptions: tuple[fsspec.AbstractFileSystem, str] | None = None,
) -> FileResult:
    """Apply one checked file inside the caller's transaction."""
    file = parsed.file
    t = tables(conn.dialect.name)
    plan = _plan(conn.dialect.name, file.resource.name)
    systems = parsed.source_systems
    result = FileResult(path=file.path, resource=file.resource.name, rows=len(parsed.rows))
    _stage(conn, plan.stg, parsed.rows)
    reasons = _parentless(conn, plan) if plan.parents else {}
    result.updated = _count(conn, plan.update)
    result.inserted = _count(conn, plan.insert)
    result.deleted = _soft_delete(conn, plan, file, systems, now)
    if file.resource.name == "assignments":
        _submission_types(conn, parsed, systems, now)
    if conn.dialect.name == "postgresql" and result.inserted >= ANALYZE_AFTER:
        # the planner's row estimates go stale as a table grows within one run; fresh
        # ones keep the next files' parent lookups on their unique indexes
        conn.execute(sa.text(f"ANALYZE {SCHEMA}.{plan.main.name}"))
    conn.execute(
        sa.insert(t.processed_files).values(
            FullPath=file.path,
            ResourceName=file.resource.name,
            NumberOfRows=len(parsed.rows),
            UploadDateTime=now,
        )
    )
    result.parentless = len(reasons)
    if reasons and exceptions is not None:
        fs, root = exceptions
        target = f"{root.rstrip('/')}/{file.relative}"
        fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(target, "w", encoding="utf-8", newline="") as fh:
            fh.write(_exceptions_csv(parsed, reasons))
        result.exceptions_path = target
        log.warning("%s: %d rows whose parent is missing, see %s", file.path, len(reasons), target)
    return result


class _Upkeep:
    """PostgreSQL housekeeping between files, so a long load does not slow down as it goes.

    Each file empties its staging table with DELETE, which leaves dead rows that
    every later file's scans read until a VACUUM; and the planner's row counts go
    stale as the tables grow. Autovacuum does both eventually (where it is on),
    but a load of thousands of small files outruns it: every ``every`` files of a
    resource, its staging tables are vacuumed and its table analyzed.
    """

    def __init__(self, engine: Engine, every: int = VACUUM_EVERY) -> None:
        self.engine = engine
        self.every = every
        self.counts: Counter[str] = Counter()
        self.on = engine.dialect.name == "postgresql"

    def after(self, resource: Resource) -> None:
        if not self.on:
            return
        self.counts[resource.name] += 1
        if self.counts[resource.name] % self.every:
            return
        t = tables(self.engine.dialect.name)
        names = [t.stg(resource).name]
        if resource.name == "assignments":
            names.append(t.stg_submission_types.name)
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in names:
                conn.exec_driver_sql(f"VACUUM {SCHEMA}.{name}")
            conn.exec_driver_sql(f"ANALYZE {SCHEMA}.{t.of(resource).name}")


def load_directory(
    url: str,
    database: str | sa.URL | Engine = "sqlite:///lms.sqlite",
    *,
    storage_options: dict[str, Any] | None = None,
    exceptions_url: str | None = None,
    now: datetime | None = None,
) -> LoadResult:
    """Load every unprocessed extractor file under ``url`` into the store at ``database``.

    ``exceptions_url`` is where parentless rows go (default: ``<url>/_exceptions``,
    which the layout never reads back as input).
    """
    engine = as_engine(database)
    fs, files = find_files(url, storage_options)
    result = LoadResult()
    try:
        with transaction(engine) as conn:
            result.migrations = migrate(conn)
            t = tables(conn.dialect.name)
            done = set(conn.execute(sa.select(t.processed_files.c.FullPath)).scalars())
        pending: list[ParsedFile] = []
        for file in files:
            if file.path in done:
                result.files.append(
                    FileResult(path=file.path, resource=file.resource.name, rows=0, skipped=True)
                )
                continue
            pending.append(read_file(fs, file))
        if exceptions_url is None:
            ex_fs, ex_root = fs, f"{url.rstrip('/')}/{EXCEPTIONS_FOLDER}"
            ex_root = fsspec.core.url_to_fs(ex_root, **(storage_options or {}))[1]
        else:
            ex_fs, ex_root = fsspec.core.url_to_fs(exceptions_url, **(storage_options or {}))
        upkeep = _Upkeep(engine)
        for parsed in pending:
            when = now or _now()
            with transaction(engine) as conn:
                result.files.append(apply_file(conn, parsed, now=when, exceptions=(ex_fs, ex_root)))
            upkeep.after(parsed.file.resource)
    except (LmsFileError, LmsDatabaseError):
        raise
    except sa.exc.DBAPIError as exc:
        detail = scrub(str(exc.orig).strip() if exc.orig else str(exc), engine.url)
        raise LmsDatabaseError(f"The LMS database refused a change: {detail}") from None
    return result


__all__ = ["BY_NAME", "FileResult", "LoadResult", "apply_file", "load_directory"]
