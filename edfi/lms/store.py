"""Opening the LMS data store: an SQLAlchemy engine with errors a person can act on.

SQLite is the default (a file on local disk, no server); PostgreSQL is the
production store (psycopg 3, so staging can use COPY); SQL Server works
through the same code as one more dialect (``mssql+pyodbc://``; not tested
here). Connection failures become one `LmsDatabaseError` that names the
server, database and user and never the password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import LmsDatabaseError
from .schema import SCHEMA

DEFAULT_SQLITE = "sqlite:///lms.sqlite"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_engine(url: str | sa.URL = DEFAULT_SQLITE, **kwargs: Any) -> Engine:
    """An engine for the store at ``url`` (SQLite keeps the ``lms`` tables in its main file)."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise LmsDatabaseError(
            "The LMS database URL is not a valid SQLAlchemy URL "
            "(e.g. sqlite:///lms.sqlite or postgresql+psycopg://user@host:5432/db)."
        ) from exc
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("", "psycopg2"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    options: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        options["schema_translate_map"] = {SCHEMA: None}
    if parsed.get_backend_name() == "mssql":
        kwargs.setdefault("fast_executemany", True)
    try:
        engine = sa.create_engine(parsed, **kwargs)
    except (ImportError, sa.exc.ArgumentError) as exc:
        raise LmsDatabaseError(
            f"Cannot use the LMS database {describe(parsed)}: {exc}. "
            "Install the driver the URL names (psycopg for PostgreSQL, pyodbc for SQL Server)."
        ) from exc
    if options:
        engine = engine.execution_options(**options)
    if parsed.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def as_engine(database: str | sa.URL | Engine) -> Engine:
    """An engine for a URL, or the caller's engine made ready for the store (SQLite: no schema)."""
    if not isinstance(database, Engine):
        return create_engine(database)
    if database.dialect.name == "sqlite" and not database.get_execution_options().get(
        "schema_translate_map"
    ):
        return database.execution_options(schema_translate_map={SCHEMA: None})
    return database


def describe(url: sa.URL) -> str:
    """Where a URL points, for messages: never the password."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return f"SQLite file {url.database or ':memory:'}"
    where = f"{url.host or 'localhost'}:{url.port}" if url.port else (url.host or "localhost")
    user = f" as user {url.username!r}" if url.username else ""
    return f"{backend} database {url.database!r} on {where}{user}"


def scrub(text: str, url: sa.URL) -> str:
    """``text`` with the URL's password replaced, in case a driver echoes it."""
    if url.password:
        text = text.replace(str(url.password), "***")
    return text


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """One transaction; a failure to connect becomes an `LmsDatabaseError` without secrets."""
    try:
        conn = engine.connect()
    except sa.exc.DBAPIError as exc:
        detail = scrub(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc), engine.url)
        raise LmsDatabaseError(
            f"Cannot connect to the LMS {describe(engine.url)}: {detail}. "
            "Check the server is running and reachable, and the block's user and password."
        ) from None
    with conn, conn.begin():
        yield conn
