"""Sending a folder of Ed-Fi JSON files to an API: what the ``send`` flow does, without Prefect.

The job, for the resources the input holds (and the selector picks):

1. validate every record (``edfi.validate.inputs``), keeping only the findings;
2. per resource, in dependency order (independent resources at once, which is
   the flow's business): stream the lines again, skip lines that failed
   validation (they are rejects), skip records whose body the target already
   accepted (``edfi.sendstate``), hold back records whose parent was rejected
   in this run (blocked, naming the parent -- the target would only refuse
   them), and upsert the rest under a bounded number of writes in flight;
3. keep every record that did not make it, byte for byte as it was read, in a
   rejects folder laid out like the input (``{run}/{namespace}/{resource}.jsonl``)
   plus one ``_reasons.jsonl`` naming file, line, status and message, so the
   folder can be fixed and sent again as it is;
4. report in the shape of lightbeam's ``--results-file``.

``delete`` mode removes the input's records from the target by natural key,
in reverse dependency order.

Writes go through a ``Writer``; ``ClientWriter`` is the plain one (POST upsert,
find-then-DELETE), with the client's retries for 5xx, 429, timeouts and
dropped connections.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import orjson
from fsspec.core import url_to_fs

from edfi.client import EdFiClient
from edfi.errors import EdFiConnectionError, EdFiResponseError, SendError
from edfi.jsonfiles import InputSet, Item, Origin
from edfi.model import ApiModel, Resource
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


# -- writing -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the target said to one write: ``ok`` and the HTTP status, or why it failed."""

    ok: bool
    status: int | None
    message: str = ""


class Writer(Protocol):
    async def upsert(self, resource: Resource, body: Mapping[str, Any]) -> Outcome: ...

    async def delete(self, resource: Resource, body: Mapping[str, Any]) -> Outcome: ...


def problem_message(exc: EdFiResponseError) -> str:
    """The target's own words: validation errors by path, else errors, else the detail."""
    problem = exc.problem if isinstance(exc.problem, Mapping) else {}
    parts: list[str] = []
    for path, messages in (problem.get("validationErrors") or {}).items():
        for m in messages if isinstance(messages, list) else [messages]:
            parts.append(f"{m} (at {path})")
    errors = problem.get("errors")
    if not parts and isinstance(errors, list):
        parts.extend(str(e) for e in errors)
    if not parts:
        for name in ("detail", "message", "title"):
            if problem.get(name):
                parts.append(str(problem[name]))
                break
    return "; ".join(parts) or str(exc)


class ClientWriter:
    """POST upserts and find-then-DELETE deletes through an ``EdFiClient``."""

    def __init__(self, client: EdFiClient, data_url: str) -> None:
        self.client = client
        self.data_url = data_url.rstrip("/")

    async def upsert(self, resource: Resource, body: Mapping[str, Any]) -> Outcome:
        try:
            resp = await self.client.request("POST", self.data_url + resource.path, json_body=body)
        except EdFiResponseError as exc:
            return Outcome(False, exc.status, problem_message(exc))
        except EdFiConnectionError as exc:
            return Outcome(False, None, str(exc))
        return Outcome(True, resp.status)

    async def delete(self, resource: Resource, body: Mapping[str, Any]) -> Outcome:
        params = {k: _query(v) for k, v in resource.key_values(body).items()}
        url = self.data_url + resource.path
        try:
            found = (await self.client.request("GET", url, params=params, parse_json=True)).json()
            if not isinstance(found, list) or not found:
                return Outcome(True, 404, "not in the target")
            resp = await self.client.request("DELETE", f"{url}/{found[0]['id']}")
        except EdFiResponseError as exc:
            return Outcome(False, exc.status, problem_message(exc))
        except EdFiConnectionError as exc:
            return Outcome(False, None, str(exc))
        return Outcome(True, resp.status)


