"""The LMS loader on SQLite and on a real PostgreSQL: soft deletes, reruns, bad input."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr

from edfi.lms import LmsDatabaseError, LmsFileError, load_directory
from edfi.lms.read import parse_datetime
from edfi.lms.schema import tables
from edfi.lms.store import create_engine
from edfi.lms.udm import BY_NAME

PG_URL = os.environ.get(
    "EDFI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
D1 = datetime(2024, 9, 2, 6, 0)
D2 = datetime(2024, 9, 3, 6, 0)
D3 = datetime(2024, 9, 4, 6, 0)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[sa.URL]:
    """A fresh database on the test PostgreSQL server for this session (dropped after)."""
    url = sa.make_url(PG_URL)
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"lms_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.skip(f"PostgreSQL not reachable at {url.render_as_string()} ({exc.orig})")
    try:
        yield url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sa.Engine]:
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'lms.sqlite'}")
    else:
        server: sa.URL = request.getfixturevalue("pg_server")
        eng = create_engine(server)
        with eng.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS lms CASCADE"))
    yield eng
    eng.dispose()


def write(root: Path, relative: str, resource: str, rows: list[dict[str, Any]], **kw: Any) -> Path:
    """A UDM file: every column of the resource, values from ``rows`` (else empty)."""
    columns = kw.get("columns") or [c.name for c in BY_NAME[resource].columns]
    lines = [",".join(columns)]
    for row in rows:
        lines.append(",".join(str(row.get(c, "")) for c in columns))
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(lines) + "\n"
    path.write_bytes((b"\xef\xbb\xbf" if kw.get("bom") else b"") + text.encode())
    return path


def user(ident: str, system: str = "Canvas", lmd: str = "2024-09-01 00:00:00", **kw: Any) -> dict:
    return {
        "SourceSystemIdentifier": ident,
        "SourceSystem": system,
        "UserRole": "student",
        "SISUserIdentifier": f"S{ident}",
        "Name": kw.get("Name", f"User {ident}"),
        "EmailAddress": f"{ident}@x.org",
        "CreateDate": "2024-09-01 00:00:00",
        "LastModifiedDate": lmd,
    }


def section(ident: str, system: str = "Canvas") -> dict:
    return {
        "SourceSystemIdentifier": ident,
        "SourceSystem": system,
        "SISSectionIdentifier": f"SIS-{ident}",
        "Title": f"Section {ident}",
        "CreateDate": "2024-09-01 00:00:00",
        "LastModifiedDate": "2024-09-01 00:00:00",
    }


def assignment(ident: str, sec: str, types: str = "", system: str = "Canvas") -> dict:
    return {
        "SourceSystemIdentifier": ident,
        "SourceSystem": system,
        "LMSSectionSourceSystemIdentifier": sec,
        "Title": f"Assignment {ident}",
        "AssignmentCategory": "assignment",
        "SubmissionType": types,
        "MaxPoints": "10",
        "DueDateTime": "2024-09-10T23:59:00Z",
        "CreateDate": "2024-09-01 00:00:00",
        "LastModifiedDate": "2024-09-01 00:00:00",
    }


def submission(ident: str, asg: str, usr: str, grade: str = "A") -> dict:
    return {
        "SourceSystemIdentifier": ident,
        "SourceSystem": "Canvas",
        "AssignmentSourceSystemIdentifier": asg,
        "LMSUserSourceSystemIdentifier": usr,
        "SubmissionStatus": "graded",
        "EarnedPoints": "9",
        "Grade": grade,
        "CreateDate": "2024-09-01 00:00:00",
        "LastModifiedDate": "2024-09-01 00:00:00",
    }


def rows(engine: sa.Engine, resource: str, *cols: str) -> set[tuple[Any, ...]]:
    """(SourceSystemIdentifier, SourceSystem, DeletedAt, *cols) of every row of a table."""
    t = tables(engine.dialect.name).main[resource]
    query = sa.select(
        t.c.SourceSystemIdentifier, t.c.SourceSystem, t.c.DeletedAt, *(t.c[c] for c in cols)
    )
    with engine.connect() as conn:
        return {tuple(r) for r in conn.execute(query)}


def count(engine: sa.Engine, table: sa.Table) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_missing_user_soft_deleted_other_source_system_untouched(
    engine: sa.Engine, tmp_path: Path
) -> None:
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("1"), user("2")])
    write(root, "users/2024-09-02-06-05-00.csv", "users", [user("7", "Schoology")])
    load_directory(str(root), engine, now=D1)
    write(root, "users/2024-09-03-06-00-00.csv", "users", [user("1")])
    result = load_directory(str(root), engine, now=D2)
    assert [(f.resource, f.deleted, f.skipped) for f in result.files] == [
        ("users", 0, True),
        ("users", 0, True),
        ("users", 1, False),
    ]
    assert rows(engine, "users") == {
        ("1", "Canvas", None),
        ("2", "Canvas", D2),
        ("7", "Schoology", None),
    }


def test_reappearing_row_restored_and_changed_row_updated(
    engine: sa.Engine, tmp_path: Path
) -> None:
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("1"), user("2")])
    write(root, "users/2024-09-03-06-00-00.csv", "users", [user("1")])
    load_directory(str(root), engine, now=D2)
    assert rows(engine, "users", "Name") == {
        ("1", "Canvas", None, "User 1"),
        ("2", "Canvas", D2, "User 2"),
    }
    # user 2 comes back unchanged; user 1 changes with a new LastModifiedDate;
    # a change without a new LastModifiedDate is not a change (as the Toolkit decides)
    write(
        root,
        "users/2024-09-04-06-00-00.csv",
        "users",
        [user("1", lmd="2024-09-04 01:00:00", Name="Renamed"), user("2", Name="Ignored")],
    )
    result = load_directory(str(root), engine, now=D3)
    assert [(f.inserted, f.updated, f.deleted) for f in result.loaded] == [(0, 2, 0)]
    assert rows(engine, "users", "Name", "LastModifiedDate") == {
        ("1", "Canvas", None, "Renamed", datetime(2024, 9, 4, 1, 0)),
        ("2", "Canvas", None, "Ignored", datetime(2024, 9, 1)),
    }


def test_section_scoped_and_assignment_scoped_deletes(engine: sa.Engine, tmp_path: Path) -> None:
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("u1"), user("u2")])
    write(root, "sections/2024-09-02-06-00-00.csv", "sections", [section("s1"), section("s2")])
    types = "\"['online_upload', 'online_text_entry']\""
    for sec in ("s1", "s2"):
        write(
            root,
            f"section={sec}/assignments/2024-09-02-06-00-00.csv",
            "assignments",
            [assignment(f"{sec}-a1", sec, types), assignment(f"{sec}-a2", sec, "['on_paper']")],
        )
        for asg in (f"{sec}-a1", f"{sec}-a2"):
            write(
                root,
                f"section={sec}/assignment={asg}/submissions/2024-09-02-06-00-00.csv",
                "submissions",
                [submission(f"{asg}-u1", asg, "u1"), submission(f"{asg}-u2", asg, "u2")],
            )
    load_directory(str(root), engine, now=D1)
    # day 2: s1 drops a2 and a1 loses a type; s1-a1 drops u2's submission
    write(
        root,
        "section=s1/assignments/2024-09-03-06-00-00.csv",
        "assignments",
        [assignment("s1-a1", "s1", "['online_upload']")],
    )
    write(
        root,
        "section=s1/assignment=s1-a1/submissions/2024-09-03-06-00-00.csv",
        "submissions",
        [submission("s1-a1-u1", "s1-a1", "u1")],
    )
    load_directory(str(root), engine, now=D2)
    assert rows(engine, "assignments") == {
        ("s1-a1", "Canvas", None),
        ("s1-a2", "Canvas", D2),
        ("s2-a1", "Canvas", None),
        ("s2-a2", "Canvas", None),
    }
    assert {r for r in rows(engine, "submissions") if r[2] is not None} == {
        ("s1-a1-u2", "Canvas", D2)
    }
    assert len(rows(engine, "submissions")) == 8
    t = tables(engine.dialect.name)
    a = t.main["assignments"]
    st = t.submission_types
    query = sa.select(a.c.SourceSystemIdentifier, st.c.SubmissionType, st.c.DeletedAt).join(
        a, a.c.AssignmentIdentifier == st.c.AssignmentIdentifier
    )
    with engine.connect() as conn:
        got = {tuple(r) for r in conn.execute(query)}
    assert got == {
        ("s1-a1", "online_upload", None),
        ("s1-a1", "online_text_entry", D2),
        ("s1-a2", "on_paper", D2),
        ("s2-a1", "online_upload", None),
        ("s2-a1", "online_text_entry", None),
        ("s2-a2", "on_paper", None),
    }
    # day 3: the type comes back
    write(
        root,
        "section=s1/assignments/2024-09-04-06-00-00.csv",
        "assignments",
        [assignment("s1-a1", "s1", types), assignment("s1-a2", "s1", "['on_paper']")],
    )
    load_directory(str(root), engine, now=D3)
    with engine.connect() as conn:
        got = {tuple(r) for r in conn.execute(query)}
    assert {r for r in got if r[2] is not None} == set()
    assert rows(engine, "assignments") == {
        (f"{s}-{a}", "Canvas", None) for s in ("s1", "s2") for a in ("a1", "a2")
    }


def test_processed_files_skipped_on_rerun(engine: sa.Engine, tmp_path: Path) -> None:
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("1"), user("2")])
    first = load_directory(str(root), engine, now=D1)
    assert first.summary()["inserted"] == 2
    # a changed file under a processed name is not read again
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("1")])
    again = load_directory(str(root), engine, now=D2)
    assert again.summary() == {
        "files_loaded": 0,
        "files_skipped": 1,
        "rows": 0,
        "inserted": 0,
        "updated": 0,
        "deleted": 0,
        "parentless": 0,
        "exceptions": [],
    }
    assert rows(engine, "users") == {("1", "Canvas", None), ("2", "Canvas", None)}
    t = tables(engine.dialect.name).processed_files
    with engine.connect() as conn:
        recorded = [tuple(r) for r in conn.execute(sa.select(t.c.ResourceName, t.c.NumberOfRows))]
    assert recorded == [("users", 2)]


def test_parentless_rows_counted_and_written(engine: sa.Engine, tmp_path: Path) -> None:
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("u1")])
    write(root, "sections/2024-09-02-06-00-00.csv", "sections", [section("s1")])
    write(
        root,
        "section=s1/assignments/2024-09-02-06-00-00.csv",
        "assignments",
        [assignment("a1", "s1"), assignment("a9", "nope")],
    )
    write(
        root,
        "section=s1/assignment=a1/submissions/2024-09-02-06-00-00.csv",
        "submissions",
        [submission("a1-u1", "a1", "u1"), submission("a1-u9", "a1", "u9")],
    )
    result = load_directory(str(root), engine, now=D1)
    by = {f.resource: f for f in result.files}
    assert (by["assignments"].inserted, by["assignments"].parentless) == (1, 1)
    assert (by["submissions"].inserted, by["submissions"].parentless) == (1, 1)
    assert result.parentless == 2
    text = Path(by["submissions"].exceptions_path or "").read_text()
    assert by["submissions"].exceptions_path == str(
        root / "_exceptions/section=s1/assignment=a1/submissions/2024-09-02-06-00-00.csv"
    )
    lines = text.splitlines()
    assert lines[0].startswith("Line,SourceSystemIdentifier,SourceSystem,")
    assert lines[0].endswith(",ExceptionReason")
    assert len(lines) == 2
    assert lines[1].startswith("3,a1-u9,Canvas,")
    assert lines[1].endswith(
        "LMSUserSourceSystemIdentifier 'u9' is not a known users record of 'Canvas'"
    )
    assert rows(engine, "submissions") == {("a1-u1", "Canvas", None)}
    # the exceptions folder is never read back as input
    assert load_directory(str(root), engine, now=D2).summary()["files_loaded"] == 0


def test_bom_case_insensitive_folders_and_date_formats(engine: sa.Engine, tmp_path: Path) -> None:
    root = tmp_path / "x"
    write(root, "Users/2024-09-02-06-00-00.csv", "users", [user("u1")], bom=True)
    write(root, "SECTIONS/2024-09-02-06-00-00.csv", "sections", [section("s1")], bom=True)
    asg = assignment("a1", "s1")
    asg["DueDateTime"] = "9/10/2024 11:59 PM"
    asg["StartDateTime"] = "2024-09-01T08:00:00-05:00"
    write(root, "Section=s1/Assignments/2024-09-02-06-00-00.csv", "assignments", [asg], bom=True)
    sub = submission("a1-u1", "a1", "u1")
    sub["SubmissionDateTime"] = "9/9/2024 14:30"
    write(
        root,
        "SECTION=s1/Assignment=a1/Submissions/2024-09-02-06-00-00.csv",
        "submissions",
        [sub],
        bom=True,
    )
    result = load_directory(str(root), engine, now=D1)
    assert [(f.resource, f.inserted) for f in result.files] == [
        ("users", 1),
        ("sections", 1),
        ("assignments", 1),
        ("submissions", 1),
    ]
    assert rows(engine, "assignments", "DueDateTime", "StartDateTime") == {
        ("a1", "Canvas", None, datetime(2024, 9, 10, 23, 59), datetime(2024, 9, 1, 13, 0))
    }
    assert rows(engine, "submissions", "SubmissionDateTime") == {
        ("a1-u1", "Canvas", None, datetime(2024, 9, 9, 14, 30))
    }


def test_missing_column_names_file_and_column_nothing_applied(
    engine: sa.Engine, tmp_path: Path
) -> None:
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("u1")])
    cols = [c.name for c in BY_NAME["sections"].columns if c.name != "Title"]
    bad = write(root, "sections/2024-09-02-06-00-00.csv", "sections", [section("s1")], columns=cols)
    with pytest.raises(LmsFileError) as info:
        load_directory(str(root), engine, now=D1)
    assert info.value.path == str(bad)
    assert info.value.column == "Title"
    assert str(info.value).startswith(f"{bad}, column Title: required column missing")
    t = tables(engine.dialect.name)
    assert count(engine, t.processed_files) == 0
    assert count(engine, t.main["users"]) == 0


def test_malformed_date_names_line_and_column_nothing_applied(
    engine: sa.Engine, tmp_path: Path
) -> None:
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("u1")])
    write(root, "sections/2024-09-02-06-00-00.csv", "sections", [section("s1")])
    sub = submission("a1-u1", "a1", "u1")
    sub["SubmissionDateTime"] = "2021-04-31 04:32:00"
    bad = write(
        root,
        "section=s1/assignment=a1/submissions/2024-09-02-06-00-00.csv",
        "submissions",
        [submission("a1-u2", "a1", "u1"), sub],
    )
    with pytest.raises(LmsFileError) as info:
        load_directory(str(root), engine, now=D1)
    assert str(info.value) == (
        f"{bad}, line 3, column SubmissionDateTime: '2021-04-31 04:32:00' is not a date and "
        "time (use YYYY-mm-dd HH:MM:SS)"
    )
    t = tables(engine.dialect.name)
    assert count(engine, t.processed_files) == 0
    assert count(engine, t.main["users"]) == 0


def test_generated_three_days_end_in_exact_tables(engine: sa.Engine, tmp_path: Path) -> None:
    from sandbox.lms_csv import build_extract, write_day

    extract = build_extract(60, seed=7, days=3)
    root = tmp_path / "extract"
    # an independent model: each file replaces its scope's rows; missing ones are deleted then
    state: dict[tuple[str, str, str], tuple[str | None, datetime | None]] = {}
    scope_of: dict[tuple[str, str, str], tuple[str, ...]] = {}
    for day, files in enumerate(extract.days):
        write_day(extract, day, str(root))
        result = load_directory(str(root), engine, now=extract.day_times[day])
        assert result.parentless == 0
        for f in files:
            res = BY_NAME[f.resource]
            parts = f.relative.split("/")
            scope: tuple[str, ...] = (f.resource, f.source_system)
            if res.scope == "section":
                scope += (parts[0].split("=", 1)[1],)
            elif res.scope == "assignment":
                scope += (parts[1].split("=", 1)[1],)
            present = set()
            for r in f.rows:
                key = (f.resource, r["SourceSystem"], r["SourceSystemIdentifier"])
                present.add(key)
                scope_of[key] = scope
                marker = r.get("Name") or r.get("Grade") or r.get("Title")
                state[key] = (marker, None)
            for key, (marker, deleted) in list(state.items()):
                if scope_of[key] == scope and key not in present and deleted is None:
                    state[key] = (marker, extract.day_times[day])
    marker_col = {
        "users": "Name",
        "submissions": "Grade",
        "assignments": "Title",
        "grades": "Grade",
    }
    for res in BY_NAME.values():
        col = marker_col.get(res.name)
        got = rows(engine, res.name, *([col] if col else []))
        want = {
            (k[2], k[1], deleted, *([marker or None] if col else []))
            for k, (marker, deleted) in state.items()
            if k[0] == res.name
        }
        assert got == want, res.name
    summary = {
        res.name: len([k for k in state if k[0] == res.name and state[k][1] is not None])
        for res in BY_NAME.values()
    }
    assert summary["users"] == 0  # the user dropped on day 1 is back on day 2
    assert summary["assignments"] == 3  # one per LMS dropped on day 2
    assert summary["section-associations"] == 3  # one student per LMS leaves on day 2


def test_unreachable_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "x" / "users").mkdir(parents=True)
    url = "postgresql+psycopg://lms:Sup3r-Secret@127.0.0.1:1/lms?connect_timeout=3"
    with pytest.raises(LmsDatabaseError) as info:
        load_directory(str(tmp_path / "x"), url)
    message = str(info.value)
    assert message.startswith(
        "Cannot connect to the LMS postgresql database 'lms' on 127.0.0.1:1 as user 'lms': "
    )
    assert "Sup3r-Secret" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_wrong_credentials_never_show_the_password(pg_server: sa.URL, tmp_path: Path) -> None:
    from blocks import LmsDatabase

    (tmp_path / "x" / "users").mkdir(parents=True)
    block = LmsDatabase(
        dialect="postgresql",
        host=pg_server.host,
        port=pg_server.port or 5432,
        database=pg_server.database or "test",
        username="no_such_lms_user",
        password=SecretStr("Sup3r-Secret-pw"),
    )
    assert "Sup3r-Secret-pw" not in str(block.url()) and "Sup3r-Secret-pw" not in repr(block)
    with pytest.raises(LmsDatabaseError) as info:
        load_directory(str(tmp_path / "x"), block.engine())
    message = str(info.value)
    assert "no_such_lms_user" in message
    assert "Sup3r-Secret-pw" not in message
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_sqlite_block_is_the_default_store(tmp_path: Path) -> None:
    from blocks import LmsDatabase

    block = LmsDatabase(database=str(tmp_path / "lms.sqlite"))
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("1")])
    result = load_directory(str(root), block.engine(), now=D1)
    assert result.migrations == ["0001-lms-schema"]
    assert (tmp_path / "lms.sqlite").is_file()
    assert load_directory(str(root), block.engine()).migrations == []


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2020-08-20 12:34:56", datetime(2020, 8, 20, 12, 34, 56)),
        (" 2021-05-01 02:00:00", datetime(2021, 5, 1, 2, 0)),
        ("2020-08-20T12:34:56Z", datetime(2020, 8, 20, 12, 34, 56)),
        ("2020-08-20T12:34:56.250+02:00", datetime(2020, 8, 20, 10, 34, 56, 250000)),
        ("8/23/2020 23:59", datetime(2020, 8, 23, 23, 59)),
        ("8/17/2020", datetime(2020, 8, 17)),
        ("12/30/2020 11:59:00 PM", datetime(2020, 12, 30, 23, 59)),
        ("2021-04-31 04:32:00", None),
        ("yesterday", None),
    ],
)
def test_date_formats(text: str, want: datetime | None) -> None:
    assert parse_datetime(text) == want


def test_sql_server_dialect_compiles_every_table_and_statement() -> None:
    """SQL Server is the same code as one more dialect; no server here, so: it compiles."""
    from sqlalchemy.dialects import mssql
    from sqlalchemy.schema import CreateIndex, CreateTable

    from edfi.lms.load import _plan, _types_plan

    dialect = mssql.dialect()
    t = tables("mssql")
    ddl = [str(CreateTable(table).compile(dialect=dialect)) for table in t.metadata.sorted_tables]
    ddl += [
        str(CreateIndex(ix).compile(dialect=dialect))
        for table in t.metadata.sorted_tables
        for ix in table.indexes
    ]
    assert "CREATE TABLE lms.[AssignmentSubmission]" in "\n".join(ddl)
    assert "[EdFiStudentId] UNIQUEIDENTIFIER NULL" in "\n".join(ddl)
    for res in BY_NAME.values():
        plan = _plan("mssql", res.name)
        for stmt in (plan.update, plan.insert, *plan.missing_parent):
            assert str(stmt.compile(dialect=dialect))
        if plan.missing_parents is not None:
            assert str(plan.missing_parents.compile(dialect=dialect))
        for soft in plan.soft_delete.values():
            if soft is not None:
                assert str(soft.compile(dialect=dialect)).startswith("UPDATE lms.[")
    types = _types_plan("mssql")
    for stmt in (types.restore, types.insert, *types.soft_delete.values()):
        assert str(stmt.compile(dialect=dialect))


def test_extract_read_from_s3(s3_lake: Any, tmp_path: Path) -> None:
    """The extract on S3 (a moto server over real HTTP): same load as from local disk."""
    from sandbox.lms_csv import build_extract, write_day

    extract = build_extract(60, seed=7, days=1)
    url = f"{s3_lake.url}/lms-extract"
    options = s3_lake.fsspec_options()
    write_day(extract, 0, url, options)
    engine = create_engine(f"sqlite:///{tmp_path / 'lms.sqlite'}")
    result = load_directory(url, engine, storage_options=options, now=D1)
    assert result.summary()["files_loaded"] == len(extract.days[0])
    assert result.summary()["inserted"] == sum(len(f.rows) for f in extract.days[0])
    again = load_directory(url, engine, storage_options=options, now=D2)
    assert again.summary()["files_skipped"] == len(extract.days[0])
    assert again.summary()["files_loaded"] == 0


def test_a_plain_sqlalchemy_sqlite_engine_works(tmp_path: Path) -> None:
    """A caller's own engine (no schema mapping) is made ready for the schema-less SQLite."""
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("1")])
    plain = sa.create_engine(f"sqlite:///{tmp_path / 'plain.sqlite'}")
    assert load_directory(str(root), plain, now=D1).summary()["inserted"] == 1
    with plain.connect() as conn:
        assert conn.exec_driver_sql("select Name from LMSUser").scalars().all() == ["User 1"]


