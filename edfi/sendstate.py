"""What a target holds from us: per resource and natural key, the hash of the accepted body.

lightbeam keys its state by a hash of the payload line, so a changed record is
a new line to it (sent again, the old one never tracked) and a failed line is
remembered as processed and skipped on later runs unless asked (its issue
#92). Here the state is keyed by the record's natural key -- what the API
itself keys on -- and holds only bodies the target *accepted*:

- same key, same body hash: unchanged, skipped;
- same key, another hash: changed, sent again (the POST upsert replaces it);
- not there (new, or failed last time): sent.

The state lives on the lake storage (any fsspec URL), one folder per target
and resource, as append-only segments of fixed 32-byte entries (key digest,
body digest; an all-zero body digest is a deletion). A send appends a segment
every few hundred accepted records, so a run killed mid-send loses at most
that much (and resends it -- an idempotent upsert); the end of a resource
compacts the segments into one base. Two runs on one lake only ever add
segments, and a reader takes the newest base plus every later segment, so a
half-finished compaction is never read.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import fsspec
import orjson
from fsspec.core import url_to_fs

from edfi.model import SERVER_FIELDS

DIGEST = 16
ENTRY = 2 * DIGEST
TOMBSTONE = bytes(DIGEST)
_IGNORED = SERVER_FIELDS | {"link"}
_SAFE = re.compile(r"[A-Za-z0-9_.-]+")


def body_digest(record: Mapping[str, Any]) -> bytes:
    """A digest of what the record says: key order, whitespace and server fields do not count."""
    clean = {k: v for k, v in record.items() if k not in _IGNORED}
    return hashlib.blake2b(
        orjson.dumps(clean, option=orjson.OPT_SORT_KEYS), digest_size=DIGEST
    ).digest()


def target_id(base_url: str, *, school_year: int | None = None, tenant: str | None = None) -> str:
    """A folder name for one target: a digest, so no server-given text shapes a path."""
    ident = f"{base_url.rstrip('/').lower()}|{tenant or ''}|{school_year or ''}"
    return hashlib.blake2b(ident.encode(), digest_size=10).hexdigest()


def _stamp() -> str:
    return f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"


class ResourceState:
    """The accepted bodies of one resource at one target, with buffered appends."""

    def __init__(
        self, fs: fsspec.AbstractFileSystem, folder: str, entries: dict[bytes, bytes]
    ) -> None:
        self.fs = fs
        self.folder = folder
        self.entries = entries
        self._pending: list[bytes] = []
        self._segments: list[str] = []

    def __len__(self) -> int:
        return len(self.entries)

    def unchanged(self, key: bytes, body: bytes) -> bool:
        return self.entries.get(key) == body

    def known(self, key: bytes) -> bool:
        return key in self.entries

    def accepted(self, key: bytes, body: bytes) -> None:
        self.entries[key] = body
        self._pending.append(key + body)

    def deleted(self, key: bytes) -> None:
        self.entries.pop(key, None)
        self._pending.append(key + TOMBSTONE)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Append what was accepted since the last flush as one new segment."""
        if not self._pending:
            return
        path = f"{self.folder}/seg-{_stamp()}.bin"
        self.fs.makedirs(self.folder, exist_ok=True)
        with self.fs.open(path, "wb") as fh:
            fh.write(b"".join(self._pending))
        self._pending.clear()
        self._segments.append(path)

    def compact(self) -> None:
        """One base holding every live entry; older files removed after it is written."""
        self.flush()
        older = _listing(self.fs, self.folder)
        path = f"{self.folder}/base-{_stamp()}.bin"
        self.fs.makedirs(self.folder, exist_ok=True)
        with self.fs.open(path, "wb") as fh:
            fh.write(b"".join(k + v for k, v in self.entries.items()))
        for name in older:
            if name != path:
                self.fs.rm_file(name)


def _listing(fs: fsspec.AbstractFileSystem, folder: str) -> list[str]:
    try:
        names = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return []
    return sorted(str(n) for n in names if str(n).rsplit("/", 1)[-1].startswith(("base-", "seg-")))


def _read_entries(data: bytes, into: dict[bytes, bytes]) -> None:
    usable = len(data) - len(data) % ENTRY  # a torn last entry (killed writer) is dropped
    view = memoryview(data)
    for i in range(0, usable, ENTRY):
        key = bytes(view[i : i + DIGEST])
        body = bytes(view[i + DIGEST : i + ENTRY])
        if body == TOMBSTONE:
            into.pop(key, None)
        else:
            into[key] = body


class SendState:
    """The send state of one target on a lake: ``{url}/_send_state/{target}/{resource}/``."""

    def __init__(
        self, url: str, target: str, *, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.fs, root = url_to_fs(url, **dict(storage_options or {}))
        self.root = f"{root.rstrip('/')}/_send_state/{target}"

    def folder(self, resource_path: str) -> str:
        """The resource's folder; a name that could leave the state's root is refused."""
        segments = resource_path.strip("/").split("/")
        if not all(_SAFE.fullmatch(s) and s not in (".", "..") for s in segments):
            raise ValueError(f"Refusing {resource_path!r} as a state folder: not a resource path.")
        return self.root + "/" + "/".join(segments)

    def load(self, resource_path: str) -> ResourceState:
        folder = self.folder(resource_path)
        names = _listing(self.fs, folder)
        bases = [n for n in names if n.rsplit("/", 1)[-1].startswith("base-")]
        start = bases[-1] if bases else ""
        entries: dict[bytes, bytes] = {}
        for name in names:
            base_name = name.rsplit("/", 1)[-1]
            if name == start or (base_name.startswith("seg-") and _after(base_name, start)):
                with self.fs.open(name, "rb") as fh:
                    _read_entries(fh.read(), entries)
        return ResourceState(self.fs, folder, entries)

    def clear(self, resources: Iterable[str]) -> None:
        for path in resources:
            folder = self.folder(path)
            if self.fs.exists(folder):
                self.fs.rm(folder, recursive=True)


def _after(segment: str, base: str) -> bool:
    """A segment written after the base (names sort by their nanosecond stamp)."""
    if not base:
        return True
    return segment.removeprefix("seg-") > base.rsplit("/", 1)[-1].removeprefix("base-")
