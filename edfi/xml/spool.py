"""An XML load regrouped by resource, on local disk, so it can be sent in dependency order.

Interchange files mix resources (a StudentEnrollment file holds school,
section and graduation-plan associations) while a load must write each
resource after everything it references. Holding the records in memory
would make memory grow with the load, and re-reading every file per resource
would parse it dozens of times. So the records pass once through a spool:
one JSON-lines file per resource in a temporary folder, each line the
record (or the reason it is not one) with its origin (file, line, element).
The load's ``id`` index (``reader.IdIndex``) lives in the same folder, so one
folder holds everything a load keeps, and closing the spool removes it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .reader import CheckReport, FileProblem, Origin, XmlLoad


@dataclass(frozen=True, slots=True)
class XmlItem:
    """One element of the load: its record (or why there is none) and where it came from."""

    origin: Origin
    record: dict[str, Any] | None
    error: str | None = None

    @property
    def raw(self) -> bytes:
        """The record as JSON (what a rejects file keeps for a resend)."""
        return orjson.dumps(self.record) if self.record is not None else b""


@dataclass
class SpoolReport:
    """What the load held: records per resource, elements the target has no resource for."""

    files: int
    file_problems: list[FileProblem]
    records: Counter[str] = field(default_factory=Counter)  # resource path -> elements
    element_problems: Counter[str] = field(default_factory=Counter)  # resource -> unconvertible
    unsupported: Counter[str] = field(default_factory=Counter)  # element -> count (no resource)
    per_interchange: Counter[tuple[str, str]] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)


class XmlSpool:
    """The records of one XML load, one JSON-lines file per resource (see the module docstring)."""

    def __init__(self, load: XmlLoad, folder: str | None = None):
        self.load = load
        self._own = folder is None
        self.folder = folder or tempfile.mkdtemp(prefix="edfi-xml-spool-")
        if load.workdir is None and load.ids is None:
            load.workdir = self.folder
        self.report: SpoolReport | None = None
        self._pending: dict[str, set[str]] | None = None  # resource -> files still to convert
        self._order: list[str] = []

    def _path(self, resource: str) -> str:
        return os.path.join(self.folder, resource.strip("/").replace("/", "__") + ".jsonl")

    @property
    def checked(self) -> bool:
        return self._pending is not None

    def build(self) -> SpoolReport:
        """Check the files, then convert every element into the spool (each file once)."""
        self.check()
        return self.convert()

    def check(self) -> CheckReport:
        """Pass 1 (parse, validate, index the ``id`` s): what each resource waits for.

        After it, ``resources()`` is known and ``convert`` may run beside a sender
        that takes each resource as ``on_ready`` announces it.
        """
        check = self.load.check()
        self._pending = {}
        for url in check.good_files:
            for resource in self.load.resources_of(url):
                self._pending.setdefault(resource, set()).add(url)
        self._order = self._file_order(check.good_files)
        return check

    def _file_order(self, files: list[str]) -> list[str]:
        """Files whose resources a load needs first go first (descriptors, organizations,
        …), so a sender beside ``convert`` starts early; the order changes no record."""
        order = {p: i for i, p in enumerate(self.load.model.load_order())}
        late = len(order)

        def rank(url: str) -> tuple[int, str]:
            needed = [order.get(r, late) for r in self.load.resources_of(url) if r]
            return (min(needed, default=late), url)

        return sorted(files, key=rank)

    def convert(self, on_ready: Callable[[str], None] | None = None) -> SpoolReport:
        """Pass 2: every element into the spool; ``on_ready(resource)`` once its last file
        is in (its spool file complete and closed)."""
        assert self.load.report is not None and self._pending is not None, "check() first"
        check = self.load.report
        report = SpoolReport(len(check.files), list(check.problems))
        handles: dict[str, Any] = {}
        pending = {r: set(urls) for r, urls in self._pending.items()}
        try:
            for url in self._order:
                for rec in self.load.records([url]):
                    o = rec.origin
                    report.per_interchange[(o.interchange, rec.resource or o.element)] += 1
                    if rec.skipped is not None:
                        report.unsupported[o.element] += 1
                        continue
                    fh = handles.get(rec.resource)
                    if fh is None:
                        fh = handles[rec.resource] = open(self._path(rec.resource), "ab")  # noqa: SIM115
                    line: dict[str, Any] = {"o": [o.file, o.line, o.element, o.interchange]}
                    if rec.body is not None:
                        line["b"] = rec.body
                        report.records[rec.resource] += 1
                    else:
                        line["e"] = rec.problem
                        report.element_problems[rec.resource] += 1
                    fh.write(orjson.dumps(line) + b"\n")
                for resource, urls in list(pending.items()):
                    urls.discard(url)
                    if urls:
                        continue
                    del pending[resource]
                    fh = handles.pop(resource, None)
                    if fh is not None:
                        fh.close()
                    if on_ready is not None:
                        on_ready(resource)
        finally:
            for fh in handles.values():
                fh.close()
        self.report = report
        return report

    def resources(self) -> list[str]:
        """The resources the load holds (known after ``check``; every one is in the spool
        once ``convert`` has announced it)."""
        if self.report is not None:
            return sorted(set(self.report.records) | set(self.report.element_problems))
        assert self._pending is not None, "check() first"
        return sorted(self._pending)

    def items(self, resource: str) -> Iterator[XmlItem]:
        """The resource's elements in file order."""
        path = self._path(resource)
        if not os.path.exists(path):
            return
        with open(path, "rb") as fh:
            for raw in fh:
                line = orjson.loads(raw)
                origin = Origin(*line["o"])
                yield XmlItem(origin, line.get("b"), line.get("e"))

    def close(self) -> None:
        self.load.close()
        if self._own:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> XmlSpool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
