"""Natural keys must be unique within the input.

Two lines with the same natural key are one record to the API: the second
silently replaces the first (POST is an upsert). That is almost always a bug
in whatever produced the files, so it is reported -- on the later line, naming
the earlier one -- instead of being left to chance. Keys are kept as 16-byte
digests, so a file of millions of records costs tens of megabytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from edfi.model import Resource

from .problems import DUPLICATE_KEY, Problem


def key_digest(resource: Resource, record: Mapping[str, Any]) -> bytes:
    """A stable digest of the record's natural key (shared with the send state)."""
    values = resource.key_values(record)
    return hashlib.blake2b(
        orjson.dumps(values, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).digest()


class KeyTracker:
    """First place each natural key of one resource was seen."""

    def __init__(self, resource: Resource) -> None:
        self.resource = resource
        self.first: dict[bytes, str] = {}

    def check(self, record: Mapping[str, Any], where: str) -> list[Problem]:
        digest = key_digest(self.resource, record)
        earlier = self.first.setdefault(digest, where)
        if earlier == where:
            return []
        values = self.resource.key_values(record)
        shown = ", ".join(f"{k}={v!r}" for k, v in values.items())
        return [
            Problem(
                "",
                DUPLICATE_KEY,
                f"The natural key ({shown}) was already given at {earlier}; the API would "
                "keep only one of them.",
            )
        ]
