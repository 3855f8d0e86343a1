"""The sender: the one way records are written into an Ed-Fi API.

Every job that writes (publish, send, bulk_load, bundle, lms) hands its records
to a ``Sender``; it reads its own input and maps it, nothing more. The sender
upserts (POST), updates by natural key (find, then PUT by id) and deletes by
natural key (find, then DELETE by id), and it owns everything that makes that
safe and fast:

**Concurrency.** Each call works through its items with ``per_resource``
concurrent writers, and every request of every call shares one budget of
``concurrency`` requests in flight. Writes have their own default
(``WRITE_CONCURRENCY`` = 32) rather than the connection block's
``max_concurrency`` (8), which is sized for reads: a read page carries
hundreds of records, a write carries one, so a write is all round trip and
server transaction. At 30 ms of latency one connection gives about 33 writes/s;
lightbeam's default pool of 8 (and our read default) caps near 260/s while the
server idles. 32 in flight keeps an ODS/API busy without crowding its database
pool (ADO.NET's default is 100 connections). ``per_resource`` (24) is a share,
not a ceiling: while several resources are being written, each may have
``max(per_resource, concurrency / resources being written)`` writes in flight,
so a second resource keeps moving beside a big one; a resource written alone
(the last big one of a run, waiting on nothing) takes the whole budget rather
than leaving a quarter of it idle. The client passed in must allow that many
requests: build it from ``write_connection(conn, concurrency)``.

**Retries.** The client retries 5xx, 429 (honouring ``Retry-After``), timeouts
and dropped connections with backoff (``retry_statuses`` names the statuses:
a lightbeam config's list, say). The sender adds ordering conflicts: a
409 "referenced resource does not exist" is retried (``conflict_retries``
times, exponential backoff from ``retry_delay_ms``) only while a resource the
record references is still being written in this run (or it references its own
resource): that is an ordering race that time fixes. Otherwise the referenced
record is simply not on the target and retrying cannot help, so it is final at
once. Other 409s (write conflicts between concurrent writers) are retried.

A request that still fails after the client's own retries (the target is
down, or answers with broken JSON) is not a record's fault: it fails the call,
and the caller decides (publish fails that resource's unit, and the scheduler
blocks what depends on it; the change version does not move, so nothing is
lost).

**Blocked, not retried.** A record that references a record refused in this
run (or one itself blocked) is not sent at all: it is reported as *blocked*,
naming the parent (``/ed-fi/schools {"schoolId": 255901}``). Before this, a
publish into an empty target without descriptors retried 7,741 such records
five times each for 22 minutes; now they cost nothing. Parents are matched by
natural key through the model's references (and descriptor values through the
refused descriptors' URIs).

**403 deferral.** For the resources in ``authorization_retry`` (students,
staffs, contacts: a target may grant access to a person only once an
association names them), a 403 on POST is not final: the item is held, and
``resend_deferred(resource)`` sends it again once those associations are
written. A second 403 is a failure, or a warning with ``forbidden_as_warning``.

**Rejects.** Every item that finally fails becomes a ``Reject`` (see
``edfi.rejects``) in ``sender.rejects``: status, the server's message, a
cause, the body, and the item's ``origin`` (any dataclass: a file and line, an
XML element, a source id). Write them with ``RejectsStore.write``; turn them
back into items with ``Reject.item()`` to resend.

**Stopping early.** With ``max_failures``, the sender stops taking new items
once that many have failed or been blocked, and raises ``SendError``.

Use::

    conn = write_connection(block.connection(), WRITE_CONCURRENCY)
    async with EdFiClient(conn) as client:
        model = await client.load_model(year)
        sender = Sender(client, model, client.url("dataManagementApi", year))
        result = await sender.upsert("/ed-fi/students", items)   # an (async) iterable of Item
        # result.sent, .skipped, .failed, .blocked, .warnings, .deferred; result.status
        await sender.resend_deferred("/ed-fi/students")          # after the associations
        RejectsStore(lake, "send", target_key, "rejects").write(run_id, sender.rejects)

Calls for different resources may run at once (the gated scheduler in
``edfi.schedule`` starts each when its prerequisites are done); one sender is
shared by all of them so the budget and the refused-record index are shared.
``Sender`` is not thread-safe: use it from one event loop. Nothing here imports
Prefect.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import re
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from .client import RETRY_STATUSES, Connection, EdFiClient
from .errors import EdFiResponseError, SendError
from .model import ApiModel, Reference, Shape, abstract_field
from .rejects import DELETE, UPDATE, UPSERT, Reject, origin_dict
from .vocabulary import ResourceStatus

__all__ = [
    "DEFAULT_AUTHORIZATION_RETRY",
    "RESOURCE_CONCURRENCY",
    "WRITE_CONCURRENCY",
    "Item",
    "ResourceResult",
    "SendOptions",
    "Sender",
    "drain",
    "reject_item",
    "write_connection",
]

WRITE_CONCURRENCY = 32  # requests in flight for all writes of a run (see the module docstring)
RESOURCE_CONCURRENCY = 24  # writers of one resource

# The Ed-Fi API Publisher's authorization-failure handling: a POST of one of these
# that the target refuses (403) is retried once the listed associations are written.
DEFAULT_AUTHORIZATION_RETRY: dict[str, tuple[str, ...]] = {
    "/ed-fi/students": ("/ed-fi/studentSchoolAssociations",),
    "/ed-fi/staffs": (
        "/ed-fi/staffEducationOrganizationEmploymentAssociations",
        "/ed-fi/staffEducationOrganizationAssignmentAssociations",
    ),
    "/ed-fi/contacts": ("/ed-fi/studentContactAssociations",),
    "/ed-fi/parents": ("/ed-fi/studentParentAssociations",),
}


def write_connection(conn: Connection, concurrency: int = WRITE_CONCURRENCY) -> Connection:
    """``conn`` with room for ``concurrency`` requests in flight (the client's own cap)."""
    if concurrency < 1:
        raise SendError("The write concurrency must be at least 1.")
    return dataclasses.replace(conn, max_concurrency=concurrency)


@dataclass(slots=True)
class Item:
    """One record to write, and where it came from.

    ``body`` is what is POSTed or PUT (None for deletes). ``key`` is the natural
    key to find the target's record by (updates and deletes; for updates it
    defaults to the body's key). ``origin`` is kept in the reject if it fails:
    any dataclass (``file``/``line`` from a JSON or XML reader) or text.
    ``note`` is kept as the reject's ``key_values`` when set (publish keeps a
    key change's old and new key there, to resend it).
    """

    body: dict[str, Any] | None
    origin: Any = None
    key: Mapping[str, Any] | None = None
    source_id: str | None = None
    note: Any = None


@dataclass
class SendOptions:
    """How hard to push and what to forgive."""

    concurrency: int = WRITE_CONCURRENCY
    per_resource: int = RESOURCE_CONCURRENCY
    conflict_retries: int = 5
    retry_delay_ms: int = 100
    authorization_retry: Mapping[str, Iterable[str]] = field(
        default_factory=lambda: dict(DEFAULT_AUTHORIZATION_RETRY)
    )
    forbidden_as_warning: bool = False
    max_failures: int | None = None
    # statuses the client retries a write on (with backoff; 429 honours Retry-After)
    retry_statuses: frozenset[int] = RETRY_STATUSES

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.per_resource < 1:
            raise SendError("concurrency and per_resource must be at least 1.")
        if self.conflict_retries < 0 or self.retry_delay_ms < 0:
            raise SendError("conflict_retries and retry_delay_ms cannot be negative.")
        if self.max_failures is not None and self.max_failures < 1:
            raise SendError("max_failures must be at least 1 (or None for no limit).")


@dataclass
class ResourceResult:
    """What one call (or, summed, one resource) did."""

    resource: str
    operation: str = UPSERT
    read: int = 0  # items taken from the input
    sent: int = 0  # accepted by the target
    skipped: int = 0  # nothing to do: the record to update or delete is not on the target
    failed: int = 0  # refused for good (kept as rejects)
    blocked: int = 0  # not sent: a record it references was refused in this run (rejects too)
    warnings: int = 0  # refused, but tolerated (kept as rejects marked warning)
    deferred: int = 0  # held after a 403 until ``resend_deferred``
    retries: int = 0  # ordering conflicts retried
    seconds: float = 0.0

    @property
    def status(self) -> ResourceStatus:
        if self.failed or self.blocked:
            return ResourceStatus.FAILED
        if self.warnings:
            return ResourceStatus.WARNINGS
        return ResourceStatus.SENT

    def add(self, other: ResourceResult) -> None:
        """Sum ``other``'s counts into this one (one row per resource across calls)."""
        for name in ("read", "sent", "skipped", "failed", "blocked", "warnings", "retries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.deferred = other.deferred
        self.seconds = round(self.seconds + other.seconds, 3)

    def as_row(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": str(self.status)}


class _Blocked(Exception):
    def __init__(self, parent: str):
        super().__init__(parent)
        self.parent = parent


class _Stop(Exception):
    """max_failures reached: stop taking items."""


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _key_text(values: Any) -> str:
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode()


class Sender:
    """Writes records of any resource into one target API (see the module docstring)."""

    def __init__(
        self,
        client: EdFiClient,
        model: ApiModel,
        base_url: str,
        options: SendOptions | None = None,
    ):
        self.client = client
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.options = options or SendOptions()
        self.rejects: list[Reject] = []
        self.totals: dict[str, ResourceResult] = {}
        self.deferred: dict[str, list[Item]] = {}
        self._gate = asyncio.Semaphore(self.options.concurrency)
        self._active: dict[str, int] = {}  # resources being written now (call count)
        self._lanes: dict[str, _Lane] = {}  # each resource's share of the budget
        self._share_now = self.options.concurrency
        self._refused: dict[str, set[tuple[Any, ...]]] = {}  # resource -> refused natural keys
        self._refused_uris: dict[str, set[str]] = {}  # descriptor resource -> refused URIs
        self._targets: dict[str, frozenset[str]] = {}
        self._failures = 0
        self._stopped = False

    @property
    def failures(self) -> int:
        """Items refused or blocked so far in this run (what ``max_failures`` counts)."""
        return self._failures

    # -- the three operations ------------------------------------------------------------
    async def upsert(
        self,
        resource: str,
        items: Iterable[Item] | AsyncIterable[Item],
        *,
        deferrable: bool = True,
        on_sent: Callable[[Item], None] | None = None,
    ) -> ResourceResult:
        """POST every item; a 403 of an ``authorization_retry`` resource is held if deferrable.

        ``on_sent(item)`` is called as each item is accepted (the send flow records
        it in its state then, so a killed run does not resend what was accepted).
        """
        path = self._path(resource)
        url = f"{self.base_url}{path}"
        defer = deferrable and path in self.options.authorization_retry

        async def one(item: Item, result: ResourceResult) -> None:
            body = item.body
            if body is None:
                raise SendError(f"{path}: an upsert item has no body ({item.origin}).")
            try:
                await self._request(path, "POST", url, body, result)
            except _Blocked as blocked:
                self._blocked(path, UPSERT, item, blocked.parent, result)
                return
            except EdFiResponseError as exc:
                if exc.status == 403 and path in self.options.authorization_retry:
                    if defer:
                        self.deferred.setdefault(path, []).append(item)
                        result.deferred += 1
                        return
                    self._refuse(path, UPSERT, item, exc, result, self.options.forbidden_as_warning)
                    return
                self._refuse(path, UPSERT, item, exc, result)
                return
            result.sent += 1
            if on_sent is not None:
                on_sent(item)

        return await self._run(path, UPSERT, items, one)

    async def resend_deferred(
        self, resource: str, *, on_sent: Callable[[Item], None] | None = None
    ) -> ResourceResult:
        """POST again what a 403 held back; a second 403 is final."""
        path = self._path(resource)
        pending = self.deferred.pop(path, [])
        result = await self.upsert(path, pending, deferrable=False, on_sent=on_sent)
        result.read = 0  # these were counted when first read
        self.totals[path].read -= len(pending)
        return result

    async def update(
        self,
        resource: str,
        items: Iterable[Item] | AsyncIterable[Item],
        *,
        new_body: Callable[[Item, dict[str, Any]], dict[str, Any]] | None = None,
        operation: str = UPDATE,
    ) -> ResourceResult:
        """Find each item's record by natural key and PUT the new body to its id.

        ``new_body(item, current)`` builds the body from the target's current
        record (publish's key changes); by default it is ``item.body``. A record
        the target does not have is skipped.
        """
        path = self._path(resource)
        res = self.model[path]

        async def one(item: Item, result: ResourceResult) -> None:
            key = item.key if item.key is not None else res.key_values(item.body or {})
            await self._by_key(path, operation, item, key, result, new_body or _item_body)

        return await self._run(path, operation, items, one)

    async def delete(
        self, resource: str, items: Iterable[Item] | AsyncIterable[Item]
    ) -> ResourceResult:
        """Find each item's record by natural key (``item.key`` or the body's) and DELETE it."""
        path = self._path(resource)
        res = self.model[path]

        async def one(item: Item, result: ResourceResult) -> None:
            key = item.key if item.key is not None else res.key_values(item.body or {})
            await self._by_key(path, DELETE, item, key, result, None)

        return await self._run(path, DELETE, items, one)

    # -- running a call ----------------------------------------------------------------------
    def _path(self, resource: str) -> str:
        try:
            return self.model.find(resource).path
        except KeyError as exc:
            raise SendError(f"{exc.args[0]}; the target's API has no such resource.") from None

    async def _run(
        self,
        path: str,
        operation: str,
        items: Iterable[Item] | AsyncIterable[Item],
        one: Callable[[Item, ResourceResult], Awaitable[None]],
    ) -> ResourceResult:
        result = ResourceResult(path, operation)
        started = time.perf_counter()
        lane = self._enter(path)

        async def handle(item: Item) -> None:
            result.read += 1
            await lane.acquire()
            try:
                await one(item, result)
            finally:
                lane.release()

        workers = max(self.options.per_resource, self.options.concurrency)
        try:
            await drain(items, handle, workers, lambda: self._stopped)
        finally:
            self._leave(path)
            result.seconds = round(time.perf_counter() - started, 3)
            self.totals.setdefault(path, ResourceResult(path, operation)).add(result)
        if self._stopped:
            raise SendError(
                f"Stopped after {self._failures} records failed (max_failures="
                f"{self.options.max_failures}); the rejects name each one."
            )
        return result

    def _share(self) -> int:
        """Writes in flight one resource may have now (see the module docstring)."""
        return self._share_now

    def _enter(self, path: str) -> _Lane:
        self._active[path] = self._active.get(path, 0) + 1
        lane = self._lanes.get(path)
        if lane is None:
            lane = self._lanes[path] = _Lane(self._share)
        self._rebalance()
        return lane

    def _leave(self, path: str) -> None:
        self._active[path] -= 1
        self._rebalance()

    def _rebalance(self) -> None:
        """A resource started or finished: the others' shares changed, wake who may now go."""
        writing = sum(1 for n in self._active.values() if n)
        self._share_now = max(
            self.options.per_resource, -(-self.options.concurrency // max(1, writing))
        )
        for path, lane in self._lanes.items():
            if self._active.get(path):
                lane.wake()

    async def _request(
        self, path: str, method: str, url: str, body: dict[str, Any] | None, result: ResourceResult
    ) -> None:
        """One write, retrying ordering conflicts; raises ``_Blocked`` for a refused parent."""
        if body is not None and (self._refused or self._refused_uris):
            parent = self.blocked_by(path, body)
            if parent is not None:
                raise _Blocked(parent)
        attempt = 0
        while True:
            try:
                async with self._gate:
                    await self.client.request(
                        method, url, json_body=body, retry_statuses=self.options.retry_statuses
                    )
                return
            except EdFiResponseError as exc:
                if exc.status != 409 or attempt >= self.options.conflict_retries:
                    raise
                if body is not None:
                    parent = self.blocked_by(path, body)
                    if parent is not None:
                        raise _Blocked(parent) from None
                if _unresolved(exc) and not self._racing(path, exc):
                    raise
                result.retries += 1
                await asyncio.sleep(self.options.retry_delay_ms / 1000 * 2**attempt)
                attempt += 1

    async def _by_key(
        self,
        path: str,
        operation: str,
        item: Item,
        key: Mapping[str, Any],
        result: ResourceResult,
        new_body: Callable[[Item, dict[str, Any]], dict[str, Any]] | None,
    ) -> None:
        try:
            current = await self._find(path, key)
            if current is None:
                result.skipped += 1
                return
            url = f"{self.base_url}{path}/{current['id']}"
            body = None if new_body is None else new_body(item, current)
            method = "DELETE" if body is None else "PUT"
            await self._request(path, method, url, body, result)
        except _Blocked as blocked:
            self._blocked(path, operation, item, blocked.parent, result)
            return
        except EdFiResponseError as exc:
            if exc.status == 404:
                result.skipped += 1
                return
            self._refuse(path, operation, item, exc, result, key_values=key)
            return
        result.sent += 1

    async def _find(self, path: str, key: Mapping[str, Any]) -> dict[str, Any] | None:
        params = {k: _query_value(v) for k, v in key.items()}
        async with self._gate:
            resp = await self.client.request(
                "GET",
                f"{self.base_url}{path}",
                params=params,
                parse_json=True,
                retry_statuses=self.options.retry_statuses,
            )
        found = resp.json() or []
        return found[0] if isinstance(found, list) and found else None

    # -- refusals ------------------------------------------------------------------------------
    def _count_failure(self) -> None:
        self._failures += 1
        limit = self.options.max_failures
        if limit is not None and self._failures >= limit:
            self._stopped = True

    def _note_refused(self, path: str, operation: str, body: Mapping[str, Any] | None) -> None:
        """Remember a refused upsert's key, so records referencing it are blocked."""
        if operation != UPSERT or body is None:
            return
        res = self.model[path]
        try:
            key = tuple(res.key_values(body).values())
            self._refused.setdefault(path, set()).add(key)
        except TypeError:  # an unhashable key value: nothing can match it anyway
            pass
        if res.is_descriptor and body.get("namespace") and body.get("codeValue"):
            uri = f"{body['namespace']}#{body['codeValue']}".lower()
            self._refused_uris.setdefault(path, set()).add(uri)

    def _refuse(
        self,
        path: str,
        operation: str,
        item: Item,
        exc: EdFiResponseError,
        result: ResourceResult,
        warning: bool = False,
        key_values: Any = None,
    ) -> None:
        self.rejects.append(
            Reject(
                path,
                operation,
                exc.status,
                str(exc),
                item.body,
                item.note if item.note is not None else (key_values or item.key),
                item.source_id,
                warning,
                origin_dict(item.origin),
            )
        )
        if warning:
            result.warnings += 1
            return
        result.failed += 1
        self._note_refused(path, operation, item.body)
        self._count_failure()

    def _blocked(
        self, path: str, operation: str, item: Item, parent: str, result: ResourceResult
    ) -> None:
        parent_resource = parent.split(" ", 1)[0]
        self.rejects.append(
            Reject(
                path,
                operation,
                None,
                f"Not sent: it references {parent}, which the target refused in this run.",
                item.body,
                item.note if item.note is not None else item.key,
                item.source_id,
                False,
                origin_dict(item.origin),
                blocked_by=parent,
                cause=f"blocked: references a refused {parent_resource} record",
                attempts=0,
            )
        )
        result.blocked += 1
        self._note_refused(path, operation, item.body)
        self._count_failure()

    def _racing(self, path: str, exc: EdFiResponseError) -> bool:
        """Whether a resource the 409 names (else any ``path`` references) is being written now.

        ODS/API names the missing record's entity ("The referenced
        'EducationServiceCenter' resource does not exist."); a self-reference
        (``parentLocalEducationAgencyReference``) counts as its own resource.
        """
        if path not in self._targets:
            self._targets[path] = frozenset(
                {path}
                | {
                    t
                    for ref in _references(self.model[path].shape)
                    for t in self.model.targets(ref)
                }
            )
        candidates = self._targets[path]
        named: set[str] = set()
        for name in _QUOTED.findall(str(exc)):
            entity = name.lower()
            hits = {p for p in candidates if _entity(self.model[p].schema) == entity}
            if not hits:
                named = set()
                break
            named |= hits
        return any(self._active.get(t) for t in (named or candidates))

    def blocked_by(self, resource: str, body: Mapping[str, Any]) -> str | None:
        """The refused record ``body`` references (``"/ed-fi/x {key}"``), or None."""
        return self._scan(self.model[resource].shape, body)

    def _scan(self, shape: Shape, body: Mapping[str, Any]) -> str | None:
        for name, ref in shape.references.items():
            value = body.get(name)
            if isinstance(value, Mapping):
                hit = self._refused_parent(ref, value)
                if hit is not None:
                    return hit
        if self._refused_uris:
            for s in shape.scalars.values():
                uris = self._refused_uris.get(s.descriptor or "")
                if uris:
                    value = body.get(s.name)
                    if isinstance(value, str) and value.lower() in uris:
                        return f"{s.descriptor} {value!r}"
        for name, sub in shape.collections.items():
            for element in body.get(name) or ():
                if isinstance(element, Mapping) and (hit := self._scan(sub, element)):
                    return hit
        for name, sub in shape.objects.items():
            element = body.get(name)
            if isinstance(element, Mapping) and (hit := self._scan(sub, element)):
                return hit
        return None

    def _refused_parent(self, ref: Reference, value: Mapping[str, Any]) -> str | None:
        for target_path in self.model.targets(ref):
            refused = self._refused.get(target_path)
            if not refused:
                continue
            target = self.model[target_path]
            names = [abstract_field(target, ref.schema, k.name) for k in target.key]
            key = tuple(value.get(n) for n in names)
            try:
                if key in refused:
                    named = dict(zip(target.key_names, key, strict=True))
                    return f"{target_path} {_key_text(named)}"
            except TypeError:
                continue
        return None


class _Lane:
    """One resource's writes in flight, at most ``limit()`` (which moves as resources come and go).

    A semaphore whose size can change: ``wake`` lets waiters in up to the
    current limit, and is called on every release and whenever another
    resource starts or finishes.
    """

    __slots__ = ("busy", "limit", "waiters")

    def __init__(self, limit: Callable[[], int]) -> None:
        self.limit = limit
        self.busy = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        if self.busy < self.limit() and not self.waiters:
            self.busy += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter  # ``wake`` counts the slot as taken before it wakes us
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # woken and cancelled at once: give the slot back
            elif waiter in self.waiters:
                self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.busy -= 1
        self.wake()

    def wake(self) -> None:
        while self.waiters and self.busy < self.limit():
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.busy += 1
                waiter.set_result(None)


def reject_item(reject: Reject) -> Item:
    """A reject as an item to send again (after the record, or the target, was fixed)."""
    return Item(
        body=reject.body,
        origin=reject.origin,
        key=reject.key_values if reject.operation in (UPDATE, DELETE) else None,
        source_id=reject.source_id,
    )


def _item_body(item: Item, current: dict[str, Any]) -> dict[str, Any]:
    if item.body is None:
        raise SendError("An update item has no body.")
    return item.body


_QUOTED = re.compile(r"'([^']+)'")


def _entity(schema: str) -> str:
    """``edFi_educationServiceCenter`` -> ``educationservicecenter``."""
    return schema.split("_", 1)[-1].lower()


def _unresolved(exc: EdFiResponseError) -> bool:
    """A 409 saying a referenced record is missing (ODS/API 5-7 wordings)."""
    problem = exc.problem if isinstance(exc.problem, Mapping) else {}
    return "unresolved-reference" in str(problem.get("type", "")) or "does not exist" in str(exc)


def _references(shape: Shape) -> Iterable[Reference]:
    yield from shape.references.values()
    for sub in (*shape.collections.values(), *shape.objects.values()):
        yield from _references(sub)


async def drain(
    items: Iterable[Any] | AsyncIterable[Any],
    handle: Callable[[Any], Awaitable[None]],
    workers: int,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    """Feed items to ``workers`` concurrent handlers.

    An async input goes through a bounded queue of at most ``4 * workers``
    items, so a large input is read only as fast as it is written; a plain
    iterable is pulled by the workers themselves, one item each as they free
    up (no queue: a one-record write costs little more than its request, and
    a queue's put and get were a tenth of the rest). The first exception a
    handler raises stops the feed and is raised once the workers have
    finished; ``stop()`` turning true stops the feed quietly.
    """
    if not isinstance(items, AsyncIterable):
        await _pull(iter(items), handle, workers, stop)
        return
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=workers * 4)
    failure: list[BaseException] = []
    done = object()

    async def consume() -> None:
        while True:
            item = await queue.get()
            if item is done:
                return
            if failure or stop():
                continue
            try:
                await handle(item)
            except BaseException as exc:
                failure.append(exc)

    consumers = [asyncio.create_task(consume()) for _ in range(workers)]
    try:
        async for item in items:
            if failure or stop():
                break
            await queue.put(item)
        for _ in consumers:
            await queue.put(done)
        await asyncio.gather(*consumers)
    finally:
        for c in consumers:
            c.cancel()
    if failure:
        raise failure[0]


async def _pull(
    items: Iterator[Any],
    handle: Callable[[Any], Awaitable[None]],
    workers: int,
    stop: Callable[[], bool],
) -> None:
    """``drain`` of a plain iterator: each worker takes the next item when it is free.

    Sharing the iterator is safe: ``next`` never awaits, so no two workers are
    inside it at once.
    """
    failure: list[BaseException] = []

    async def consume() -> None:
        for item in items:
            if failure or stop():
                return
            try:
                await handle(item)
            except BaseException as exc:
                failure.append(exc)
                return

    consumers = [asyncio.create_task(consume()) for _ in range(workers)]
    try:
        await asyncio.gather(*consumers)
    finally:
        for c in consumers:
            c.cancel()
    if failure:
        raise failure[0]
