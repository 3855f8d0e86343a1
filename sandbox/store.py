"""The sandbox's storage: one SQLite database per data set (school year / tenant).

It keeps what an ODS/API keeps and in the same way: records with server ids
and change versions, the tracked deletes and key changes, and -- so that
``Use-Snapshot`` reads are exact -- every superseded version of a record
(``history``), which lets a read see the data as of any change version.

Bodies are stored as the exact JSON bytes served (id, links, ``_etag``,
``_lastModifiedDate`` included), so a page is a join of stored bytes.
Offset paging without filters finds its start through an in-memory sorted
array of live row numbers, so the deepest page costs what the first does.

POSTs on the event loop commit in groups (``Store.post``): a COMMIT cost about
as much as the rest of the write, and concurrent POSTs can share one.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import heapq
import os
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from random import Random
from typing import Any

import orjson

from edfi.model import ApiModel, Reference, Resource, Shape, abstract_field
from edfi.validate import Problem, bind_record, by_path, pascal
from edfi.validate.problems import DESCRIPTOR

from .problems import (
    ApiError,
    bad_request,
    data_validation_failed,
    dependent_item_exists,
    key_change_not_supported,
    non_unique_identity,
    not_found,
    optimistic_lock_failed,
    parameter_invalid,
    server_error,
    unresolved_reference,
)

__all__ = ["ApiError", "Page", "Store", "Window", "WriteResult", "bad_request", "not_found"]

SCHEMA = """
CREATE TABLE IF NOT EXISTS records(
    seq INTEGER PRIMARY KEY, rid INTEGER NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
    cv INTEGER NOT NULL, body BLOB NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS records_key ON records(rid, key);
CREATE UNIQUE INDEX IF NOT EXISTS records_id ON records(id);
CREATE INDEX IF NOT EXISTS records_rid_seq ON records(rid, seq);
CREATE INDEX IF NOT EXISTS records_rid_cv ON records(rid, cv);
CREATE TABLE IF NOT EXISTS history(
    rid INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, key TEXT NOT NULL,
    cv INTEGER NOT NULL, until_cv INTEGER NOT NULL, body BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS history_rid_seq ON history(rid, seq);
CREATE TABLE IF NOT EXISTS deletes(
    rid INTEGER NOT NULL, id TEXT NOT NULL, cv INTEGER NOT NULL, key_values BLOB NOT NULL,
    key TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS deletes_rid_cv ON deletes(rid, cv);
CREATE TABLE IF NOT EXISTS key_changes(
    rid INTEGER NOT NULL, id TEXT NOT NULL, cv INTEGER NOT NULL,
    old_key BLOB NOT NULL, new_key BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS key_changes_rid_cv ON key_changes(rid, cv);
CREATE TABLE IF NOT EXISTS refs(
    tgt INTEGER NOT NULL, src INTEGER NOT NULL, PRIMARY KEY (tgt, src)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS refs_src ON refs(src);
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

MAX_LIMIT = 500
# POSTs on the event loop share a COMMIT (Store.post): a group closes after COMMIT_WAIT
# seconds (or at the end of the loop iteration that opened it), or at GROUP_MAX writes
COMMIT_WAIT = 0.001
GROUP_MAX = 256
PROBE_EVERY = 16


def _entity(resource: Resource) -> str:
    """The entity name ODS/API uses in messages and ``link.rel`` (``StudentSchoolAssociation``)."""
    name = resource.schema.split("_", 1)[-1]
    return name[:1].upper() + name[1:]


@dataclass(frozen=True, slots=True)
class Window:
    """What a collection read selects: change-version window, filters, snapshot."""

    min_cv: int | None = None
    max_cv: int | None = None
    filters: tuple[tuple[str, Any], ...] = ()  # (json path, value)
    snapshot: int | None = None  # read as of this change version

    @property
    def plain(self) -> bool:
        return (
            self.min_cv is None
            and self.max_cv is None
            and not self.filters
            and self.snapshot is None
        )


@dataclass(slots=True)
class Page:
    body: bytes
    count: int
    last_seq: int | None
    total: int | None = None
    more: bool = False


@dataclass(slots=True)
class WriteResult:
    id: str
    created: bool
    cv: int


@dataclass(slots=True, eq=False)
class _Group:
    """POSTs of one event loop written in one open transaction, made durable by one COMMIT.

    ``inserted`` is what the writes added to the in-memory tables (row numbers,
    descriptor values), taken back if the COMMIT fails.
    """

    done: asyncio.Future[str | None]  # None once committed, else why the COMMIT failed
    size: int = 0
    inserted: list[tuple[int, int, str | None]] = field(default_factory=list)


def encode_token(start: int, end: int) -> str:
    """A page token: the row-number range a partition (or its rest) covers."""
    return base64.urlsafe_b64encode(f"{start}:{end}".encode()).decode().rstrip("=")


def decode_token(token: str) -> tuple[int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        start, end = raw.split(":")
        return int(start), int(end)
    except Exception as exc:
        raise parameter_invalid(f"The page token '{token}' is not valid.") from exc


@dataclass
class _Tables:
    """Per-resource data kept in memory: ids and live row numbers."""

    rid: dict[str, int] = field(default_factory=dict)
    live: dict[int, array[int]] = field(default_factory=dict)


class Store:
    """One data set. Thread-safe: reads use a connection per thread, writes one lock."""

    _clock: tuple[int, str] = (-1, "")  # a second and its text, for _now

    def __init__(self, model: ApiModel, path: str, *, seed: int = 1):
        self.model = model
        self.path = path
        self._local = threading.local()
        self._write_lock = threading.RLock()
        self._groups = 0  # commit groups opened, and the size of the last one closed
        self._last_group_size = 0
        # ids are unique across data sets, tenants and runs, as a real ODS's GUIDs are
        self._rng = Random(int.from_bytes(os.urandom(16), "big"))
        self.descriptors: set[str] = set()
        self._descriptor_paths: dict[str, list[tuple[str, ...]]] = {}
        self.tables = _Tables()
        conn = self._conn()
        conn.executescript(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(deletes)")}
        if "key" not in columns:  # a database saved before deletes kept the natural key
            conn.execute("ALTER TABLE deletes ADD COLUMN key TEXT NOT NULL DEFAULT ''")
        # each resource's number is kept in the database, so a database saved under one
        # model reads right under another (a resource added or removed shifts nothing)
        saved = self._meta("rids")
        rids: dict[str, int] = (
            orjson.loads(saved)
            if saved
            else {p: i for i, p in enumerate(sorted(model.resources), start=1)}
        )
        for path_ in sorted(model.resources):
            rids.setdefault(path_, max(rids.values(), default=0) + 1)
        self.set_meta("rids", orjson.dumps(rids).decode())
        for path_ in model.resources:
            self.tables.rid[path_] = rids[path_]
            self.tables.live[rids[path_]] = array("q")
        self.resource_by_rid = {v: model[k] for k, v in self.tables.rid.items()}
        self._cv = int(self._meta("cv") or 0)
        self._committed_cv = self._cv  # what readers are told: no write still uncommitted
        for rid, seq in conn.execute("SELECT rid, seq FROM records ORDER BY rid, seq"):
            live = self.tables.live.get(rid)
            if live is not None:  # records of resources this model does not serve stay unread
                live.append(seq)
        for res in model:
            if res.is_descriptor:
                rid = self.tables.rid[res.path]
                for (key,) in conn.execute("SELECT key FROM records WHERE rid=?", (rid,)):
                    ns, code = orjson.loads(key)
                    self.descriptors.add(f"{ns}#{code}".lower())

    # -- plumbing ----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")
            # a small page cache: each COMMIT costs more the more pages are cached (with
            # 200 MB a write cost 230 us at a 1,000-student district, 170 us with 8 MB),
            # and reads of the database file come through the memory map, not the cache
            conn.execute("PRAGMA cache_size=-8000")
            # checkpoint every 40 MB of log, not 4 MB: a page written again and again
            # (an index's last leaf) is copied back once per checkpoint (7-18% less CPU
            # a write at a 1,000-student district)
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.execute("PRAGMA temp_store=MEMORY")
            conn.execute("PRAGMA mmap_size=1073741824")
            self._local.conn = conn
        return conn

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection) -> Iterator[None]:
        """All of a write or none of it: a failed validation leaves no trace.

        Inside ``batch()`` a write is a savepoint: still all or nothing, committed
        with the batch.
        """
        nested = conn.in_transaction
        conn.execute("SAVEPOINT write" if nested else "BEGIN")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO write" if nested else "ROLLBACK")
            if nested:
                conn.execute("RELEASE write")
            raise
        if nested:
            conn.execute("RELEASE write")
        else:
            conn.execute("COMMIT")
            self._committed_cv = self._cv

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Writes of this thread commit together (``/bulk/v1`` loads: a commit per record
        cost as much as the record); each stays its own all-or-nothing savepoint. Other
        writers wait for the batch: keep it short."""
        with self._write_lock:
            self._commit_open_group()
            conn = self._conn()
            conn.execute("BEGIN")
            try:
                yield
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            self._committed_cv = self._cv

    # -- group commit ------------------------------------------------------------------
    def _open_group(self) -> _Group:
        """This event loop's open commit group, opened (write lock taken, BEGIN) if none is.

        The group holds ``_write_lock`` until its COMMIT, scheduled a millisecond
        ahead (or for the end of this loop iteration): POSTs arriving meanwhile share
        it, and writers in threads wait no longer than that.
        """
        group: _Group | None = getattr(self._local, "group", None)
        if group is not None:
            return group
        loop = asyncio.get_running_loop()
        self._write_lock.acquire()
        try:
            self._conn().execute("BEGIN")
        except BaseException:
            self._write_lock.release()
            raise
        group = self._local.group = _Group(loop.create_future())
        # a client with several POSTs in flight sends them a little apart: wait for them
        # (about a millisecond) while waiting pays; a client sending one at a time does
        # not wait, bar a probe every PROBE_EVERY groups to notice when that changes
        self._groups += 1
        if self._last_group_size > 1 or self._groups % PROBE_EVERY == 0:
            loop.call_later(COMMIT_WAIT, self._commit_group, group)
        else:
            loop.call_soon(self._commit_group, group)
        return group

    def _commit_group(self, group: _Group) -> None:
        """COMMIT a group's writes and tell its POSTs; if it fails, they all fail (500)."""
        if getattr(self._local, "group", None) is not group:
            return  # committed already (it filled up, or a sync write came first)
        self._local.group = None
        self._last_group_size = group.size
        conn = self._conn()
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for rid, seq, descriptor in group.inserted:
                live = self.tables.live[rid]
                i = bisect.bisect_left(live, seq)
                if i < len(live) and live[i] == seq:
                    del live[i]
                if descriptor is not None:
                    self.descriptors.discard(descriptor)
            group.done.set_result(f"The write was not committed: {exc}")
        else:
            self._committed_cv = self._cv
            group.done.set_result(None)
        finally:
            self._write_lock.release()

    def _commit_open_group(self) -> None:
        """Before a synchronous write on the event loop's thread: commit the open group."""
        group: _Group | None = getattr(self._local, "group", None)
        if group is not None:
            self._commit_group(group)

    def _meta(self, name: str) -> str | None:
        row = self._conn().execute("SELECT value FROM meta WHERE name=?", (name,)).fetchone()
        return row[0] if row else None

    def set_meta(self, name: str, value: str) -> None:
        self._conn().execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))

    def get_meta(self, name: str) -> str | None:
        return self._meta(name)

    @property
    def newest_change_version(self) -> int:
        """The newest committed change version: a change query up to it misses nothing."""
        return self._committed_cv

    def rid(self, resource: Resource) -> int:
        return self.tables.rid[resource.path]

    def _next_cv(self) -> int:
        self._cv += 1
        return self._cv

    def _new_id(self) -> str:
        """A random (version 4) UUID's hex, as ``uuid.UUID(int=..., version=4).hex`` (4x dearer)."""
        return "%032x" % (self._rng.getrandbits(128) & _UUID_CLEAR | _UUID_V4)

    @staticmethod
    def _now() -> str:
        """UTC now as ``2025-01-31T12:00:00.123456Z``; the seconds part formatted once a second."""
        now = time.time()
        second = int(now)
        clock = Store._clock
        if clock[0] != second:
            clock = Store._clock = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{clock[1]}.{int((now - second) * 1e6):06d}Z"

    @staticmethod
    def key_string(values: Sequence[Any]) -> str:
        return orjson.dumps(list(values)).decode()

    def record_key(self, resource: Resource, record: Mapping[str, Any]) -> str:
        return self.key_string(list(resource.key_values(record).values()))

    # -- reference resolution ----------------------------------------------------
    def _resolve(
        self, ref: Reference, value: Mapping[str, Any], find: _Find
    ) -> tuple[Resource, int, str] | None:
        """The record a reference points at, as (resource, seq, id), or None."""
        for target_path in self.model.targets(ref):
            target = self.model[target_path]
            values = [value.get(abstract_field(target, ref.schema, k.name)) for k in target.key]
            row = find(self.rid(target), self.key_string(values))
            if row:
                return target, row[0], row[1]
        return None

    def _sql_find(self, conn: sqlite3.Connection) -> _Find:
        def find(rid: int, key: str) -> tuple[int, str] | None:
            row = conn.execute(
                "SELECT seq, id FROM records WHERE rid=? AND key=?", (rid, key)
            ).fetchone()
            return (row[0], row[1]) if row else None

        return find

    def _link_references(
        self,
        shape: Shape,
        body: dict[str, Any],
        find: _Find,
        refs_out: list[int],
        missing: list[str],
    ) -> None:
        """Resolve every reference of a body in place, adding ``link`` and recording targets.

        ``find`` looks a key up: in the database for API writes, in memory for bulk loads.
        """
        for name, ref in shape.references.items():
            value = body.get(name)
            if not isinstance(value, dict):
                continue
            value.pop("link", None)
            hit = self._resolve(ref, value, find)
            if hit is None:
                targets = self.model.targets(ref)
                entity = (
                    _entity(self.model[targets[0]])
                    if len(targets) == 1
                    else (ref.schema.split("_", 1)[-1].removesuffix("Reference"))
                )
                missing.append(entity[:1].upper() + entity[1:])
                continue
            target, seq, id_ = hit
            refs_out.append(seq)
            value["link"] = {"rel": _entity(target), "href": f"{target.path}/{id_}"}
        for name, sub in shape.collections.items():
            for item in body.get(name) or ():
                if isinstance(item, dict):
                    self._link_references(sub, item, find, refs_out, missing)
        for name, sub in shape.objects.items():
            item = body.get(name)
            if isinstance(item, dict):
                self._link_references(sub, item, find, refs_out, missing)

    # -- validation ----------------------------------------------------------------
    def validate(self, resource: Resource, body: Any) -> dict[str, Any]:
        """The body as the ODS/API binds it, after the checks it makes before touching data.

        Every problem is reported at once (400 with ``validationErrors``), the schema
        checks of ``edfi.validate`` first and then this data set's descriptors; checks
        against other records (409) come later, at write time.
        """
        bound, problems = bind_record(self.model, resource, body)
        if problems:  # descriptors are looked up only in a body of the right shape
            raise data_validation_failed(by_path(problems))
        problems = self._descriptor_problems(resource, bound)
        if problems:
            raise data_validation_failed(by_path(problems))
        return bound

    def _descriptor_problems(self, resource: Resource, body: Mapping[str, Any]) -> list[Problem]:
        paths = self._descriptor_paths.get(resource.path)
        if paths is None:
            paths = self._descriptor_paths[resource.path] = [
                p for p, _ in resource.shape.descriptor_paths()
            ]
        out: list[Problem] = []
        for path in paths:
            if path[0] not in body:
                continue
            for where, value in _values_at(body, path, ""):
                if isinstance(value, str) and value.lower() not in self.descriptors:
                    out.append(
                        Problem(
                            where,
                            DESCRIPTOR,
                            f"{pascal(path[-1])} value '{value}' does not exist.",
                        )
                    )
        return out

    # -- writes ------------------------------------------------------------------
    def upsert(self, resource: Resource, body: dict[str, Any]) -> WriteResult:
        """POST semantics: insert, or update the record with the same natural key."""
        body = self._checked(resource, body)
        key = self.record_key(resource, body)
        with self._write_lock:
            self._commit_open_group()
            return self._upsert(self._conn(), resource, body, key)

    async def post(self, resource: Resource, body: Any) -> WriteResult:
        """``upsert`` from the event loop, committed with the POSTs that arrive meanwhile.

        Each write is its own savepoint (a failed record leaves no trace and never
        affects the others) inside the group's transaction; this returns only once
        the group's COMMIT succeeded, so a response still means committed.
        """
        body = self._checked(resource, body)
        key = self.record_key(resource, body)
        group = self._open_group()
        conn = self._conn()
        if not conn.in_transaction:  # SQLite rolled the group back (disk full, I/O error)
            raise server_error("The write could not be made: the transaction was rolled back.")
        result = self._upsert(conn, resource, body, key)
        group.size += 1
        if group.size >= GROUP_MAX:
            self._commit_group(group)
        failure = await asyncio.shield(group.done)
        if failure is not None:
            raise server_error(failure)
        return result

    def _checked(self, resource: Resource, body: Any) -> dict[str, Any]:
        if isinstance(body, dict) and "id" in body:
            raise data_validation_failed(
                errors=[
                    "Resource identifiers cannot be assigned by the client. "
                    "The 'id' property should not be included in the request body."
                ]
            )
        return self.validate(resource, body)

    def _upsert(
        self, conn: sqlite3.Connection, resource: Resource, body: dict[str, Any], key: str
    ) -> WriteResult:
        row = conn.execute(
            "SELECT seq, id, cv, body FROM records WHERE rid=? AND key=?",
            (self.rid(resource), key),
        ).fetchone()
        with self._transaction(conn):
            if row is None:
                return self._insert(conn, resource, body, key)
            return self._update(conn, resource, row, body, key)

    def _serialize(self, resource: Resource, id_: str, body: dict[str, Any], cv: int) -> bytes:
        out = {"id": id_, **body, "_etag": str(cv), "_lastModifiedDate": self._now()}
        return orjson.dumps(out)

    def _prepare(
        self, conn: sqlite3.Connection, resource: Resource, body: dict[str, Any]
    ) -> list[int]:
        refs: list[int] = []
        missing: list[str] = []
        self._link_references(resource.shape, body, self._sql_find(conn), refs, missing)
        if missing:
            raise unresolved_reference(missing)
        return refs

    def _insert(
        self, conn: sqlite3.Connection, resource: Resource, body: dict[str, Any], key: str
    ) -> WriteResult:
        refs = self._prepare(conn, resource, body)
        cv = self._next_cv()
        id_ = self._new_id()
        rid = self.rid(resource)
        cur = conn.execute(
            "INSERT INTO records(rid, id, key, cv, body) VALUES (?, ?, ?, ?, ?)",
            (rid, id_, key, cv, self._serialize(resource, id_, body, cv)),
        )
        seq = int(cur.lastrowid or 0)
        conn.executemany("INSERT OR IGNORE INTO refs VALUES (?, ?)", [(t, seq) for t in refs])
        self.set_meta("cv", str(cv))
        self.tables.live[rid].append(seq)
        descriptor = None
        if resource.is_descriptor:
            descriptor = f"{body['namespace']}#{body['codeValue']}".lower()
            self.descriptors.add(descriptor)
        group: _Group | None = getattr(self._local, "group", None)
        if group is not None:
            group.inserted.append((rid, seq, descriptor))
        return WriteResult(id_, True, cv)

    def _update(
        self,
        conn: sqlite3.Connection,
        resource: Resource,
        row: tuple[int, str, int, bytes],
        body: dict[str, Any],
        key: str,
        *,
        old_key: str | None = None,
    ) -> WriteResult:
        seq, id_ = row[0], row[1]
        refs = self._prepare(conn, resource, body)
        cv = self._next_cv()
        rid = self.rid(resource)
        conn.execute(
            "INSERT INTO history(rid, seq, id, key, cv, until_cv, body) "
            "SELECT rid, seq, id, key, cv, ?, body FROM records WHERE seq=?",
            (cv, seq),
        )
        conn.execute(
            "UPDATE records SET key=?, cv=?, body=? WHERE seq=?",
            (key, cv, self._serialize(resource, id_, body, cv), seq),
        )
        conn.execute("DELETE FROM refs WHERE src=?", (seq,))
        conn.executemany("INSERT OR IGNORE INTO refs VALUES (?, ?)", [(t, seq) for t in refs])
        if old_key is not None and old_key != key:
            conn.execute(
                "INSERT INTO key_changes VALUES (?, ?, ?, ?, ?)",
                (
                    rid,
                    id_,
                    cv,
                    self._key_values_json(resource, old_key),
                    self._key_values_json(resource, key),
                ),
            )
        self.set_meta("cv", str(cv))
        return WriteResult(id_, False, cv)

    def _key_values_json(self, resource: Resource, key: str) -> bytes:
        return orjson.dumps(dict(zip(resource.key_names, orjson.loads(key), strict=True)))

    def put(
        self, resource: Resource, id_: str, body: dict[str, Any], if_match: str | None = None
    ) -> WriteResult:
        """PUT by id: full replacement; a changed natural key is a key change (cascaded)."""
        body = self.validate(resource, body)
        key = self.record_key(resource, body)
        with self._write_lock:
            self._commit_open_group()
            conn = self._conn()
            row = conn.execute(
                "SELECT seq, id, cv, body FROM records WHERE rid=? AND id=?",
                (self.rid(resource), id_),
            ).fetchone()
            if row is None:
                raise not_found()
            _check_etag(if_match, row[2])
            old = orjson.loads(row[3])
            old_key = self.record_key(resource, old)
            if old_key != key:
                if not resource.key_changes:
                    raise key_change_not_supported(_entity(resource))
                clash = conn.execute(
                    "SELECT 1 FROM records WHERE rid=? AND key=?", (self.rid(resource), key)
                ).fetchone()
                if clash:
                    raise non_unique_identity(_entity(resource), resource.key_values(body))
            with self._transaction(conn):
                result = self._update(conn, resource, row, body, key, old_key=old_key)
                if old_key != key:
                    self._cascade(conn, resource, row[0], orjson.loads(old_key), orjson.loads(key))
        return result

    def _cascade(
        self,
        conn: sqlite3.Connection,
        target: Resource,
        target_seq: int,
        old_values: list[Any],
        new_values: list[Any],
    ) -> None:
        """Rewrite every reference to a record whose key changed, as ODS cascades do."""
        old_map = dict(zip(target.key_names, old_values, strict=True))
        new_map = dict(zip(target.key_names, new_values, strict=True))
        sources = conn.execute(
            "SELECT r.seq, r.id, r.cv, r.body, r.rid FROM refs JOIN records r ON r.seq = refs.src "
            "WHERE refs.tgt=?",
            (target_seq,),
        ).fetchall()
        for seq, id_, cv, raw, rid in sources:
            resource = self.resource_by_rid[rid]
            body = orjson.loads(raw)
            for meta in ("id", "_etag", "_lastModifiedDate"):
                body.pop(meta, None)
            _rewrite_refs(self.model, resource.shape, body, target, old_map, new_map)
            old_key = self.record_key(resource, orjson.loads(raw))
            key = self.record_key(resource, body)
            self._update(
                conn,
                resource,
                (seq, id_, cv, raw),
                body,
                key,
                old_key=old_key if resource.key_changes else None,
            )
            if old_key != key:
                self._cascade(conn, resource, seq, orjson.loads(old_key), orjson.loads(key))

    def delete(self, resource: Resource, id_: str, if_match: str | None = None) -> int:
        with self._write_lock:
            self._commit_open_group()
            conn = self._conn()
            rid = self.rid(resource)
            row = conn.execute(
                "SELECT seq, key, cv FROM records WHERE rid=? AND id=?", (rid, id_)
            ).fetchone()
            if row is None:
                raise not_found()
            seq, key, cv_now = row
            _check_etag(if_match, cv_now)
            if resource.is_descriptor:
                self._check_descriptor_unused(conn, resource, key)
            dep = conn.execute(
                "SELECT r.rid FROM refs JOIN records r ON r.seq = refs.src WHERE refs.tgt=? "
                "LIMIT 1",
                (seq,),
            ).fetchone()
            if dep:
                entity = _entity(self.resource_by_rid[dep[0]])
                raise dependent_item_exists(entity)
            with self._transaction(conn):
                cv = self._next_cv()
                conn.execute(
                    "INSERT INTO history(rid, seq, id, key, cv, until_cv, body) "
                    "SELECT rid, seq, id, key, cv, ?, body FROM records WHERE seq=?",
                    (cv, seq),
                )
                conn.execute("DELETE FROM records WHERE seq=?", (seq,))
                conn.execute("DELETE FROM refs WHERE src=?", (seq,))
                conn.execute(
                    "INSERT INTO deletes(rid, id, cv, key_values, key) VALUES (?, ?, ?, ?, ?)",
                    (rid, id_, cv, self._key_values_json(resource, key), key),
                )
                self.set_meta("cv", str(cv))
            live = self.tables.live[rid]
            i = bisect.bisect_left(live, seq)
            if i < len(live) and live[i] == seq:
                del live[i]
            if resource.is_descriptor:
                ns, code = orjson.loads(key)
                self.descriptors.discard(f"{ns}#{code}".lower())
            return cv

    def _check_descriptor_unused(
        self, conn: sqlite3.Connection, resource: Resource, key: str
    ) -> None:
        """A descriptor value still used by records cannot be deleted (409, as in the ODS)."""
        ns, code = orjson.loads(key)
        needle = orjson.dumps(f"{ns}#{code}").decode()
        users = [
            self.rid(r)
            for r in self.model
            if any(d == resource.path for _, d in r.shape.descriptor_paths())
        ]
        for rid in users:
            hit = conn.execute(
                "SELECT 1 FROM records WHERE rid=? AND instr(body, ?) > 0 LIMIT 1", (rid, needle)
            ).fetchone()
            if hit:
                entity = _entity(self.resource_by_rid[rid])
                raise dependent_item_exists(entity)

    # -- bulk load -------------------------------------------------------------------
    def bulk_load(self, batches: Iterable[tuple[str, list[dict[str, Any]]]]) -> int:
        """Load a generated data set fast: same records as POSTs would make, one transaction.

        Resources must arrive in dependency order; bodies are trusted (the generator
        is tested against the model), so only references are resolved.
        """
        n = 0
        index: dict[int, dict[str, tuple[int, str]]] = {}
        needed = {p for p, deps in self.model.dependents.items() if deps}

        def bulk_find(rid: int, key: str) -> tuple[int, str] | None:
            return index.get(rid, {}).get(key)

        with self._write_lock:
            self._commit_open_group()
            conn = self._conn()
            with self._transaction(conn):
                for path, batch in batches:
                    resource = self.model[path]
                    rid = self.rid(resource)
                    rows: list[tuple[int, int, str, str, int, bytes]] = []
                    ref_rows: list[tuple[int, int]] = []
                    keep = index.setdefault(rid, {}) if path in needed else None
                    seq = int(
                        conn.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
                    )
                    for body in batch:
                        seq += 1
                        key = self.record_key(resource, body)
                        refs: list[int] = []
                        missing: list[str] = []
                        self._link_references(resource.shape, body, bulk_find, refs, missing)
                        if missing:
                            raise ValueError(f"{path}: a {missing[0]} reference does not resolve")
                        cv = self._next_cv()
                        id_ = self._new_id()
                        rows.append(
                            (seq, rid, id_, key, cv, self._serialize(resource, id_, body, cv))
                        )
                        ref_rows.extend((t, seq) for t in refs)
                        if keep is not None:
                            keep[key] = (seq, id_)
                        if resource.is_descriptor:
                            self.descriptors.add(f"{body['namespace']}#{body['codeValue']}".lower())
                    conn.executemany(
                        "INSERT INTO records(seq, rid, id, key, cv, body) VALUES (?,?,?,?,?,?)",
                        rows,
                    )
                    conn.executemany("INSERT OR IGNORE INTO refs VALUES (?, ?)", ref_rows)
                    self.tables.live[rid].extend(r[0] for r in rows)
                    n += len(rows)
                self.set_meta("cv", str(self._cv))
            # a district is one big transaction: fold it into the database file and
            # give the write-ahead log's disk back (6.5 GB at 25,000 students)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return n

    # -- reads ---------------------------------------------------------------------
    def get_by_id(
        self, resource: Resource, id_: str, snapshot: int | None = None
    ) -> tuple[bytes, int]:
        """A record as served, and its change version (its etag)."""
        conn = self._conn()
        rid = self.rid(resource)
        if snapshot is None:
            row = conn.execute(
                "SELECT body, cv FROM records WHERE rid=? AND id=?", (rid, id_)
            ).fetchone()
        else:
            row = conn.execute(
                "SELECT body, cv FROM (SELECT body, cv FROM records WHERE rid=? AND id=? "
                "AND cv<=? UNION ALL SELECT body, cv FROM history WHERE rid=? AND id=? AND cv<=? "
                "AND until_cv>?) LIMIT 1",
                (rid, id_, snapshot, rid, id_, snapshot, snapshot),
            ).fetchone()
        if row is None:
            raise not_found()
        return bytes(row[0]), int(row[1])

    def _select(
        self,
        rid: int,
        w: Window,
        extra: str = "",
        extra_params: Sequence[Any] = (),
        *,
        cols: str = "seq, body",
    ) -> tuple[str, list[Any]]:
        """SQL selecting the rows of a window, current or as of a snapshot."""
        conds, params = _window_conditions(rid, w)
        for path, value in w.filters:
            # strings compare as the ODS/API's database does: ignoring case
            conds.append(
                "json_extract(body, ?) = ? COLLATE NOCASE"
                if isinstance(value, str)
                else "json_extract(body, ?) = ?"
            )
            params += [path, value]
        if extra:
            conds.append(extra)
            params += extra_params
        where = " AND ".join(conds)
        if w.snapshot is None:
            return f"SELECT {cols} FROM records WHERE {where}", params
        # as of the snapshot: current rows not changed since, plus the versions that were
        # current then and have been superseded (updated, re-keyed or deleted) since
        sql = (
            f"SELECT {cols} FROM records WHERE {where} AND cv<=? UNION ALL "
            f"SELECT {cols} FROM history WHERE {where} AND cv<=? AND until_cv>?"
        )
        return sql, [*params, w.snapshot, *params, w.snapshot, w.snapshot]

    def count(self, resource: Resource, w: Window) -> int:
        rid = self.rid(resource)
        if w.plain:
            return len(self.tables.live[rid])
        sql, params = self._select(rid, w, cols="seq")
        return int(self._conn().execute(f"SELECT count(*) FROM ({sql})", params).fetchone()[0])

    def page_offset(self, resource: Resource, w: Window, offset: int, limit: int) -> Page:
        """Offset paging, ordered by row number (the ODS orders by its aggregate id)."""
        rid = self.rid(resource)
        conn = self._conn()
        if w.plain:
            live = self.tables.live[rid]
            if offset >= len(live):
                return Page(b"[]", 0, None)
            start = live[offset]
            rows = conn.execute(
                "SELECT seq, body FROM records WHERE rid=? AND seq>=? ORDER BY seq LIMIT ?",
                (rid, start, limit),
            ).fetchall()
        else:
            sql, params = self._select(rid, w)
            rows = conn.execute(
                f"{sql} ORDER BY seq LIMIT ? OFFSET ?", [*params, limit, offset]
            ).fetchall()
        return _page(rows)

    def page_range(self, resource: Resource, w: Window, start: int, end: int, size: int) -> Page:
        """Keyset paging inside a row-number range (7.3 page tokens).

        Reads ``size + 1`` rows so the caller knows whether another page follows.
        A snapshot read takes current rows and superseded versions separately,
        each in index order, and merges them: a ``UNION ALL ... ORDER BY`` would
        sort the whole range for every page.
        """
        rid = self.rid(resource)
        conn = self._conn()
        plain = Window(w.min_cv, w.max_cv, w.filters)
        sql, params = self._select(rid, plain, "seq>=? AND seq<?", (start, end))
        if w.snapshot is None:
            rows = conn.execute(f"{sql} ORDER BY seq LIMIT ?", [*params, size + 1]).fetchall()
        else:
            current = conn.execute(
                f"{sql} AND cv<=? ORDER BY seq LIMIT ?", [*params, w.snapshot, size + 1]
            ).fetchall()
            old_sql = sql.replace("FROM records", "FROM history", 1)
            old = conn.execute(
                f"{old_sql} AND cv<=? AND until_cv>? ORDER BY seq LIMIT ?",
                [*params, w.snapshot, w.snapshot, size + 1],
            ).fetchall()
            rows = list(heapq.merge(current, old))[: size + 1] if old else current
        page = _page(rows[:size])
        page.more = len(rows) > size
        return page

    def partitions(self, resource: Resource, w: Window, number: int) -> list[str]:
        """Split the matching rows into ``number`` ranges of about equal size."""
        rid = self.rid(resource)
        if w.plain:
            seqs: Sequence[int] = self.tables.live[rid]
        else:
            sql, params = self._select(rid, w, cols="seq")
            seqs = [r[0] for r in self._conn().execute(f"{sql} ORDER BY seq", params)]
        if not seqs:
            return []
        number = max(1, min(number, len(seqs)))
        bounds = [seqs[(len(seqs) * i) // number] for i in range(number)]
        ends = [*bounds[1:], seqs[-1] + 1]
        return [encode_token(s, e) for s, e in zip(bounds, ends, strict=True)]

    def tracked(
        self,
        resource: Resource,
        kind: str,
        w: Window,
        offset: int,
        limit: int,
    ) -> tuple[bytes, int]:
        """``/deletes`` or ``/keyChanges`` of a change-version window, as the ODS lists them.

        A delete whose natural key lives again (the record was recreated) is not
        listed; several key changes of one record come back as one: the first old
        key, the latest new key, the latest change version.
        """
        conds, params = _window_conditions(self.rid(resource), w)
        if w.snapshot is not None:
            conds.append("cv<=?")
            params.append(w.snapshot)
        where = " AND ".join(conds)
        conn = self._conn()
        if kind == "deletes":
            where += (
                " AND NOT EXISTS (SELECT 1 FROM records r "
                "WHERE r.rid=deletes.rid AND r.key=deletes.key)"
            )
            total = int(
                conn.execute(f"SELECT count(*) FROM deletes WHERE {where}", params).fetchone()[0]
            )
            rows = conn.execute(
                f"SELECT id, cv, key_values FROM deletes WHERE {where} ORDER BY cv "
                "LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            parts = [
                b'{"id":"%s","changeVersion":%d,"keyValues":%s}' % (i.encode(), cv, kv)
                for i, cv, kv in rows
            ]
            return b"[" + b",".join(parts) + b"]", total
        total = int(
            conn.execute(
                f"SELECT count(DISTINCT id) FROM key_changes WHERE {where}", params
            ).fetchone()[0]
        )
        groups = conn.execute(
            f"SELECT id, min(cv), max(cv) AS last FROM key_changes WHERE {where} GROUP BY id "
            "ORDER BY last LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        parts = []
        rid = self.rid(resource)
        for id_, first, last in groups:
            (old,) = conn.execute(
                "SELECT old_key FROM key_changes WHERE rid=? AND id=? AND cv=?", (rid, id_, first)
            ).fetchone()
            (new,) = conn.execute(
                "SELECT new_key FROM key_changes WHERE rid=? AND id=? AND cv=?", (rid, id_, last)
            ).fetchone()
            parts.append(
                b'{"id":"%s","changeVersion":%d,"oldKeyValues":%s,"newKeyValues":%s}'
                % (id_.encode(), last, old, new)
            )
        return b"[" + b",".join(parts) + b"]", total

    # -- helpers for tests and tooling ---------------------------------------------
    def iter_records(self, resource: Resource) -> Iterator[dict[str, Any]]:
        """Every current record of a resource, as served."""
        rid = self.rid(resource)
        for (body,) in self._conn().execute(
            "SELECT body FROM records WHERE rid=? ORDER BY seq", (rid,)
        ):
            yield orjson.loads(body)

    def find(self, resource: Resource, key_values: Mapping[str, Any]) -> dict[str, Any] | None:
        key = self.key_string([key_values[k] for k in resource.key_names])
        row = (
            self._conn()
            .execute("SELECT body FROM records WHERE rid=? AND key=?", (self.rid(resource), key))
            .fetchone()
        )
        return orjson.loads(row[0]) if row else None

    def close(self) -> None:
        self._commit_open_group()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


# a version 4 UUID from 128 random bits: variant bits 10, version nibble 4
_UUID_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_UUID_V4 = (0x8000 << 48) | (0x4000 << 64)

_Find = Callable[[int, str], "tuple[int, str] | None"]


def _values_at(body: Any, path: tuple[str, ...], where: str) -> Iterator[tuple[str, Any]]:
    """The values at a property path (through collections), with where each one is."""
    if isinstance(body, list):
        for i, item in enumerate(body):
            yield from _values_at(item, path, f"{where}[{i}]")
        return
    if not isinstance(body, Mapping):
        return
    value = body.get(path[0])
    if value is None:
        return
    here = f"{where}.{path[0]}" if where else path[0]
    if len(path) == 1:
        yield here, value
    else:
        yield from _values_at(value, path[1:], here)


def _window_conditions(rid: int, w: Window) -> tuple[list[str], list[Any]]:
    """SQL conditions (and their parameters) for a resource's change-version window."""
    conds = ["rid=?"]
    params: list[Any] = [rid]
    if w.min_cv is not None:
        conds.append("cv>=?")
        params.append(w.min_cv)
    if w.max_cv is not None:
        conds.append("cv<=?")
        params.append(w.max_cv)
    return conds, params


def _check_etag(if_match: str | None, cv: int) -> None:
    if if_match is not None and if_match != str(cv):
        raise optimistic_lock_failed()


def _page(rows: Sequence[tuple[int, bytes]]) -> Page:
    if not rows:
        return Page(b"[]", 0, None)
    return Page(b"[" + b",".join(r[1] for r in rows) + b"]", len(rows), rows[-1][0])


def _rewrite_refs(
    model: ApiModel,
    shape: Shape,
    body: dict[str, Any],
    target: Resource,
    old: Mapping[str, Any],
    new: Mapping[str, Any],
) -> None:
    """Point references at a record's new key values (every reference to the old key)."""
    for name, ref in shape.references.items():
        value = body.get(name)
        if not isinstance(value, dict) or target.path not in model.targets(ref):
            continue
        if all(value.get(k) == v for k, v in old.items()):
            value.update(new)
    for name, sub in shape.collections.items():
        for item in body.get(name) or ():
            if isinstance(item, dict):
                _rewrite_refs(model, sub, item, target, old, new)
    for name, sub in shape.objects.items():
        item = body.get(name)
        if isinstance(item, dict):
            _rewrite_refs(model, sub, item, target, old, new)
