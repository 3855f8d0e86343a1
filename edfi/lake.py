"""The lake: raw JSONL and typed parquet on any fsspec storage, committed by manifests.

Layout under the storage URL (Hive-style partitions)::

    raw/{namespace}/{resource}/school_year={y}/run={run_id}/records-{lane}-{part}.jsonl.gz
                                                           deletes.jsonl.gz
                                                           key_changes.jsonl.gz
    current/{namespace}/{resource}/school_year={y}/v{version}/part-{lane}-{part}.parquet
    state/{namespace}/{resource}/school_year={y}.json      committed manifest
    runs/{run_id}.json                                     run manifest
    leases/tables/{namespace}/{resource}/school_year={y}.json, leases/runs/{run_id}.json
                                                           who writes a table, which run is alive

A table version directory becomes visible only when the state manifest that
names it is written, and that is the last write of a resource's pull. Manifests
name files relative to the root, so a lake can be moved. Readers (gold, the next
incremental run) go through ``committed_files``; older versions are removed after
each commit. Runs that overlap are kept apart by leases and compare-and-swap
commits (see "compare-and-swap and leases"). ``school_year=0`` holds
data of an API that is not year-specific.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import fcntl
import hashlib
import io
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import fsspec
import fsspec.asyn
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj
import pyarrow.parquet as pq
from isal import igzip

# exceptions live in edfi.errors; re-exported so old imports keep working
from .errors import LakeConflict as LakeConflict
from .errors import LakeError as LakeError
from .errors import LeaseHeld as LeaseHeld
from .errors import LeaseLost as LeaseLost
from .model import Resource, Shape

LINEAGE = ("_school_year", "_change_version", "_pulled_at")
ROW_GROUP_ROWS = 50_000


_TOP_DIRS = ("current", "raw", "state", "runs", "gold", "publish", "leases")
# where a file sits in the lake's layout, whatever the root was when a manifest named it
_LAYOUT = re.compile(r"(?:^|/)((?:current/[^/]+/[^/]+/school_year=-?\d+|gold)/v[^/]+/.+)$")


# -- names from a server ---------------------------------------------------------------

# Ed-Fi names namespaces and resources with letters, digits and '-' (``ed-fi``,
# ``studentSchoolAssociations``, ``tpdm``); anything else in a server's metadata
# is refused before it can shape a path in the lake.
_EDFI_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")


def check_resource_name(resource: Resource) -> None:
    """Refuse a resource whose namespace or name is not an Ed-Fi name.

    These names come from the server's OpenAPI document and become folder
    names in the lake; a name like ``..`` would move a write out of the lake.
    """
    for kind, value in (("namespace", resource.namespace), ("name", resource.name)):
        if not _EDFI_NAME.fullmatch(value):
            raise LakeError(
                f"The server's metadata names a resource {resource.path!r} whose {kind} "
                f"{value!r} is not an Ed-Fi name (letters, digits and '-' only), so it "
                "cannot name a folder in the lake; nothing was written. Leave it out with "
                "`exclude` or fix the server's OpenAPI document."
            )


def check_resource_names(resources: Iterable[Resource]) -> None:
    """``check_resource_name`` for every resource a run will touch, before its first write."""
    for resource in resources:
        check_resource_name(resource)


# -- storage ---------------------------------------------------------------------------


class Lake:
    """A storage URL (``file://``, ``s3://``, ``memory://`` ...) and the lake's conventions."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None):
        if not url or ("://" not in url and not url.startswith("/") and not url.startswith(".")):
            raise LakeError(
                f"The lake URL {url!r} is not a storage URL; use e.g. file:///data/lake, "
                "./lake or s3://bucket/prefix."
            )
        protocol = url.split("://", 1)[0] if "://" in url else "file"
        try:
            fsspec.get_filesystem_class(protocol)
        except (ValueError, ImportError) as exc:
            raise LakeError(
                f"The lake URL {url!r} uses the storage protocol {protocol!r}, which is not "
                f"available ({exc}); install its fsspec package or fix the URL."
            ) from exc
        try:
            self.fs, root = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
        except Exception as exc:
            raise LakeError(f"Cannot open the lake at {url!r}: {exc}") from exc
        self.url = url
        self.root = root.rstrip("/")
        self.protocol = protocol

    @property
    def local(self) -> bool:
        return self.protocol in ("file", "local")

    def makedirs(self, path: str) -> None:
        """Folders exist only on local disk; on object stores (where s3fs's ``makedirs``
        would even create a missing bucket) there is nothing to make."""
        if self.local:
            self.fs.makedirs(path, exist_ok=True)

    def check_writable(self) -> None:
        """Fail before any data is read if the lake cannot be written."""
        probe = self.path("runs", f".probe-{uuid.uuid4().hex}")
        try:
            if not self.local:
                bucket = self.root.split("/", 1)[0]
                if not self.fs.exists(bucket):
                    raise FileNotFoundError(f"bucket {bucket!r} does not exist")
            self.makedirs(self.path("runs"))
            with self.fs.open(probe, "wb") as fh:
                fh.write(b"ok")
            self.fs.rm(probe)
        except Exception as exc:
            raise LakeError(
                f"Cannot write to the lake at {self.url!r}: {type(exc).__name__}: {exc}. Check "
                "that the location (bucket) exists and the credentials allow writing."
            ) from exc

    def path(self, *parts: str) -> str:
        """A path under the lake root: every lake path is built here.

        Each part may hold several ``/``-separated segments; a segment that is
        empty, ``.`` or ``..``, or holds a backslash or NUL is refused, so no
        path built from a name can leave the root.
        """
        segments: list[str] = []
        for part in parts:
            for seg in part.split("/"):
                if seg in ("", ".", "..") or "\\" in seg or "\x00" in seg:
                    raise LakeError(
                        f"Refusing the lake path {'/'.join(parts)!r}: its segment {seg!r} "
                        f"would not name a file under the lake root {self.url!r}."
                    )
                segments.append(seg)
        return "/".join([self.root, *segments])

    def within(self, base: str, *parts: str) -> str:
        """``parts`` below ``base``, a path this lake built."""
        return self.path(self.relative(base), *parts)

    def resolve(self, name: str) -> str:
        """A file a manifest names, as a path of this lake.

        Manifests name files relative to the lake root, so a lake can be moved or
        copied. Manifests written before that named absolute paths; those are read
        by where the file sits in the lake's layout, under this root, so a moved
        lake never reads its old location.
        """
        if "://" in name:
            name = name.split("://", 1)[1]
        if name.startswith(self.root + "/"):
            return self.path(name[len(self.root) + 1 :])
        if not name.startswith("/") and name.split("/", 1)[0] in _TOP_DIRS:
            return self.path(name)
        found = _LAYOUT.search(name)
        if found is None:
            raise LakeError(
                f"A manifest of the lake at {self.url!r} names {name!r}, which is not a file "
                "of this lake; rerun the flow that wrote it (extract with mode='full')."
            )
        return self.path(found.group(1))

    def relative(self, path: str) -> str:
        """A lake path as manifests name it: relative to the root, so the lake can move."""
        prefix = self.root + "/"
        if not path.startswith(prefix):
            raise LakeError(f"{path!r} is not a path under the lake root {self.root!r}.")
        return path[len(prefix) :]

    def uri(self, path: str) -> str:
        """A full URL for a path (what DuckDB and users see)."""
        return path if self.protocol == "file" else f"{self.protocol}://{path}"

    def write_bytes(self, path: str, data: bytes) -> None:
        """Write a whole object; on local disk via a rename so readers never see half of it."""
        self.makedirs(path.rsplit("/", 1)[0])
        if self.local:
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
            self.fs.mv(tmp, path)
        else:  # object stores make a PUT visible whole
            with self.fs.open(path, "wb") as fh:
                fh.write(data)

    def write_json(self, path: str, obj: Any) -> None:
        self.write_bytes(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2))

    def read_json(self, path: str) -> Any | None:
        try:
            with self.fs.open(path, "rb") as fh:
                return orjson.loads(fh.read())
        except FileNotFoundError:
            return None

    # -- compare-and-swap (see "compare-and-swap and leases" below) ------------------
    def read_versioned(self, path: str) -> Versioned:
        """A JSON object and the version it was read at, for ``write_if``."""
        data: bytes | None
        if self.protocol in ("s3", "s3a"):
            data, token = fsspec.asyn.sync(self.fs.loop, _s3_get, self.fs, path)
        else:
            try:
                with self.fs.open(path, "rb") as fh:
                    data = fh.read()
            except FileNotFoundError:
                data = None
            token = None if data is None else _digest(data)
        return Versioned(None if data is None else orjson.loads(data), token)

    def write_if(self, path: str, obj: Any, token: str | None) -> str:
        """Replace a JSON object only if it is still at version ``token`` (``None``: only
        if it does not exist); raises ``Conflict`` otherwise. Returns the new version."""
        data = orjson.dumps(obj, option=orjson.OPT_INDENT_2)
        if self.protocol in ("s3", "s3a"):
            return str(fsspec.asyn.sync(self.fs.loop, _s3_put_if, self.fs, path, data, token))
        with self._exclusive():
            current = self.read_versioned(path).token
            if current != token:
                raise Conflict(f"{path} was changed by another writer since it was read")
            self.write_bytes(path, data)
        return _digest(data)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """The lake's compare-and-swap section: an ``flock`` on local disk (the kernel
        drops it if the process dies), a lock of this process elsewhere."""
        if not self.local:
            with _memory_lock:
                yield
            return
        folder = self.path("leases")
        self.makedirs(folder)
        fd = os.open(f"{folder}/.cas.lock", os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def exists(self, path: str) -> bool:
        return bool(self.fs.exists(path))

    def rm(self, path: str) -> None:
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)

    def invalidate(self) -> None:
        self.fs.invalidate_cache()

    # -- conventions -----------------------------------------------------------------
    @staticmethod
    def table_dir(resource: Resource) -> str:
        check_resource_name(resource)
        return f"{resource.namespace}/{resource.name}"

    def state_path(self, resource: Resource, year: int) -> str:
        return self.path("state", self.table_dir(resource), f"school_year={year}.json")

    def current_dir(self, resource: Resource, year: int) -> str:
        return self.path("current", self.table_dir(resource), f"school_year={year}")

    def raw_dir(self, resource: Resource, year: int, run_id: str) -> str:
        return self.path("raw", self.table_dir(resource), f"school_year={year}", f"run={run_id}")

    def lease_name(self, resource: Resource, year: int) -> str:
        """The lease a run holds while it writes a table (see ``take_lease``)."""
        return f"tables/{self.table_dir(resource)}/school_year={year}"

    def run_path(self, run_id: str) -> str:
        return self.path("runs", f"{run_id}.json")

    def state(self, resource: Resource, year: int) -> dict[str, Any] | None:
        return self.read_json(self.state_path(resource, year))

    def committed_files(self, resource: Resource, year: int) -> list[str]:
        state = self.state(resource, year)
        return self.files_of(state) if state else []

    def files_of(self, manifest: Mapping[str, Any]) -> list[str]:
        """The paths of the files a state manifest names, resolved against this root."""
        return [self.resolve(name) for name in manifest.get("files") or []]

    def read_state(self, resource: Resource, year: int) -> Versioned:
        """A table's committed state and its version, for ``commit``."""
        return self.read_versioned(self.state_path(resource, year))

    def commit(
        self,
        resource: Resource,
        year: int,
        state: dict[str, Any],
        read: Versioned,
        lease: Lease | None = None,
    ) -> str:
        """Make a table version current -- only if the state ``read`` is still the
        committed one (else ``Conflict``: another run committed since) -- then drop the
        other versions. Returns the new state's version."""
        token = self.write_if(self.state_path(resource, year), state, read.token)
        if state.get("version"):
            self.collect_garbage(resource, year, str(state["version"]), lease)
        return token

    def collect_garbage(
        self, resource: Resource, year: int, keep: str, lease: Lease | None = None
    ) -> None:
        """Remove the table's versions other than ``keep``, the one just committed.

        Version names sort by creation time. An older one is superseded, or was left
        by a run that can no longer commit it (the state it read is gone). A newer one
        may belong to a run still at work, so it is removed only while this run
        provably holds the table's lease (renewed just now): then no other run is
        writing the table, and a stalled one could not commit what it wrote anyway.
        """
        base = self.current_dir(resource, year)
        self.fs.invalidate_cache(base)
        try:
            entries = self.fs.ls(base, detail=False)
        except FileNotFoundError:
            return
        named = [(entry, entry.rstrip("/").rsplit("/", 1)[-1]) for entry in entries]
        everything = False
        if lease is not None and any(name > keep for _, name in named):
            # the proof costs a write, so it is made only when there is a newer version
            # (rarely: most commits find none, and a run commits hundreds of tables)
            lease.renew()
            everything = not lease.lost
        for entry, name in named:
            if name != keep and (name < keep or everything):
                self.fs.rm(entry, recursive=True)

    def missing_files(self, state: Mapping[str, Any]) -> list[str]:
        """The files a committed state names that are not in the lake (a damaged table)."""
        paths = self.files_of(state)
        for folder in {p.rsplit("/", 1)[0] for p in paths}:
            self.fs.invalidate_cache(folder)
        return [p for p in paths if not self.fs.exists(p)]

    def runs(self) -> list[dict[str, Any]]:
        try:
            names = self.fs.ls(self.path("runs"), detail=False)
        except FileNotFoundError:
            return []
        out = []
        for n in sorted(names):
            if n.endswith(".json"):
                run = self.read_json(n)
                if run:
                    out.append(run)
        return out


