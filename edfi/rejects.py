"""The rejects store: every record a run could not write, kept so a person can fix and resend it.

A write path never drops a record silently. A record the target refused for
good (after every retry), one blocked because the record it references was
itself refused, or one that failed validation before sending, becomes a
``Reject``: what was being done (``operation``), the HTTP status (None when
nothing was sent), the server's message, a ``cause`` (the message with its
values masked, so a thousand records refused for one missing descriptor are
*one* cause), the body, the natural key, and where the record came from
(``origin``: a file and line, an XML element, a source id).

On storage, a run's rejects live under one folder of the lake::

    {base}/{run_id}/{resource without leading slash}.jsonl   one reject per line
    {base}/{run_id}/manifest.json                            written last

The manifest names every file and counts its rejects by cause, so a reader
trusts only what a finished write made visible (a crash mid-write leaves no
manifest and so no half-read rejects). ``RejectsStore.read`` gives the rejects
back; ``Reject.item()`` turns one into an item the sender can send again.

Nothing here knows about HTTP; ``edfi.send`` fills the store, the flows show
and resend it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import orjson

from .errors import SendError
from .lake import Lake

__all__ = ["Origin", "Reject", "RejectsStore", "cause_of", "origin_dict", "summarize"]

UPSERT, UPDATE, DELETE, KEY_CHANGE = "upsert", "update", "delete", "key_change"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a record came from. Any dataclass works as an origin (the JSON and
    XML readers have their own, with ``file`` and ``line``); this one covers
    records read from an API (``source_id``) or rows (``detail``)."""

    file: str | None = None
    line: int | None = None
    source_id: str | None = None
    detail: str | None = None

    def __str__(self) -> str:
        if self.file:
            return f"{self.file}:{self.line}" if self.line is not None else self.file
        if self.source_id:
            return f"source id {self.source_id}"
        return self.detail or ""


def origin_dict(origin: Any) -> dict[str, Any] | None:
    """An origin as plain JSON: a dataclass's fields (Nones dropped), a mapping, or text."""
    if origin is None:
        return None
    if dataclasses.is_dataclass(origin) and not isinstance(origin, type):
        return {k: v for k, v in asdict(origin).items() if v is not None}
    if isinstance(origin, Mapping):
        return dict(origin)
    return {"detail": str(origin)}


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\b\d+\b")


def cause_of(status: int | None, message: str) -> str:
    """A message with its values masked: records refused for the same reason share a cause."""
    text = _NUMBER.sub("#", _QUOTED.sub("'…'", message.strip()))
    # the request line ("POST /ed-fi/x answered 400: ...") says nothing the resource does not
    text = re.sub(r"^(POST|PUT|DELETE|GET) \S+ answered #: ", "", text)
    return f"HTTP {status}: {text}" if status is not None else text


@dataclass
class Reject:
    """A record that was not written, with everything needed to fix and resend it."""

    resource: str
    operation: str  # upsert, update, delete, key_change
    status: int | None  # the target's final HTTP status; None when it was never sent
    message: str
    body: Any = None  # the request body (upserts, updates, key changes)
    key_values: Any = None  # the natural key (deletes); {"old", "new"} for key changes
    source_id: str | None = None
    warning: bool = False  # kept, but not a failure (e.g. a tolerated 403)
    origin: dict[str, Any] | None = None
    blocked_by: str | None = None  # "resource key" of the refused record this one needed
    cause: str = ""
    attempts: int = 1

    def __post_init__(self) -> None:
        if not self.cause:
            self.cause = cause_of(self.status, self.message)

    @property
    def blocked(self) -> bool:
        return self.blocked_by is not None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reject:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def where(self) -> str:
        """Where the record came from, for a person."""
        o = self.origin or {}
        if o.get("file"):
            return f"{o['file']}:{o['line']}" if o.get("line") is not None else str(o["file"])
        if self.source_id or o.get("source_id"):
            return f"source id {self.source_id or o.get('source_id')}"
        return str(o.get("detail") or "")


def summarize(rejects: Iterable[Reject]) -> list[dict[str, Any]]:
    """Rejects grouped by (resource, cause), biggest first, with up to 5 places each."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for r in rejects:
        g = groups.setdefault(
            (r.resource, r.cause),
            {
                "resource": r.resource,
                "cause": r.cause,
                "status": r.status,
                "count": 0,
                "warning": r.warning,
                "example": r.message,
                "where": [],
            },
        )
        g["count"] += 1
        if len(g["where"]) < 5 and (w := r.where()):
            g["where"].append(w)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["resource"], g["cause"]))


class RejectsStore:
    """The rejects of runs, one folder per run under ``base`` on the lake."""

    def __init__(self, lake: Lake, *base: str):
        self.lake = lake
        self.base = base

    def run_dir(self, run_id: str) -> str:
        return self.lake.path(*self.base, run_id)

    def file(self, run_id: str, resource: str) -> str:
        """A resource's rejects file; built by the lake, so a server's odd name cannot
        lead it out of the run's folder."""
        return self.lake.path(*self.base, run_id, resource.strip("/") + ".jsonl")

    def write(self, run_id: str, rejects: Sequence[Reject]) -> dict[str, Any]:
        """One JSONL file per resource, then the manifest naming them (written last)."""
        by_resource: dict[str, list[Reject]] = {}
        for r in rejects:
            by_resource.setdefault(r.resource, []).append(r)
        files: dict[str, dict[str, Any]] = {}
        for path, items in sorted(by_resource.items()):
            file = self.file(run_id, path)
            self.lake.write_bytes(file, b"".join(orjson.dumps(r.as_dict()) + b"\n" for r in items))
            files[path] = {
                "file": self.lake.uri(file),
                "count": len(items),
                "failed": sum(not r.warning and not r.blocked for r in items),
                "blocked": sum(r.blocked for r in items),
                "warnings": sum(r.warning for r in items),
                "causes": dict(Counter(r.cause for r in items).most_common()),
            }
        manifest = {
            "run_id": run_id,
            "count": len(rejects),
            "resources": files,
            "written_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        self.lake.write_json(self.lake.path(*self.base, run_id, "manifest.json"), manifest)
        return manifest

    def manifest(self, run_id: str) -> dict[str, Any] | None:
        data = self.lake.read_json(self.lake.path(*self.base, run_id, "manifest.json"))
        return data if isinstance(data, dict) else None

    def read(self, run_id: str) -> list[Reject]:
        """Every reject a finished run wrote, in file order."""
        manifest = self.manifest(run_id)
        if manifest is None:
            raise SendError(
                f"The rejects of run {run_id} are missing from the lake ({self.run_dir(run_id)})."
            )
        out: list[Reject] = []
        for path in manifest["resources"]:
            with self.lake.fs.open(self.file(run_id, path), "rb") as fh:
                for line in fh.read().splitlines():
                    if line.strip():
                        out.append(Reject.from_dict(orjson.loads(line)))
        return out
