"""The LMS loader's errors: each names what is wrong and where, never a secret."""

from __future__ import annotations


class LmsError(Exception):
    """Base of every LMS loader error."""


class LmsFileError(LmsError):
    """An extractor CSV that cannot be loaded as it is (nothing of it was applied)."""

    def __init__(
        self, path: str, problem: str, *, column: str | None = None, row: int | None = None
    ) -> None:
        self.path = path
        self.column = column
        self.row = row
        self.problem = problem
        where = path
        if row is not None:
            where += f", line {row}"
        if column is not None:
            where += f", column {column}"
        super().__init__(f"{where}: {problem}")


class LmsDatabaseError(LmsError):
    """The LMS data store cannot be reached or used (the message never holds a password)."""