# -- compare-and-swap and leases -------------------------------------------------------
#
# Several runs may write one lake at once (a nightly run overlapping a full refresh,
# a retry started by hand). Manifests are therefore replaced only by compare-and-swap:
# a writer names the version of the manifest it read, and the write fails if that is
# no longer the current one. On S3 that is a conditional PUT (``If-Match`` with the
# ETag read, ``If-None-Match: *`` to create); on local disk the compare and the
# rename run under an exclusive ``flock`` (released by the kernel if the process
# dies); other stores get a lock within the process only.
#
# On top of it, a lease is a small JSON object naming its owner and an expiry, taken
# and renewed by compare-and-swap: the writer of a table (or a run) holds it while it
# works, so a second run waits for it -- or, with no time to wait, fails naming the
# run that holds it. A holder that died stops renewing and its lease expires; on the
# same host a holder whose process is gone is recognised at once.

LEASE_TTL = float(os.environ.get("EDFI_LAKE_LEASE_TTL", "60"))
_HOST = socket.gethostname()
_memory_lock = threading.Lock()


Conflict = LakeConflict  # the short name the lake's callers use


@dataclass(frozen=True)
class Versioned:
    """A JSON object and the version it was read at (``None``: it did not exist)."""

    value: Any
    token: str | None


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _s3_key(fs: Any, path: str) -> tuple[str, str]:
    bucket, key, _ = fs.split_path(path)
    return bucket, key


