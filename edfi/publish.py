"""Publish: one Ed-Fi API's changes into another, as the Ed-Fi API Publisher does.

A run has three stages, each gated by the *target's* dependency graph:

1. key changes -- a record whose natural key changed on the source is found on
   the target by its old key and PUT there with the new one (the target then
   cascades the new key into what references it, as the source did);
2. upserts -- every record of the change window is POSTed, a resource starting
   as soon as everything it references has finished (independent resources run
   in parallel, records of a resource are POSTed in parallel);
3. deletes -- in reverse dependency order, each tracked delete is looked up on
   the target by its natural key and deleted by the target's id.

A 403 on POST of a resource listed in the authorization-failure table
(students, staffs, contacts) is not final: the target may only grant access to
a person once an association names them, so those records are retried after
the associations are published.

Every record that finally fails is kept -- with its status, the server's
message and the request body -- in a rejects file on the lake, grouped by
resource; a later run can resend just those. The last change version processed
is kept per (source, target) pair on the lake too, and only moves forward after
a run that left nothing unresolved.

The pieces are the shared write path's: the target's ``DependencyGraph``
(``edfi.graph``) orders the work, ``run_gated`` (``edfi.schedule``) runs each
(stage, resource) unit when its prerequisites are done, one ``Sender``
(``edfi.send``) does every write -- retries, 403 deferral, records blocked by a
refused parent -- and ``RejectsStore`` (``edfi.rejects``) keeps what failed.
What is publish's own: reading the source's change window, the stages, and
the state of the (source, target) pair.

Nothing here imports Prefect: the flow in ``flows/publish.py`` adds tasks,
artifacts and logging around ``Publisher``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from .client import Connection, EdFiClient, EdFiResponseError, RequestCounts, counting

# exceptions live in edfi.errors; re-exported so old imports keep working
from .errors import GraphError
from .errors import PublishError as PublishError
from .graph import DependencyGraph
from .graph import parse_graphml as parse_graphml
from .lake import Lake, LakeConflict, Versioned
from .model import ApiModel, publishable
from .paging import ReadPlan, read_pages, read_tracked, total_count
from .rejects import DELETE, KEY_CHANGE, UPSERT, RejectsStore, summarize
from .rejects import Reject as Reject
from .schedule import Outcome, run_gated
from .send import DEFAULT_AUTHORIZATION_RETRY as DEFAULT_AUTHORIZATION_RETRY
from .send import WRITE_CONCURRENCY, Item, ResourceResult, Sender, SendOptions, reject_item
from .vocabulary import Mode as Mode
from .vocabulary import ResourceStatus, RunStatus

log = logging.getLogger("edfi.publish")


KEY_CHANGES, UPSERTS, RETRY, DELETES = "key_changes", "upserts", "retry_forbidden", "deletes"


# -- options and results ------------------------------------------------------------------


@dataclass
class PublishOptions:
    """What to publish and how hard to push; defaults are the Ed-Fi API Publisher's."""

    mode: Mode = "incremental"
    include: list[str] = field(default_factory=list)
    include_only: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    exclude_only: list[str] = field(default_factory=list)
    include_descriptors: bool = False
    last_change_version: int | None = None
    what_if: bool = False
    treat_forbidden_post_as_warning: bool = False
    ignore_isolation: bool = False
    resend_rejects: bool = False
    resource_parallelism: int = 10
    page_fetch_parallelism: int = 5
    write_parallelism: int = 20
    write_concurrency: int = WRITE_CONCURRENCY
    page_size: int = 75
    max_retries: int = 5
    retry_delay_ms: int = 100
    rate_limit_per_second: float | None = None
    authorization_retry: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: dict(DEFAULT_AUTHORIZATION_RETRY)
    )

    def __post_init__(self) -> None:
        if self.mode not in ("incremental", "full"):
            raise PublishError(f"mode must be 'incremental' or 'full', not {self.mode!r}.")
        for name in (
            "resource_parallelism",
            "page_fetch_parallelism",
            "write_parallelism",
            "write_concurrency",
        ):
            if getattr(self, name) < 1:
                raise PublishError(f"{name} must be at least 1.")
        if not 1 <= self.page_size <= 500:
            raise PublishError(f"page_size must be between 1 and 500 (got {self.page_size}).")
        if self.max_retries < 0 or self.retry_delay_ms < 0:
            raise PublishError("max_retries and retry_delay_ms cannot be negative.")


