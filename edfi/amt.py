"""Gold: the lake's current tables reshaped into Analytics Middle Tier (AMT) views.

Each view is one DuckDB query in ``edfi/sql/<View>.sql``, written to sit next
to its AMT counterpart; files starting with ``_`` are helpers several views
share. The queries read the committed parquet files of the lake through
views named ``edfi_<resource>`` / ``lmsx_<resource>``, a ``descriptors`` table
(every descriptor value with its type, description and id) and
``descriptor_constants`` (which descriptor values the descriptor map ties to
which AMT constant). A view that builds on another one reads it as
``amt_<View>``.

A year-specific lake is built one school year at a time, exactly as AMT runs
over one ODS per year, so records of two years never join each other; the
years' rows land in one folder per view. Everything is written into a new
version folder under ``gold/`` and becomes visible only when
``gold/_manifest.json`` names it (the last write); older versions are removed
after that.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq

# exceptions live in edfi.errors; re-exported so old imports keep working
from .errors import DescriptorMapError as DescriptorMapError
from .errors import GoldError as GoldError
from .lake import Lake, arrow_schema, new_version
from .model import builtin_model

GOLD_DIR = "gold"
MANIFEST = "_manifest.json"

# The AMT views in build order (a view comes after every view it reads).
VIEWS: tuple[str, ...] = (
    "DateDim",
    "GradingPeriodDim",
    "MostRecentGradingPeriod",
    "LocalEducationAgencyDim",
    "SchoolDim",
    "AcademicTimePeriodDim",
    "ClassPeriodDim",
    "ContactPersonDim",
    "DemographicDim",
    "StudentLocalEducationAgencyDemographicsBridge",
    "StudentSchoolDemographicsBridge",
    "StudentLocalEducationAgencyDim",
    "StudentSchoolDim",
    "AllStudentSchoolDim",
    "StudentProgramDim",
    "SectionDim",
    "StaffSectionDim",
    "StudentSectionDim",
    "asmt_AssessmentFact",
    "asmt_StudentAssessmentFact",
    "chrab_ChronicAbsenteeismAttendanceFact",
    "ews_StudentEarlyWarningFact",
    "ews_StudentSectionGradeFact",
    "equity_FeederSchoolDim",
    "equity_StudentDisciplineActionDim",
    "equity_StudentProgramCohortDim",
    "equity_StudentSchoolFoodServiceProgramDim",
    "equity_StudentHistoryDim",
    "engage_AssignmentDim",
    "engage_AssignmentSubmissionFact",
)

# Every constant AMT defines (analytics_config.DescriptorConstant); names are case-sensitive.
CONSTANTS: frozenset[str] = frozenset(
    {
        "Address.Home",
        "Address.Physical",
        "Address.Mailing",
        "Address.Work",
        "Address.Temporary",
        "Telephone.Home",
        "Telephone.Mobile",
        "Telephone.Work",
        "Email.Personal",
        "Email.Work",
        "Foodservice.FullPrice",
        "AttendanceEvent.Present",
        "AttendanceEvent.ExcusedAbsence",
        "AttendanceEvent.UnexcusedAbsence",
        "AttendanceEvent.Absence",
        "AttendanceEvent.Tardy",
        "CalendarEvent.InstructionalDay",
        "Behavior.StateOffense",
        "Behavior.SchoolCodeOfConductOffense",
        "GradeType.GradingPeriod",
        "GradeType.Semester",
        "GradeType.Final",
        "AuthorizationScope.District",
        "AuthorizationScope.School",
        "AuthorizationScope.Section",
        "AssignmentCategory.Assignment",
        "SubmissionStatus.IsPastDue",
        "SubmissionStatus.SubmittedLate",
        "SubmissionStatus.SubmittedOnTime",
        "SubmissionStatus.Upcoming",
    }
)
MAP_FIELDS = ("constantName", "descriptor", "codeValue")

# analytics_config.ews_LetterGradeTranslation defaults.
LETTER_GRADES: tuple[tuple[str, float], ...] = (
    ("A", 95.0),
    ("B", 85.0),
    ("C", 75.0),
    ("D", 65.0),
    ("F", 55.0),
)

# Columns the views read that some data standards or servers lack: added as nulls.
OPTIONAL_COLUMNS: dict[str, dict[str, str]] = {
    "edfi_objectiveAssessments": {
        "learningStandards": "STRUCT(learningStandardReference "
        "STRUCT(learningStandardId VARCHAR))[]"
    },
    "edfi_gradingPeriods": {"gradingPeriodName": "VARCHAR", "periodSequence": "INTEGER"},
    "edfi_courses": {"academicSubjects": "STRUCT(academicSubjectDescriptor VARCHAR)[]"},
}
# Tables the built-in DS5 model does not have, for lakes that lack them too.
EXTRA_TABLES: dict[str, dict[str, str]] = {
    "edfi_feederSchoolAssociations": {
        "id": "VARCHAR",
        "beginDate": "DATE",
        "endDate": "DATE",
        "schoolReference": "STRUCT(schoolId BIGINT)",
        "feederSchoolReference": "STRUCT(schoolId BIGINT)",
        "_lastModifiedDate": "TIMESTAMPTZ",
    },
}

# Data Standard 4 tables read under their DS5 names: {DS5 view: (DS4 view, select list)}.
DS4_NAMES: dict[str, tuple[str, str]] = {
    "edfi_contacts": (
        "edfi_parents",
        "* EXCLUDE (parentUniqueId), parentUniqueId AS contactUniqueId",
    ),
    "edfi_studentContactAssociations": (
        "edfi_studentParentAssociations",
        "* EXCLUDE (parentReference), "
        "{'contactUniqueId': parentReference.parentUniqueId} AS contactReference",
    ),
    "edfi_studentDisciplineIncidentBehaviorAssociations": (
        "edfi_studentDisciplineIncidentAssociations",
        "id, studentReference, disciplineIncidentReference, _lastModifiedDate",
    ),
}

MACROS = """
CREATE MACRO code(u) AS substr(u, strpos(u, '#') + 1);
CREATE MACRO ymd(d) AS strftime(CAST(d AS DATE), '%Y%m%d');
CREATE MACRO iso(d) AS strftime(CAST(d AS DATE), '%Y-%m-%d');
CREATE MACRO txt(x) AS CAST(x AS VARCHAR);
CREATE MACRO keep(l) AS CASE WHEN l IS NULL OR len(l) = 0 THEN [NULL] ELSE l END;
CREATE MACRO active_ge(d) AS d IS NULL OR CAST(d AS TIMESTAMP) >= amt_now();
CREATE MACRO active_gt(d) AS d IS NULL OR CAST(d AS TIMESTAMP) > amt_now();
CREATE MACRO did(u) AS (SELECT descriptorId FROM descriptors WHERE uri = lower(u));
CREATE MACRO desc_of(u) AS (SELECT description FROM descriptors WHERE uri = lower(u));
CREATE MACRO short_of(u) AS (SELECT shortDescription FROM descriptors WHERE uri = lower(u));
CREATE MACRO lmd_of(u) AS (SELECT lmd FROM descriptors WHERE uri = lower(u));
CREATE MACRO maps_to(u, c) AS EXISTS (
    SELECT 1 FROM descriptor_constants m WHERE m.uri = lower(u) AND m.constantName = c);