async def _s3_get(fs: Any, path: str) -> tuple[bytes | None, str | None]:
    bucket, key = _s3_key(fs, path)
    try:
        resp = await fs._call_s3("get_object", Bucket=bucket, Key=key)
    except FileNotFoundError:
        return None, None
    body = resp["Body"]
    try:
        data = await body.read()
    finally:
        body.close()
    return data, str(resp["ETag"])


async def _s3_put_if(fs: Any, path: str, data: bytes, token: str | None) -> str:
    bucket, key = _s3_key(fs, path)
    match = {"IfNoneMatch": "*"} if token is None else {"IfMatch": token}
    try:
        resp = await fs._call_s3("put_object", Bucket=bucket, Key=key, Body=data, **match)
    except FileExistsError as exc:
        raise Conflict(f"{path} was created by another writer") from exc
    except OSError as exc:
        text = str(exc)
        if exc.errno == errno.EINVAL or "PreconditionFailed" in text or "Conflict" in text:
            raise Conflict(f"{path} was changed by another writer") from exc
        raise
    fs.invalidate_cache(path)
    return str(resp["ETag"])


def _expires(doc: Mapping[str, Any]) -> float:
    return float(doc.get("expires_at") or 0)


def _holder_alive(doc: Mapping[str, Any]) -> bool:
    """Whether the lease in ``doc`` still binds: released and expired ones do not, nor
    one whose holder's process on this host no longer exists."""
    if doc.get("released") or _expires(doc) <= time.time():
        return False
    if doc.get("host") == _HOST and doc.get("pid"):
        try:
            os.kill(int(doc["pid"]), 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
    return True


class Lease:
    """A lease held on the lake; renewed in the background until released."""

    def __init__(self, lake: Lake, path: str, doc: dict[str, Any], token: str, ttl: float):
        self.lake = lake
        self.path = path
        self.doc = doc
        self.token = token
        self.ttl = ttl
        self.lost: str | None = None
        self._lock = threading.Lock()

    @property
    def owner(self) -> str:
        return str(self.doc["owner"])

    def renew(self) -> None:
        with self._lock:
            if self.lost or self.doc.get("released"):
                return
            doc = {**self.doc, "expires_at": time.time() + self.ttl}
            try:
                self.token = self.lake.write_if(self.path, doc, self.token)
                self.doc = doc
            except Conflict:
                current = self.lake.read_versioned(self.path).value or {}
                self.lost = f"the lease {self.path} was taken by run {current.get('run_id')!r}"

    def check(self) -> None:
        """Raise ``LeaseLost`` if another run took this lease (this one expired)."""
        if self.lost:
            raise LeaseLost(self.lost)

    def release(self) -> None:
        _keeper.forget(self)
        with self._lock:
            if self.lost or self.doc.get("released"):
                return
            doc = {**self.doc, "released": True, "expires_at": 0}
            try:
                self.token = self.lake.write_if(self.path, doc, self.token)
                self.doc = doc
            except Conflict:
                self.lost = "released after another run took it"


class _Keeper:
    """One thread per process renewing every held lease at a third of its lifetime."""

    def __init__(self) -> None:
        self._leases: set[Lease] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._leases.add(lease)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="lake-leases", daemon=True)
                self._thread.start()

    def forget(self, lease: Lease) -> None:
        with self._lock:
            self._leases.discard(lease)

    def _run(self) -> None:
        while True:
            with self._lock:
                leases = list(self._leases)
            now = time.time()
            for lease in leases:
                if _expires(lease.doc) - now < lease.ttl * 2 / 3:
                    with suppress(Exception):  # a storage hiccup: the next round tries again
                        lease.renew()
            time.sleep(min([lease.ttl / 6 for lease in leases] or [1.0]))


