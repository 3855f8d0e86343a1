"""The student-ID crosswalk: which column of a vendor file holds which Ed-Fi student ID.

Vendor files carry a student ID, but rarely say which: a state ID, a district
ID, the vendor's own. The earthmover bundles' ``student_ids`` package answers
it by scoring every pair (candidate source column, Ed-Fi ID type) by its match
rate against an Ed-Fi roster, then applying the best pair at or above a
threshold. This module keeps the package's semantics and does it in one pass
of DuckDB instead of one join per pair:

- the roster is the ``studentEducationOrganizationAssociations`` of the target
  (each row's ``studentIdentificationCodes``; the first code of each
  identification system counts, as in the package) plus ``studentUniqueId``;
- a pair's match rate is the share of all input rows whose value, with a
  trailing ``.0`` removed (IDs that passed through a spreadsheet), is one of the
  roster's non-empty values of that ID type;
- the best pair is the highest rate at or above the threshold, ties broken by
  the column names, descending, as the package sorts;
- matched rows get the student's ``studentUniqueId`` in a new column
  (``edFi_studentUniqueID``, the name the package gives it); the other rows are
  returned with their original columns, for the user to fix.

One deliberate difference: a value that the roster gives to more than one
student is not a match (the package would emit the row once per student, so a
score would land on two students); such rows go with the unmatched ones.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .lake import Lake

XWALK_COLUMN = "edFi_studentUniqueID"
"""The column the crosswalk adds (the bundles read it through ``STUDENT_ID_NAME``)."""

UNIQUE_ID = "studentUniqueId"


class CrosswalkError(ValueError):
    """Input the crosswalk cannot score (no such column, an empty file)."""


@dataclass(frozen=True, slots=True)
class MatchRate:
    """How many input rows one (source column, Ed-Fi ID type) pair matches."""

    source_column: str
    edfi_column: str
    matches: int
    rows: int

    @property
    def rate(self) -> float:
        return self.matches / self.rows if self.rows else 0.0

    def as_row(self) -> dict[str, object]:
        return {
            "source_column_name": self.source_column,
            "edfi_column_name": self.edfi_column,
            "num_matches": self.matches,
            "num_rows": self.rows,
            "match_rate": self.rate,
        }


def roster_table(records: Iterable[Mapping[str, object]]) -> pa.Table:
    """Long form of a roster: one (studentUniqueId, id_type, value) row per student ID.

    ``records`` are studentEducationOrganizationAssociations as the API serves them.
    """
    uids: list[str] = []
    types: list[str] = []
    values: list[str] = []
    for record in records:
        student = record.get("studentReference")
        uid = str(student.get(UNIQUE_ID, "")) if isinstance(student, Mapping) else ""
        if not uid:
            continue
        uids.append(uid)
        types.append(UNIQUE_ID)
        values.append(uid)
        seen: set[str] = set()
        codes = record.get("studentIdentificationCodes") or []
        for code in codes if isinstance(codes, list) else []:
            system = str(code.get("studentIdentificationSystemDescriptor", "")).split("#")[-1]
            value = str(code.get("identificationCode") or "")
            if system and system not in seen:  # the first code of a system counts
                seen.add(system)
                if value:
                    uids.append(uid)
                    types.append(system)
                    values.append(value)
    return pa.table({"student_unique_id": uids, "id_type": types, "value": values})


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _normalized(column: str) -> str:
    col = _ident(column)
    return f"CASE WHEN {col} LIKE '%.0' THEN left({col}, length({col}) - 2) ELSE {col} END"


class Crosswalk:
    """Scores and applies the crosswalk for one input table against one roster."""

    def __init__(self, data: pa.Table, roster: pa.Table, id_types: Sequence[str] | None = None):
        self.con = duckdb.connect()
        self.columns = list(data.column_names)
        types = sorted(set(roster.column("id_type").to_pylist()) - {UNIQUE_ID})
        self.id_types = [*(id_types if id_types is not None else types), UNIQUE_ID]
        self.con.register("input_raw", data)
        self.con.execute(
            "CREATE TABLE input AS SELECT row_number() OVER () AS __row, * FROM input_raw"
        )
        self.con.register("roster", roster)
        self.rows = int(self.con.execute("SELECT count(*) FROM input").fetchone()[0])  # type: ignore[index]

    def match_rates(self, candidates: Sequence[str]) -> list[MatchRate]:
        """Every pair's match rate, in one grouped join over the unpivoted input."""
        missing = [c for c in candidates if c not in self.columns]
        if missing:
            raise CrosswalkError(
                f"The input has no column {', '.join(map(repr, missing))}; it has "
                f"{', '.join(map(repr, self.columns))}."
            )
        if not self.rows:
            raise CrosswalkError("The input has no rows to match.")
        unions = " UNION ALL ".join(
            f"SELECT {_normalized(c)}::VARCHAR AS value, {i} AS col FROM input"
            for i, c in enumerate(candidates)
        )
        types = ", ".join(f"'{t.replace(chr(39), chr(39) * 2)}'" for t in self.id_types)
        found = self.con.execute(
            f"""
            WITH source AS ({unions}),
                 ids AS (SELECT DISTINCT id_type, value FROM roster
                         WHERE value <> '' AND id_type IN ({types}))
            SELECT col, id_type, count(*) FROM source JOIN ids USING (value) GROUP BY ALL
            """
        ).fetchall()
        counts = {(candidates[col], t): int(n) for col, t, n in found}
        return [
            MatchRate(c, t, counts.get((c, t), 0), self.rows)
            for c in candidates
            for t in self.id_types
        ]

    def apply(self, best: MatchRate) -> tuple[pa.Table, pa.Table]:
        """(rows with ``edFi_studentUniqueID`` added, rows left unmatched with their columns)."""
        original = ", ".join(f"i.{_ident(c)}" for c in self.columns)
        self.con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE xwalked AS
            WITH pairs AS (
                SELECT value, min(student_unique_id) AS uid,
                       count(DISTINCT student_unique_id) AS students
                FROM roster WHERE id_type = ? AND value <> '' GROUP BY value)
            SELECT i.__row, {original},
                   CASE WHEN p.students = 1 THEN p.uid END AS {_ident(XWALK_COLUMN)}
            FROM input i LEFT JOIN pairs p
              ON p.value = ({_normalized(best.source_column)})::VARCHAR
            """,
            [best.edfi_column],
        )
        matched = self.con.sql(
            f"SELECT * EXCLUDE (__row) FROM xwalked WHERE {_ident(XWALK_COLUMN)} IS NOT NULL "
            "ORDER BY __row"
        ).to_arrow_table()
        unmatched = self.con.sql(
            f"SELECT * EXCLUDE (__row, {_ident(XWALK_COLUMN)}) FROM xwalked "
            f"WHERE {_ident(XWALK_COLUMN)} IS NULL ORDER BY __row"
        ).to_arrow_table()
        return matched, unmatched

    def close(self) -> None:
        self.con.close()


def best_pair(rates: Sequence[MatchRate], required: float) -> MatchRate | None:
    """The pair the package applies: the highest rate at or above ``required``.

    Ties go to the pair whose (source column, Ed-Fi column) sorts last, as the
    package sorts all three descending.
    """
    eligible = [r for r in rates if r.rate >= required]
    if not eligible:
        return None
    return max(eligible, key=lambda r: (r.rate, r.source_column, r.edfi_column))


def read_csv(data: bytes) -> pa.Table:
    """A vendor CSV with every cell a string (IDs must not become numbers), BOM dropped."""
    text = data.decode("utf-8-sig")
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise CrosswalkError("The input file is empty (no header row).") from None
    columns: list[list[str | None]] = [[] for _ in header]
    for line in reader:
        for i in range(len(header)):
            value = line[i] if i < len(line) else ""
            columns[i].append(value if value != "" else None)
    return pa.table(
        {name: pa.array(col, pa.string()) for name, col in zip(header, columns, strict=True)}
    )


def write_csv(table: pa.Table) -> bytes:
    """Rows as CSV with the original header; empty cells stay empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow(["" if v is None else v for v in row.values()])
    return out.getvalue().encode()