@dataclass
class ResourceStats:
    """One resource's part of a run: a row of the final table."""

    resource: str
    status: str = ResourceStatus.PENDING  # published, failed, blocked, pending
    read: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0  # records the target refused
    blocked: int = 0  # records not sent: a record they reference was refused in this run
    warnings: int = 0
    deleted: int = 0
    key_changed: int = 0
    seconds: float = 0.0
    # what the clients (source and target) did below the records (``edfi.client.counting``)
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    token_renewals: int = 0
    message: str = ""

    def as_row(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}

    def count(self, counts: RequestCounts) -> None:
        """Take this resource's request counts so far (every stage's units)."""
        for name, value in counts.columns().items():
            setattr(self, name, value)

    def take(self, result: ResourceResult, counted_as: str) -> None:
        """Add a sender call's counts; ``counted_as`` names the column its writes go to."""
        setattr(self, counted_as, getattr(self, counted_as) + result.sent)
        self.skipped += result.skipped
        self.failed += result.failed
        self.blocked += result.blocked
        self.warnings += result.warnings

    @property
    def records_failed(self) -> bool:
        return bool(self.failed or self.blocked)


@dataclass
class Window:
    """The change versions a run covers; ``min_cv`` None means everything (a full publish)."""

    min_cv: int | None
    max_cv: int

    @property
    def incremental(self) -> bool:
        return self.min_cv is not None


@dataclass(frozen=True)
class Unit:
    """One (stage, resource): what the flow runs as one Prefect task."""

    stage: str
    path: str

    @property
    def label(self) -> str:
        return f"{self.stage}:{self.path.strip('/')}"


# -- small helpers --------------------------------------------------------------------------


def split_names(value: str | Sequence[str] | None) -> list[str]:
    """``"students, /ed-fi/sections"`` or a list of such strings, as a flat list of names."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in str(item).split(",") if part.strip()]


def endpoint_id(base_url: str, tenant: str | None, school_year: int | None) -> str:
    """What identifies one side of a publish (never anything secret)."""
    return f"{base_url.rstrip('/')}|{tenant or ''}|{school_year or ''}"


def pair_key(source: str, target: str) -> str:
    """The state key of a (source, target) pair: a hash, so paths carry no URLs."""
    return hashlib.sha256(f"{source}\n{target}".encode()).hexdigest()[:16]


def _key_tuple(values: Mapping[str, Any]) -> bytes:
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)


def tuned(conn: Connection, options: PublishOptions, *, reads: bool) -> Connection:
    """A side's connection with the run's retries; the target gets the write concurrency.

    The target's ``max_concurrency`` becomes ``write_concurrency``: the
    connection block's own (8) is sized for reads of big pages, while a write
    carries one record and is all round trip (see ``edfi.send``).
    """
    changes: dict[str, Any] = {
        "max_retries": options.max_retries,
        "backoff_seconds": options.retry_delay_ms / 1000,
    }
    if reads:
        changes["page_size"] = options.page_size
    else:
        changes["max_concurrency"] = options.write_concurrency
        if options.rate_limit_per_second is not None:
            changes["requests_per_second"] = options.rate_limit_per_second
    return dataclasses.replace(conn, **changes)


# -- the dependency graph -------------------------------------------------------------------


def build_graph(model: ApiModel, graphml: str | None) -> DependencyGraph:
    """The target's graph: GraphML edges when served, else its model's references.

    Descriptor edges (a resource needs the descriptors its values name) are
    added from the model either way, so descriptors published with resources
    land first.
    """
    try:
        if graphml:
            return DependencyGraph.from_graphml(graphml, model, descriptors=True)
        return DependencyGraph.from_model(model, descriptors=True)
    except GraphError as exc:
        raise PublishError(f"The target's dependency metadata: {exc}") from None


def select_resources(graph: DependencyGraph, model: ApiModel, options: PublishOptions) -> list[str]:
    """The resources to publish, in dependency order, as the Publisher chooses them.

    ``include`` adds everything the named resources need; ``exclude`` removes
    everything that needs the named ones; the ``_only`` variants take the names
    as given. Descriptors are left out unless ``include_descriptors`` or named.
    """

    def resolve(names: Sequence[str], option: str) -> set[str]:
        out = set()
        for name in names:
            try:
                path = model.find(name.strip()).path
            except KeyError as exc:
                raise PublishError(
                    f"{option}: {exc.args[0]}. Name resources as /ed-fi/students, "
                    "ed-fi/students or students."
                ) from None
            if path not in graph:
                raise PublishError(
                    f"{option}: {path} is not in the target's dependency "
                    "metadata, so it cannot be published."
                )
            out.add(path)
        return out

    include = resolve(options.include, "include")
    include_only = resolve(options.include_only, "include_only")
    exclude = resolve(options.exclude, "exclude")
    exclude_only = resolve(options.exclude_only, "exclude_only")
    named = include | include_only
    if named:
        chosen = set(include_only)
        for p in include:
            chosen |= {p, *graph.ancestors(p)}
    else:
        chosen = set(graph.dependencies)
    chosen = {
        p for p in chosen if p in named or options.include_descriptors or not model[p].is_descriptor
    }
    for p in exclude:
        chosen -= {p, *graph.descendants(p)}
    chosen -= exclude_only
    return [p for p in graph.order if p in chosen]


# -- state and rejects on the lake ----------------------------------------------------------


class StateStore:
    """The pair's change version and pending rejects, under ``publish/{pair}/`` on the lake."""

    def __init__(self, lake: Lake, key: str):
        self.lake = lake
        self.key = key
        self._read: Versioned | None = None  # the state as this run read it

    @property
    def state_path(self) -> str:
        return self.lake.path("publish", self.key, "state.json")

    def read(self) -> dict[str, Any]:
        self._read = self.lake.read_versioned(self.state_path)
        data = self._read.value
        return data if isinstance(data, dict) else {}

    def write(self, state: Mapping[str, Any]) -> None:
        """Replace the state only if it is still what this run read (compare-and-swap):
        two runs of one pair at once must not move the change version over each other."""
        read = self._read if self._read is not None else self.lake.read_versioned(self.state_path)
        try:
            token = self.lake.write_if(self.state_path, dict(state), read.token)
        except LakeConflict as exc:
            raise LakeConflict(
                f"Another publish run of this pair ({self.key}) saved its state while this "
                "one ran, so this run's change version and pending rejects were not saved; "
                "its writes were made and the next run repeats them. Run one publish per "
                "source and target at a time."
            ) from exc
        self._read = Versioned(dict(state), token)

    @property
    def rejects(self) -> RejectsStore:
        """The pair's rejects: ``publish/{pair}/rejects/{run}/{resource}.jsonl``."""
        return RejectsStore(self.lake, "publish", self.key, "rejects")

    def rejects_dir(self, run_id: str) -> str:
        return self.rejects.run_dir(run_id)

    def write_rejects(self, run_id: str, rejects: Sequence[Reject]) -> dict[str, Any]:
        return self.rejects.write(run_id, rejects)

    def read_rejects(self, run_id: str) -> list[Reject]:
        try:
            return self.rejects.read(run_id)
        except Exception as exc:
            raise PublishError(str(exc)) from None