_keeper = _Keeper()


def _try_lease(
    lake: Lake, path: str, *, run_id: str, owner: str, ttl: float
) -> Lease | dict[str, Any]:
    """One attempt: the lease, or the document of the live lease another run holds."""
    while True:
        current = lake.read_versioned(path)
        doc = current.value or {}
        if current.token is not None and doc.get("owner") != owner and _holder_alive(doc):
            return dict(doc)
        mine = {
            "owner": owner,
            "run_id": run_id,
            "host": _HOST,
            "pid": os.getpid(),
            "acquired_at": dt.datetime.now(dt.UTC).isoformat(),
            "expires_at": time.time() + ttl,
        }
        try:
            token = lake.write_if(path, mine, current.token)
        except Conflict:
            continue  # another run wrote it between our read and our write: look again
        lease = Lease(lake, path, mine, token, ttl)
        _keeper.hold(lease)
        return lease


def _held(what: str, doc: Mapping[str, Any], waited: float) -> LeaseHeld:
    until = dt.datetime.fromtimestamp(_expires(doc), dt.UTC).isoformat(timespec="seconds")
    return LeaseHeld(
        f"{what} is being written by run {doc.get('run_id')!r} (on {doc.get('host')}, its "
        f"lease runs until {until} unless renewed); waited {waited:.0f}s. Let that run "
        "finish, or allow a longer wait (lease_wait_seconds)."
    )


