"""Bulk load: the records of an XML spool written to one target, in dependency order, resumable.

What this adds to the sender (``edfi.send``) is only what XML needs:

* each resource starts once the resources it references have finished
  (``edfi.schedule``), independent ones at once;
* an element that could not become a record (a bad value, an unresolvable
  ``ref``) is a reject before anything is sent, with its file, line and element;
* an element the target already accepted with the same content -- same
  natural key, same body digest, kept per target on the state storage
  (``edfi.sendstate``, shared with the ``send`` flow, same digests) -- is skipped, so a
  load that was killed resumes where it was. Acceptances are recorded every
  ``batch`` records, so a kill loses at most one batch per resource of
  bookkeeping (those records are sent again: an upsert is idempotent).

Nothing here imports Prefect.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import orjson

from ..errors import SendError
from ..model import ApiModel, Resource
from ..rejects import UPSERT, Reject, origin_dict
from ..schedule import Outcome, run_gated
from ..send import Item, Sender
from ..vocabulary import ResourceStatus
from .reader import Origin
from .spool import XmlItem


class Source(Protocol):
    """Records grouped by resource: an ``XmlSpool``, or a previous run's rejects."""

    def resources(self) -> list[str]: ...
    def items(self, resource: str) -> Iterable[XmlItem]: ...


class RejectSource:
    """A run's rejects as a source to send again (after the records, or the target, were fixed).

    A reject without a body (an element that never became a record) cannot be
    sent: it is rejected again with its first message, until the XML is fixed
    and loaded.
    """

    def __init__(self, rejects: Iterable[Reject]):
        self.by_resource: dict[str, list[Reject]] = {}
        for r in rejects:
            self.by_resource.setdefault(r.resource, []).append(r)

    def resources(self) -> list[str]:
        return sorted(self.by_resource)

    def items(self, resource: str) -> Iterable[XmlItem]:
        for r in self.by_resource.get(resource, ()):
            o = r.origin or {}
            origin = Origin(
                str(o.get("file", "")),
                int(o.get("line") or 0),
                str(o.get("element", "")),
                str(o.get("interchange", "")),
            )
            body = r.body if isinstance(r.body, dict) else None
            yield XmlItem(origin, body, None if body is not None else r.message)


class Feed:
    """The resources of a spool that a worker thread is still converting, each announced
    once complete (``XmlSpool.convert``'s ``on_ready``), so sending starts before the
    last file is read: parsing one file overlaps sending what earlier files held."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.events: dict[str, asyncio.Event] = {}
        self.error: BaseException | None = None

    def _event(self, resource: str) -> asyncio.Event:
        return self.events.setdefault(resource, asyncio.Event())

    def announce(self, resource: str) -> None:
        """From the converting thread: ``resource`` is complete in the spool."""
        self.loop.call_soon_threadsafe(lambda: self._event(resource).set())

    def fail(self, error: BaseException) -> None:
        """From the converting thread: it stopped; nothing more will be announced."""

        def stop() -> None:
            self.error = error
            for event in self.events.values():
                event.set()

        self.loop.call_soon_threadsafe(stop)

    async def wait(self, resource: str) -> None:
        if self.error is None:
            await self._event(resource).wait()
        if self.error is not None:
            raise SendError(f"reading the files stopped: {self.error}") from self.error


INVALID_STATUS = None  # a reject that was never sent has no HTTP status


class ResourceState(Protocol):
    """What the target accepted of one resource (``edfi.sendstate.ResourceState``)."""

    def unchanged(self, key: bytes, body: bytes) -> bool: ...
    def accepted(self, key: bytes, body: bytes) -> None: ...
    def flush(self) -> None: ...
    def compact(self) -> None: ...


class State(Protocol):
    """The per-target state store (``edfi.sendstate.SendState``)."""

    def load(self, resource_path: str) -> Any: ...


_SERVER_FIELDS = frozenset({"id", "_etag", "_lastModifiedDate", "link"})


def body_digest(record: Mapping[str, Any]) -> bytes:
    """The body's digest, as the send state keeps it (key order does not count)."""
    clean = {k: v for k, v in record.items() if k not in _SERVER_FIELDS}
    return hashlib.blake2b(
        orjson.dumps(clean, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).digest()


def key_digest(resource: Resource, record: Mapping[str, Any]) -> bytes:
    """The natural key's digest, as the send state keys it."""
    values = resource.key_values(record)
    return hashlib.blake2b(
        orjson.dumps(values, option=orjson.OPT_SORT_KEYS), digest_size=16
    ).digest()


@dataclass
class ResourceRow:
    """One resource of a load: what the files held and what became of it."""

    resource: str
    elements: int = 0  # elements of the files that map to this resource
    sent: int = 0  # accepted by the target in this run
    skipped: int = 0  # already accepted unchanged (state), not sent
    invalid: int = 0  # could not become a record (rejects)
    failed: int = 0  # refused by the target (rejects)
    blocked: int = 0  # not sent: a record it references was refused (rejects)
    deferred: int = 0  # held after a 403 and not accepted on the resend
    seconds: float = 0.0
    error: str | None = None

    @property
    def status(self) -> str:
        if self.error or self.invalid or self.failed or self.blocked or self.deferred:
            return str(ResourceStatus.FAILED)
        return str(ResourceStatus.SENT)

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}


@dataclass
class BulkResult:
    rows: dict[str, ResourceRow] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return sum(
            r.invalid + r.failed + r.blocked + r.deferred + bool(r.error)
            for r in self.rows.values()
        )


