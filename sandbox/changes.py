"""Bulk changes to a sandbox data set, made the way API calls make them.

Every change goes through the store's POST/PUT/DELETE paths, so change
versions, ``/deletes`` and ``/keyChanges`` entries and cascades come out
exactly as a client changing the data through the API would leave them.
Tests use this to produce a realistic "day of changes" in one call.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from random import Random
from typing import Any

import orjson

from edfi.model import publishable

from .store import Store


def body_of(record: dict[str, Any]) -> dict[str, Any]:
    """A served record as a client would POST it: no server fields, no links."""
    return publishable(record)


@dataclass
class ChangeLog:
    """What ``apply_changes`` did, by resource path: ids touched per kind of change."""

    updated: dict[str, list[str]] = field(default_factory=dict)
    inserted: dict[str, list[str]] = field(default_factory=dict)
    deleted: dict[str, list[str]] = field(default_factory=dict)
    key_changed: dict[str, list[str]] = field(default_factory=dict)

    def count(self) -> int:
        return sum(
            len(v)
            for d in (self.updated, self.inserted, self.deleted, self.key_changed)
            for v in d.values()
        )


def _sample(store: Store, path: str, n: int, rng: Random) -> list[dict[str, Any]]:
    records = list(store.iter_records(store.model[path]))
    rng.shuffle(records)
    return records[:n]


def apply_changes(
    store: Store,
    *,
    updates: int = 0,
    inserts: int = 0,
    deletes: int = 0,
    key_changes: int = 0,
    seed: int = 0,
) -> ChangeLog:
    """Change a data set: update students' names, add students (enrolled, with an
    absence), delete section attendance events, and move enrollment entry dates
    (a key change of studentSchoolAssociations)."""
    rng = Random(seed)
    model = store.model
    log = ChangeLog()
    students = model["/ed-fi/students"]
    if updates:
        for rec in _sample(store, students.path, updates, rng):
            body = body_of(rec)
            body["middleName"] = f"Changed{rng.randint(100, 999)}"
            store.upsert(students, body)
            log.updated.setdefault(students.path, []).append(rec["id"])
    if inserts:
        ssa = model["/ed-fi/studentSchoolAssociations"]
        templates = _sample(store, ssa.path, 1, rng)
        template_student = (
            store.find(
                students, {"studentUniqueId": templates[0]["studentReference"]["studentUniqueId"]}
            )
            if templates
            else None
        )
        if template_student is None:
            raise ValueError("inserts need a data set with at least one enrolled student")
        for i in range(inserts):
            uid = f"N{seed:03d}{i:05d}"
            body = body_of(template_student)
            body.update(studentUniqueId=uid, firstName=f"New{i}", lastSurname="Student")
            res = store.upsert(students, body)
            log.inserted.setdefault(students.path, []).append(res.id)
            enrol = body_of(templates[0])
            enrol["studentReference"] = {"studentUniqueId": uid}
            res = store.upsert(ssa, enrol)
            log.inserted.setdefault(ssa.path, []).append(res.id)
    if deletes:
        events = model["/ed-fi/studentSectionAttendanceEvents"]
        for rec in _sample(store, events.path, deletes, rng):
            store.delete(events, rec["id"])
            log.deleted.setdefault(events.path, []).append(rec["id"])
    if key_changes:
        ssa = model["/ed-fi/studentSchoolAssociations"]
        for rec in _sample(store, ssa.path, key_changes, rng):
            body = body_of(rec)
            entry = dt.date.fromisoformat(body["entryDate"]) - dt.timedelta(days=1)
            body["entryDate"] = entry.isoformat()
            store.put(ssa, rec["id"], body)
            log.key_changed.setdefault(ssa.path, []).append(rec["id"])
    return log


def snapshot_of(store: Store) -> dict[str, dict[str, bytes]]:
    """Every record of a data set, by resource and id, as served (for equality checks)."""
    out: dict[str, dict[str, bytes]] = {}
    for resource in store.model:
        out[resource.path] = {r["id"]: orjson.dumps(r) for r in store.iter_records(resource)}
    return out
