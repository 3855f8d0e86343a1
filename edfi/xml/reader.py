"""Stream interchange files into API records: safe, bounded in memory, every record traceable.

A load is a set of ``*.xml`` / ``*.xml.gz`` files on any fsspec storage. It is
read twice, one element at a time (``iterparse``, each element cleared once
handled), so memory does not grow with file size:

1. **check**: every file is parsed, optionally validated against the
   interchange schema, and the identity of every element with an ``id`` is
   kept (only its key, not the record) in an index on disk (``IdIndex``), so
   that a ``*Reference ref="X"`` in any file of the load resolves. A file
   that is malformed, declares a DTD (the door to XXE), or fails validation
   is reported by line and skipped whole -- nothing of it is loaded.
2. **records**: the files that passed are converted element by element; each
   record carries its origin (file, line, element) so a reject names it.

Parsing never resolves entities, loads a DTD or touches the network.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import tempfile
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import fsspec
import orjson
from lxml import etree

from ..model import ApiModel, Resource, abstract_field
from .convert import Converted, ElementError, PendingRef, convert
from .mapping import ElementMap, Mapping, mapping_for
from .xsd import InterchangeSchema, builtin_schema

SUFFIXES = (".xml", ".xml.gz")
XS = "http://www.w3.org/2001/XMLSchema"
SAFE_PARSING: dict[str, Any] = {"resolve_entities": False, "no_network": True, "load_dtd": False}
"""lxml settings for every parse of a user's XML: no entities, no DTD, no network (XXE)."""
LOCATE_LIMIT = 64 << 20  # an invalid file up to this size is re-read to name the error's line
_PROLOG = 1 << 16  # the bytes searched for a DOCTYPE before parsing
_DTD = (
    "the file declares a DTD (<!DOCTYPE>); interchange files never do, and a DTD can smuggle "
    "in external entities (XXE) -- remove the DOCTYPE"
)


class XmlInputError(ValueError):
    """The load cannot start: no files, an unknown interchange name, a bad URL."""


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from, for rejects: the file, the element's line, its name."""

    file: str
    line: int
    element: str
    interchange: str = ""


@dataclass(frozen=True, slots=True)
class FileProblem:
    """A file skipped whole, with the line and the parser's or validator's message."""

    file: str
    line: int
    message: str


@dataclass(slots=True)
class Record:
    """One element as an API record (or the reason it cannot be one)."""

    resource: str
    origin: Origin
    body: dict[str, Any] | None
    problem: str | None = None
    element_id: str | None = None
    skipped: str | None = None  # the target's API has no resource for this element


@dataclass
class CheckReport:
    files: list[str]
    problems: list[FileProblem]
    interchanges: dict[str, str]  # file -> interchange name
    elements: Counter[str] = field(default_factory=Counter)  # element name -> count
    ids: int = 0
    tags: dict[str, set[str]] = field(default_factory=dict)  # file -> its element names

    @property
    def good_files(self) -> list[str]:
        bad = {p.file for p in self.problems}
        return [f for f in self.files if f not in bad and f in self.interchanges]


def list_files(url: str, storage_options: dict[str, Any] | None = None) -> list[str]:
    """Every ``*.xml`` / ``*.xml.gz`` under a folder URL (recursively), or the one file named."""
    fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
    if fs.isdir(path):
        found = sorted(p for p in fs.find(path) if p.endswith(SUFFIXES))
    elif fs.exists(path):
        found = [path]
    else:
        raise XmlInputError(f"{url}: no such file or folder")
    if not found:
        raise XmlInputError(f"{url}: no *.xml or *.xml.gz files there")
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [p if protocol == "file" else f"{protocol}://{p}" for p in found]


def interchange_name(name: str) -> str:
    """``Student``, ``InterchangeStudent``, ``Interchange-Student.xsd``: ``InterchangeStudent``."""
    stem = name.removesuffix(".xsd").replace("-", "")
    return stem if stem.startswith("Interchange") else "Interchange" + stem


Identity = tuple[str, dict[str, Any], list[PendingRef]]
"""An ``id``'d element's resource, its key fields, and the refs inside its key to resolve."""