def test_a_file_failing_midway_leaves_nothing_of_it(engine: sa.Engine, tmp_path: Path) -> None:
    """The database fails on a file's last statement: its inserts, updates and soft deletes
    roll back with it, earlier files stay, and the next run loads it whole."""
    root = tmp_path / "x"
    write(root, "users/2024-09-02-06-00-00.csv", "users", [user("1"), user("2")])
    load_directory(str(root), engine, now=D1)
    write(
        root,
        "users/2024-09-03-06-00-00.csv",
        "users",
        [user("1", lmd="2024-09-03 00:00:00", Name="Renamed"), user("3")],
    )

    def fail_on_record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT") and "processedfiles" in (
            statement.lower()
        ):
            raise sa.exc.OperationalError(statement, {}, Exception("server closed the connection"))

    sa.event.listen(engine, "before_cursor_execute", fail_on_record)
    try:
        with pytest.raises(LmsDatabaseError, match="server closed the connection"):
            load_directory(str(root), engine, now=D2)
    finally:
        sa.event.remove(engine, "before_cursor_execute", fail_on_record)
    assert rows(engine, "users", "Name") == {
        ("1", "Canvas", None, "User 1"),
        ("2", "Canvas", None, "User 2"),
    }
    assert count(engine, tables(engine.dialect.name).processed_files) == 1
    again = load_directory(str(root), engine, now=D3)
    assert [(f.inserted, f.updated, f.deleted) for f in again.loaded] == [(1, 1, 1)]
    assert rows(engine, "users", "Name") == {
        ("1", "Canvas", None, "Renamed"),
        ("2", "Canvas", D3, "User 2"),
        ("3", "Canvas", None, "User 3"),
    }