def take_lease(
    lake: Lake,
    name: str,
    *,
    run_id: str,
    owner: str,
    wait: float = 0.0,
    ttl: float | None = None,
    what: str = "",
) -> Lease:
    """Take the lease ``leases/{name}.json`` for ``owner``, waiting up to ``wait`` seconds.

    ``owner`` names this holder (a run and its process); a lease the same owner
    holds is taken again. Raises ``LeaseHeld`` naming the run that holds it.
    """
    path = lake.path("leases", f"{name}.json")
    started = time.monotonic()
    while True:
        got = _try_lease(lake, path, run_id=run_id, owner=owner, ttl=ttl or LEASE_TTL)
        if isinstance(got, Lease):
            return got
        if time.monotonic() - started >= wait:
            raise _held(what or name, got, time.monotonic() - started)
        time.sleep(0.25)


async def take_lease_async(
    lake: Lake,
    name: str,
    *,
    run_id: str,
    owner: str,
    wait: float = 0.0,
    ttl: float | None = None,
    what: str = "",
) -> Lease:
    """``take_lease`` for coroutines: the wait sleeps on the event loop, not in a thread."""
    path = lake.path("leases", f"{name}.json")
    started = time.monotonic()
    while True:
        got = _try_lease(lake, path, run_id=run_id, owner=owner, ttl=ttl or LEASE_TTL)
        if isinstance(got, Lease):
            return got
        if time.monotonic() - started >= wait:
            raise _held(what or name, got, time.monotonic() - started)
        await asyncio.sleep(0.25)


