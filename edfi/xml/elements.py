"""What a target accepted through ``/bulk/v1``, element by element, so a rerun skips it.

The bulk services load whole files, so the ``api`` method's send state (per
resource and natural key, from records mapped here) does not apply: the
client never maps a record. What it can know is each top-level element of
each file and what the server said about it. So the state of the ``bulk``
method is a set of element digests per target and interchange (on the same
state storage, ``edfi.sendstate``): a digest the target accepted is skipped
next time, and a rerun uploads files holding only the elements still to load.

- **The digest** is that of the element's serialized XML, mixed with the
  digests of the elements its ``ref="X"`` attributes name (recursively): an
  unchanged element whose referenced element changed means another record,
  so it is loaded again. A formatting change to an element is a new digest
  (the element is loaded again: an upsert, harmless).
- **Accepted**: every element of a ``Completed`` file, and every element of
  an ``Error`` file but those the exceptions name by line (when every
  exception names an element; a file-level exception -- an XSD-invalid file,
  loaded not at all -- accepts nothing).
- **Kept on a rerun**: each element not accepted yet, and -- since a ``ref``
  resolves only against an element of the same load -- every element with an
  ``id`` that a kept element refers to, transitively (loaded again: an upsert).
  A file left with nothing to load is not uploaded at all.
- **Lines**: a filtered file is written anew (the interchange's root, then
  the kept elements), so the server's line numbers are translated back to the
  original file's before anything is reported.
- **Memory**: per element, two bytes stay in memory (whether it is kept,
  whether it has refs); its line and digest go to an unnamed temporary file
  of fixed-size entries, the ``id`` s, the ``ref`` s and the mixed digests --
  strings and tuples of 100s of bytes each, which made a 5,000-student load
  hold 130 MB more than a 1,000-student one -- to a private temporary SQLite
  database (deleted when closed), and what a target accepted to the state's
  segments as it is recorded.

Nothing here imports Prefect.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import sqlite3
import struct
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

import orjson
from lxml import etree

from .reader import SAFE_PARSING

DIGEST = 16
FLUSH = 16384  # accepted digests buffered before the state writes a segment
_ENTRY = struct.Struct(f"<Q{DIGEST}s")  # an element's start line and digest, on disk
BLOCK = 4096  # entries read at once
SPOOL_MAX = 256 << 10  # bytes of a file's table (or spill) kept in memory before it goes to disk
STATE_PREFIX = "/bulk-v1"  # the state's "resource" folders: /bulk-v1/InterchangeStudent
_REF = re.compile(rb"""\sref\s*=\s*(["'])(.*?)\1""")
_PARSE: dict[str, Any] = {
    **SAFE_PARSING,
    "events": ("end",),
    "huge_tree": False,
    "remove_comments": True,
}


class ElementState(Protocol):
    """The accepted digests of one interchange at one target (``edfi.sendstate.ResourceState``)."""

    def unchanged(self, key: bytes, body: bytes) -> bool: ...
    def accepted(self, key: bytes, body: bytes) -> None: ...
    @property
    def pending(self) -> int: ...
    def flush(self) -> None: ...
    def compact(self) -> None: ...


class StateStore(Protocol):
    def load(self, resource_path: str) -> Any: ...


@dataclass
class FileIndex:
    """The top-level elements of one local file: start line, digest, ``id`` and ``ref`` s.

    Lines and digests are fixed-size entries in an unnamed temporary file
    (``table``); the ``id`` s and ``ref`` s wait in another (``spill``: one JSON
    line ``[element index, id, [refs]]`` per element that has either) until an
    ``ElementPlan`` indexes them.
    """

    path: str
    interchange: str
    has_refs: bytearray = field(default_factory=bytearray)  # 1 per element with a ref
    table: IO[bytes] = field(default_factory=lambda: _scratch())
    spill: IO[bytes] = field(default_factory=lambda: _scratch())
    root: bytes = b""  # the root's start tag, to write a filtered copy
    close: bytes = b""  # its end tag

    def __len__(self) -> int:
        return len(self.has_refs)

    def _entry(self, i: int) -> tuple[int, bytes]:
        self.table.seek(i * _ENTRY.size)
        line, digest = _ENTRY.unpack(self.table.read(_ENTRY.size))
        return line, digest

    def line(self, i: int) -> int:
        return self._entry(i)[0]

    def digest(self, i: int) -> bytes:
        return self._entry(i)[1]

    def entries(self) -> Iterator[tuple[int, bytes]]:
        """(line, digest) of every element in order, read a block at a time."""
        pos = 0
        while True:
            self.table.seek(pos)  # a lookup between blocks may have moved it
            block = self.table.read(_ENTRY.size * BLOCK)
            if not block:
                return
            pos += len(block)
            yield from _ENTRY.iter_unpack(block)

    def at_line(self, line: int) -> int | None:
        """The element whose start line is the last at or before ``line``."""
        lines = _Lines(self)
        i = bisect.bisect_right(lines, line) - 1
        return i if i >= 0 else None


def _scratch() -> IO[bytes]:
    """An unnamed temporary file, in memory while small: a load of many small files
    then holds no file descriptor per file (the limit is often 1,024)."""
    return tempfile.SpooledTemporaryFile(SPOOL_MAX)


class _Lines(Sequence[int]):
    """A file's element start lines, read from its table (for a binary search)."""

    def __init__(self, of: FileIndex):
        self._of = of

    def __len__(self) -> int:
        return len(self._of)

    def __getitem__(self, i: Any) -> Any:
        return self._of.line(i)


def _top_level(path: str) -> Iterator[tuple[Any, Any]]:
    """(root, element) for each top-level element of a file, cleared after use."""
    for _, el in etree.iterparse(path, **_PARSE):
        parent = el.getparent()
        if parent is None or parent.getparent() is not None:
            continue
        yield parent, el
        el.clear(keep_tail=False)
        while el.getprevious() is not None:
            del parent[0]


def _root_tags(root: Any) -> tuple[bytes, bytes]:
    """The root's start and end tags, namespaces and attributes included."""
    empty = etree.tostring(etree.Element(root.tag, dict(root.attrib), nsmap=root.nsmap))
    start = empty[: empty.rindex(b"/>")].rstrip() + b">"
    name = etree.QName(root).localname
    close = f"</{root.prefix}:{name}>" if root.prefix else f"</{name}>"
    return start, close.encode()


def scan(path: str, interchange: str) -> FileIndex:
    """Digest every top-level element of a local file (one streamed parse)."""
    index = FileIndex(path, interchange)
    for root, el in _top_level(path):
        if not index.root:
            index.root, index.close = _root_tags(root)
        raw = etree.tostring(el, with_tail=False)
        i = len(index.has_refs)
        digest = hashlib.blake2b(raw, digest_size=DIGEST).digest()
        index.table.write(_ENTRY.pack(el.sourceline or 0, digest))
        ident = el.get("id")
        found = [m.group(2).decode() for m in _REF.finditer(raw)] if b"ref" in raw else []
        index.has_refs.append(1 if found else 0)
        if ident or found:
            index.spill.write(orjson.dumps([i, ident, found]) + b"\n")
    index.spill.flush()
    index.table.flush()
    return index


class ElementPlan:
    """The elements of one load, their digests, and which of them a target already holds.

    The ``id`` s, ``ref`` s and mixed digests live in a private temporary SQLite
    database (on disk past a small page cache; gone when ``close`` d or collected).
    """

    def __init__(self, files: Sequence[FileIndex]):
        self.files = list(files)
        self.db = sqlite3.connect("", check_same_thread=False)  # a scan thread, then the loop's
        self.db.execute("CREATE TABLE ids (id TEXT PRIMARY KEY, f INT, i INT) WITHOUT ROWID")
        self.db.execute(
            "CREATE TABLE refs (f INT, i INT, n INT, id TEXT, PRIMARY KEY (f, i, n)) WITHOUT ROWID"
        )
        self.db.execute(
            "CREATE TABLE mixed (f INT, i INT, d BLOB, PRIMARY KEY (f, i)) WITHOUT ROWID"
        )
        for f, index in enumerate(self.files):
            index.spill.seek(0)
            ids: list[tuple[str, int, int]] = []
            refs: list[tuple[int, int, int, str]] = []
            for line in index.spill:
                i, ident, found = orjson.loads(line)
                if ident:
                    ids.append((ident, f, i))
                refs.extend((f, i, n, r) for n, r in enumerate(found))
                if len(ids) + len(refs) >= 4096:
                    self._insert(ids, refs)
            self._insert(ids, refs)
            index.spill.close()
        self.db.commit()
        self.keep: list[bytearray] = [bytearray(b"\x01" * len(index)) for index in self.files]

    def _insert(
        self, ids: list[tuple[str, int, int]], refs: list[tuple[int, int, int, str]]
    ) -> None:
        # the first element with an id, in file order, is the one a ref names
        self.db.executemany("INSERT OR IGNORE INTO ids VALUES (?, ?, ?)", ids)
        self.db.executemany("INSERT INTO refs VALUES (?, ?, ?, ?)", refs)
        ids.clear()
        refs.clear()

    def close(self) -> None:
        """Let go of the database and each file's table (temporary: nothing stays behind)."""
        self.db.close()
        for index in self.files:
            index.table.close()

    def target(self, ident: str) -> tuple[int, int] | None:
        """The element (file, index) with that ``id``."""
        row = self.db.execute("SELECT f, i FROM ids WHERE id = ?", (ident,)).fetchone()
        return None if row is None else (row[0], row[1])

    def refs(self, f: int, i: int) -> tuple[str, ...]:
        """The ``id`` s an element's ``ref`` attributes name, in document order."""
        if not self.files[f].has_refs[i]:
            return ()
        rows = self.db.execute("SELECT id FROM refs WHERE f = ? AND i = ? ORDER BY n", (f, i))
        return tuple(r[0] for r in rows)

    def digest(self, f: int, i: int, seen: frozenset[tuple[int, int]] = frozenset()) -> bytes:
        """The element's own digest, mixed with those of the elements it refers to."""
        index = self.files[f]
        if not index.has_refs[i]:
            return index.digest(i)
        row = self.db.execute("SELECT d FROM mixed WHERE f = ? AND i = ?", (f, i)).fetchone()
        if row is not None:
            return bytes(row[0])
        h = hashlib.blake2b(index.digest(i), digest_size=DIGEST)
        for ident in self.refs(f, i):
            target = self.target(ident)
            if target is None or target in seen or target == (f, i):
                h.update(b"?" + ident.encode())  # unresolvable or a cycle: the server says
            else:
                h.update(self.digest(*target, seen=seen | {(f, i)}))
        out = h.digest()
        self.db.execute("INSERT OR REPLACE INTO mixed VALUES (?, ?, ?)", (f, i, out))
        return out

    def digests(self, f: int) -> Iterator[bytes]:
        index = self.files[f]
        for i, (_, own) in enumerate(index.entries()):
            yield self.digest(f, i) if index.has_refs[i] else own

    def skip_accepted(self, states: Mapping[str, ElementState]) -> int:
        """Mark the elements the target accepted unchanged; keep what a kept one refers to.

        Returns how many elements are skipped.
        """
        for f, index in enumerate(self.files):
            state = states.get(index.interchange)
            if state is None:
                continue
            keep = self.keep[f]
            for i, d in enumerate(self.digests(f)):
                if state.unchanged(d, d):
                    keep[i] = 0
        # a kept element's refs must resolve in this load: keep their targets too
        todo = [
            (f, i)
            for f, index in enumerate(self.files)
            for i, refs in enumerate(index.has_refs)
            if refs and self.keep[f][i]
        ]
        while todo:
            f, i = todo.pop()
            for ident in self.refs(f, i):
                target = self.target(ident)
                if target is not None and not self.keep[target[0]][target[1]]:
                    self.keep[target[0]][target[1]] = 1
                    todo.append(target)
        return sum(len(k) - sum(k) for k in self.keep)

    def kept(self, f: int) -> int:
        return sum(self.keep[f])

    def write_filtered(self, f: int, out: str) -> LineMap:
        """A copy of file ``f`` holding only its kept elements; the map of its lines back."""
        index = self.files[f]
        keep = self.keep[f]
        lines = LineMap()
        line = 1
        with open(out, "wb") as fh:
            head = b'<?xml version="1.0" encoding="UTF-8"?>\n' + index.root + b"\n"
            fh.write(head)
            line += head.count(b"\n")
            for i, (_, el) in enumerate(_top_level(index.path)):
                if not keep[i]:
                    continue
                raw = etree.tostring(el, with_tail=False) + b"\n"
                lines.add(line, index.line(i))
                fh.write(raw)
                line += raw.count(b"\n")
            fh.write(index.close + b"\n")
        return lines

    def accept(
        self,
        f: int,
        status: str,
        exceptions: Iterable[dict[str, Any]],
        state: ElementState,
    ) -> int:
        """Record what the server loaded of file ``f`` (see the module docstring).

        ``exceptions`` carry the original file's lines (already translated).
        Returns how many elements were recorded as accepted.
        """
        errors = list(exceptions)
        if status not in ("Completed", "Error"):
            return 0
        if status == "Error" and (not errors or any(e.get("element") is None for e in errors)):
            return 0
        index = self.files[f]
        failed = {index.at_line(int(e.get("lineNumber") or 0)) for e in errors}
        count = 0
        for i, d in enumerate(self.digests(f)):
            if self.keep[f][i] and i not in failed:
                state.accepted(d, d)
                count += 1
                if state.pending >= FLUSH:
                    state.flush()  # to the state's segments, not held here
        state.flush()
        return count


class LineMap:
    """Lines of a filtered copy -> lines of the original file (element starts)."""

    def __init__(self) -> None:
        self.new = array("l")
        self.old = array("l")

    def add(self, new: int, old: int) -> None:
        self.new.append(new)
        self.old.append(old)

    def original(self, line: int) -> int:
        """The original line of a copy's line: same offset into the same element."""
        i = bisect.bisect_right(self.new, line) - 1
        if i < 0:
            return line
        return self.old[i] + (line - self.new[i])


def state_path(interchange: str) -> str:
    """The state folder (a "resource" path of ``SendState``) of one interchange's elements."""
    return f"{STATE_PREFIX}/{interchange}"


def filtered_name(folder: str, f: int, path: str) -> str:
    return os.path.join(folder, f"{f}-{os.path.basename(path)}")