# -- the roster from an extract lake ------------------------------------------------------
ROSTER_TABLE = "ed-fi/studentEducationOrganizationAssociations"


def lake_roster(lake: Lake, school_year: int | None) -> list[dict[str, Any]]:
    """The associations an extract committed for one school year (0: a year-less API).

    Only the committed table is read (its state manifest names the files), so a run
    writing the table at the same time is not half-seen.
    """
    year = school_year or 0
    state = lake.read_json(lake.path("state", ROSTER_TABLE, f"school_year={year}.json"))
    if not state:
        raise CrosswalkError(
            f"The lake at {lake.url} has no committed {ROSTER_TABLE} for school year {year}; "
            "run the extract flow for that resource (or read the roster from the API)."
        )
    records: list[dict[str, Any]] = []
    columns = ["studentReference", "studentIdentificationCodes"]
    for path in lake.files_of(state):
        with lake.fs.open(path, "rb") as fh:
            records.extend(pq.read_table(fh, columns=columns).to_pylist())
    return records


# -- match rates kept between runs -------------------------------------------------------
@dataclass(frozen=True, slots=True)
class KeptRates:
    """Match rates of one bundle at one target (its id holds the school year) on the lake.

    The package's ``MATCH_RATES_SOURCE_TYPE=file``: a vendor's layout does not change
    from one drop to the next, so later files reuse the first file's choice.
    """

    lake: Lake
    target: str
    bundle: str

    @property
    def path(self) -> str:
        return self.lake.path("bundle", "match_rates", self.target, f"{slug(self.bundle)}.json")

    def load(self, candidates: Sequence[str]) -> list[MatchRate] | None:
        kept = self.lake.read_json(self.path)
        if not kept or set(kept.get("candidates", [])) != set(candidates):
            return None
        return [MatchRate(**r) for r in kept["rates"]]

    def save(self, candidates: Sequence[str], rates: Sequence[MatchRate]) -> None:
        self.lake.write_json(
            self.path,
            {
                "candidates": list(candidates),
                "rates": [
                    {
                        "source_column": r.source_column,
                        "edfi_column": r.edfi_column,
                        "matches": r.matches,
                        "rows": r.rows,
                    }
                    for r in rates
                ],
            },
        )