def _query(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


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
    successes: dict[int, int] = field(default_factory=dict)
    failures: dict[tuple[Any, str, str], Failure] = field(default_factory=dict)
    started: float = 0.0
    finished: float = 0.0
    message: str = ""

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


class RejectsFolder:
    """A run's rejects, laid out like the input so that the folder can be sent again."""

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self.fs, self.root = url_to_fs(self.url, **dict(storage_options or {}))
        self._lines: dict[str, list[bytes]] = {}
        self._reasons: list[bytes] = []
        self.count = 0

    def add(self, resource: Resource, item: Item, status: int | str | None, message: str) -> None:
        self.count += 1
        self._lines.setdefault(resource.path, []).append(item.raw + b"\n")
        self._reasons.append(
            orjson.dumps(
                {
                    "resource": resource.path,
                    "file": item.origin.file,
                    "line": item.origin.line,
                    "status": status,
                    "message": message,
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
        )

    def write(self) -> dict[str, str]:
        """Write the files (only when something was rejected); resource -> file URL."""
        if not self.count:
            return {}
        out: dict[str, str] = {}
        self.fs.makedirs(self.root, exist_ok=True)
        for path, lines in self._lines.items():
            rel = path.strip("/") + ".jsonl"
            self.fs.makedirs(self.root + "/" + rel.rsplit("/", 1)[0], exist_ok=True)
            with self.fs.open(f"{self.root}/{rel}", "wb") as fh:
                fh.write(b"".join(lines))
            out[path] = f"{self.url}/{rel}"
        with self.fs.open(f"{self.root}/_reasons.jsonl", "wb") as fh:
            fh.write(b"".join(self._reasons))
        return out


def latest_rejects(url: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """The newest run folder under a rejects root (run ids sort by time)."""
    fs, root = url_to_fs(url, **dict(storage_options or {}))
    try:
        runs = sorted(
            str(e["name"]).rstrip("/").rsplit("/", 1)[-1]
            for e in fs.ls(root, detail=True)
            if e["type"] == "directory"
        )
    except FileNotFoundError:
        runs = []
    if not runs:
        raise SendError(
            f"resend_rejects: there are no rejects under {url}; nothing earlier was rejected "
            "(or the state storage is not the one the earlier run used)."
        )
    return f"{url.rstrip('/')}/{runs[-1]}"


# -- the job -------------------------------------------------------------------------------


@dataclass
class SendOptions:
    force: bool = False  # send records the target already accepted unchanged
    max_failures: int | None = None  # stop sending once this many records failed
    write_concurrency: int = 32  # records of one resource in flight at once
    flush_every: int = FLUSH_EVERY  # accepted records kept in memory before a state segment

    def __post_init__(self) -> None:
        if self.write_concurrency < 1:
            raise SendError("write_concurrency must be at least 1.")
        if self.max_failures is not None and self.max_failures < 1:
            raise SendError("max_failures must be at least 1 (or empty for no limit).")


class FileSend:
    """One send (or delete) of an input folder to one target; resources run via ``run``."""

    def __init__(
        self,
        model: ApiModel,
        inputs: InputSet,
        writer: Writer,
        *,
        state: SendState | None,
        rejects: RejectsFolder,
        options: SendOptions | None = None,
        invalid: Mapping[str, Mapping[Origin, Sequence[Problem]]] | None = None,
    ) -> None:
        self.model = model
        self.inputs = inputs
        self.writer = writer
        self.state = state
        self.rejects = rejects
        self.options = options or SendOptions()
        self.invalid = invalid or {}
        self.failed_total = 0
        self.rejected_keys: dict[str, set[tuple[Any, ...]]] = {}
        self.stopped = False
        self.t0 = time.monotonic()

    def _note_rejected(self, resource: Resource, record: Mapping[str, Any] | None) -> None:
        if record is not None:
            values = resource.key_values(record)
            self.rejected_keys.setdefault(resource.path, set()).add(
                key_tuple(values, resource.key_names)
            )

    def _blocked_by(
        self, resource: Resource, record: Mapping[str, Any]
    ) -> tuple[str, str, str] | None:
        """The rejected parent this record references: (resource, path in record, key)."""
        if not self.rejected_keys:
            return None
        for found in references(resource.shape, record):
            for t in self.model.targets(found.reference):
                keys = self.rejected_keys.get(t)
                if not keys:
                    continue
                key = target_key(self.model[t], found.values)
                if key is not None and key_tuple(key, self.model[t].key_names) in keys:
                    shown = ", ".join(f"{k}={v!r}" for k, v in key.items())
                    return self.model[t].name, found.path, shown
        return None

    def _reject(
        self,
        result: ResourceResult,
        resource: Resource,
        item: Item,
        status: int | str | None,
        message: str,
        method: str | None = None,
        detail: str | None = None,
    ) -> None:
        result.fail(item.origin, status if status is not None else "error", message, method)
        self.rejects.add(resource, item, status, f"{message}: {detail}" if detail else message)
        self._note_rejected(resource, item.record)
        self.failed_total += 1
        limit = self.options.max_failures
        if limit is not None and self.failed_total >= limit:
            self.stopped = True

    async def send_resource(self, path: str) -> ResourceResult:
        """Upsert one resource's records (see the module docstring for what is skipped)."""
        resource = self.model[path]
        result = ResourceResult(path, started=time.monotonic())
        state = self.state.load(path) if self.state is not None else None
        invalid = self.invalid.get(path, {})
        queue: asyncio.Queue[tuple[Item, bytes, bytes] | None] = asyncio.Queue(
            maxsize=self.options.write_concurrency * 4
        )
        last_flush = time.monotonic()

        async def worker() -> None:
            nonlocal last_flush
            while (job := await queue.get()) is not None:
                item, key, body = job
                if self.stopped:
                    continue
                assert item.record is not None
                outcome = await self.writer.upsert(resource, item.record)
                if outcome.ok:
                    result.sent += 1
                    if outcome.status is not None:
                        result.successes[outcome.status] = (
                            result.successes.get(outcome.status, 0) + 1
                        )
                    if state is not None:
                        state.accepted(key, body)
                        now = time.monotonic()
                        if (
                            state.pending >= self.options.flush_every
                            or now - last_flush >= FLUSH_SECONDS
                        ):
                            state.flush()
                            last_flush = now
                else:
                    self._reject(result, resource, item, outcome.status, outcome.message)

        workers = [asyncio.create_task(worker()) for _ in range(self.options.write_concurrency)]
        try:
            for item in self.inputs.items(path):
                if self.stopped:
                    break
                result.processed += 1
                problems = invalid.get(item.origin)
                if item.record is None or problems:
                    found = problems or [
                        Problem("", "malformed-json", item.error or "invalid JSON")
                    ]
                    text = "; ".join(
                        f"{p.message} (at {p.path})" if p.path else p.message for p in found
                    )
                    self._reject(result, resource, item, INVALID, text, method=found[0].code)
                    continue
                key = key_digest(resource, item.record)
                body = body_digest(item.record)
                if state is not None and not self.options.force and state.unchanged(key, body):
                    result.skipped += 1
                    continue
                parent = self._blocked_by(resource, item.record)
                if parent is not None:
                    name, path_in_record, key_text = parent
                    self._reject(
                        result,
                        resource,
                        item,
                        BLOCKED,
                        f"not sent: its {path_in_record} points at a {name} record that was "
                        "rejected in this run",
                        detail=f"{name} ({key_text})",
                    )
                    continue
                await queue.put((item, key, body))
        finally:
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers, return_exceptions=True)
            if state is not None:
                state.compact()
        result.finished = time.monotonic()
        result.status = _status(result, sent=True)
        if self.stopped:
            result.message = f"stopped: {self.failed_total} records failed (max_failures)"
        return result

    async def delete_resource(self, path: str) -> ResourceResult:
        """Delete the input's records of one resource from the target, by natural key."""
        resource = self.model[path]
        result = ResourceResult(path, started=time.monotonic())
        state = self.state.load(path) if self.state is not None else None
        sem = asyncio.Semaphore(self.options.write_concurrency)
        pending: set[asyncio.Task[None]] = set()

        async def one(item: Item) -> None:
            assert item.record is not None
            async with sem:
                if self.stopped:
                    return
                outcome = await self.writer.delete(resource, item.record)
            if not outcome.ok:
                self._reject(result, resource, item, outcome.status, outcome.message)
                return
            if outcome.status == 404:
                result.skipped += 1
            else:
                result.deleted += 1
                result.successes[outcome.status or 204] = (
                    result.successes.get(outcome.status or 204, 0) + 1
                )
            if state is not None:
                state.deleted(key_digest(resource, item.record))

        for item in self.inputs.items(path):
            if self.stopped:
                break
            result.processed += 1
            if item.record is None:
                self._reject(result, resource, item, INVALID, item.error or "invalid JSON")
                continue
            task = asyncio.create_task(one(item))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if len(pending) >= self.options.write_concurrency * 4:
                await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        if pending:
            await asyncio.gather(*pending)
        if state is not None:
            state.compact()
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
    if sent and result.sent == 0 and result.skipped:
        return ResourceStatus.UNCHANGED
    return ResourceStatus.SENT


async def run_gated(
    dependencies: Mapping[str, Iterable[str]],
    run: Callable[[str], Awaitable[ResourceResult]],
    *,
    parallelism: int,
) -> dict[str, ResourceResult]:
    """Start each resource once everything it waits for has finished, ``parallelism`` at once.

    A resource runs even when one it waits for failed: its records that
    reference a rejected parent are held back one by one (blocked), the rest
    are sent.
    """
    deps = {p: frozenset(d for d in ds if d in dependencies) for p, ds in dependencies.items()}
    done = {p: asyncio.Event() for p in deps}
    gate = asyncio.Semaphore(parallelism)
    results: dict[str, ResourceResult] = {}

    async def one(path: str) -> None:
        try:
            for d in deps[path]:
                await done[d].wait()
            async with gate:
                results[path] = await run(path)
        finally:
            done[path].set()

    await asyncio.gather(*(one(p) for p in deps))
    return results


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


__all__ = [
    "SEND_MODES",
    "ClientWriter",
    "FileSend",
    "Outcome",
    "RejectsFolder",
    "ResourceResult",
    "SendMode",
    "SendOptions",
    "Writer",
    "delete_dependencies",
    "latest_rejects",
    "results_document",
    "run_gated",
    "select",
    "send_dependencies",
    "state_for",
    "validation_results",
]