class BulkLoad:
    """Send a spooled XML load through one sender (see the module docstring)."""

    def __init__(
        self,
        model: ApiModel,
        spool: Source,
        sender: Sender,
        *,
        state: State | None = None,
        force: bool = False,
        batch: int = 2000,
        parallelism: int = 8,
    ):
        self.model = model
        self.spool = spool
        self.sender = sender
        self.state = state
        self.force = force
        self.batch = batch
        self.parallelism = parallelism
        self.result = BulkResult()
        self._states: dict[str, ResourceState] = {}
        self.feed: Feed | None = None  # set while the spool is still being converted
        # digests of the items a 403 held back, by the item's id (the sender holds the item)
        self._held: dict[str, dict[int, tuple[bytes, bytes]]] = {}

    async def run(
        self,
        runner: Callable[[str], Awaitable[ResourceRow]] | None = None,
        on_done: Callable[[Outcome[str, ResourceRow]], Awaitable[None]] | None = None,
    ) -> BulkResult:
        """Every resource of the source, each once what it needs is in.

        ``runner(path)`` runs one resource (default ``send_resource``; a flow
        wraps it in a task); ``on_done`` sees each outcome (progress).
        """
        chosen = [p for p in self.spool.resources() if p in self.model]
        deps = {p: sorted(self._needs(p) & set(chosen)) for p in chosen}
        run_one = runner or self.send_resource
        gate = asyncio.Semaphore(self.parallelism)

        async def when_ready(path: str) -> ResourceRow:
            # a resource still being converted waits here, not in one of the sending slots
            if self.feed is not None:
                await self.feed.wait(path)
            async with gate:
                return await run_one(path)

        outcomes = await run_gated(
            deps, when_ready, parallelism=max(1, len(chosen)), on_done=on_done
        )
        for path, outcome in outcomes.items():
            row = self.result.rows.setdefault(path, ResourceRow(path))
            if outcome.error is not None:
                row.error = f"{type(outcome.error).__name__}: {outcome.error}"
            elif outcome.status == "blocked":
                row.error = "not sent: " + ", ".join(outcome.blocked_by) + " failed"
        await self._resend_deferred()
        self.result.rejects = [*self.result.rejects, *self.sender.rejects]
        return self.result

    def _needs(self, path: str) -> set[str]:
        """What must be in before ``path``: what it references, and the descriptors it uses."""
        resource = self.model[path]
        return set(self.model.dependencies[path]) | {
            d for _, d in resource.shape.descriptor_paths() if d != path
        }

    async def send_resource(self, path: str) -> ResourceRow:
        """One resource: invalid elements rejected, unchanged ones skipped, the rest sent."""
        started = time.perf_counter()
        resource = self.model[path]
        row = self.result.rows.setdefault(path, ResourceRow(path))
        rstate = self.state.load(path) if self.state is not None else None
        if rstate is not None:
            self._states[path] = rstate
        pending: list[tuple[Item, bytes, bytes]] = []
        for xi in self.spool.items(path):
            row.elements += 1
            if xi.record is None:
                row.invalid += 1
                self.result.rejects.append(
                    Reject(
                        path,
                        UPSERT,
                        INVALID_STATUS,
                        xi.error or "not a record",
                        origin=origin_dict(xi.origin),
                    )
                )
                continue
            key = key_digest(resource, xi.record)
            body = body_digest(xi.record)
            if rstate is not None and not self.force and rstate.unchanged(key, body):
                row.skipped += 1
                continue
            pending.append((Item(xi.record, origin=xi.origin), key, body))
            if len(pending) >= self.batch:
                await self._send(path, pending, rstate, row)
                pending = []
        if pending:
            await self._send(path, pending, rstate, row)
        if rstate is not None and path not in self.sender.deferred:
            rstate.compact()
        row.seconds = round(time.perf_counter() - started, 3)
        return row

    async def _send(
        self,
        path: str,
        batch: list[tuple[Item, bytes, bytes]],
        rstate: ResourceState | None,
        row: ResourceRow,
    ) -> None:
        digests = {id(item): (key, body) for item, key, body in batch}

        def accepted(item: Item) -> None:
            if rstate is not None:
                rstate.accepted(*digests[id(item)])

        try:
            result = await self.sender.upsert(
                path, [item for item, _, _ in batch], on_sent=accepted
            )
        finally:
            if rstate is not None:
                rstate.flush()  # what was accepted is kept even if the batch stopped early
        row.sent += result.sent
        row.failed += result.failed + result.warnings
        row.blocked += result.blocked
        if rstate is not None:  # held after a 403: recorded when the resend is accepted
            held = self._held.setdefault(path, {})
            for item in self.sender.deferred.get(path, ()):
                if id(item) in digests:
                    held[id(item)] = digests[id(item)]

    async def _resend_deferred(self) -> None:
        """Records a 403 held back (students, staff, contacts), now their associations are in."""
        for path in list(self.sender.deferred):
            row = self.result.rows.setdefault(path, ResourceRow(path))
            rstate = self._states.get(path)
            held = self._held.pop(path, {})

            def accepted(
                item: Item,
                rstate: ResourceState | None = rstate,
                held: dict[int, tuple[bytes, bytes]] = held,
            ) -> None:
                if rstate is not None and id(item) in held:
                    rstate.accepted(*held[id(item)])

            result = await self.sender.resend_deferred(path, on_sent=accepted)
            row.sent += result.sent
            row.failed += result.failed + result.warnings
            row.blocked += result.blocked
            if rstate is not None:
                rstate.compact()
