"""Every exception the Ed-Fi core raises, in one place.

Each class says *which part* of a run could not go on; its message says what
to change (the bad setting, the file and line, the server's answer). Callers
catch by part: a flow turns ``EdFiAuthError`` into "check the client id and
secret", ``LakeError`` into "check the storage block", and so on. The classes
were born in the modules that raise them (``edfi.client``, ``edfi.lake`` ...);
those modules re-export them, so ``from edfi.client import EdFiError`` keeps
working, but new code imports from here.

This module imports nothing from the project, so any module can import it.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "BlockError",
    "DescriptorMapError",
    "EdFiAuthError",
    "EdFiConnectionError",
    "EdFiError",
    "EdFiMalformedError",
    "EdFiResponseError",
    "EdFiResponseTooLargeError",
    "EdFiUnsupportedError",
    "ExtractError",
    "GoldError",
    "GraphError",
    "LakeConflict",
    "LakeError",
    "LeaseHeld",
    "LeaseLost",
    "LmsDatabaseError",
    "LmsError",
    "LmsFileError",
    "ModelError",
    "PublishError",
    "SendError",
]


# -- talking to an Ed-Fi API ------------------------------------------------------------


class EdFiError(Exception):
    """A failure talking to an Ed-Fi API, worded for the person who must fix it."""


class EdFiConnectionError(EdFiError):
    """The API cannot be reached (DNS, refused, TLS, timeouts after every retry)."""


class EdFiAuthError(EdFiError):
    """The API refused the credentials."""


class EdFiUnsupportedError(EdFiError):
    """The server is not an Ed-Fi ODS/API this project can work with."""


class EdFiResponseError(EdFiError):
    """The API answered a request with an error status."""

    def __init__(self, message: str, status: int, problem: Any = None):
        super().__init__(message)
        self.status = status
        self.problem = problem


class EdFiMalformedError(EdFiError):
    """The API answered with a body that is not the JSON it promised."""


class EdFiResponseTooLargeError(EdFiError):
    """A response body passed the connection's size cap (``max_response_bytes``)."""


# -- the jobs -------------------------------------------------------------------------------


class ExtractError(EdFiError):
    """A resource could not be extracted exactly; the lake keeps its previous version."""


class PublishError(EdFiError):
    """A publish cannot run as configured; the message says what to change."""


class SendError(EdFiError):
    """Records cannot be sent as asked (bad options, an unknown resource, no rejects)."""


# -- the model, the graph, storage and gold ---------------------------------------------------


class ModelError(ValueError):
    """The OpenAPI metadata cannot be turned into a model."""


class GraphError(ModelError):
    """Dependencies that cannot be ordered (a cycle) or that name an unknown resource."""


class LakeError(Exception):
    """The lake storage cannot be used as configured."""


class LakeConflict(LakeError):
    """A lake manifest changed since it was read (or exists where it should not):
    another writer got there first. Read it again and redo what depended on it."""


class LeaseHeld(LakeError):
    """Another run holds a lease on the lake and did not release it in the time allowed."""


class LeaseLost(LakeError):
    """This run's lease expired and another run took it; its work must not be committed."""


class GoldError(Exception):
    """The gold views cannot be built from this lake as it is."""


class DescriptorMapError(ValueError):
    """A descriptor map file is malformed; the message names the row and the fix."""


class BlockError(Exception):
    """A saved Prefect block is missing or is not of the kind a flow parameter needs."""


# -- the LMS data store -------------------------------------------------------------------


class LmsError(Exception):
    """The LMS loader or harmonizer cannot go on."""


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