def slug(name: str) -> str:
    """A name as one safe path segment."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "bundle"


@dataclass(frozen=True, slots=True)
class CrosswalkResult:
    """What the crosswalk did to one input file."""

    chosen: MatchRate | None
    rates: list[MatchRate]
    matched: int
    unmatched: int
    reused: bool

    def best(self) -> MatchRate:
        return max(self.rates, key=lambda r: (r.rate, r.source_column, r.edfi_column))

    def rows(self) -> list[dict[str, object]]:
        """The rates best first, the chosen pair marked (the run's table artifact)."""
        return [
            {**r.as_row(), "chosen": r == self.chosen}
            for r in sorted(self.rates, key=lambda r: -r.rate)
        ]


def crosswalk_file(
    data: bytes,
    roster: pa.Table,
    candidates: Sequence[str],
    *,
    required: float,
    kept: KeptRates | None = None,
    force: bool = False,
) -> tuple[CrosswalkResult, bytes, bytes]:
    """Score (or reuse the kept rates), apply the best pair: (result, crosswalked CSV,
    unmatched CSV). Below the threshold the crosswalked file has the header only, so
    the bundle still makes what is not student-level (assessments, descriptors)."""
    table = read_csv(data)
    x = Crosswalk(table, roster)
    try:
        rates = None if force or kept is None else kept.load(candidates)
        reused = rates is not None
        if rates is None:
            rates = x.match_rates(candidates)
            if kept is not None:
                kept.save(candidates, rates)
        chosen = best_pair(rates, required)
        if chosen is None:
            matched = pa.table(
                {c: pa.array([], pa.string()) for c in [*table.column_names, XWALK_COLUMN]}
            )
            unmatched = table
        else:
            matched, unmatched = x.apply(chosen)
    finally:
        x.close()
    result = CrosswalkResult(chosen, rates, matched.num_rows, unmatched.num_rows, reused)
    return result, write_csv(matched), write_csv(unmatched)
