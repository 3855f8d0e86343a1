"""POSTs on the event loop share a COMMIT (``Store.post``); each stays all or nothing.

These drive the store from an event loop directly, so the writes of one loop
iteration are known to form one group.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from edfi.model import builtin_model
from sandbox.store import ApiError, Store, Window

SCHOOL = 255901001
NS = "uri://ed-fi.org/"


def _descriptor(kind: str, code: str) -> dict[str, Any]:
    return {"namespace": NS + kind, "codeValue": code, "shortDescription": code}


def _ssa(uid: str) -> dict[str, Any]:
    return {
        "entryDate": "2024-08-20",
        "schoolReference": {"schoolId": SCHOOL},
        "studentReference": {"studentUniqueId": uid},
        "entryGradeLevelDescriptor": NS + "GradeLevelDescriptor#Ninth grade",
    }


def _student(uid: str) -> dict[str, Any]:
    return {
        "studentUniqueId": uid,
        "birthDate": "2010-05-04",
        "firstName": "Ana",
        "lastSurname": uid,
    }


@pytest.fixture
def store(tmp_path: Path) -> Store:
    """An empty data set with a school and students S0..S9 (written synchronously)."""
    model = builtin_model()
    s = Store(model, str(tmp_path / "db.sqlite"))
    s.upsert(
        model["/ed-fi/gradeLevelDescriptors"], _descriptor("GradeLevelDescriptor", "Ninth grade")
    )
    s.upsert(
        model["/ed-fi/educationOrganizationCategoryDescriptors"],
        _descriptor("EducationOrganizationCategoryDescriptor", "School"),
    )
    s.upsert(
        model["/ed-fi/schools"],
        {
            "schoolId": SCHOOL,
            "nameOfInstitution": "Grand Bend High School",
            "educationOrganizationCategories": [
                {
                    "educationOrganizationCategoryDescriptor": NS
                    + "EducationOrganizationCategoryDescriptor#School"
                }
            ],
            "gradeLevels": [{"gradeLevelDescriptor": NS + "GradeLevelDescriptor#Ninth grade"}],
        },
    )
    for i in range(10):
        s.upsert(model["/ed-fi/students"], _student(f"S{i}"))
    return s


def _elsewhere(store: Store, fn: Any) -> Any:
    """``fn(store)`` on another thread: its own connection, a committed snapshot."""
    out: list[Any] = []
    t = threading.Thread(target=lambda: out.append(fn(store)))
    t.start()
    t.join()
    return out[0]


def _ssa_keys(store: Store) -> list[str]:
    ssa = store.model["/ed-fi/studentSchoolAssociations"]
    return sorted(r["studentReference"]["studentUniqueId"] for r in store.iter_records(ssa))


def test_concurrent_posts_share_a_commit_and_a_failed_one_affects_none(store: Store) -> None:
    model = store.model
    ssa = model["/ed-fi/studentSchoolAssociations"]
    students = model["/ed-fi/students"]
    bodies = [_ssa(f"S{i}") for i in range(10)]
    bodies.insert(4, _ssa("NOBODY"))  # 409 at write time, inside the group
    bodies.insert(7, {**_ssa("S1"), "entryGradeLevelDescriptor": NS + "Nope#x"})  # 400
    late: list[Any] = []
    newest = store.newest_change_version

    async def run() -> list[Any]:
        tasks = [asyncio.ensure_future(store.post(ssa, b)) for b in bodies]
        await asyncio.sleep(0)  # every POST has written and waits for the group's COMMIT
        assert sum(t.done() for t in tasks) == 2  # only the two refused ones answered
        assert _elsewhere(store, _ssa_keys) == []  # nothing committed yet
        # change queries up to the newest change version must not miss a write in flight
        assert store.newest_change_version == newest
        # a writer in a thread waits for the group (the write lock), then writes
        writer = threading.Thread(
            target=lambda: late.append(store.upsert(students, _student("LATE")))
        )
        writer.start()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        writer.join(timeout=10)
        return results

    results = asyncio.run(run())
    errors = [r for r in results if isinstance(r, ApiError)]
    assert sorted(e.status for e in errors) == [400, 409]
    written = [r for r in results if not isinstance(r, BaseException)]
    assert len(written) == 10 and all(r.created for r in written)
    # each answered write is committed: another connection reads it by id
    for r in written:
        body, cv = _elsewhere(store, lambda s, r=r: s.get_by_id(ssa, r.id))
        assert cv == r.cv and body
    assert _elsewhere(store, _ssa_keys) == sorted(f"S{i}" for i in range(10))
    assert store.count(ssa, Window()) == 10
    assert store.newest_change_version == max(r.cv for r in [*written, *late])
    assert len(late) == 1 and _elsewhere(
        store, lambda s: s.find(students, {"studentUniqueId": "LATE"})
    )


def test_a_failed_commit_fails_every_write_of_its_group(store: Store) -> None:
    model = store.model
    ssa = model["/ed-fi/studentSchoolAssociations"]
    term = model["/ed-fi/termDescriptors"]
    conn = store._conn()  # asyncio.run runs the loop on this thread: the group's connection
    # a deferred foreign-key violation on every record written: COMMIT itself fails
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("CREATE TEMP TABLE parent(id INTEGER PRIMARY KEY)")
    conn.execute(
        "CREATE TEMP TABLE child(p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )
    conn.execute(
        "CREATE TEMP TRIGGER poison AFTER INSERT ON main.records BEGIN "
        "INSERT INTO child VALUES (1); END"
    )
    before = (store.count(ssa, Window()), len(store.descriptors), store.newest_change_version)

    async def run(bodies: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
        return await asyncio.gather(*(store.post(r, b) for r, b in bodies), return_exceptions=True)

    group = [(ssa, _ssa("S1")), (ssa, _ssa("S2")), (term, _descriptor("TermDescriptor", "Fall"))]
    results = asyncio.run(run(group))
    assert [getattr(r, "status", None) for r in results] == [500, 500, 500]
    assert (
        store.count(ssa, Window()),
        len(store.descriptors),
        store.newest_change_version,
    ) == before
    assert _elsewhere(store, _ssa_keys) == []
    with pytest.raises(sqlite3.OperationalError):
        store._conn().execute("ROLLBACK")  # no transaction was left open
    conn.execute("DROP TRIGGER poison")
    results = asyncio.run(run(group))
    assert [r.created for r in results] == [True, True, True]
    assert _elsewhere(store, _ssa_keys) == ["S1", "S2"]
    assert "uri://ed-fi.org/termdescriptor#fall" in store.descriptors