# -- the publisher ------------------------------------------------------------------------------


@dataclass
class Prepared:
    """What a run will do, decided before anything is written."""

    resources: list[str]  # dependency order
    window: Window | None  # None: nothing to do
    source_version: str
    target_version: str
    warnings: list[str]
    state: dict[str, Any]
    resend: list[Reject] = field(default_factory=list)
    resend_run: str | None = None
    skipped_resources: list[str] = field(default_factory=list)


class Publisher:
    """One publish between two connected clients (each shared by every unit of the run)."""

    def __init__(
        self,
        source: EdFiClient,
        target: EdFiClient,
        options: PublishOptions,
        *,
        state: StateStore | None = None,
        source_year: int | None = None,
        target_year: int | None = None,
    ):
        self.source = source
        self.target = target
        self.options = options
        self.state = state
        self.source_year = source_year
        self.target_year = target_year
        self.stats: dict[str, ResourceStats] = {}
        self.request_counts: dict[str, RequestCounts] = {}  # per resource, all its stages
        self.sender: Sender | None = None  # made by prepare(), once the target's model is known
        self.broken: set[str] = set()  # resources a unit of which raised or was blocked
        self.unit_errors: dict[Unit, BaseException] = {}
        self.upserted_keys: dict[str, set[bytes]] = {}
        self.prepared: Prepared | None = None
        self.snapshot = False
        self.cursor = False

    @property
    def rejects(self) -> list[Reject]:
        """Every record the target refused (or that was blocked) so far in this run."""
        return self.sender.rejects if self.sender is not None else []

    @property
    def _sender(self) -> Sender:
        assert self.sender is not None, "prepare() first"
        return self.sender

    # -- preparation ------------------------------------------------------------------
    async def prepare(self) -> Prepared:
        """Check both APIs, build the graph, pick resources and the change window."""
        opts = self.options
        src_disc, tgt_disc = await asyncio.gather(self.source.discover(), self.target.discover())
        await asyncio.gather(self.source.token(), self.target.token())
        warnings: list[str] = []
        for name in sorted(set(src_disc.data_models) | set(tgt_disc.data_models)):
            a, b = src_disc.data_models.get(name), tgt_disc.data_models.get(name)
            if a and b and a != b:
                warnings.append(
                    f"The source serves data model {name} {a} but the target "
                    f"serves {b}; records may be refused where they differ."
                )
        if src_disc.version_tuple[:1] != tgt_disc.version_tuple[:1]:
            warnings.append(
                f"The source is ODS/API {src_disc.version} and the target {tgt_disc.version}."
            )
        self.cursor = src_disc.cursor_paging
        self.snapshot = await self._isolation(warnings)
        self.src_url = self.source.url("dataManagementApi", self.source_year)
        self.tgt_url = self.target.url("dataManagementApi", self.target_year)
        self.src_model, self.tgt_model, graphml = await asyncio.gather(
            self.source.load_model(self.source_year),
            self.target.load_model(self.target_year),
            self._graphml(),
        )
        self.graph = build_graph(self.tgt_model, graphml)
        self.sender = Sender(
            self.target,
            self.tgt_model,
            self.tgt_url,
            SendOptions(
                concurrency=opts.write_concurrency,
                per_resource=opts.write_parallelism,
                conflict_retries=opts.max_retries,
                retry_delay_ms=opts.retry_delay_ms,
                authorization_retry=opts.authorization_retry,
                forbidden_as_warning=opts.treat_forbidden_post_as_warning,
            ),
        )
        chosen = select_resources(self.graph, self.tgt_model, opts)
        missing = [p for p in chosen if p not in self.src_model]
        if missing:
            warnings.append(
                f"{len(missing)} selected resources are not served by the source "
                f"and are skipped: {', '.join(missing[:5])}"
            )
        resources = [p for p in chosen if p in self.src_model]
        state = self.state.read() if self.state else {}
        newest = await self._newest_change_version()
        prepared = Prepared(
            resources,
            None,
            src_disc.version,
            tgt_disc.version,
            warnings,
            state,
            skipped_resources=missing,
        )
        if opts.resend_rejects:
            pending = state.get("pending_rejects")
            if not pending or self.state is None:
                raise PublishError(
                    "resend_rejects was asked for, but the last run of this "
                    "source and target left no rejects to resend."
                )
            prepared.resend_run = str(pending["run_id"])
            prepared.resend = self.state.read_rejects(prepared.resend_run)
            prepared.resources = [
                p for p in self.graph.order if any(r.resource == p for r in prepared.resend)
            ]
            prepared.window = Window(None, newest)
        else:
            last = opts.last_change_version
            if last is None and opts.mode == "incremental":
                raw = state.get("last_change_version")
                last = int(raw) if raw is not None else None
            if opts.mode == "full" or last is None:
                prepared.window = Window(None, newest)
            elif last < newest:
                prepared.window = Window(last + 1, newest)
        if prepared.window is not None and not opts.include_descriptors and not prepared.resend:
            missing = await self._missing_descriptors(prepared.resources)
            if missing and not opts.what_if:
                raise PublishError(_no_descriptors_message(missing))
            if missing:
                warnings.append(_no_descriptors_message(missing))
        self.prepared = prepared
        for p in prepared.resources:
            self.stats[p] = ResourceStats(p)
        return prepared

    async def _missing_descriptors(self, resources: Sequence[str]) -> list[str]:
        """Descriptor resources the chosen ones use that the target lacks and the source has.

        Publishing into an empty target without ``include_descriptors`` would
        otherwise have every record refused, one request at a time; this costs
        one count request per descriptor resource and fails before any write.
        """
        chosen = set(resources)
        used = sorted(
            {
                d
                for p in resources
                for _, d in self.tgt_model[p].shape.descriptor_paths()
                if d in self.tgt_model and d not in chosen
            }
        )
        gate = asyncio.Semaphore(self.options.page_fetch_parallelism)

        async def count(client: EdFiClient, url: str, snapshot: bool) -> int:
            async with gate:
                return await total_count(client, ReadPlan(url, None, None, snapshot))

        on_target = await asyncio.gather(
            *(count(self.target, f"{self.tgt_url}{d}", False) for d in used)
        )
        empty = [d for d, n in zip(used, on_target, strict=True) if n == 0 and d in self.src_model]
        on_source = await asyncio.gather(
            *(count(self.source, f"{self.src_url}{d}", self.snapshot) for d in empty)
        )
        return [d for d, n in zip(empty, on_source, strict=True) if n]

    async def _isolation(self, warnings: list[str]) -> bool:
        """``Use-Snapshot`` on the source, or a clear refusal unless isolation is waived."""
        disc = self.source.discovery
        assert disc is not None
        advice = (
            "Enable snapshot isolation on the source (ODS/API 7.x serves Use-Snapshot), "
            "or set ignore_isolation=True to publish without it: records changed during "
            "the run may then be missed until the next run."
        )
        if not disc.snapshots:
            if self.options.ignore_isolation:
                warnings.append(
                    f"The source (ODS/API {disc.version}) has no snapshot "
                    "isolation; publishing without it (ignore_isolation)."
                )
                return False
            raise PublishError(
                f"The source (ODS/API {disc.version}) does not support snapshot isolation. {advice}"
            )
        try:
            await self.source.request(
                "GET",
                self.source.url("changeQueries", self.source_year) + "/availableChangeVersions",
                headers={"Use-Snapshot": "true"},
            )
        except EdFiResponseError as exc:
            if self.options.ignore_isolation:
                warnings.append(
                    f"The source refused a snapshot read ({exc.status}); "
                    "publishing without isolation (ignore_isolation)."
                )
                return False
            raise PublishError(
                f"The source refused a Use-Snapshot read ({exc}). {advice}"
            ) from None
        return True

    async def _graphml(self) -> str | None:
        url = self.target.url("dependencies", self.target_year)
        try:
            resp = await self.target.request("GET", url, headers={"Accept": "application/graphml"})
        except EdFiResponseError:
            return None
        text = resp.content.decode("utf-8-sig", "replace")
        return text if text.lstrip().startswith("<") else None

    async def _newest_change_version(self) -> int:
        resp = await self.source.request(
            "GET",
            self.source.url("changeQueries", self.source_year) + "/availableChangeVersions",
            headers=self._read_headers,
            parse_json=True,
        )
        body = resp.json() or {}
        for name in ("newestChangeVersion", "NewestChangeVersion"):
            if name in body:
                return int(body[name])
        raise PublishError(
            "The source's availableChangeVersions has no newestChangeVersion; "
            "its change queries are not enabled."
        )

    @property
    def _read_headers(self) -> dict[str, str]:
        return {"Use-Snapshot": "true"} if self.snapshot else {}

    def _plan(self, path: str) -> ReadPlan:
        window = self._window
        return ReadPlan(f"{self.src_url}{path}", window.min_cv, window.max_cv, self.snapshot)

    @property
    def _window(self) -> Window:
        assert self.prepared is not None and self.prepared.window is not None
        return self.prepared.window

    # -- stages -----------------------------------------------------------------------
    def stages(self) -> list[tuple[str, dict[Unit, frozenset[Unit]]]]:
        """The run's stages: units and what each waits for."""
        prepared = self.prepared
        assert prepared is not None
        chosen = set(prepared.resources)
        if prepared.resend:
            ops = {(r.operation, r.resource) for r in prepared.resend}
            keyed = [p for p in prepared.resources if ("key_change", p) in ops]
            upserted = [p for p in prepared.resources if ("upsert", p) in ops]
            deleted = [p for p in prepared.resources if ("delete", p) in ops]
        else:
            incremental = self._window.incremental
            keyed = [p for p in prepared.resources if incremental and self.src_model[p].key_changes]
            upserted = list(prepared.resources)
            deleted = list(prepared.resources) if incremental else []

        def forward(stage: str, paths: list[str]) -> dict[Unit, frozenset[Unit]]:
            present = set(paths)
            return {
                Unit(stage, p): frozenset(
                    Unit(stage, d) for d in self.graph.dependencies[p] if d in present
                )
                for p in paths
            }

        upsert_units = forward(UPSERTS, upserted)
        for path, prereqs in self.options.authorization_retry.items():
            if path in upserted:
                waits = {Unit(UPSERTS, path)} | {
                    Unit(UPSERTS, q) for q in prereqs if q in chosen and q in upserted
                }
                upsert_units[Unit(RETRY, path)] = frozenset(waits)
        present = set(deleted)
        delete_units = {
            Unit(DELETES, p): frozenset(
                Unit(DELETES, d) for d in self.graph.dependents[p] if d in present
            )
            for p in deleted
        }
        stages = [
            (KEY_CHANGES, forward(KEY_CHANGES, keyed)),
            (UPSERTS, upsert_units),
            (DELETES, delete_units),
        ]
        return [(name, units) for name, units in stages if units]

    async def run_unit(self, unit: Unit) -> ResourceStats:
        """Do one unit's work; returns the resource's running totals.

        Records the target refused leave the unit finished (their dependents are
        handled record by record: those naming a refused record are blocked);
        the resource's status then says ``failed``. Only an exception -- the
        source could not be read, the target went away -- fails the unit itself,
        and the scheduler then blocks every unit that depends on it.
        """
        stats = self.stats.setdefault(unit.path, ResourceStats(unit.path))
        counts = self.request_counts.setdefault(unit.path, RequestCounts())
        started = time.perf_counter()
        try:
            with counting(counts):
                await self._stage(unit, stats)
        except BaseException as exc:
            self.broken.add(unit.path)
            self.unit_errors[unit] = exc
            stats.status = ResourceStatus.FAILED
            stats.message = stats.message or str(exc)
            raise
        finally:
            stats.seconds = round(stats.seconds + time.perf_counter() - started, 3)
            stats.count(counts)
        if unit.path not in self.broken:
            stats.status = (
                ResourceStatus.FAILED if stats.records_failed else ResourceStatus.PUBLISHED
            )
        return stats

    async def _stage(self, unit: Unit, stats: ResourceStats) -> None:
        if unit.stage == KEY_CHANGES:
            await self._key_changes(unit.path, stats)
        elif unit.stage == UPSERTS:
            await self._upserts(unit.path, stats)
        elif unit.stage == RETRY:
            await self._retry_forbidden(unit.path, stats)
        elif unit.stage == DELETES:
            await self._deletes(unit.path, stats)
        else:
            raise PublishError(f"unknown stage {unit.stage!r}")

    async def run(
        self,
        runner: Callable[[Unit], Awaitable[ResourceStats]] | None = None,
        on_done: Callable[[Unit, ResourceStats], Awaitable[None]] | None = None,
    ) -> dict[str, ResourceStats]:
        """All stages in order; ``runner`` lets the flow wrap each unit in a task."""

        async def done(outcome: Outcome[Unit, ResourceStats]) -> None:
            unit = outcome.unit
            stats = self.stats.setdefault(unit.path, ResourceStats(unit.path))
            if outcome.status == "blocked":
                self.broken.add(unit.path)
                if stats.status != ResourceStatus.FAILED:
                    stats.status = ResourceStatus.BLOCKED
                    stats.message = _blocked_message(outcome)
            elif outcome.status == "failed":
                self.broken.add(unit.path)
                stats.status = ResourceStatus.FAILED
                stats.message = stats.message or outcome.message
            if on_done is not None:
                await on_done(unit, stats)

        for _, units in self.stages():
            await run_gated(
                units,
                runner or self.run_unit,
                parallelism=self.options.resource_parallelism,
                on_done=done,
            )
        for stats in self.stats.values():
            if stats.records_failed and stats.resource not in self.broken:
                note = _records_message(stats)
                stats.message = f"{stats.message}; {note}" if stats.message else note
        return self.stats

    # -- record operations -----------------------------------------------------------
    async def _upserts(self, path: str, stats: ResourceStats) -> None:
        opts = self.options
        resource = self.src_model[path]
        keys = self.upserted_keys.setdefault(path, set()) if self._window.incremental else None
        prepared = self.prepared
        assert prepared is not None
        if prepared.resend:
            items = [
                reject_item(r)
                for r in prepared.resend
                if r.resource == path and r.operation == UPSERT
            ]
            stats.read += len(items)
            stats.take(await self._sender.upsert(path, items), "written")
            return

        plan = self._plan(path)
        expected = await total_count(self.source, plan)
        got = 0

        async def records() -> AsyncIterator[Item]:
            nonlocal got
            async for page in read_pages(
                self.source,
                plan,
                expected,
                page_size=opts.page_size,
                parallel=opts.page_fetch_parallelism,
                cursor=self.cursor,
            ):
                stats.read += len(page)
                got += len(page)
                for rec in page:
                    key_values = resource.key_values(rec)
                    if keys is not None:
                        keys.add(_key_tuple(key_values))
                    yield Item(publishable(rec), key=key_values, source_id=rec.get("id"))

        stats.take(await self._sender.upsert(path, records()), "written")
        if got != expected:
            message = f"read {got} records but the source counted {expected} in the window"
            if self.snapshot:
                raise PublishError(
                    f"{path}: {message}; nothing is lost, but the run is not "
                    "complete: run it again."
                )
            stats.message = message + " (no snapshot isolation; the next run catches up)"

    async def _retry_forbidden(self, path: str, stats: ResourceStats) -> None:
        pending = len(self._sender.deferred.get(path, ()))
        if pending:
            after = ", ".join(self.options.authorization_retry.get(path, ())) or "the rest"
            stats.message = (
                f"{pending} retried after {after} (the target refused them with 403 first)"
            )
        stats.take(await self._sender.resend_deferred(path), "written")

    async def _key_changes(self, path: str, stats: ResourceStats) -> None:
        prepared = self.prepared
        assert prepared is not None
        chains: list[tuple[str | None, dict[str, Any], dict[str, Any]]] = []
        if prepared.resend:
            for r in prepared.resend:
                if r.resource == path and r.operation == KEY_CHANGE:
                    chains.append((r.source_id, r.key_values["old"], r.key_values["new"]))
        else:
            entries = await read_tracked(
                self.source, self._plan(path), "keyChanges", page_size=self.options.page_size
            )
            entries.sort(key=lambda e: int(e.get("changeVersion") or 0))
            first: dict[str, dict[str, Any]] = {}
            last: dict[str, dict[str, Any]] = {}
            for e in entries:
                first.setdefault(e["id"], e["oldKeyValues"])
                last[e["id"]] = e["newKeyValues"]
            chains = [(i, first[i], last[i]) for i in first]
        stats.read += len(chains)
        resource = self.tgt_model[path]
        items = []
        for source_id, old, new in chains:
            if old == new:
                stats.skipped += 1
                continue
            items.append(Item(None, key=old, source_id=source_id, note={"old": old, "new": new}))

        def new_body(item: Item, current: dict[str, Any]) -> dict[str, Any]:
            return resource.set_key_values(publishable(current), item.note["new"])

        result = await self._sender.update(path, items, new_body=new_body, operation=KEY_CHANGE)
        stats.take(result, "key_changed")

    async def _deletes(self, path: str, stats: ResourceStats) -> None:
        prepared = self.prepared
        assert prepared is not None
        items: list[Item] = []
        if prepared.resend:
            items = [
                Item(None, key=r.key_values, source_id=r.source_id)
                for r in prepared.resend
                if r.resource == path and r.operation == DELETE
            ]
        else:
            entries = await read_tracked(
                self.source, self._plan(path), "deletes", page_size=self.options.page_size
            )
            latest: dict[bytes, tuple[str | None, dict[str, Any]]] = {}
            for e in entries:
                latest[_key_tuple(e["keyValues"])] = (e.get("id"), e["keyValues"])
            recreated = self.upserted_keys.get(path, set())
            for key, (source_id, key_values) in latest.items():
                if key in recreated:
                    stats.skipped += 1  # deleted, then created again with the same key
                else:
                    items.append(Item(None, key=key_values, source_id=source_id))
        stats.read += len(items)
        stats.take(await self._sender.delete(path, items), "deleted")

    # -- what if and finishing -------------------------------------------------------
    async def what_if(self) -> list[dict[str, Any]]:
        """The resources, their order and the records each would send; nothing is written."""
        prepared = self.prepared
        assert prepared is not None
        if prepared.window is None:
            return []
        gate = asyncio.Semaphore(self.options.page_fetch_parallelism)

        async def count(path: str) -> int:
            if prepared.resend:
                return sum(r.resource == path for r in prepared.resend)
            async with gate:
                return await total_count(self.source, self._plan(path))

        counts = await asyncio.gather(*(count(p) for p in prepared.resources))
        level = self.graph.levels
        return [
            {
                "order": i + 1,
                "level": level[p],
                "resource": p,
                "records": n,
                "depends_on": ", ".join(
                    sorted(d for d in self.graph.dependencies[p] if d in set(prepared.resources))
                ),
            }
            for i, (p, n) in enumerate(zip(prepared.resources, counts, strict=True))
        ]

    def finish(self, run_id: str) -> dict[str, Any]:
        """Write rejects and move the change version on only if nothing is unresolved."""
        prepared = self.prepared
        assert prepared is not None and prepared.window is not None
        failed_resources = [s for s in self.stats.values() if s.resource in self.broken]
        errors = [r for r in self.rejects if not r.warning]
        warnings = [r for r in self.rejects if r.warning]
        state = dict(prepared.state)
        manifest: dict[str, Any] | None = None
        if self.state is not None and self.rejects:
            manifest = self.state.write_rejects(run_id, self.rejects)
        clean = not failed_resources and not errors
        if self.state is not None:
            pending = prepared.state.get("pending_rejects") or {}
            if clean and not prepared.resend:
                state["last_change_version"] = prepared.window.max_cv
            elif clean and pending.get("advance_to") is not None:
                # the rejected records were all that kept that run's window open
                previous = state.get("last_change_version")
                state["last_change_version"] = max(
                    int(pending["advance_to"]), -1 if previous is None else int(previous)
                )
            if self.rejects:
                if prepared.resend:
                    advance_to = pending.get("advance_to")
                else:
                    advance_to = None if failed_resources else prepared.window.max_cv
                state["pending_rejects"] = {
                    "run_id": run_id,
                    "count": len(self.rejects),
                    "advance_to": advance_to,
                }
            else:
                state.pop("pending_rejects", None)
            state["last_run"] = {
                "run_id": run_id,
                "status": "completed" if clean else "failed",
                "window": [prepared.window.min_cv, prepared.window.max_cv],
                "finished_at": dt.datetime.now(dt.UTC).isoformat(),
            }
            self.state.write(state)
        return {
            "clean": clean,
            "errors": len(errors),
            "warnings": len(warnings),
            "failed_resources": [s.resource for s in failed_resources],
            "rejects": manifest,
            "state": state,
        }


