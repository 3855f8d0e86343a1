"""The send state: accepted bodies by natural key, appended in segments, compacted, torn-safe."""

from __future__ import annotations

import uuid
from pathlib import Path

import fsspec

from edfi.model import builtin_model
from edfi.sendstate import SendState, body_digest, target_id
from edfi.validate.uniqueness import key_digest

MODEL = builtin_model()
STUDENTS = MODEL["/ed-fi/students"]


def rec(uid: str, name: str = "Pat") -> dict[str, str]:
    return {
        "studentUniqueId": uid,
        "firstName": name,
        "lastSurname": "X",
        "birthDate": "2010-01-01",
    }


def test_body_digest_ignores_key_order_and_server_fields() -> None:
    a = rec("1")
    b = {**dict(reversed(list(a.items()))), "id": "abc", "_etag": "5", "link": {"rel": "x"}}
    assert body_digest(a) == body_digest(b)
    assert body_digest(a) != body_digest(rec("1", "Sam"))


def test_target_id_is_a_digest_not_server_text() -> None:
    t = target_id("https://ODS.example.org/api/", school_year=2025)
    assert t == target_id("https://ods.example.org/api", school_year=2025)
    assert t != target_id("https://ods.example.org/api", school_year=2024)
    assert t.isalnum() and len(t) == 20


def test_unchanged_changed_failed_and_deleted(tmp_path: Path) -> None:
    state = SendState(str(tmp_path), "t1")
    s = state.load(STUDENTS.path)
    one, two, three = rec("1"), rec("2"), rec("3")
    s.accepted(key_digest(STUDENTS, one), body_digest(one))
    s.accepted(key_digest(STUDENTS, two), body_digest(two))
    s.flush()
    # three failed: never recorded
    again = state.load(STUDENTS.path)
    assert again.unchanged(key_digest(STUDENTS, one), body_digest(one))
    changed = rec("2", "Sam")
    assert again.known(key_digest(STUDENTS, changed))
    assert not again.unchanged(key_digest(STUDENTS, changed), body_digest(changed))
    assert not again.known(key_digest(STUDENTS, three))
    again.accepted(key_digest(STUDENTS, changed), body_digest(changed))
    again.deleted(key_digest(STUDENTS, one))
    again.compact()
    files = sorted(
        p.name for p in (tmp_path / "_send_state" / "t1" / "ed-fi" / "students").iterdir()
    )
    assert len(files) == 1 and files[0].startswith("base-")
    final = state.load(STUDENTS.path)
    assert len(final) == 1
    assert final.unchanged(key_digest(STUDENTS, changed), body_digest(changed))


def test_torn_segment_and_segments_after_base_on_any_storage() -> None:
    url = f"memory://state-{uuid.uuid4().hex}"
    state = SendState(url, "t")
    s = state.load(STUDENTS.path)
    s.accepted(key_digest(STUDENTS, rec("1")), body_digest(rec("1")))
    s.compact()
    s.accepted(key_digest(STUDENTS, rec("2")), body_digest(rec("2")))
    s.flush()
    fs = fsspec.filesystem("memory")
    folder = state.folder(STUDENTS.path)
    with fs.open(f"{folder}/seg-99999999999999999999-torn.bin", "wb") as fh:
        fh.write(key_digest(STUDENTS, rec("3")) + body_digest(rec("3")) + b"\x01" * 7)
    loaded = state.load(STUDENTS.path)
    assert len(loaded) == 3  # 1 from the base, 2 from a segment, 3 whole; the torn tail dropped
    state.clear([STUDENTS.path])
    assert len(state.load(STUDENTS.path)) == 0


def test_a_server_named_resource_cannot_leave_the_state_root(tmp_path: Path) -> None:
    import pytest

    state = SendState(str(tmp_path), "t")
    for bad in ("/ed-fi/../../etc", "/ed-fi/a b", "/ed-fi//x", "/../x"):
        with pytest.raises(ValueError, match="Refusing"):
            state.folder(bad)


def _digest(text: str) -> bytes:
    import hashlib

    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def test_a_send_holds_one_flush_in_memory_and_every_entry_survives(tmp_path: Path) -> None:
    """40,000 acceptances in 100 sorted segments: memory stays at one flush's entries, and
    the state read back (killed before compaction, then compacted) is exactly what was
    accepted: later segments win, a key accepted twice in one flush keeps its last body,
    a deletion hides the loaded entry."""
    import tracemalloc

    from edfi.sendstate import MERGE_FAN_IN

    state = SendState(str(tmp_path), "t")
    first = state.load(STUDENTS.path)
    expected = {_digest(f"k{i}"): _digest(f"old{i}") for i in range(1000)}
    for k, v in expected.items():
        first.accepted(k, v)
    first.compact()

    for i in range(40_000):
        expected[_digest(f"k{i + 500}")] = _digest(f"new{i}")
    expected[_digest("k20500")] = _digest("again")
    del expected[_digest("k7")]
    s = state.load(STUDENTS.path)
    tracemalloc.start()
    for i in range(40_000):
        k = _digest(f"k{i + 500}")
        s.accepted(k, _digest(f"new{i}"))
        if i == 20_000:
            s.accepted(k, _digest("again"))  # the same flush: the later body counts
        if s.pending >= 400:
            s.flush()
    s.deleted(_digest("k7"))
    s.flush()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 1_500_000  # one flush (400 entries) and a merge's buffers, not 40,000 keys
    folder = tmp_path / "_send_state" / "t" / "ed-fi" / "students"
    assert len([p for p in folder.iterdir() if p.name.startswith("seg-")]) < MERGE_FAN_IN

    killed = state.load(STUDENTS.path)  # a rerun after kill -9: base and segments
    assert killed.entries == expected
    s.compact()
    assert [p.name[:5] for p in folder.iterdir()] == ["base-"]
    assert state.load(STUDENTS.path).entries == expected
    assert s.unchanged(_digest("k20500"), _digest("again"))  # read back after compaction
