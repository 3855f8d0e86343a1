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

Nothing here imports Prefect: the flow in ``flows/publish.py`` adds tasks,
artifacts and logging around ``Publisher``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from .client import EdFiClient, EdFiResponseError

# exceptions live in edfi.errors; re-exported so old imports keep working
from .errors import GraphError
from .errors import PublishError as PublishError
from .graph import DependencyGraph
from .graph import parse_graphml as parse_graphml
from .lake import Lake
from .model import ApiModel, publishable
from .paging import ReadPlan, read_pages, read_tracked, total_count
from .vocabulary import Mode as Mode

log = logging.getLogger("edfi.publish")


# The Publisher's default authorization-failure handling: a POST of one of these
# that the target refuses (403) is retried once the listed associations are published.
DEFAULT_AUTHORIZATION_RETRY: dict[str, tuple[str, ...]] = {
    "/ed-fi/students": ("/ed-fi/studentSchoolAssociations",),
    "/ed-fi/staffs": (
        "/ed-fi/staffEducationOrganizationEmploymentAssociations",
        "/ed-fi/staffEducationOrganizationAssignmentAssociations",
    ),
    "/ed-fi/contacts": ("/ed-fi/studentContactAssociations",),
    "/ed-fi/parents": ("/ed-fi/studentParentAssociations",),
}

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
    page_size: int = 75
    max_retries: int = 5
    retry_delay_ms: int = 100
    authorization_retry: Mapping[str, Sequence[str]] = field(
        default_factory=lambda: dict(DEFAULT_AUTHORIZATION_RETRY)
    )

    def __post_init__(self) -> None:
        if self.mode not in ("incremental", "full"):
            raise PublishError(f"mode must be 'incremental' or 'full', not {self.mode!r}.")
        for name in ("resource_parallelism", "page_fetch_parallelism", "write_parallelism"):
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
    status: str = "pending"  # published, failed, skipped, unchanged
    read: int = 0
    written: int = 0
    skipped: int = 0
    failed: int = 0
    warnings: int = 0
    deleted: int = 0
    key_changed: int = 0
    seconds: float = 0.0
    message: str = ""

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Reject:
    """A record the target refused for good: what was sent and what the server said."""

    resource: str
    operation: str  # upsert, delete, key_change
    status: int
    message: str
    body: Any = None  # the request body (upserts and key changes)
    key_values: Any = None  # the source's natural key (deletes; old/new for key changes)
    source_id: str | None = None
    warning: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _query_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _key_tuple(values: Mapping[str, Any]) -> bytes:
    return orjson.dumps(values, option=orjson.OPT_SORT_KEYS)


def _problem_message(exc: EdFiResponseError) -> str:
    return str(exc)


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


# -- scheduling -------------------------------------------------------------------------------


async def run_gated(
    dependencies: Mapping[Unit, Iterable[Unit]],
    run: Callable[[Unit], Awaitable[ResourceStats]],
    *,
    parallelism: int,
    on_done: Callable[[Unit, ResourceStats], Awaitable[None]] | None = None,
) -> dict[Unit, ResourceStats]:
    """Run every unit once all it depends on has finished, at most ``parallelism`` at a time.

    A unit whose run raises is marked failed, and everything depending on it is
    skipped (its records would only be refused for missing references).
    """
    deps = {u: frozenset(d for d in ds if d in dependencies) for u, ds in dependencies.items()}
    done = {u: asyncio.Event() for u in deps}
    results: dict[Unit, ResourceStats] = {}
    broken_units: set[Unit] = set()
    gate = asyncio.Semaphore(parallelism)

    async def one(unit: Unit) -> None:
        for d in deps[unit]:
            await done[d].wait()
        broken = sorted(d.path for d in deps[unit] if d in broken_units)
        if broken:
            broken_units.add(unit)
            stats = ResourceStats(
                unit.path, "blocked", message=f"not published: {', '.join(broken[:3])} failed"
            )
        else:
            async with gate:
                started = time.perf_counter()
                try:
                    stats = await run(unit)
                except Exception as exc:
                    broken_units.add(unit)
                    stats = ResourceStats(unit.path, "failed", message=str(exc))
                    stats.seconds = round(time.perf_counter() - started, 3)
        results[unit] = stats
        done[unit].set()
        if on_done is not None:
            await on_done(unit, stats)

    await asyncio.gather(*(one(u) for u in deps))
    return results


