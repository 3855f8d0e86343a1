"""The LMS database block: where the LMS data store lives and how to log in."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from prefect.blocks.core import Block
from pydantic import Field, SecretStr

_DRIVERS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg",
    "mssql": "mssql+pyodbc",
}


class LmsDatabase(Block):
    """An LMS data store: SQLite (a local file, the default), PostgreSQL or SQL Server.

    The password is a secret: it reaches the driver and nothing else (not the
    URL's text, messages or logs).
    """

    _block_type_name = "LMS Database"
    _block_type_slug = "lms-database"
    _logo_url = None
    _description = "The LMS data store (lms schema): dialect, server, database and credentials."

    dialect: Literal["sqlite", "postgresql", "mssql"] = Field(
        "sqlite", description="sqlite (a file on local disk), postgresql or mssql."
    )
    database: str = Field(
        "lms.sqlite",
        description="Database name; for SQLite, the path of the database file.",
    )
    host: str | None = Field(None, description="Server host (PostgreSQL, SQL Server).")
    port: int | None = Field(None, description="Server port (default: the dialect's).")
    username: str | None = Field(None, description="User to log in as.")
    password: SecretStr | None = Field(None, description="The user's password.")
    query: dict[str, str] = Field(
        default_factory=dict,
        description="Extra URL options, e.g. {'sslmode': 'require'} or, for SQL Server, "
        "{'driver': 'ODBC Driver 18 for SQL Server'}.",
    )

    def url(self) -> sa.URL:
        """The SQLAlchemy URL (its text form hides the password)."""
        return sa.URL.create(
            _DRIVERS[self.dialect],
            username=self.username if self.dialect != "sqlite" else None,
            password=(
                self.password.get_secret_value()
                if self.password is not None and self.dialect != "sqlite"
                else None
            ),
            host=self.host if self.dialect != "sqlite" else None,
            port=self.port if self.dialect != "sqlite" else None,
            database=self.database,
            query=self.query,
        )

    def engine(self, **kwargs: Any) -> sa.Engine:
        """An engine for the store (core's `create_engine`: SQLite without schemas etc.)."""
        from edfi.lms.store import create_engine

        return create_engine(self.url(), **kwargs)
