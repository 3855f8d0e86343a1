"""What a validator finds wrong with a record: one ``Problem`` per finding.

Every layer of the validator (the schema checks here, the descriptor,
uniqueness and reference layers) reports in this one shape, so a sender can
keep the findings with the rejected record and a server can answer them as
ODS/API problem details, without exceptions deciding the control flow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# schema layer
REQUIRED = "required"
TYPE = "type"
MIN_LENGTH = "min-length"
MAX_LENGTH = "max-length"
RANGE = "range"
FORMAT = "format"
UNKNOWN_PROPERTY = "unknown-property"
DUPLICATE_ITEM = "duplicate-item"
KEY_UNIFICATION = "key-unification"
# input layers
DESCRIPTOR = "descriptor"
DUPLICATE_KEY = "duplicate-key"
UNRESOLVED_REFERENCE = "unresolved-reference"
MALFORMED_JSON = "malformed-json"


@dataclass(frozen=True, slots=True)
class Problem:
    """One finding: where in the record, what kind, and a sentence a person can act on.

    ``path`` is relative to the record (``studentReference.studentUniqueId``,
    ``addresses[0].city``); ``""`` means the whole record.
    """

    path: str
    code: str
    message: str

    @property
    def json_path(self) -> str:
        """The path as ODS/API problem details name it (``$.addresses[0].city``)."""
        return "$." + self.path if self.path else "$"


def by_path(problems: Iterable[Problem]) -> dict[str, list[str]]:
    """Messages grouped by JSON path: the ``validationErrors`` of ODS/API problem details."""
    out: dict[str, list[str]] = {}
    for p in problems:
        out.setdefault(p.json_path, []).append(p.message)
    return out
