"""Sending a folder of Ed-Fi JSON files to an API: what the ``send`` flow does, without Prefect.

The job, for the resources the input holds (and the selector picks):

1. validate every record (``edfi.validate.inputs``), keeping only the findings;
2. per resource, in dependency order (independent resources at once: the
   flow runs them through ``edfi.schedule.run_gated``): stream the lines
   again; lines that failed validation become rejects, never sent, and so do
   records referencing one of them (blocked, naming it); records whose body
   the target already accepted are skipped (``edfi.sendstate``); the rest go
   to the shared ``edfi.send.Sender`` (retries, records blocked by a refused
   parent, 403 deferral), and each one the target accepts is recorded in the
   state as it is accepted;
3. every record that did not make it is a ``Reject`` (``edfi.rejects``) with
   its file and line, so it can be fixed and sent again (``RejectsInput``);
4. results per resource and file in lightbeam's ``--results-file`` shape.

``delete`` mode removes the input's records from the target by natural key,
in reverse dependency order.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import re
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from edfi.client import RequestCounts, counting
from edfi.errors import SendError
from edfi.jsonfiles import Item, Origin, Records, parse_line
from edfi.model import ApiModel, Resource
from edfi.rejects import DELETE, UPSERT, Reject, RejectsStore, origin_dict
from edfi.send import Item as SendItem
from edfi.send import ResourceResult as SendResult
from edfi.send import Sender
from edfi.sendstate import SendState, body_digest, target_id
from edfi.validate.inputs import InputReport
from edfi.validate.problems import Problem
from edfi.validate.references import key_tuple, target_key
from edfi.validate.uniqueness import key_digest
from edfi.validate.walk import references
from edfi.vocabulary import ResourceStatus

SendMode = Literal["validate", "send", "validate+send", "delete"]
SEND_MODES: tuple[str, ...] = ("validate", "send", "validate+send", "delete")
FLUSH_EVERY = 500  # accepted records between two state segments (at most)
FLUSH_SECONDS = 2.0  # ... and at most this long between two
BLOCKED = "blocked"  # the status of a record held back because its parent was rejected
INVALID = "invalid"  # the status of a record that failed validation


# -- choosing resources --------------------------------------------------------------------


def split_globs(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    return [i.strip() for i in items if i and i.strip()]


def select(
    model: ApiModel,
    available: Iterable[str],
    selector: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> list[str]:
    """The input's resources that match ``selector`` and not ``exclude``, in load order.

    Globs match case-insensitively against ``students``, ``ed-fi/students`` and
    ``/ed-fi/students`` (``*Associations``, ``ed-fi/student*``, ``*Descriptors``).
    """
    keep = split_globs(selector) or ["*"]
    drop = split_globs(exclude)

    def matches(resource: Resource, globs: list[str]) -> bool:
        names = (resource.name.lower(), resource.full_name.lower(), resource.path.lower())
        return any(fnmatch.fnmatchcase(n, g.lower()) for g in globs for n in names)

    chosen = [
        p for p in available if matches(model[p], keep) and not (drop and matches(model[p], drop))
    ]
    if not chosen:
        raise SendError(
            f"No resource of the input matches selector {keep} (exclude {drop or 'none'}); "
            f"the input holds: {', '.join(sorted(model[p].name for p in available)) or 'nothing'}."
        )
    return model.load_order(chosen)


def _needs(model: ApiModel, path: str) -> set[str]:
    """What a resource's records point at: referenced resources and the descriptors they name."""
    return set(model.dependencies[path]) | {d for _, d in model[path].shape.descriptor_paths()}


def send_dependencies(model: ApiModel, chosen: Sequence[str]) -> dict[str, frozenset[str]]:
    """For each chosen resource, the chosen resources it must wait for (transitively).

    Descriptors count: a record naming a descriptor the same run sends must wait for it.
    """
    picked = set(chosen)
    direct = {p: _needs(model, p) & picked for p in chosen}
    out: dict[str, frozenset[str]] = {}
    for p in chosen:
        seen: set[str] = set()
        todo = list(direct[p])
        while todo:
            d = todo.pop()
            if d not in seen and d != p:
                seen.add(d)
                todo.extend(direct.get(d, ()))
        out[p] = frozenset(seen)
    return out