def _blocked_message(outcome: Outcome[Unit, ResourceStats]) -> str:
    names = sorted({u.path for u in outcome.blocked_by})
    return f"not published: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''} failed"


def _records_message(stats: ResourceStats) -> str:
    parts = [f"{stats.failed} records refused by the target"] if stats.failed else []
    if stats.blocked:
        parts.append(f"{stats.blocked} not sent because a record they reference was refused")
    return ", ".join(parts) + " (see the rejects)"


def _no_descriptors_message(missing: Sequence[str]) -> str:
    named = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    return (
        f"The target has no records in {len(missing)} descriptor resources that the selected "
        f"resources use and the source has ({named}): every record naming one would be "
        "refused. Publish them too with include_descriptors=True, or load the target's "
        "descriptors first."
    )


# -- the run's report -----------------------------------------------------------------------

TABLE_COLUMNS = (
    "resource",
    "status",
    "read",
    "written",
    "skipped",
    "failed",
    "blocked",
    "warnings",
    "deleted",
    "key_changed",
    "seconds",
    "requests",
    "retries",
    "throttled",
    "token_renewals",
    "message",
)
TOTALS = ("read", "written", "skipped", "failed", "blocked", "warnings", "deleted", "key_changed")


def run_summary(
    publisher: Publisher,
    outcome: Mapping[str, Any],
    base: Mapping[str, Any],
    seconds: float,
    requests: Mapping[str, int],
) -> dict[str, Any]:
    """The flow's return value: status, totals, one row per resource, where the rejects are."""
    prepared = publisher.prepared
    assert prepared is not None
    rows = [publisher.stats[p].as_row() for p in prepared.resources if p in publisher.stats]
    totals = {k: sum(r[k] for r in rows) for k in TOTALS}
    status = (
        RunStatus.FAILED
        if not outcome["clean"]
        else RunStatus.COMPLETED_WITH_WARNINGS
        if outcome["warnings"]
        else RunStatus.COMPLETED
    )
    return {
        **base,
        "status": str(status),
        "resources": rows,
        **totals,
        "seconds": seconds,
        "records_per_second": round(totals["written"] / seconds, 1) if seconds else 0.0,
        "requests": dict(requests),
        "rejects": outcome["rejects"],
        "last_change_version": outcome["state"].get("last_change_version"),
    }