def new_version() -> str:
    """A sortable, unique table version name."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
    return f"v{stamp}-{uuid.uuid4().hex[:6]}"


# -- arrow schema from the model -------------------------------------------------------


def _arrow_type(kind: str, fmt: str | None, *, parse: bool) -> pa.DataType:
    if kind == "integer":
        return pa.int32() if fmt == "int32" else pa.int64()
    if kind == "number":
        return pa.float64()
    if kind == "boolean":
        return pa.bool_()
    if kind == "date" and not parse:
        return pa.date32()
    if kind == "date-time" and not parse:
        return pa.timestamp("us", tz="UTC")
    return pa.string()  # strings, descriptors, times; dates while parsing


def _struct(shape: Shape, *, parse: bool) -> list[pa.Field]:
    fields = [
        pa.field(s.name, _arrow_type(s.kind, s.fmt, parse=parse)) for s in shape.scalars.values()
    ]
    for ref in shape.references.values():
        fields.append(
            pa.field(
                ref.name,
                pa.struct(
                    [pa.field(f.name, _arrow_type(f.kind, f.fmt, parse=parse)) for f in ref.fields]
                ),
            )
        )
    for name, sub in shape.collections.items():
        fields.append(pa.field(name, pa.list_(pa.struct(_struct(sub, parse=parse)))))
    for name, sub in shape.objects.items():
        fields.append(pa.field(name, pa.struct(_struct(sub, parse=parse))))
    return fields


_schemas: dict[tuple[int, bool], tuple[Resource, pa.Schema]] = {}


def arrow_schema(resource: Resource, *, parse: bool = False) -> pa.Schema:
    """The parquet schema of a resource: typed from OpenAPI, plus server and lineage columns.

    With ``parse`` the dates and date-times are strings: the shape the JSON
    reader reads before they are cast. Built once per resource (pages reuse it).
    """
    cached = _schemas.get((id(resource), parse))
    if cached is not None and cached[0] is resource:
        return cached[1]
    schema = _build_schema(resource, parse)
    _schemas[(id(resource), parse)] = (resource, schema)
    return schema


def _build_schema(resource: Resource, parse: bool) -> pa.Schema:
    ts = pa.string() if parse else pa.timestamp("us", tz="UTC")
    fields = [
        pa.field("id", pa.string()),
        *_struct(resource.shape, parse=parse),
        pa.field("_etag", pa.string()),
        pa.field("_lastModifiedDate", ts),
    ]
    if not parse:
        fields += [
            pa.field("_school_year", pa.int32()),
            pa.field("_change_version", pa.int64()),
            pa.field("_pulled_at", pa.timestamp("us", tz="UTC")),
        ]
    return pa.schema(fields)


_FRACTION = r"(\.\d{6})\d+"


def _cast(arr: pa.Array | pa.ChunkedArray, target: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """Cast parsed strings to their types; trims 7-digit fractions the ODS/API writes."""
    try:
        return arr.cast(target)
    except pa.ArrowInvalid:
        if pa.types.is_timestamp(target) and pa.types.is_string(arr.type):
            trimmed = pc.replace_substring_regex(arr, _FRACTION, r"\1")
            trimmed = pc.replace_substring_regex(
                trimmed, r"(T\d{2}:\d{2}:\d{2}(?:\.\d+)?)$", r"\1Z"
            )
            return trimmed.cast(target)
        raise


def records_to_table(
    jsonl: bytes,
    resource: Resource,
    *,
    school_year: int,
    change_version: int,
    pulled_at: dt.datetime,
) -> pa.Table:
    """Typed rows from JSON lines (fast C++ reader, then casts); extra properties ignored."""
    parse_schema = arrow_schema(resource, parse=True)
    if not jsonl:
        parsed = parse_schema.empty_table()
    else:
        parsed = pj.read_json(
            io.BytesIO(jsonl),
            # one thread: pages of several resources are typed at once, each in its own
            # worker thread, so the reader's own pool would only add switching
            # a block must hold a whole record: a page bigger than the usual block (one
            # enormous record) is read as one block -- its size is capped by the client
            read_options=pj.ReadOptions(block_size=max(1 << 24, len(jsonl) + 1), use_threads=False),
            parse_options=pj.ParseOptions(
                explicit_schema=parse_schema, unexpected_field_behavior="ignore"
            ),
        )
        parsed = parsed.select(parse_schema.names)
    target = arrow_schema(resource)
    columns = []
    for f in parse_schema:
        col = parsed.column(f.name)
        want = target.field(f.name).type
        columns.append(col if col.type == want else _cast(col, want))
    n = parsed.num_rows
    # one value repeated: converting a Python datetime per row cost more than a
    # millisecond a page, a CPU second per million records
    columns += [
        pa.repeat(pa.scalar(school_year, pa.int32()), n),
        pa.repeat(pa.scalar(change_version, pa.int64()), n),
        pa.repeat(pa.scalar(pulled_at, pa.timestamp("us", tz="UTC")), n),
    ]
    return pa.Table.from_arrays(columns, schema=target)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """An older table version in today's schema: new columns null, dropped ones gone."""
    if table.schema.equals(schema):
        return table
    cols = []
    for f in schema:
        if f.name in table.column_names:
            col = table.column(f.name)
            cols.append(col if col.type == f.type else col.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=schema)