def delete_dependencies(model: ApiModel, chosen: Sequence[str]) -> dict[str, frozenset[str]]:
    """Deletes run the other way: a resource waits for everything that needs it."""
    forward = send_dependencies(model, chosen)
    return {p: frozenset(q for q in chosen if p in forward[q]) for p in chosen}


# -- results -------------------------------------------------------------------------------


@dataclass
class Failure:
    """Records of one resource that failed the same way in the same file."""

    status: int | str  # HTTP status, "invalid" (validation: see ``method``) or "blocked"
    message: str
    file: str
    lines: list[int] = field(default_factory=list)
    method: str | None = None  # the validation problem code, for invalid records


@dataclass
class ResourceResult:
    """One resource's send: counts, timings (monotonic, to show overlap) and failures."""

    resource: str
    status: ResourceStatus = ResourceStatus.PENDING
    processed: int = 0
    skipped: int = 0
    sent: int = 0
    deleted: int = 0
    failed: int = 0
    warnings: int = 0
    deferred: int = 0
    successes: dict[int, int] = field(default_factory=dict)
    failures: dict[tuple[Any, str, str], Failure] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    message: str = ""
    # what the client did below the records: requests, retries, 429s, token renewals
    counts: RequestCounts = field(default_factory=RequestCounts)

    @property
    def seconds(self) -> float:
        return round(max(0.0, self.finished - self.started), 3)

    def fail(
        self, origin: Origin, status: int | str, message: str, method: str | None = None
    ) -> None:
        self.failed += 1
        group = self.failures.get((status, message, origin.file))
        if group is None:
            group = self.failures[(status, message, origin.file)] = Failure(
                status, message, origin.file, method=method
            )
        group.lines.append(origin.line)

    def merge(self, other: ResourceResult) -> None:
        """Add a later call's counts (a resend of deferred records) to this row."""
        for name in ("sent", "deleted", "failed", "warnings"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.deferred = other.deferred
        for key, group in other.failures.items():
            mine = self.failures.setdefault(
                key, Failure(group.status, group.message, group.file, method=group.method)
            )
            mine.lines.extend(group.lines)
        self.finished = max(self.finished, other.finished)
        self.counts.add(other.counts)
        self.status = _status(self, sent=True)

    def row(self, t0: float | None = None) -> dict[str, Any]:
        """The summary row; with ``t0``, start and end in seconds since ``t0``."""
        timing = (
            {"start": round(self.started - t0, 3), "end": round(self.finished - t0, 3)}
            if t0 is not None
            else {}
        )
        return {
            "resource": self.resource,
            "status": str(self.status),
            "processed": self.processed,
            "skipped": self.skipped,
            "sent": self.sent,
            "deleted": self.deleted,
            "failed": self.failed,
            "seconds": self.seconds,
            **self.counts.columns(),
            "message": self.message,
            **timing,
        }


def results_document(
    model: ApiModel,
    results: Sequence[ResourceResult],
    *,
    command: str,
    started: dt.datetime,
    data_dir: str,
    api_url: str,
    namespace: str = "ed-fi",
    config_file: str | None = None,
) -> dict[str, Any]:
    """The run in the shape of lightbeam's ``--results-file`` (same keys, same grouping)."""
    resources: dict[str, Any] = {}
    for r in results:
        res = model[r.resource]
        name = res.name if res.namespace == namespace else f"{res.namespace}/{res.name}"
        entry: dict[str, Any] = {
            "records_processed": r.processed,
            "records_skipped": r.skipped,
            "records_failed": r.failed,
        }
        if r.successes:
            entry["successes"] = [
                {"status_code": s, "count": n} for s, n in sorted(r.successes.items())
            ]
        failures = []
        for f in r.failures.values():
            item: dict[str, Any] = (
                {"method": f.method} if f.method is not None else {"status_code": f.status}
            )
            item.update(
                {
                    "message": f.message,
                    "file": f.file,
                    "line_numbers": sorted(f.lines),
                    "count": len(f.lines),
                }
            )
            failures.append(item)
        if failures:
            entry["failures"] = failures
        resources[name] = entry
    ended = dt.datetime.now(dt.UTC)
    return {
        "started_at": started.isoformat(timespec="microseconds"),
        "working_dir": data_dir,
        "config_file": config_file,
        "data_dir": data_dir,
        "api_url": api_url,
        "namespace": namespace,
        "resources": resources,
        "command": command,
        "completed_at": ended.isoformat(timespec="microseconds"),
        "runtime_sec": round((ended - started).total_seconds(), 3),
        "total_records_processed": sum(r.processed for r in results),
        "total_records_skipped": sum(r.skipped for r in results),
        "total_records_failed": sum(r.failed for r in results),
    }


def validation_results(model: ApiModel, report: InputReport) -> list[ResourceResult]:
    """A validation report as per-resource results (every problem of a line grouped)."""
    out: list[ResourceResult] = []
    for path, rep in report.resources.items():
        r = ResourceResult(path, processed=rep.records)
        for origin in sorted(rep.problems, key=lambda o: (o.file, o.line)):
            problems = rep.problems[origin]
            r.failed += 1
            for p in problems:
                message = f"{p.message} (at {p.path})" if p.path else p.message
                group = r.failures.setdefault(
                    (INVALID, message, origin.file),
                    Failure(INVALID, message, origin.file, method=p.code),
                )
                group.lines.append(origin.line)
        r.status = ResourceStatus.FAILED if r.failed else ResourceStatus.VALIDATED
        out.append(r)
    return out


# -- rejects -------------------------------------------------------------------------------


def local_reject(
    resource: str, item: Item, message: str, cause: str, *, blocked_by: str | None = None
) -> Reject:
    """A record refused before sending (invalid, or a child of one), as a shared ``Reject``.

    A line that is not JSON keeps its text as the body, so fixing it in the
    rejects file and resending works as for any other record.
    """
    body: Any = item.record if item.record is not None else item.raw.decode("utf-8", "replace")
    return Reject(
        resource,
        UPSERT,
        None,
        message,
        body,
        origin=origin_dict(item.origin),
        blocked_by=blocked_by,
        cause=cause,
        attempts=0,
    )


def _reject_message(reject: Reject) -> str:
    """The server's words without the request line (lightbeam's results show just those)."""
    return _REQUEST_LINE.sub("", reject.message)


_REQUEST_LINE = re.compile(r"^(POST|PUT|DELETE|GET) \S+ answered \d+: ")


class RejectsInput:
    """A run's rejects read back as input: the records (fixed or not) at their first origin."""

    def __init__(self, rejects: Sequence[Reject]) -> None:
        self.by_resource: dict[str, list[Reject]] = {}
        for r in rejects:
            if r.operation in (UPSERT, DELETE) and not r.warning:
                self.by_resource.setdefault(r.resource, []).append(r)

    def resources(self) -> list[str]:
        return sorted(self.by_resource)

    def items(self, resource: str) -> Iterator[Item]:
        for n, r in enumerate(self.by_resource.get(resource, ()), start=1):
            origin = Origin(
                str((r.origin or {}).get("file", "rejects")), int((r.origin or {}).get("line", n))
            )
            if isinstance(r.body, dict):
                yield Item(origin, orjson.dumps(r.body), r.body)
                continue
            raw = str(r.body or "").encode()
            record, error = parse_line(raw)
            yield Item(origin, raw, record, error)


def latest_run(store: RejectsStore) -> str:
    """The newest run with rejects under ``store`` (run ids sort by time)."""
    root = store.lake.path(*store.base)
    fs = store.lake.fs
    try:
        runs = sorted(
            str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
            for e in fs.ls(root.rstrip("/"), detail=True)
            if e["type"] == "directory"
        )
    except FileNotFoundError:
        runs = []
    runs = [r for r in runs if store.manifest(r) is not None]
    if not runs:
        raise SendError(
            f"resend_rejects: no earlier run left rejects under {store.lake.uri(root)} (or the "
            "state storage is not the one that run used)."
        )
    return runs[-1]


# -- the job -------------------------------------------------------------------------------


@dataclass
class FileSendOptions:
    force: bool = False  # send records the target already accepted unchanged
    flush_every: int = FLUSH_EVERY  # accepted records kept in memory before a state segment


class FileSend:
    """One send (or delete) of files to one target, a resource at a time via the shared ``Sender``.

    What this adds to the sender: records that failed validation (rejects,
    never sent) and their children (blocked), the state (unchanged records
    skipped, accepted ones recorded as they are accepted), and per-file
    results in lightbeam's terms.
    """

    def __init__(
        self,
        model: ApiModel,
        records: Records,
        sender: Sender,
        *,
        state: SendState | None,
        options: FileSendOptions | None = None,
        invalid: Mapping[str, Mapping[Origin, Sequence[Problem]]] | None = None,
    ) -> None:
        self.model = model
        self.records = records
        self.sender = sender
        self.state = state
        self.options = options or FileSendOptions()
        self.invalid = invalid or {}
        self.local_rejects: list[Reject] = []
        self.rejected_keys: dict[str, set[tuple[Any, ...]]] = {}
        self.t0 = time.monotonic()

    @property
    def stopped(self) -> bool:
        limit = self.sender.options.max_failures
        return limit is not None and self.failures >= limit

    @property
    def failures(self) -> int:
        """Records refused so far (the sender's own count, plus those refused before sending)."""
        return len(self.local_rejects) + self.sender.failures

    def rejects(self) -> list[Reject]:
        return [*self.local_rejects, *self.sender.rejects]

    def _note_rejected(self, resource: Resource, record: Mapping[str, Any] | None) -> None:
        if record is not None:
            values = resource.key_values(record)
            self.rejected_keys.setdefault(resource.path, set()).add(
                key_tuple(values, resource.key_names)
            )

    def _blocked_by(self, resource: Resource, record: Mapping[str, Any]) -> str | None:
        """The invalid record of this run that ``record`` references (``/ed-fi/x {key}``)."""
        if not self.rejected_keys:
            return None
        for found in references(resource.shape, record):
            for t in self.model.targets(found.reference):
                keys = self.rejected_keys.get(t)
                if not keys:
                    continue
                key = target_key(self.model[t], found.values)
                if key is not None and key_tuple(key, self.model[t].key_names) in keys:
                    return f"{t} {orjson.dumps(key, option=orjson.OPT_SORT_KEYS).decode()}"
        return None

    def _local(self, resource: Resource, item: Item, reject: Reject) -> None:
        self.local_rejects.append(reject)
        self._note_rejected(resource, item.record)

    async def send_resource(self, path: str) -> ResourceResult:
        """Upsert one resource's records, skipping what the target already has unchanged."""
        resource = self.model[path]
        result = ResourceResult(path, started=time.monotonic())
        state = self.state.load(path) if self.state is not None else None
        invalid = self.invalid.get(path, {})
        last_flush = time.monotonic()

        def accepted(sent: SendItem) -> None:
            nonlocal last_flush
            if state is None or sent.body is None:
                return
            state.accepted(key_digest(resource, sent.body), body_digest(sent.body))
            now = time.monotonic()
            if state.pending >= self.options.flush_every or now - last_flush >= FLUSH_SECONDS:
                state.flush()
                last_flush = now

        async def items() -> AsyncIterator[SendItem]:
            for item in self.records.items(path):
                if self.stopped:
                    return
                result.processed += 1
                problems = invalid.get(item.origin)
                if item.record is None or problems:
                    found = problems or [
                        Problem("", "malformed-json", item.error or "invalid JSON")
                    ]
                    text = "; ".join(
                        f"{p.message} (at {p.path})" if p.path else p.message for p in found
                    )
                    cause = "invalid: " + ", ".join(sorted({p.code for p in found}))
                    self._local(resource, item, local_reject(path, item, text, cause))
                    continue
                if (
                    state is not None
                    and not self.options.force
                    and state.unchanged(key_digest(resource, item.record), body_digest(item.record))
                ):
                    result.skipped += 1
                    continue
                parent = self._blocked_by(resource, item.record)
                if parent is not None:
                    message = f"Not sent: it references {parent}, which failed validation."
                    cause = f"blocked: references an invalid {parent.split(' ', 1)[0]} record"
                    self._local(
                        resource, item, local_reject(path, item, message, cause, blocked_by=parent)
                    )
                    continue
                yield SendItem(body=item.record, origin=item.origin)

        before = len(self.sender.rejects)
        try:
            with counting(result.counts):
                sent = await self.sender.upsert(path, items(), on_sent=accepted)
            result.sent = sent.sent
            result.deferred = sent.deferred
        except SendError as exc:  # max_failures reached inside the sender
            result.message = str(exc)
            result.sent = self.sender.totals.get(path, SendResult(path)).sent
        finally:
            if state is not None:
                state.compact()
        self._tally(result, path, before)
        result.finished = time.monotonic()
        result.status = _status(result, sent=True)
        return result

    async def resend_deferred(self, path: str) -> ResourceResult:
        """Send again what a 403 held back (after the associations that grant access)."""
        result = ResourceResult(path, started=time.monotonic())
        before = len(self.sender.rejects)
        state = self.state.load(path) if self.state is not None else None
        resource = self.model[path]

        def accepted(sent: SendItem) -> None:
            if state is not None and sent.body is not None:
                state.accepted(key_digest(resource, sent.body), body_digest(sent.body))

        pending = self.sender.deferred.pop(path, [])
        with counting(result.counts):
            again = await self.sender.upsert(path, pending, deferrable=False, on_sent=accepted)
        if state is not None:
            state.compact()
        result.sent = again.sent
        self._tally(result, path, before)
        result.finished = time.monotonic()
        result.status = _status(result, sent=True)
        return result

    def _tally(self, result: ResourceResult, path: str, before: int) -> None:
        mine = [r for r in self.local_rejects if r.resource == path]
        theirs = [r for r in self.sender.rejects[before:] if r.resource == path]
        for r in (*mine, *theirs):
            if r.warning:
                result.warnings += 1
                continue
            origin = r.origin or {}
            status: int | str = (
                r.status if r.status is not None else (BLOCKED if r.blocked else INVALID)
            )
            method = r.cause.removeprefix("invalid: ") if r.cause.startswith("invalid") else None
            result.fail(
                Origin(str(origin.get("file", "")), int(origin.get("line", 0))),
                status,
                _reject_message(r),
                method,
            )

    async def delete_resource(self, path: str) -> ResourceResult:
        """Delete the input's records of one resource from the target, by natural key."""
        resource = self.model[path]
        result = ResourceResult(path, started=time.monotonic())
        state = self.state.load(path) if self.state is not None else None
        seen: list[Item] = []

        async def items() -> AsyncIterator[SendItem]:
            for item in self.records.items(path):
                if self.stopped:
                    return
                result.processed += 1
                if item.record is None:
                    self._local(
                        resource,
                        item,
                        local_reject(
                            path, item, item.error or "invalid JSON", "invalid: malformed-json"
                        ),
                    )
                    continue
                seen.append(item)
                yield SendItem(body=item.record, origin=item.origin)

        before = len(self.sender.rejects)
        try:
            with counting(result.counts):
                done = await self.sender.delete(path, items())
            result.deleted, result.skipped = done.sent, done.skipped
        except SendError as exc:
            result.message = str(exc)
        refused = {
            (str((r.origin or {}).get("file")), (r.origin or {}).get("line"))
            for r in self.sender.rejects[before:]
        }
        if state is not None:
            for item in seen:
                if (item.origin.file, item.origin.line) not in refused and item.record is not None:
                    state.deleted(key_digest(resource, item.record))
            state.compact()
        self._tally(result, path, before)
        result.finished = time.monotonic()
        result.status = _status(result, sent=False)
        return result

    def skipped_result(self, path: str, message: str) -> ResourceResult:
        now = time.monotonic()
        return ResourceResult(
            path, ResourceStatus.SKIPPED, started=now, finished=now, message=message
        )


def _status(result: ResourceResult, *, sent: bool) -> ResourceStatus:
    if result.failed:
        return ResourceStatus.FAILED
    if result.warnings:
        return ResourceStatus.WARNINGS
    if sent and result.sent == 0 and result.skipped and not result.deferred:
        return ResourceStatus.UNCHANGED
    return ResourceStatus.SENT


def state_for(
    url: str,
    base_url: str,
    *,
    school_year: int | None = None,
    tenant: str | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> SendState:
    return SendState(
        url,
        target_id(base_url, school_year=school_year, tenant=tenant),
        storage_options=storage_options,
    )
