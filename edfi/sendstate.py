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
compacts the segments into one base. Accepted entries are not kept in memory:
segments are written sorted by key and merged as streams, so a send's memory
does not grow with the records it sends (only a rerun's lookups hold the
state it loaded). Two runs on one lake only ever add
segments, and a reader takes the newest base plus every later segment, so a
half-finished compaction is never read.
"""

from __future__ import annotations

import hashlib
import heapq
import re
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import fsspec
import orjson
from fsspec.core import url_to_fs

from edfi.model import SERVER_FIELDS

DIGEST = 16
ENTRY = 2 * DIGEST
TOMBSTONE = bytes(DIGEST)
MERGE_FAN_IN = 64  # sorted runs merged at once (the files a compaction has open)
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
    """The accepted bodies of one resource at one target, with buffered appends.

    Memory does not grow with what a run sends: lookups (``unchanged``,
    ``known``) see the state as it was loaded, and what is accepted goes to
    disk, not into that index. Each flush writes its entries sorted by key
    (a *run*); ``compact`` merges the loaded state and the runs as sorted
    streams into the new base, so writing a 5,000-student district holds one
    flush's entries, not every key sent. Past ``MERGE_FAN_IN`` runs, a flush
    first merges them into one, so a compaction never opens more files than
    that. After a compaction the index is dropped; a later lookup reads the
    new base back. A record accepted twice in one run is sent twice (an
    idempotent upsert), as it is not looked up until the next load.
    """

    def __init__(
        self, fs: fsspec.AbstractFileSystem, folder: str, entries: dict[bytes, bytes]
    ) -> None:
        self.fs = fs
        self.folder = folder
        self._entries: dict[bytes, bytes] | None = entries
        self._pending: list[bytes] = []
        self._runs: list[str] = []  # files this state wrote, each sorted by key, oldest first
        self._loaded_files = -1  # files read at load (-1: not loaded from a listing)

    @property
    def entries(self) -> dict[bytes, bytes]:
        """The index lookups see: the state as loaded (or as of the last compaction)."""
        if self._entries is None:
            entries: dict[bytes, bytes] = {}
            for name in self._runs:
                with self.fs.open(name, "rb") as fh:
                    _read_entries(fh.read(), entries)
            self._entries, self._runs = entries, []
        return self._entries

    def __len__(self) -> int:
        return len(self.entries)

    def unchanged(self, key: bytes, body: bytes) -> bool:
        return self.entries.get(key) == body

    def known(self, key: bytes) -> bool:
        return key in self.entries

    def accepted(self, key: bytes, body: bytes) -> None:
        self._pending.append(key + body)

    def deleted(self, key: bytes) -> None:
        self.entries.pop(key, None)
        self._pending.append(key + TOMBSTONE)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def flush(self) -> None:
        """Append what was accepted since the last flush as one new segment, sorted by key."""
        if not self._pending:
            return
        # a stable sort: of a key accepted twice in one flush, the later entry is kept
        self._pending.sort(key=_key_of)
        self._runs.append(self._write("seg", _last_per_key(self._pending)))
        self._pending.clear()
        if len(self._runs) >= MERGE_FAN_IN:
            # deletions stay: they must still hide the base's entries if the run is killed
            runs = [self._stream(n) for n in self._runs]
            merged = self._write("seg", _merge(runs, keep_deletions=True))
            for name in self._runs:
                self.fs.rm_file(name)
            self._runs = [merged]

    def compact(self) -> None:
        """One base holding every live entry; older files removed after it is written."""
        self.flush()
        if not self._runs and self._loaded_files == 1:
            return  # nothing written since the load, which read one base: it is compact
        older = _listing(self.fs, self.folder)
        sources: list[Iterator[bytes]] = []
        if self._entries:
            sources.append(k + v for k, v in sorted(self._entries.items()))
        sources.extend(self._stream(n) for n in self._runs)
        path = self._write("base", _merge(sources))
        for name in older:
            if name != path:
                self.fs.rm_file(name)
        self._entries, self._runs, self._loaded_files = None, [path], -1

    def _write(self, kind: str, entries: Iterable[bytes]) -> str:
        path = f"{self.folder}/{kind}-{_stamp()}.bin"
        self.fs.makedirs(self.folder, exist_ok=True)
        with self.fs.open(path, "wb") as fh:
            chunk: list[bytes] = []
            for entry in entries:
                chunk.append(entry)
                if len(chunk) >= 1024:
                    fh.write(b"".join(chunk))
                    chunk.clear()
            fh.write(b"".join(chunk))
        return path

    def _stream(self, name: str) -> Iterator[bytes]:
        """A run's entries, read a block at a time."""
        with self.fs.open(name, "rb") as fh:
            while block := fh.read(ENTRY * 512):
                usable = len(block) - len(block) % ENTRY  # runs are written whole
                for i in range(0, usable, ENTRY):
                    yield block[i : i + ENTRY]


def _key_of(entry: bytes) -> bytes:
    return entry[:DIGEST]


def _last_per_key(entries: Iterable[bytes]) -> Iterator[bytes]:
    """Entries sorted by key (stably), each key's last one only."""
    last = b""
    for entry in entries:
        if last and entry[:DIGEST] != last[:DIGEST]:
            yield last
        last = entry
    if last:
        yield last


def _tagged(run: Iterator[bytes], n: int) -> Iterator[tuple[bytes, int, bytes]]:
    for entry in run:
        yield entry[:DIGEST], n, entry


def _merge(runs: list[Iterator[bytes]], *, keep_deletions: bool = False) -> Iterator[bytes]:
    """Runs (sorted by key, each key once) merged: per key, the latest run's entry."""
    merged = heapq.merge(*(_tagged(run, n) for n, run in enumerate(runs)))
    return (
        entry
        for entry in _last_per_key(e for _, _, e in merged)
        if keep_deletions or entry[DIGEST:] != TOMBSTONE
    )


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
        read = 0
        for name in names:
            base_name = name.rsplit("/", 1)[-1]
            if name == start or (base_name.startswith("seg-") and _after(base_name, start)):
                with self.fs.open(name, "rb") as fh:
                    _read_entries(fh.read(), entries)
                read += 1
        state = ResourceState(self.fs, folder, entries)
        state._loaded_files = read
        return state

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