# -- writers ---------------------------------------------------------------------------


class JsonlGzWriter:
    """Raw records as gzip JSON lines, in parts of ``part_rows`` records.

    Compressed with ISA-L (plain gzip output, about five times faster than
    zlib's fastest level), since every record of a pull passes through here.
    """

    def __init__(self, lake: Lake, directory: str, prefix: str, part_rows: int = 200_000):
        self.lake = lake
        self.directory = directory
        self.prefix = prefix
        self.part_rows = part_rows
        self.parts: list[str] = []
        self.bytes = 0
        self._fh: Any = None
        self._gz: igzip.IGzipFile | None = None
        self._rows = 0

    def _open(self) -> None:
        path = f"{self.directory}/{self.prefix}-{len(self.parts):05d}.jsonl.gz"
        self.lake.makedirs(self.directory)
        self._fh = self.lake.fs.open(path, "wb")
        self._gz = igzip.IGzipFile(fileobj=self._fh, mode="wb", compresslevel=1)
        self.parts.append(path)
        self._rows = 0

    def write(self, jsonl: bytes, rows: int) -> None:
        if self._gz is None or self._rows >= self.part_rows:
            self.close()
            self._open()
        assert self._gz is not None
        self._gz.write(jsonl)
        self._rows += rows

    def close(self) -> None:
        if self._gz is not None:
            self._gz.close()
            self._fh.close()
            self.bytes += int(self.lake.fs.size(self.parts[-1]))
            self._gz = None
            self._fh = None