def summary_table(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The summary's rows as the run's table: failures first (then blocked), then the largest."""
    rows = sorted(
        summary["resources"],
        key=lambda r: (-(r["failed"] + r["blocked"]), -r["read"], r["resource"]),
    )
    return [{k: r[k] for k in TABLE_COLUMNS} for r in rows]


def rejects_markdown(rejects: Sequence[Reject], manifest: Mapping[str, Any] | None) -> str:
    """The rejects grouped by resource and cause, for a markdown artifact."""
    lines = [
        "# Rejected records",
        "",
        "Fix the records (edit the files) or the target, then run the flow again with "
        "`resend_rejects=True`.",
        "",
        "| resource | status | records | cause | first at |",
        "|---|---|---|---|---|",
    ]
    groups = summarize(rejects)
    for g in groups[:100]:
        cause = str(g["cause"]).replace("|", "\\|").replace("\n", " ")[:300]
        status = "not sent" if g["status"] is None else str(g["status"])
        where = g["where"][0] if g["where"] else ""
        lines.append(
            f"| {g['resource']} | {status}{' (warning)' if g['warning'] else ''} "
            f"| {g['count']} | {cause} | {where} |"
        )
    if len(groups) > 100:
        lines.append(f"| ... | | | {len(groups) - 100} more causes | |")
    if manifest:
        lines += ["", "Files:", ""]
        lines += [f"- `{v['file']}` ({v['count']})" for v in manifest["resources"].values()]
    return "\n".join(lines) + "\n"


def failure_message(publisher: Publisher, outcome: Mapping[str, Any]) -> str:
    """Why the run failed, what was kept and how to resend, in one message."""
    parts: list[str] = []
    if outcome["failed_resources"]:
        first = next(s for s in publisher.stats.values() if s.resource in publisher.broken)
        parts.append(
            f"{len(outcome['failed_resources'])} resources did not finish "
            f"({', '.join(outcome['failed_resources'][:5])}); first error: "
            f"{first.message}"
        )
    errors = [r for r in publisher.rejects if not r.warning]
    if errors:
        by: dict[tuple[str, str], int] = {}
        for r in errors:
            label = "blocked" if r.status is None else f"HTTP {r.status}"
            by[(r.resource, label)] = by.get((r.resource, label), 0) + 1
        listed = ", ".join(f"{res} {n} x {label}" for (res, label), n in sorted(by.items())[:8])
        refused = next((r for r in errors if r.status is not None), errors[0])
        where = ""
        if outcome["rejects"]:
            first_file = next(iter(outcome["rejects"]["resources"].values()))["file"]
            where = f" They are in the rejects files under {first_file.rsplit('/', 2)[0]}."
        parts.append(
            f"{len(errors)} records were rejected by the target: {listed}. First: "
            f"{refused.message}.{where} Fix them (or the target) and run again "
            "with resend_rejects=True."
        )
    parts.append("The change version was not advanced, so nothing is lost.")
    return " ".join(parts)