"""


# -- the descriptor map -------------------------------------------------------------------


@dataclass(frozen=True)
class MapRow:
    """One row of the descriptor map: this descriptor value counts as this AMT constant."""

    constantName: str
    descriptor: str
    codeValue: str

    def as_json(self) -> dict[str, str]:
        return asdict(self)


def default_map_path() -> str:
    return str(importlib_resources.files("edfi") / "data" / "descriptor_map.json")


def parse_descriptor_map(data: bytes | str, source: str) -> list[MapRow]:
    """Rows of a map file, checked so a typo fails the run instead of silently counting nothing."""
    try:
        doc = json.loads(data)
    except UnicodeDecodeError as exc:
        raise DescriptorMapError(
            f"The descriptor map {source} is not UTF-8 (or UTF-16/32) text: byte {exc.start} "
            f"is {exc.object[exc.start : exc.start + 1]!r}. Save the file as UTF-8."
        ) from None
    except json.JSONDecodeError as exc:
        raise DescriptorMapError(
            f"The descriptor map {source} is not valid JSON (line {exc.lineno}, column "
            f"{exc.colno}: {exc.msg}). It must be a list of objects with "
            f"{', '.join(MAP_FIELDS)}."
        ) from None
    if isinstance(doc, dict) and isinstance(doc.get("rows"), list):
        doc = doc["rows"]
    if not isinstance(doc, list):
        raise DescriptorMapError(
            f"The descriptor map {source} must be a JSON list of rows "
            f"{{{', '.join(MAP_FIELDS)}}}, not {type(doc).__name__}."
        )
    rows: list[MapRow] = []
    for n, item in enumerate(doc, start=1):
        where = f"The descriptor map {source}, row {n} ({json.dumps(item)[:200]})"
        if not isinstance(item, dict):
            raise DescriptorMapError(
                f"{where}: a row must be an object with {', '.join(MAP_FIELDS)}."
            )
        missing = [k for k in MAP_FIELDS if k not in item]
        if missing:
            raise DescriptorMapError(f"{where}: missing property {', '.join(map(repr, missing))}.")
        extra = sorted(set(item) - set(MAP_FIELDS))
        if extra:
            raise DescriptorMapError(
                f"{where}: unknown property {', '.join(map(repr, extra))}; a row has exactly "
                f"{', '.join(MAP_FIELDS)}."
            )
        bad = [k for k in MAP_FIELDS if not isinstance(item[k], str) or not item[k].strip()]
        if bad:
            raise DescriptorMapError(
                f"{where}: {', '.join(map(repr, bad))} must be a non-empty string."
            )
        constant = item["constantName"].strip()
        if constant not in CONSTANTS:
            close = [c for c in sorted(CONSTANTS) if c.lower() == constant.lower()]
            hint = (
                f" (constant names are case-sensitive: did you mean {close[0]!r}?)"
                if close
                else f"; known constants: {', '.join(sorted(CONSTANTS))}"
            )
            raise DescriptorMapError(f"{where}: unknown constantName {constant!r}{hint}.")
        descriptor = item["descriptor"].strip()
        if not descriptor.lower().endswith("descriptor"):
            descriptor += "Descriptor"  # "AttendanceEventCategory" means the same type
        rows.append(MapRow(constant, descriptor, item["codeValue"].strip()))
    return rows


def load_descriptor_map(
    location: str | None = None, storage_options: Mapping[str, Any] | None = None
) -> tuple[list[MapRow], str]:
    """The map at a local path or storage URL (default: AMT's, shipped); rows and its name."""
    source = location or default_map_path()
    try:
        with fsspec.open(source, "rb", **dict(storage_options or {})) as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DescriptorMapError(
            f"The descriptor map {source} does not exist; pass a local path or a storage URL "
            "of a JSON file, or leave descriptor_map empty for AMT's default map."
        ) from None
    except Exception as exc:
        raise DescriptorMapError(
            f"Cannot read the descriptor map {source}: {type(exc).__name__}: {exc}"
        ) from exc
    return parse_descriptor_map(data, source), source


# -- what the lake holds ------------------------------------------------------------------

_STATE = re.compile(r"state/([^/]+)/([^/]+)/school_year=(-?\d+)\.json$")


def committed_tables(lake: Lake) -> dict[int, dict[str, list[str]]]:
    """{school year: {``namespace/resource``: committed parquet files}} from the state manifests.

    Only manifests are listed: a table version exists for readers only once its
    manifest names it, so ``current/`` is never globbed.
    """
    lake.invalidate()
    try:
        found = lake.fs.find(lake.path("state"))
    except FileNotFoundError:
        found = []
    out: dict[int, dict[str, list[str]]] = {}
    for path in found:
        m = _STATE.search(path)
        if not m:
            continue
        state = lake.read_json(path)
        if not state or not state.get("files"):
            continue
        out.setdefault(int(m.group(3)), {})[f"{m.group(1)}/{m.group(2)}"] = lake.files_of(state)
    return out


@cache
def _sql(name: str) -> str:
    return (importlib_resources.files("edfi") / "sql" / f"{name}.sql").read_text("utf-8")


@cache
def helper_names() -> tuple[str, ...]:
    names = [
        p.name[:-4]
        for p in (importlib_resources.files("edfi") / "sql").iterdir()
        if p.name.startswith("_") and p.name.endswith(".sql")
    ]
    return tuple(sorted(names))


def _names(sql: str, names: Iterable[str]) -> set[str]:
    return {n for n in names if re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", sql)}


@cache
def helpers_of(sql: str) -> tuple[str, ...]:
    """The ``_helper`` queries ``sql`` reads, directly or through other helpers, each after
    the helpers it reads."""
    names = helper_names()
    order: list[str] = []

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in order:
            return
        if name in trail:
            raise GoldError(f"The helper queries {', '.join(trail)} read each other.")
        for dep in sorted(_names(_sql(name), names) - {name}):
            visit(dep, (*trail, name))
        order.append(name)

    for name in sorted(_names(sql, names)):
        visit(name, ())
    return tuple(order)


def _enum_columns(sql: str) -> list[str]:
    """The columns a helper's ``-- enum: a, b`` line asks to be stored as ENUMs."""
    return [
        c.strip()
        for line in re.findall(r"^--\s*enum:(.*)$", sql, re.MULTILINE)
        for c in line.split(",")
        if c.strip()
    ]


def _refs(sql: str, prefix: str) -> set[str]:
    return set(re.findall(rf"\b{prefix}(\w+)", sql))


def view_order(views: Iterable[str] | None = None) -> list[str]:
    """The views asked for plus every view they read, in build order."""
    if views is None:
        return list(VIEWS)
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise GoldError(
            f"Unknown AMT view(s) {', '.join(unknown)}; the views are: {', '.join(VIEWS)}."
        )
    wanted: set[str] = set()
    stack = list(views)
    while stack:
        v = stack.pop()
        if v in wanted:
            continue
        wanted.add(v)
        stack.extend(_view_deps(v))
    return [v for v in VIEWS if v in wanted]


def _view_deps(view: str) -> set[str]:
    sql = _sql(view)
    deps = _refs(sql, "amt_")
    for helper in helpers_of(sql):
        deps |= _refs(_sql(helper), "amt_")
    return deps & set(VIEWS)


def _resource(view: str) -> str:
    """``edfi_students`` -> ``ed-fi/students``: the name a user knows."""
    prefix, name = view.split("_", 1)
    return f"{'ed-fi' if prefix == 'edfi' else prefix}/{name}"


def _type_name(resource: str) -> str:
    """``attendanceEventCategoryDescriptors`` -> ``AttendanceEventCategoryDescriptor``."""
    return resource[0].upper() + resource[1:-1]


def _struct_fields(sql_type: str) -> dict[str, str]:
    """Top-level fields of a DuckDB ``STRUCT(...)`` type string: {name: type}."""
    inner = sql_type[len("STRUCT(") : -1]
    fields: dict[str, str] = {}
    depth, start = 0, 0
    for i, ch in enumerate([*inner, ","]):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            name, _, kind = inner[start:i].strip().partition(" ")
            fields[name.strip('"')] = kind.strip()
            start = i + 1
    return fields


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _sql_rows(rows: Iterable[Sequence[str]]) -> str:
    """``('a', 'b'), ('c', 'd')``: rows of text as the literal list of a VALUES clause (one
    statement instead of one round trip per row)."""
    return ", ".join("(" + ", ".join(_sql_str(v) for v in row) + ")" for row in rows)


def _file_list(lake: Lake, files: Sequence[str]) -> str:
    return "[" + ", ".join(_sql_str(lake.uri(f)) for f in files) + "]"


# -- one school year's DuckDB session ------------------------------------------------------


class _YearSession:
    """A DuckDB connection with one school year's tables, descriptors and map registered."""

    def __init__(
        self,
        lake: Lake,
        year: int,
        tables: Mapping[str, list[str]],
        descriptor_map: Sequence[MapRow],
        now: dt.datetime,
        threads: int | None,
    ):
        self.lake = lake
        self.year = year
        self.con = duckdb.connect(config={"threads": threads} if threads else {})
        self.con.execute("SET TimeZone = 'UTC'")
        # Lake files are immutable (each table version has its own folder): parse each
        # parquet footer once, not each time a query binds a view over the file.
        self.con.execute("SET parquet_metadata_cache = true")
        if lake.protocol not in ("file", "local"):
            self.con.register_filesystem(lake.fs)
        self.columns: dict[str, dict[str, str]] = {}
        self.helpers: set[str] = set()
        stamp = now.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
        self.con.execute(f"CREATE MACRO amt_now() AS TIMESTAMP {_sql_str(stamp)}")
        self._register_sources(tables)
        self._register_descriptors(tables, descriptor_map)
        self.con.execute(MACROS)
        self.con.execute(
            "CREATE TABLE ews_LetterGradeTranslation AS SELECT * FROM (VALUES "
            + ", ".join(f"({_sql_str(k)}, CAST({v} AS DECIMAL(9, 2)))" for k, v in LETTER_GRADES)
            + ") t(LetterGradeEarned, NumericGradeEarned)"
        )

    # sources
    def _register_sources(self, tables: Mapping[str, list[str]]) -> None:
        """Note the lake's tables; each becomes a view when a query first names it."""
        self.available: dict[str, list[str]] = {}
        for full_name, files in sorted(tables.items()):
            namespace, name = full_name.split("/", 1)
            if not name.endswith("Descriptors"):
                self.available[f"{'edfi' if namespace == 'ed-fi' else namespace}_{name}"] = files

    def _describe(self, relation: str) -> dict[str, str]:
        return {r[0]: r[1] for r in self.con.execute(f'DESCRIBE "{relation}"').fetchall()}

    def source(self, view: str) -> None:
        """Make ``view`` (e.g. ``edfi_students``) queryable: the lake's committed files, a
        Data Standard 4 table under its DS5 name, or an empty table of the right columns."""
        if view in self.columns:
            return
        if view in self.available:
            self.con.execute(
                f'CREATE VIEW "src_{view}" AS SELECT * FROM read_parquet('
                f"{_file_list(self.lake, self.available[view])}, union_by_name = true, "
                "hive_partitioning = false)"
            )
        elif view in DS4_NAMES and DS4_NAMES[view][0] in self.available:
            old, select = DS4_NAMES[view]
            self.source(old)
            self.con.execute(f'CREATE VIEW "src_{view}" AS SELECT {select} FROM "{old}"')
        else:
            self._empty(view)
        self.columns[view] = self._describe(f"src_{view}")
        self._conform(view, self.columns[view])

    def _empty(self, view: str) -> None:
        prefix, name = view.split("_", 1)
        namespace = "ed-fi" if prefix == "edfi" else prefix
        path = f"/{namespace}/{name}"
        model = builtin_model()
        if path in model:
            self.con.register(f"_empty_{view}", arrow_schema(model[path]).empty_table())
            self.con.execute(f'CREATE VIEW "src_{view}" AS SELECT * FROM "_empty_{view}"')
        elif view in EXTRA_TABLES:
            cols = ", ".join(f"CAST(NULL AS {t}) AS {c}" for c, t in EXTRA_TABLES[view].items())
            self.con.execute(f'CREATE VIEW "src_{view}" AS SELECT {cols} LIMIT 0')
        else:
            raise GoldError(
                f"The lake has no committed table {namespace}/{name} for school year "
                f"{self.year}, and gold has no shape for it; extract it first."
            )

    def _conform(self, view: str, cols: dict[str, str]) -> None:
        """The view over a source, with the DS4 shapes rewritten and absent columns null."""
        extra: list[str] = []
        replace: list[str] = []
        for name, sql_type in OPTIONAL_COLUMNS.get(view, {}).items():
            if name in cols:
                continue
            if view == "edfi_gradingPeriods" and name == "gradingPeriodName":
                extra.append("CAST(periodSequence AS VARCHAR) AS gradingPeriodName")
            elif view == "edfi_courses" and "academicSubjectDescriptor" in cols:
                extra.append(
                    "CASE WHEN academicSubjectDescriptor IS NULL THEN [] ELSE "
                    "[{'academicSubjectDescriptor': academicSubjectDescriptor}] "
                    "END AS academicSubjects"
                )
            else:
                extra.append(f"CAST(NULL AS {sql_type}) AS {name}")
        ref = cols.get("gradingPeriodReference", "")
        if ref.startswith("STRUCT") and "gradingPeriodName" not in ref:
            replace.append(
                "struct_insert(gradingPeriodReference, gradingPeriodName := "
                "CAST(gradingPeriodReference.periodSequence AS VARCHAR)) "
                "AS gradingPeriodReference"
            )
        periods = cols.get("gradingPeriods", "")
        if "gradingPeriodReference" in periods and "gradingPeriodName" not in periods:
            replace.append(
                "list_transform(gradingPeriods, lambda g: {'gradingPeriodReference': "
                "struct_insert(g.gradingPeriodReference, gradingPeriodName := "
                "CAST(g.gradingPeriodReference.periodSequence AS VARCHAR))}) "
                "AS gradingPeriods"
            )
        select = "*" + (f" REPLACE ({', '.join(replace)})" if replace else "")
        if extra:
            select += ", " + ", ".join(extra)
        self.con.execute(f'CREATE VIEW "{view}" AS SELECT {select} FROM "src_{view}"')

    def ensure_tables(self, sql: str) -> None:
        """Every source table a query names, as a view (see ``source``)."""
        for prefix in ("edfi_", "lmsx_"):
            for name in sorted(_refs(sql, prefix)):
                self.source(f"{prefix}{name}")

    # descriptors
    def _register_descriptors(
        self, tables: Mapping[str, list[str]], descriptor_map: Sequence[MapRow]
    ) -> None:
        types: list[tuple[str, str]] = []
        files: list[str] = []
        for full_name, paths in sorted(tables.items()):
            name = full_name.split("/", 1)[1]
            if not name.endswith("Descriptors"):
                continue
            for p in paths:
                types.append((self.lake.uri(p), _type_name(name)))
                files.append(p)
        if files:
            self.con.execute(
                "CREATE VIEW _descriptor_files AS SELECT * FROM read_parquet("
                f"{_file_list(self.lake, files)}, union_by_name = true, filename = true, "
                "hive_partitioning = false)"
            )
            cols = self._describe("_descriptor_files")
            ids = [c for c in cols if c.endswith("DescriptorId")]
            descriptor_id = (
                f"coalesce({', '.join(ids)})"
                if len(ids) > 1
                else ids[0]
                if ids
                else "CAST(NULL AS INTEGER)"
            )
            self.con.execute("CREATE TABLE _descriptor_types (filename VARCHAR, type VARCHAR)")
            self.con.execute(f"INSERT INTO _descriptor_types VALUES {_sql_rows(types)}")
            self.con.execute(f"""
                CREATE TABLE descriptors AS
                SELECT lower(f.namespace || '#' || f.codeValue) AS uri, t.type, f.namespace,
                       f.codeValue, f.shortDescription, f.description,
                       CAST({descriptor_id} AS BIGINT) AS descriptorId,
                       f._lastModifiedDate AS lmd
                FROM _descriptor_files f JOIN _descriptor_types t USING (filename)
                QUALIFY row_number() OVER (PARTITION BY lower(f.namespace || '#' || f.codeValue)
                                           ORDER BY f._lastModifiedDate DESC) = 1""")
        else:
            self.con.execute(
                "CREATE TABLE descriptors (uri VARCHAR, type VARCHAR, namespace VARCHAR, "
                "codeValue VARCHAR, shortDescription VARCHAR, description VARCHAR, "
                "descriptorId BIGINT, lmd TIMESTAMPTZ)"
            )
        self.con.execute(
            "CREATE TABLE descriptor_map (constantName VARCHAR, descriptor VARCHAR, "
            "codeValue VARCHAR)"
        )
        if descriptor_map:
            rows = [(r.constantName, r.descriptor, r.codeValue) for r in descriptor_map]
            self.con.execute(f"INSERT INTO descriptor_map VALUES {_sql_rows(rows)}")
        self.con.execute("""
            CREATE TABLE descriptor_constants AS
            SELECT DISTINCT d.uri, m.constantName
            FROM descriptors d JOIN descriptor_map m
              ON lower(d.type) = lower(m.descriptor) AND lower(d.codeValue) = lower(m.codeValue)
        """)

    # views
    def ensure_helpers(self, sql: str) -> None:
        """Every ``_helper`` a query reads (and the helpers those read), built once per session
        as a table: two views that share a helper compute it once, and a view computes only
        the helpers it needs."""
        for helper in helpers_of(sql):
            if helper in self.helpers:
                continue
            body = _sql(helper)
            self.ensure_tables(body)
            columns = _enum_columns(body)
            if not columns:
                self.con.execute(f'CREATE TEMP TABLE "{helper}" AS {body}')
            else:
                self._create_with_enums(helper, body, columns)
            self.helpers.add(helper)

    def _create_with_enums(self, table: str, body: str, columns: Sequence[str]) -> None:
        """The helper as a table whose key ``columns`` are ENUMs of their values (sorted, so
        they order as the text does): the day-level facts then carry a small integer per row
        instead of a string, and the parquet writer writes the ENUM's dictionary instead of
        hashing every value (it halves the time to write the attendance facts). The files
        hold plain strings either way."""
        staging = f"_staging{table}"
        self.con.execute(f'CREATE TEMP TABLE "{staging}" AS {body}')
        casts: list[str] = []
        for column in columns:
            count = f'SELECT count(DISTINCT "{column}") FROM "{staging}"'
            if not self.con.execute(count).fetchall()[0][0]:
                continue  # an ENUM needs a value: an empty column stays text
            kind = f"{table}.{column}"
            self.con.execute(
                f'CREATE TYPE "{kind}" AS ENUM (SELECT DISTINCT "{column}" FROM "{staging}" '
                f'WHERE "{column}" IS NOT NULL ORDER BY 1)'
            )
            casts.append(f'CAST("{column}" AS "{kind}") AS "{column}"')
        replace = f" REPLACE ({', '.join(casts)})" if casts else ""
        self.con.execute(f'CREATE TEMP TABLE "{table}" AS SELECT *{replace} FROM "{staging}"')
        self.con.execute(f'DROP TABLE "{staging}"')

    def register_output(self, view: str, files: Sequence[str]) -> None:
        self.con.execute(
            f'CREATE OR REPLACE VIEW "amt_{view}" AS SELECT * FROM read_parquet('
            f"{_file_list(self.lake, files)}, hive_partitioning = false)"
        )

    def unmapped(self) -> list[dict[str, Any]]:
        """Values of mapped descriptor types used in the data that map to no constant."""
        mapped = {
            t
            for (t,) in self.con.execute(
                "SELECT DISTINCT lower(descriptor) FROM descriptor_map"
            ).fetchall()
        }
        if not mapped:
            return []
        for view in self.available:
            self.source(view)
        parts: list[str] = []
        for view, cols in sorted(self.columns.items()):
            if view not in self.available:
                continue  # empty, or a DS4 table under its DS5 name (scanned as itself)
            for col, sql_type in cols.items():
                hits = [t for t in mapped if col.lower().endswith(t)]
                # Values are counted as they are and lowered once per distinct value; list
                # items are unnested in the select list (a lateral unnest join costs ~30x).
                if sql_type == "VARCHAR" and hits:
                    parts.append(
                        f"SELECT {_sql_str(f'{_resource(view)}.{col}')} AS used_in, v, count(*) "
                        f'AS n FROM (SELECT {col} AS v FROM "{view}") WHERE v IS NOT NULL '
                        "GROUP BY v"
                    )
                elif sql_type.startswith("STRUCT(") and sql_type.endswith(")[]"):
                    for fname, ftype in _struct_fields(sql_type[:-2]).items():
                        if ftype == "VARCHAR" and any(fname.lower().endswith(t) for t in mapped):
                            parts.append(
                                f"SELECT {_sql_str(f'{_resource(view)}.{col}[].{fname}')} "
                                f"AS used_in, v, count(*) AS n FROM (SELECT unnest({col}).{fname} "
                                f'AS v FROM "{view}") WHERE v IS NOT NULL GROUP BY v'
                            )
        if not parts:
            return []
        rows = self.con.execute(f"""
            WITH used AS (
                SELECT used_in, lower(v) AS uri, n FROM ({" UNION ALL ".join(parts)}))
            SELECT d.type, d.namespace || '#' || d.codeValue AS value, d.codeValue,
                   sum(u.n) AS rows, list(DISTINCT u.used_in ORDER BY u.used_in) AS used_in
            FROM used u JOIN descriptors d ON d.uri = u.uri
            WHERE lower(d.type) IN (SELECT lower(descriptor) FROM descriptor_map)
              AND u.uri NOT IN (SELECT uri FROM descriptor_constants)
            GROUP BY ALL ORDER BY 1, 2""").fetchall()
        return [
            {
                "descriptor": t,
                "value": v,
                "codeValue": c,
                "rows": int(n),
                "used_in": list(u),
                "school_year": self.year,
            }
            for t, v, c, n, u in rows
        ]

    def close(self) -> None:
        self.con.close()


# -- a build ------------------------------------------------------------------------------


@dataclass
class ViewResult:
    """What building one view did: the row of the run summary."""

    view: str
    rows: int
    seconds: float
    files: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        return {"view": self.view, "rows": self.rows, "seconds": self.seconds}


@dataclass
class YearPart:
    """What building every view of one school year made (``GoldBuild.build_year``)."""

    year: int
    results: list[ViewResult]
    unmapped: list[dict[str, Any]]
    started: dt.datetime
    finished: dt.datetime

    def as_row(self) -> dict[str, Any]:
        seconds = round((self.finished - self.started).total_seconds(), 2)
        return {
            "school_year": self.year,
            "started": self.started.isoformat(),
            "finished": self.finished.isoformat(),
            "seconds": seconds,
        }


def merge_unmapped(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each year's unmapped descriptor values as one row per value, their counts added."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for one in rows:
        row = dict(one)
        key = (row["descriptor"], row["value"])
        if key in merged:
            merged[key]["rows"] += row["rows"]
            merged[key]["used_in"] = sorted({*merged[key]["used_in"], *row["used_in"]})
            merged[key]["school_years"].append(row["school_year"])
        else:
            row["school_years"] = [row.pop("school_year")]
            merged[key] = row
    return list(merged.values())


def _sql_texts() -> dict[str, str]:
    folder = importlib_resources.files("edfi") / "sql"
    return {p.name: p.read_text("utf-8") for p in folder.iterdir() if p.name.endswith(".sql")}


def inputs_fingerprint(
    tables: Mapping[int, Mapping[str, Sequence[str]]],
    descriptor_map: Sequence[MapRow],
    as_of: dt.date,
) -> str:
    """What a gold version is a function of: the committed table versions it reads, the
    descriptor map, the view definitions and AMT's "now" (a day). Equal fingerprints
    give equal views, so a build with the committed version's fingerprint can be skipped."""
    digest = hashlib.sha256()
    parts = {
        "tables": {str(y): {r: sorted(f) for r, f in t.items()} for y, t in tables.items()},
        "map": sorted(json.dumps(r.as_json(), sort_keys=True) for r in descriptor_map),
        "sql": _sql_texts(),
        "as_of": as_of.isoformat(),
    }
    digest.update(json.dumps(parts, sort_keys=True).encode())
    return digest.hexdigest()


class GoldBuild:
    """One gold run: a new version folder filled view by view, then committed.

    ``as_of`` stands in for AMT's "now" (open enrollments, past dates, due
    assignments); it defaults to the start of the build.
    """

    def __init__(
        self,
        lake: Lake,
        *,
        descriptor_map: Sequence[MapRow] | None = None,
        map_source: str = "",
        school_years: Sequence[int] | None = None,
        as_of: dt.datetime | None = None,
        threads: int | None = None,
    ):
        self.lake = lake
        if descriptor_map is None:
            descriptor_map, map_source = load_descriptor_map()
        self.descriptor_map = list(descriptor_map)
        self.map_source = map_source
        self.as_of = as_of or dt.datetime.now(dt.UTC)
        if self.as_of.tzinfo is None:
            self.as_of = self.as_of.replace(tzinfo=dt.UTC)
        self.threads = threads
        committed = committed_tables(lake)
        if not committed:
            raise GoldError(
                f"The lake at {lake.url} has no committed tables (no state "
                "manifests); run the extract flow into it first."
            )
        if school_years:
            missing = sorted(set(school_years) - set(committed))
            if missing:
                raise GoldError(
                    f"The lake at {lake.url} holds no tables for school year(s) "
                    f"{', '.join(map(str, missing))}; it holds "
                    f"{', '.join(map(str, sorted(committed)))}."
                )
            committed = {y: committed[y] for y in school_years}
        self.tables = committed
        self.years = sorted(committed)
        self.inputs = inputs_fingerprint(committed, self.descriptor_map, self.as_of.date())
        self.version = new_version()
        self.base = lake.path(GOLD_DIR, self.version)
        self.results: dict[str, ViewResult] = {}
        self._sessions: dict[int, _YearSession] = {}
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._unmapped: list[dict[str, Any]] = []
        self._added: set[int] = set()

    def unchanged(self) -> dict[str, Any] | None:
        """The committed manifest, when it was built from exactly these inputs."""
        self.lake.invalidate()
        manifest = self.lake.read_json(self.lake.path(GOLD_DIR, MANIFEST))
        if manifest and manifest.get("inputs") == self.inputs:
            return dict(manifest)
        return None

    def session(self, year: int) -> _YearSession:
        if year not in self._sessions:
            s = _YearSession(
                self.lake, year, self.tables[year], self.descriptor_map, self.as_of, self.threads
            )
            self._sessions[year] = s
        return self._sessions[year]

    def run_view(self, view: str) -> ViewResult:
        """Build one view for every school year; it must come after the views it reads."""
        started = time.perf_counter()
        missing = [d for d in _view_deps(view) if d not in self.results]
        if missing:
            raise GoldError(f"{view} reads {', '.join(sorted(missing))}, which is not built yet.")
        result = ViewResult(view, 0, 0.0)
        for year in self.years:
            if self._tmp is None and not self.lake.local:
                self._tmp = tempfile.TemporaryDirectory(prefix="edfi-gold-")
            rows, columns, path = self._build(
                self.session(year), view, year, self._tmp.name if self._tmp else None
            )
            result.rows += rows
            result.files.append(path)
            result.columns = columns
        result.seconds = round(time.perf_counter() - started, 3)
        self.results[view] = result
        return result

    def build_year(self, year: int, views: Iterable[str] | None = None) -> YearPart:
        """Every view of one school year, in a session of its own: the unit one worker
        builds. Years share nothing but the version folder, so they can be built at once,
        in threads or in other processes (this object pickles while it holds no session)."""
        if year not in self.tables:
            raise GoldError(f"This build holds no school year {year}; it holds {self.years}.")
        began = dt.datetime.now(dt.UTC)
        session = _YearSession(
            self.lake, year, self.tables[year], self.descriptor_map, self.as_of, self.threads
        )
        results: list[ViewResult] = []
        try:
            with tempfile.TemporaryDirectory(prefix="edfi-gold-") as tmp:
                for view in view_order(views):
                    started = time.perf_counter()
                    rows, columns, path = self._build(session, view, year, tmp)
                    seconds = round(time.perf_counter() - started, 3)
                    results.append(ViewResult(view, rows, seconds, [path], columns))
            unmapped = session.unmapped()
        finally:
            session.close()
        return YearPart(year, results, unmapped, began, dt.datetime.now(dt.UTC))

    def add_year(self, part: YearPart) -> None:
        """Take one year's views into the version (years in build order, as ``run_view``)."""
        for r in part.results:
            merged = self.results.setdefault(r.view, ViewResult(r.view, 0, 0.0))
            merged.rows += r.rows
            merged.seconds = round(merged.seconds + r.seconds, 3)
            merged.files.extend(r.files)
            merged.columns = r.columns
        self._unmapped.extend(part.unmapped)
        self._added.add(part.year)

    def _build(
        self, s: _YearSession, view: str, year: int, tmp: str | None
    ) -> tuple[int, list[str], str]:
        """One view of one year into the version folder; registered for the views after it."""
        sql = _sql(view)
        s.ensure_tables(sql)
        path = f"{self.base}/{view}/school_year={year}.parquet"
        self.lake.makedirs(f"{self.base}/{view}")
        try:
            s.ensure_helpers(sql)
            rows, columns = self._write(s, sql, path, tmp)
        except duckdb.Error as exc:
            raise GoldError(f"{view} (school year {year}) failed: {exc}") from exc
        s.register_output(view, [path])
        return rows, columns, path

    def _write(
        self, s: _YearSession, sql: str, path: str, tmp: str | None
    ) -> tuple[int, list[str]]:
        """One view's rows as a parquet file, written by DuckDB's own parallel writer: on
        local disk in place, on other storage into a local file (in ``tmp``) then uploaded."""
        columns = [c for c, *_ in s.con.sql(sql).description]
        target = path
        if not self.lake.local:
            assert tmp is not None
            target = f"{tmp}/{uuid.uuid4().hex}.parquet"
        # Without statistics propagation every column is written as nullable (OPTIONAL), as
        # arrow writes it; with it, DuckDB marks the columns that happen to hold no null as
        # REQUIRED, so a view's schema would depend on its data.
        s.con.execute("SET disabled_optimizers = 'statistics_propagation'")
        try:
            copied = s.con.execute(
                f"COPY ({sql}) TO {_sql_str(target)} (FORMAT parquet, COMPRESSION zstd)"
            ).fetchall()
        finally:
            s.con.execute("RESET disabled_optimizers")
        if target != path:
            self.lake.fs.put_file(target, path)
            os.remove(target)
        return int(copied[0][0]), columns

    def unmapped(self) -> list[dict[str, Any]]:
        """Descriptor values of mapped types, used in the data, that the map ties to nothing
        (of the years built here by ``run_view`` and those taken in by ``add_year``)."""
        rows = list(self._unmapped)
        for year in self.years:
            if year not in self._added:
                rows.extend(self.session(year).unmapped())
        return merge_unmapped(rows)

    def commit(self, unmapped: Sequence[Mapping[str, Any]] = ()) -> dict[str, Any]:
        """Name the version's files in the manifest (the last write), then drop older versions."""
        manifest = {
            "version": self.version,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "as_of": self.as_of.isoformat(),
            "inputs": self.inputs,
            "school_years": self.years,
            "descriptor_map": self.map_source,
            "views": {
                v: {
                    "files": [self.lake.relative(f) for f in r.files],  # the lake can move
                    "rows": r.rows,
                    "columns": r.columns,
                }
                for v, r in self.results.items()
            },
            "unmapped_descriptors": list(unmapped),
        }
        self.lake.write_json(self.lake.path(GOLD_DIR, MANIFEST), manifest)
        self.collect_garbage()
        return manifest

    def collect_garbage(self) -> None:
        try:
            entries = self.lake.fs.ls(self.lake.path(GOLD_DIR), detail=False)
        except FileNotFoundError:
            return
        for entry in entries:
            name = entry.rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("v") and name != self.version:
                self.lake.fs.rm(entry, recursive=True)

    def abort(self) -> None:
        """Drop this version's files (the committed version stays as it was)."""
        self.close()
        self.lake.rm(self.base)

    def close(self) -> None:
        for s in self._sessions.values():
            s.close()
        self._sessions.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def build_gold(
    lake: Lake,
    *,
    descriptor_map: Sequence[MapRow] | None = None,
    map_source: str = "",
    school_years: Sequence[int] | None = None,
    views: Iterable[str] | None = None,
    as_of: dt.datetime | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Build and commit the views in one call (what the flow does task by task)."""
    build = GoldBuild(
        lake,
        descriptor_map=descriptor_map,
        map_source=map_source,
        school_years=school_years,
        as_of=as_of,
        threads=threads,
    )
    try:
        for view in view_order(views):
            build.run_view(view)
        unmapped = build.unmapped()
        manifest = build.commit(unmapped)
    except BaseException:
        build.abort()
        raise
    build.close()
    return manifest


# -- reading gold -------------------------------------------------------------------------


def gold_manifest(lake: Lake) -> dict[str, Any]:
    lake.invalidate()
    manifest = lake.read_json(lake.path(GOLD_DIR, MANIFEST))
    if manifest is None:
        raise GoldError(f"The lake at {lake.url} has no gold views yet; run the gold flow.")
    return dict(manifest)


def read_view(lake: Lake, view: str) -> pa.Table:
    """A committed gold view as one arrow table (all school years)."""
    manifest = gold_manifest(lake)
    if view not in manifest["views"]:
        raise GoldError(f"The gold manifest of {lake.url} has no view {view!r}.")
    tables = []
    for name in manifest["views"][view]["files"]:
        with lake.fs.open(lake.resolve(name), "rb") as fh:
            tables.append(pq.read_table(fh))
    return pa.concat_tables(tables, promote_options="default")