class IdIndex:
    """The identity of every element with an ``id`` in a load, in a SQLite file.

    A ``ref="X"`` may name an element in any file of the load, so the key of
    every ``id``'d element must be at hand while records are converted; a
    district holds hundreds of thousands of them, and kept in memory they made
    the reader's memory grow with the load (about 1 KB each). On disk, memory
    is a bounded cache of recent lookups (references cluster: a section's
    gradebook entries name the same few sections and periods). The file is
    scratch, rebuilt by every check pass, so it is written without a journal.
    """

    BATCH = 500  # ids per insert (and per query for those already taken)
    CACHE = 16384  # resolved identities kept in memory

    def __init__(self, path: str):
        if os.path.exists(path):
            os.remove(path)
        self.path = path
        self.db = sqlite3.connect(path, check_same_thread=False)  # check, then a convert thread
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute(
            "CREATE TABLE ids (id TEXT PRIMARY KEY, file INTEGER NOT NULL, resource TEXT NOT NULL,"
            " key BLOB NOT NULL, pending BLOB) WITHOUT ROWID"
        )
        self.db.execute("CREATE TABLE unreadable (id TEXT PRIMARY KEY, why TEXT) WITHOUT ROWID")
        self.count = 0
        self._batch: list[tuple[str, int, Identity]] = []  # (id, line, identity)
        self.cache: dict[str, tuple[str, dict[str, Any]]] = {}  # id -> (resource, key values)

    def add(self, file: int, ident: str, line: int, identity: Identity) -> None:
        """Index an element (written in batches; ``flush`` at the end of each file)."""
        self._batch.append((ident, line, identity))
        if len(self._batch) >= self.BATCH:
            self.flush(file)

    def flush(self, file: int) -> None:
        """Write the batch; an ``id`` already taken raises ``_Reject`` at its line."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        names = [b[0] for b in batch]
        marks = ",".join("?" * len(names))
        taken = {r[0] for r in self.db.execute(f"SELECT id FROM ids WHERE id IN ({marks})", names)}
        seen: set[str] = set()
        for ident, line, _ in batch:
            if ident in taken or ident in seen:
                raise _Reject(line, f"id {ident!r} is used twice")
            seen.add(ident)
        self.db.executemany(
            "INSERT INTO ids VALUES (?, ?, ?, ?, ?)",
            [
                (
                    ident,
                    file,
                    resource,
                    orjson.dumps(kept),
                    orjson.dumps(
                        [[p.key, p.target_id, p.ref.schema, p.ref.targets] for p in pending]
                    )
                    if pending
                    else None,
                )
                for ident, _, (resource, kept, pending) in batch
            ],
        )
        self.db.commit()
        self.count += len(batch)

    def drop_file(self, file: int) -> None:
        """Forget a file skipped whole: its elements are no targets of a ref."""
        self._batch.clear()
        self.count -= self.db.execute("DELETE FROM ids WHERE file = ?", (file,)).rowcount
        self.db.commit()

    def unreadable(self, ident: str, why: str) -> None:
        self.db.execute("INSERT OR REPLACE INTO unreadable VALUES (?, ?)", (ident, why))

    def why_unreadable(self, ident: str) -> str | None:
        row = self.db.execute("SELECT why FROM unreadable WHERE id = ?", (ident,)).fetchone()
        return None if row is None else str(row[0])

    def get(
        self, ident: str
    ) -> tuple[str, dict[str, Any], list[tuple[str, str, str, tuple[str, ...]]]] | None:
        """The element's resource, its key fields, and the refs inside its key (key, id,
        reference schema, target resources)."""
        row = self.db.execute(
            "SELECT resource, key, pending FROM ids WHERE id = ?", (ident,)
        ).fetchone()
        if row is None:
            return None
        pending = [(k, t, s, tuple(ts)) for k, t, s, ts in orjson.loads(row[2])] if row[2] else []
        return row[0], orjson.loads(row[1]), pending

    def remember(self, ident: str, resource: str, key: dict[str, Any]) -> None:
        if len(self.cache) >= self.CACHE:
            del self.cache[next(iter(self.cache))]  # the oldest: a bounded FIFO
        self.cache[ident] = (resource, key)

    def close(self) -> None:
        self.db.close()


class XmlLoad:
    """One load: its files, the mapping onto a target's model, and the ``id`` index."""

    def __init__(
        self,
        files: Iterable[str],
        model: ApiModel,
        *,
        schema: InterchangeSchema | None = None,
        validate: bool = True,
        interchanges: Iterable[str] | None = None,
        storage_options: dict[str, Any] | None = None,
        workdir: str | None = None,
    ):
        self.files = list(files)
        self.workdir = workdir  # where the id index lives (None: a temporary folder of its own)
        self.model = model
        self.schema = schema or builtin_schema()
        self.mapping: Mapping = mapping_for(self.schema, model)
        self.validate = validate
        self.storage_options = storage_options or {}
        self.only: set[str] | None = None
        if interchanges:
            self.only = {interchange_name(i) for i in interchanges}
            unknown = sorted(self.only - set(self.schema.interchanges))
            if unknown:
                known = ", ".join(
                    sorted(i.removeprefix("Interchange") for i in self.schema.interchanges)
                )
                raise XmlInputError(f"unknown interchange(s) {unknown}; known: {known}")
        self.by_element: dict[tuple[str, str], ElementMap] = self.mapping.elements
        self.ids: IdIndex | None = None  # built by check()
        self.report: CheckReport | None = None
        self._xmlschema: Any = None
        self._tmp: str | None = None

    def _index(self) -> IdIndex:
        """A fresh id index in the work folder (a temporary one, removed with the load)."""
        self.close()
        folder = self.workdir
        if folder is None:
            folder = self._tmp = tempfile.mkdtemp(prefix="edfi-xml-ids-")
            # a load dropped without close() still removes its folder
            self._cleanup = weakref.finalize(self, shutil.rmtree, folder, True)
        self.ids = IdIndex(os.path.join(folder, "ids.sqlite"))
        return self.ids

    def close(self) -> None:
        """Remove the id index (the load cannot resolve refs any more)."""
        if self.ids is not None:
            self.ids.close()
            if self._tmp is None and os.path.exists(self.ids.path):
                os.remove(self.ids.path)
            self.ids = None
        if self._tmp is not None:
            self._cleanup()
            self._tmp = None

    def __enter__(self) -> XmlLoad:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening ------------------------------------------------------------------
    def _open(self, url: str) -> Any:
        compression = "gzip" if url.endswith(".gz") else None
        return fsspec.open(url, "rb", compression=compression, **self.storage_options)

    def _xsd(self) -> Any:
        """The interchange schema, compiled once, reshaped for streaming (same language).

        libxml2 validates a ``<xs:choice maxOccurs="unbounded">`` with a counter,
        and its automaton keeps a rollback state for every particle matched
        until the enclosing element ends. Every interchange root is such a
        choice, so a streamed file held about 100 bytes per top-level element
        to its end (25 MB for one 5,000-student attendance file). The same
        content as a repeated sequence of one choice is matched with plain
        loops, in constant memory.
        """
        if self._xmlschema is None:
            parser = etree.XMLParser(resolve_entities=False, no_network=True)
            document = etree.fromstring(self.schema.document, parser)
            for choice in list(document.iter(f"{{{XS}}}choice")):
                if choice.get("maxOccurs") == "unbounded":
                    _repeat_as_sequence(choice)
            self._xmlschema = etree.XMLSchema(document)
        return self._xmlschema

    def _elements(self, url: str, validate: bool) -> Iterator[tuple[str, Any]]:
        """(interchange, element) for each top-level element of a file, cleared after use."""
        kwargs: dict[str, Any] = {
            "events": ("end",),
            # "internal", not False: lxml loses validation errors with False, and
            # external entities stay unresolved either way (the DOCTYPE is refused)
            "resolve_entities": "internal",
            "no_network": True,
            "load_dtd": False,
            "huge_tree": False,
            "remove_comments": True,
        }
        if validate:
            kwargs["schema"] = self._xsd()
        with self._open(url) as fh:
            head = fh.read(_PROLOG)
        if b"<!DOCTYPE" in head:
            line = head[: head.index(b"<!DOCTYPE")].count(b"\n") + 1
            raise _Reject(line, _DTD)
        with self._open(url) as fh:
            try:
                yield from self._walk(etree.iterparse(fh, **kwargs))
            except etree.XMLSyntaxError as exc:
                if exc.lineno:
                    raise _Reject(exc.lineno, _clean(exc.msg or str(exc))) from None
                # streaming validation reports at the end, without a line: find it
                raise _Reject(*self._locate(url, _clean(exc.msg or str(exc)))) from None

    def _locate(self, url: str, message: str) -> tuple[int, str]:
        """The line of a validation error, by validating the file as a tree (small files only)."""
        with self._open(url) as fh:
            data = fh.read(LOCATE_LIMIT + 1)
        if len(data) > LOCATE_LIMIT:
            return 0, f"{message} (line not located: the file is over {LOCATE_LIMIT >> 20} MiB)"
        parser = etree.XMLParser(**SAFE_PARSING)
        schema = self._xsd()
        schema.validate(etree.fromstring(data, parser))
        errors = list(schema.error_log)
        if errors:
            return errors[0].line, _clean(errors[0].message)
        return 0, message

    def _walk(self, events: Any) -> Iterator[tuple[str, Any]]:
        """Top-level elements as they end; the root announced (None) before the first."""
        interchange = None
        for _, el in events:
            parent = el.getparent()
            if parent is None:  # the root ends (the parser still has to finish: validation)
                if interchange is None:
                    yield self._root(el), None
                continue
            if parent.getparent() is not None:
                continue  # inside a top-level element: handled with it
            if interchange is None:
                interchange = self._root(parent)
                yield interchange, None
            yield interchange, el
            el.clear(keep_tail=False)
            while el.getprevious() is not None:
                del parent[0]

    def _root(self, root: Any) -> str:
        info = root.getroottree().docinfo
        if info.doctype or info.internalDTD is not None:
            raise _Reject(root.sourceline or 1, _DTD)
        qn = etree.QName(root)
        if qn.namespace != self.schema.namespace:
            raise _Reject(
                root.sourceline or 1,
                f"root element is in namespace {qn.namespace!r}; this loader "
                f"reads Ed-Fi {self.schema.namespace} interchanges",
            )
        if qn.localname not in self.schema.interchanges:
            raise _Reject(root.sourceline or 1, f"{qn.localname} is not an Ed-Fi interchange")
        return str(qn.localname)

    # -- pass 1 -------------------------------------------------------------------
    def check(self) -> CheckReport:
        """Parse (and validate) every file; index every ``id``; list the files to skip."""
        report = CheckReport(list(self.files), [], {})
        index = self._index()
        for f, url in enumerate(self.files):
            counts: Counter[str] = Counter()
            try:
                for interchange, el in self._elements(url, self.validate):
                    if el is None:
                        if self.only is not None and interchange not in self.only:
                            break
                        report.interchanges[url] = interchange
                        continue
                    tag = etree.QName(el).localname
                    counts[tag] += 1
                    ident = el.get("id")
                    if ident:
                        try:
                            entry = self._identity(interchange, tag, el, url)
                        except ElementError as exc:
                            index.unreadable(ident, str(exc))
                            entry = None
                        if entry is not None:
                            index.add(f, ident, el.sourceline or 0, entry)
                index.flush(f)
            except _Reject as exc:
                index.drop_file(f)
                report.problems.append(FileProblem(url, exc.line, exc.message))
                continue
            except OSError as exc:
                index.drop_file(f)
                report.problems.append(FileProblem(url, 0, f"cannot read the file: {exc}"))
                continue
            report.elements.update(counts)
            report.tags[url] = set(counts)
        report.ids = index.count
        self.report = report
        return report

    def _identity(self, interchange: str, tag: str, el: Any, url: str) -> Identity | None:
        em = self.by_element.get((interchange, tag))
        if em is None:
            return None
        conv = convert(em.body, el, tag)  # an ElementError: the caller notes it unreadable
        resource = self.model[em.resource]
        key_props = {k.source[0] for k in resource.key}
        kept = {k: v for k, v in conv.record.items() if k in key_props}
        pending = [p for p in conv.pending if p.key in key_props and p.holder is conv.record]
        return em.resource, kept, pending

    # -- resolution -----------------------------------------------------------------
    def resolve(
        self,
        target_id: str,
        ref_schema: str,
        targets: tuple[str, ...],
        seen: frozenset[str] = frozenset(),
    ) -> dict[str, Any]:
        """The reference fields for ``ref="target_id"``: the key of the element with that id."""
        index = self.ids
        assert index is not None, "check() first"
        cached = index.cache.get(target_id)
        if cached is None:
            path, key = self._identity_of(index, target_id, targets, seen)
        else:
            path, key = cached
            if targets and path not in targets:
                raise _wrong_target(target_id, path, targets)
        resource: Resource = self.model[path]
        return {abstract_field(resource, ref_schema, k): v for k, v in key.items()}

    def _identity_of(
        self, index: IdIndex, target_id: str, targets: tuple[str, ...], seen: frozenset[str]
    ) -> tuple[str, dict[str, Any]]:
        """An element's resource and key values, from the index, its own refs resolved."""
        entry = index.get(target_id)
        if entry is None:
            why = index.why_unreadable(target_id)
            if why is not None:
                raise ElementError(
                    f"ref {target_id!r} names an element that is no record itself ({why})"
                )
            raise ElementError(f"ref {target_id!r} names no element with that id in this load")
        if target_id in seen:
            raise ElementError(f"ref {target_id!r} is part of a reference cycle")
        path, kept, pending = entry
        if targets and path not in targets:
            raise _wrong_target(target_id, path, targets)
        for key, inner, schema, inner_targets in pending:
            if not kept.get(key):
                kept[key] = self.resolve(inner, schema, inner_targets, seen | {target_id})
        values = self.model[path].key_values(kept)
        index.remember(target_id, path, values)
        return path, values

    # -- pass 2 -------------------------------------------------------------------
    def resources_of(self, url: str) -> set[str]:
        """The resources a checked file's elements map to (``""``: elements that map to none)."""
        assert self.report is not None, "check() first"
        interchange = self.report.interchanges.get(url, "")
        out = set()
        for tag in self.report.tags.get(url, ()):
            em = self.by_element.get((interchange, tag))
            out.add(em.resource if em is not None else "")
        return out

    def records(self, files: Iterable[str] | None = None) -> Iterator[Record]:
        """Every element of every file that passed the check (or of ``files``, in that
        order), as a record or a problem."""
        report = self.report or self.check()
        for url in report.good_files if files is None else files:
            for interchange, el in self._elements(url, False):
                if el is None:
                    continue
                tag = etree.QName(el).localname
                origin = Origin(url, el.sourceline or 0, tag, interchange)
                em = self.by_element.get((interchange, tag))
                if em is None:
                    why = self.mapping.no_resource.get((interchange, tag))
                    if why is None:
                        yield Record("", origin, None, f"{tag}: not an element of {interchange}")
                    else:
                        yield Record("", origin, None, skipped=why)
                    continue
                try:
                    conv = convert(em.body, el, tag)
                    self._settle(conv)
                except ElementError as exc:
                    yield Record(em.resource, origin, None, str(exc), el.get("id"))
                    continue
                yield Record(em.resource, origin, conv.record, None, el.get("id"))

    def _settle(self, conv: Converted) -> None:
        for p in conv.pending:
            try:
                p.holder[p.key] = self.resolve(p.target_id, p.ref.schema, p.ref.targets)
            except ElementError as exc:
                raise ElementError(f"{p.path}: {exc}") from None


def _repeat_as_sequence(choice: Any) -> None:
    """``<choice min max>X</choice>`` -> ``<sequence min max><choice>X</choice></sequence>``."""
    sequence = etree.Element(f"{{{XS}}}sequence", nsmap=choice.nsmap)
    for bound in ("minOccurs", "maxOccurs"):
        value = choice.attrib.pop(bound, None)
        if value is not None:
            sequence.set(bound, value)
    choice.addprevious(sequence)
    sequence.append(choice)  # moves it (its id and annotation stay with it)


def _wrong_target(target_id: str, path: str, targets: tuple[str, ...]) -> ElementError:
    return ElementError(
        f"ref {target_id!r} names a {path.rsplit('/', 1)[-1]} element, not one of "
        f"{', '.join(t.rsplit('/', 1)[-1] for t in targets)}"
    )


class _Reject(Exception):
    def __init__(self, line: int, message: str):
        self.line = line
        self.message = message


def _clean(msg: str) -> str:
    msg = re.sub(r"\{[^}]*\}", "", msg)
    match = re.fullmatch(r"line \d+: b'(.*)'", msg)
    return match.group(1) if match else msg