def write_jsonl_gz(lake: Lake, path: str, rows: Iterable[Mapping[str, Any]]) -> int:
    data = igzip.compress(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in rows))
    lake.write_bytes(path, data)
    return len(data)


class ParquetPartWriter:
    """A table version's parquet files, written as row groups of bounded size."""

    def __init__(
        self,
        lake: Lake,
        directory: str,
        schema: pa.Schema,
        part_rows: int = 2_000_000,
        prefix: str = "part",
    ):
        self.lake = lake
        self.directory = directory
        self.schema = schema
        self.prefix = prefix
        self.part_rows = part_rows
        self.files: list[str] = []
        self.rows = 0
        self._writer: pq.ParquetWriter | None = None
        self._fh: Any = None
        self._part_rows = 0
        self._pending: list[pa.Table] = []
        self._pending_rows = 0

    def write(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        table = pa.concat_tables(self._pending)
        self._pending, self._pending_rows = [], 0
        if self._writer is None or self._part_rows >= self.part_rows:
            self._close_part()
            path = f"{self.directory}/{self.prefix}-{len(self.files):05d}.parquet"
            self.lake.makedirs(self.directory)
            self._fh = self.lake.fs.open(path, "wb")
            self._writer = pq.ParquetWriter(self._fh, self.schema, compression="zstd")
            self.files.append(path)
            self._part_rows = 0
        self._writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        self._part_rows += table.num_rows
        self.rows += table.num_rows

    def _close_part(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._fh.close()
            self._writer = None

    def close(self, placeholder: bool = True) -> list[str]:
        """The files written; with ``placeholder`` an empty table still gets one."""
        self._flush()
        self._close_part()
        if placeholder and not self.files:  # so readers see the schema
            path = f"{self.directory}/{self.prefix}-00000.parquet"
            self.lake.makedirs(self.directory)
            with self.lake.fs.open(path, "wb") as fh:
                pq.write_table(self.schema.empty_table(), fh, compression="zstd")
            self.files.append(path)
        return self.files


def iter_batches(
    lake: Lake, files: Iterable[str], schema: pa.Schema | None = None
) -> Iterator[pa.Table]:
    """Row groups of committed parquet files, one at a time (bounded memory)."""
    for path in files:
        with lake.fs.open(path, "rb") as fh:
            pf = pq.ParquetFile(fh)
            for i in range(pf.num_row_groups):
                table = pf.read_row_group(i)
                yield conform(table, schema) if schema is not None else table


def read_table(lake: Lake, files: Iterable[str]) -> pa.Table:
    """A whole (small) table -- for tests and tools; flows stream with ``iter_batches``."""
    tables = list(iter_batches(lake, files))
    return pa.concat_tables(tables) if tables else pa.table({})


def safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", text)