async def _drain(
    items: AsyncIterator[Any], handle: Callable[[Any], Awaitable[None]], workers: int
) -> None:
    """Feed items to ``workers`` concurrent handlers through a bounded queue."""
    queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=workers * 4)
    failure: list[BaseException] = []
    stop = object()

    async def consume() -> None:
        while True:
            item = await queue.get()
            if item is stop:
                return
            if failure:
                continue
            try:
                await handle(item)
            except BaseException as exc:
                failure.append(exc)

    consumers = [asyncio.create_task(consume()) for _ in range(workers)]
    try:
        async for item in items:
            if failure:
                break
            await queue.put(item)
        for _ in consumers:
            await queue.put(stop)
        await asyncio.gather(*consumers)
    finally:
        for c in consumers:
            c.cancel()
    if failure:
        raise failure[0]


async def _aiter(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


# -- state and rejects on the lake ----------------------------------------------------------


class StateStore:
    """The pair's change version and pending rejects, under ``publish/{pair}/`` on the lake."""

    def __init__(self, lake: Lake, key: str):
        self.lake = lake
        self.key = key

    @property
    def state_path(self) -> str:
        return self.lake.path("publish", self.key, "state.json")

    def read(self) -> dict[str, Any]:
        data = self.lake.read_json(self.state_path)
        return data if isinstance(data, dict) else {}

    def write(self, state: Mapping[str, Any]) -> None:
        self.lake.write_json(self.state_path, dict(state))

    def rejects_dir(self, run_id: str) -> str:
        return self.lake.path("publish", self.key, "rejects", run_id)

    def write_rejects(self, run_id: str, rejects: Sequence[Reject]) -> dict[str, Any]:
        """One JSONL file per resource, then a manifest naming them (written last)."""
        by_resource: dict[str, list[Reject]] = {}
        for r in rejects:
            by_resource.setdefault(r.resource, []).append(r)
        files: dict[str, dict[str, Any]] = {}
        base = self.rejects_dir(run_id)
        for path, items in sorted(by_resource.items()):
            file = f"{base}/{path.strip('/')}.jsonl"
            self.lake.write_bytes(file, b"".join(orjson.dumps(r.as_dict()) + b"\n" for r in items))
            files[path] = {
                "file": self.lake.uri(file),
                "count": len(items),
                "failed": sum(not r.warning for r in items),
                "warnings": sum(r.warning for r in items),
            }
        manifest = {
            "run_id": run_id,
            "resources": files,
            "written_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        self.lake.write_json(f"{base}/manifest.json", manifest)
        return manifest

    def read_rejects(self, run_id: str) -> list[Reject]:
        manifest = self.lake.read_json(f"{self.rejects_dir(run_id)}/manifest.json")
        if not isinstance(manifest, dict):
            raise PublishError(
                f"The rejects of run {run_id} are missing from the lake "
                f"({self.rejects_dir(run_id)})."
            )
        out: list[Reject] = []
        for entry in manifest["resources"].values():
            file = entry["file"].split("://", 1)[-1] if "://" in entry["file"] else entry["file"]
            with self.lake.fs.open(file, "rb") as fh:
                for line in fh.read().splitlines():
                    if line.strip():
                        out.append(Reject(**orjson.loads(line)))
        return out


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
        self.rejects: list[Reject] = []
        self.forbidden: dict[str, list[tuple[dict[str, Any], str | None, Any]]] = {}
        self.upserted_keys: dict[str, set[bytes]] = {}
        self.prepared: Prepared | None = None
        self.snapshot = False
        self.cursor = False

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
        self.prepared = prepared
        for p in prepared.resources:
            self.stats[p] = ResourceStats(p)
        return prepared

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
        """Do one unit's work; returns the resource's running totals."""
        stats = self.stats.setdefault(unit.path, ResourceStats(unit.path))
        started = time.perf_counter()
        try:
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
        except BaseException as exc:
            stats.status = "failed"
            stats.message = stats.message or str(exc)
            raise
        finally:
            stats.seconds = round(stats.seconds + time.perf_counter() - started, 3)
        if stats.status == "pending":
            stats.status = "published"
        return stats

    async def run(
        self,
        runner: Callable[[Unit], Awaitable[ResourceStats]] | None = None,
        on_done: Callable[[Unit, ResourceStats], Awaitable[None]] | None = None,
    ) -> dict[str, ResourceStats]:
        """All stages in order; ``runner`` lets the flow wrap each unit in a task."""
        for _, units in self.stages():
            results = await run_gated(
                units,
                runner or self.run_unit,
                parallelism=self.options.resource_parallelism,
                on_done=on_done,
            )
            for unit, res in results.items():
                stats = self.stats.setdefault(unit.path, ResourceStats(unit.path))
                if res.status in ("failed", "blocked") and stats.status != "failed":
                    stats.status = res.status
                    stats.message = res.message
        return self.stats

    # -- record operations -----------------------------------------------------------
    async def _retrying(self, send: Callable[[], Awaitable[Any]], retry: frozenset[int]) -> Any:
        """Retry statuses the client gives up on that ordering can explain (409s)."""
        attempt = 0
        while True:
            try:
                return await send()
            except EdFiResponseError as exc:
                if exc.status not in retry or attempt >= self.options.max_retries:
                    raise
                await asyncio.sleep(self.options.retry_delay_ms / 1000 * 2**attempt)
                attempt += 1

    async def _find_target(self, path: str, key_values: Mapping[str, Any]) -> dict[str, Any] | None:
        params = {k: _query_value(v) for k, v in key_values.items()}
        resp = await self.target.request(
            "GET", f"{self.tgt_url}{path}", params=params, parse_json=True
        )
        found = resp.json() or []
        return found[0] if isinstance(found, list) and found else None

    def _reject(self, stats: ResourceStats, reject: Reject) -> None:
        self.rejects.append(reject)
        if reject.warning:
            stats.warnings += 1
        else:
            stats.failed += 1

    async def _post(
        self,
        path: str,
        body: dict[str, Any],
        stats: ResourceStats,
        source_id: str | None,
        key_values: Any,
        *,
        deferrable: bool,
    ) -> None:
        url = f"{self.tgt_url}{path}"
        try:
            await self._retrying(
                lambda: self.target.request("POST", url, json_body=body), frozenset({409})
            )
        except EdFiResponseError as exc:
            if exc.status == 403 and path in self.options.authorization_retry:
                if deferrable:
                    self.forbidden.setdefault(path, []).append((body, source_id, key_values))
                    return
                self._reject(
                    stats,
                    Reject(
                        path,
                        "upsert",
                        403,
                        _problem_message(exc),
                        body,
                        key_values,
                        source_id,
                        self.options.treat_forbidden_post_as_warning,
                    ),
                )
                return
            self._reject(
                stats,
                Reject(
                    path, "upsert", exc.status, _problem_message(exc), body, key_values, source_id
                ),
            )
            return
        stats.written += 1

    async def _upserts(self, path: str, stats: ResourceStats) -> None:
        opts = self.options
        resource = self.src_model[path]
        keys = self.upserted_keys.setdefault(path, set()) if self._window.incremental else None
        prepared = self.prepared
        assert prepared is not None
        if prepared.resend:
            items = [r for r in prepared.resend if r.resource == path and r.operation == "upsert"]
            stats.read += len(items)

            async def resend(r: Reject) -> None:
                await self._post(path, r.body, stats, r.source_id, r.key_values, deferrable=True)

            await _drain(_aiter(items), resend, opts.write_parallelism)
            return

        plan = self._plan(path)
        expected = await total_count(self.source, plan)
        got = 0

        async def records() -> AsyncIterator[dict[str, Any]]:
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
                    yield rec

        async def send(rec: dict[str, Any]) -> None:
            key_values = resource.key_values(rec)
            if keys is not None:
                keys.add(_key_tuple(key_values))
            await self._post(
                path, publishable(rec), stats, rec.get("id"), key_values, deferrable=True
            )

        await _drain(records(), send, opts.write_parallelism)
        if got != expected:
            message = f"read {got} records but the source counted {expected} in the window"
            if self.snapshot:
                raise PublishError(
                    f"{path}: {message}; nothing is lost, but the run is not "
                    "complete: run it again."
                )
            stats.message = message + " (no snapshot isolation; the next run catches up)"

    async def _retry_forbidden(self, path: str, stats: ResourceStats) -> None:
        pending = self.forbidden.pop(path, [])
        if pending:
            after = ", ".join(self.options.authorization_retry.get(path, ())) or "the rest"
            stats.message = (
                f"{len(pending)} retried after {after} (the target refused them with 403 first)"
            )

        async def again(item: tuple[dict[str, Any], str | None, Any]) -> None:
            body, source_id, key_values = item
            await self._post(path, body, stats, source_id, key_values, deferrable=False)

        await _drain(_aiter(pending), again, self.options.write_parallelism)

    async def _change_found(
        self,
        path: str,
        stats: ResourceStats,
        operation: str,
        source_id: str | None,
        key_values: Mapping[str, Any],
        *,
        noted: Any = None,
        new_body: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> bool:
        """Find the target's record by a natural key, then PUT ``new_body(it)`` or DELETE it.

        The key-change and delete stages share this. A record the target does not
        have (not yet, or no longer) is skipped; a refusal is kept as a reject
        naming ``noted`` (default: the key looked up). True when the target took it.
        """
        current = await self._find_target(path, key_values)
        if current is None:
            stats.skipped += 1  # not on the target (yet): the upsert stage brings it
            return False
        url = f"{self.tgt_url}{path}/{current['id']}"
        body = None if new_body is None else new_body(current)
        method = "DELETE" if body is None else "PUT"
        try:
            await self._retrying(
                lambda: self.target.request(method, url, json_body=body), frozenset({409})
            )
        except EdFiResponseError as exc:
            if exc.status == 404:
                stats.skipped += 1
                return False
            keys = key_values if noted is None else noted
            self._reject(
                stats,
                Reject(path, operation, exc.status, _problem_message(exc), body, keys, source_id),
            )
            return False
        return True

    async def _key_changes(self, path: str, stats: ResourceStats) -> None:
        prepared = self.prepared
        assert prepared is not None
        chains: list[tuple[str | None, dict[str, Any], dict[str, Any]]] = []
        if prepared.resend:
            for r in prepared.resend:
                if r.resource == path and r.operation == "key_change":
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

        async def change(item: tuple[str | None, dict[str, Any], dict[str, Any]]) -> None:
            source_id, old, new = item
            if old == new:
                stats.skipped += 1
                return
            if await self._change_found(
                path,
                stats,
                "key_change",
                source_id,
                old,
                noted={"old": old, "new": new},
                new_body=lambda current: resource.set_key_values(publishable(current), new),
            ):
                stats.key_changed += 1

        await _drain(_aiter(chains), change, self.options.write_parallelism)

    async def _deletes(self, path: str, stats: ResourceStats) -> None:
        prepared = self.prepared
        assert prepared is not None
        items: list[tuple[str | None, dict[str, Any]]] = []
        if prepared.resend:
            items = [
                (r.source_id, r.key_values)
                for r in prepared.resend
                if r.resource == path and r.operation == "delete"
            ]
        else:
            entries = await read_tracked(
                self.source, self._plan(path), "deletes", page_size=self.options.page_size
            )
            latest: dict[bytes, tuple[str | None, dict[str, Any]]] = {}
            for e in entries:
                latest[_key_tuple(e["keyValues"])] = (e.get("id"), e["keyValues"])
            recreated = self.upserted_keys.get(path, set())
            for key, item in latest.items():
                if key in recreated:
                    stats.skipped += 1  # deleted, then created again with the same key
                else:
                    items.append(item)
        stats.read += len(items)

        async def remove(item: tuple[str | None, dict[str, Any]]) -> None:
            source_id, key_values = item
            if await self._change_found(path, stats, "delete", source_id, key_values):
                stats.deleted += 1

        await _drain(_aiter(items), remove, self.options.write_parallelism)

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
        failed_resources = [s for s in self.stats.values() if s.status in ("failed", "blocked")]
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
