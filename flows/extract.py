"""Extract flow: every resource of an Ed-Fi API into the lake, full or incremental.

One async flow run holds one ``EdFiClient`` per API (one token, one request
budget) and fans out one Prefect task per (school year, resource); the tasks
call the Prefect-free core in ``edfi.extract``. State -- the change version
each table reflects and the run that wrote it -- lives in the lake, so a run
killed half-way is resumed by the next one without pulling finished tables
again.
"""

import asyncio
import datetime as dt
import time
import uuid
from typing import Any, Literal, TypeVar, cast

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.utilities.annotations import quote

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.amt import load_descriptor_map
from edfi.client import EdFiClient, EdFiError, RequestCounts, counting
from edfi.extract import (
    NO_YEAR,
    ExtractError,
    PullOptions,
    ResourceResult,
    newest_change_version,
    select_resources,
    summary_order,
)
from edfi.lake import Lake, LakeError, Lease, LeaseHeld, check_resource_names, take_lease
from edfi.model import Resource
from edfi.paging import ReadPlan, total_count
from edfi.vocabulary import Mode, ResourceStatus, RunStatus
from flows.limits import api_slots
from flows.progress import RunProgress
from flows.runners import API_FLOW_WORKERS, threads
from tasks.extract import pull_descriptors, pull_resource

SUMMARY_COLUMNS = (
    "resource",
    "school_year",
    "status",
    "mode",
    "records",
    "deletes",
    "key_changes",
    "rows",
    "bytes",
    "seconds",
    "requests",
    "retries",
    "throttled",
    "token_renewals",
    "message",
)
"""The summary table artifact's columns, in order."""


def summary_table(rows: list[dict[str, Any]], year_specific: bool) -> list[dict[str, Any]]:
    """The summary table artifact's rows: ``SUMMARY_COLUMNS`` of each row, in order.

    An API that is not year-specific has no school year; its tables live under the
    lake's ``school_year=0`` partition, but a 0 in the table reads as a year, so
    the cell is left blank (None) there.
    """
    table = [{k: r[k] for k in SUMMARY_COLUMNS} for r in rows]
    if not year_specific:
        for row in table:
            row["school_year"] = None
    return table


def task_label(name: str, year: int | None) -> str:
    """A task run's name: ``ed-fi/students``, or ``ed-fi/students 2025`` on a year-specific API."""
    return name if year is None else f"{name} {year}"


def _log_counts(logger: Any, what: str, counts: RequestCounts) -> None:
    """One line per resource for what the client did beneath it: a warning for retries
    (a server struggling, or a limit too high), information for token renewals alone."""
    if counts.retries:
        logger.warning("%s: %s", what, counts.describe())
    elif counts.token_renewals:
        logger.info("%s: %s", what, counts.describe())


T = TypeVar("T")


def _opaque(value: T) -> T:
    """A task argument Prefect passes as it is, without walking into it.

    Prefect visits every argument of every task call, recursively, looking for
    futures; for a client, a lake, a resource's model and a list of 222 descriptor
    resources that cost more CPU than pulling most resources (about 5 of the 9
    CPU seconds of a 367-resource run that pulls almost nothing).
    """
    return cast(T, quote(value))


async def _count_resources(
    client: EdFiClient,
    years: list[int | None],
    resources: list[Resource],
    max_cvs: dict[int | None, int],
    snapshot: bool,
) -> dict[tuple[int | None, str], int]:
    """(year, path) -> the server's count up to this run's change version.

    A count that fails is left out: that resource gets its own task, which counts
    again and reports the failure.
    """

    async def count(year: int | None, resource: Resource) -> int:
        max_cv = max_cvs[year]
        url = f"{client.url('dataManagementApi', year)}{resource.path}"
        plan = ReadPlan(url, None, max_cv if max_cv >= 0 else None, snapshot)
        return await total_count(client, plan)

    pairs = [(y, r) for y in years for r in resources]
    found = await asyncio.gather(*(count(y, r) for y, r in pairs), return_exceptions=True)
    return {
        (y, r.path): n
        for (y, r), n in zip(pairs, found, strict=True)
        if isinstance(n, int) and not isinstance(n, bool)
    }


class _Timings:
    """Seconds each phase of a run took (connect, model, prepare, pull, finish): what a run
    costs besides pulling is what a small district notices, so the summary itemizes it."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def mark(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._last, 3)
        self._last = now


def _run_signature(base_url: str, years: list[int | None], resources: list[str], mode: str) -> str:
    return f"{base_url}|{years}|{sorted(resources)}|{mode}"


def _check_parameters(
    mode: str, resource_parallelism: int, count_tolerance: float, full_refresh: Any
) -> None:
    """Parameters a person typed, checked before anything is asked or written."""
    if mode not in ("incremental", "full"):
        raise ValueError(f"mode must be 'incremental' or 'full', not {mode!r}")
    if isinstance(resource_parallelism, bool) or not isinstance(resource_parallelism, int):
        raise ValueError(
            f"resource_parallelism must be a whole number of at least 1, not "
            f"{resource_parallelism!r}"
        )
    if resource_parallelism < 1:
        raise ValueError(
            f"resource_parallelism must be at least 1 (resources pulled at once), not "
            f"{resource_parallelism}"
        )
    if not 0 <= count_tolerance < 1:  # NaN fails this too
        raise ValueError(
            f"count_tolerance must be a share between 0 (exact, the default) and 1, not "
            f"{count_tolerance!r}"
        )
    if full_refresh is not None and (
        isinstance(full_refresh, str)
        or not all(isinstance(n, str) and n.strip() for n in full_refresh)
    ):
        raise ValueError(
            f"full_refresh must be a list of resource names (e.g. ['ed-fi/students']), not "
            f"{full_refresh!r}"
        )


def _claim_run(
    store: Lake, signature: str, started: dt.datetime, process: str
) -> tuple[str, Lease]:
    """This run's id and its lease: an unfinished run with the same parameters whose
    process is gone is resumed (its committed tables are kept); a live one never is."""
    unfinished = [
        r for r in store.runs() if r.get("status") == "running" and r.get("signature") == signature
    ]
    for run in reversed(unfinished):
        run_id = str(run["run_id"])
        try:
            lease = take_lease(store, f"runs/{run_id}", run_id=run_id, owner=f"{run_id}/{process}")
        except LeaseHeld:
            continue  # that run is alive (another process): not ours to resume
        get_run_logger().info(
            "Resuming run %s, which did not finish; tables it committed are kept.", run_id
        )
        return run_id, lease
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    return run_id, take_lease(store, f"runs/{run_id}", run_id=run_id, owner=f"{run_id}/{process}")


@flow(
    name="edfi-extract",
    description="Ed-Fi API -> lake: raw JSONL and typed parquet, full or incremental.",
    task_runner=threads(API_FLOW_WORKERS),  # bounded: see flows.runners
)
async def extract(
    connection: EdFiConnection | str,
    lake: LakeStorage | str,
    resources: list[str] | None = None,
    exclude: list[str] | None = None,
    school_years: list[int] | None = None,
    mode: Mode = "incremental",
    full_refresh: list[str] | None = None,
    resource_parallelism: int = 16,
    count_tolerance: float = 0.0,
    run_gold: bool = False,
    descriptor_map: str | None = None,
    invalid_utf8: Literal["fail", "replace"] = "fail",
    lease_wait_seconds: float = 3600.0,
) -> dict[str, Any]:
    """Pull an Ed-Fi API into the lake.

    Args:
        connection: an ``EdFiConnection`` block or the name of a saved one.
        lake: a ``LakeStorage`` block or the name of a saved one.
        resources: globs over ``namespace/resource`` to include (default: all,
            descriptors included), e.g. ``["ed-fi/student*", "lmsx/*"]``.
        exclude: globs to leave out, e.g. ``["*Descriptors"]``.
        school_years: years to pull from a year-specific API (default: the
            connection's ``school_years``; none for a single-year API).
        mode: ``incremental`` pulls changes since the last run (and deletes and
            key changes); ``full`` pulls everything again.
        full_refresh: resources to pull in full even in an incremental run.
        resource_parallelism: resources pulled at once (requests are capped
            separately by the connection's ``max_concurrency``).
        count_tolerance: share by which a pulled count may differ from the
            server's Total-Count before the resource fails (0 = exact).
        run_gold: after a successful pull, rebuild the Analytics Middle Tier
            tables under ``gold/`` (the gold flow, as a subflow).
        descriptor_map: the descriptor map the gold tables use (local path or
            storage URL; default AMT's own map).
        invalid_utf8: a page with text that is not UTF-8 fails its resource
            (``fail``), or the bad bytes are stored as U+FFFD and counted
            (``replace``).
        lease_wait_seconds: how long a table that another run on the same lake
            is writing is waited for before this run fails it (naming that run);
            0 fails at once.

    Returns the run summary: one row per (school year, resource).
    """
    held: list[Lease] = []  # this run's own lease: released however the run ends
    try:
        return await _extract(
            held,
            connection,
            lake,
            resources=resources,
            exclude=exclude,
            school_years=school_years,
            mode=mode,
            full_refresh=full_refresh,
            resource_parallelism=resource_parallelism,
            count_tolerance=count_tolerance,
            run_gold=run_gold,
            descriptor_map=descriptor_map,
            invalid_utf8=invalid_utf8,
            lease_wait_seconds=lease_wait_seconds,
        )
    finally:
        for lease in held:
            lease.release()


async def _extract(
    held: list[Lease],
    connection: EdFiConnection | str,
    lake: LakeStorage | str,
    *,
    resources: list[str] | None,
    exclude: list[str] | None,
    school_years: list[int] | None,
    mode: Mode,
    full_refresh: list[str] | None,
    resource_parallelism: int,
    count_tolerance: float,
    run_gold: bool,
    descriptor_map: str | None,
    invalid_utf8: Literal["fail", "replace"],
    lease_wait_seconds: float,
) -> dict[str, Any]:
    logger = get_run_logger()
    _check_parameters(mode, resource_parallelism, count_tolerance, full_refresh)
    if invalid_utf8 not in ("fail", "replace"):
        raise ValueError(f"invalid_utf8 must be 'fail' or 'replace', not {invalid_utf8!r}")
    conn_block = await aload_block(connection, EdFiConnection)
    lake_block = await aload_block(lake, LakeStorage)
    if descriptor_map is not None:
        # a broken map fails now, not after the whole pull
        load_descriptor_map(descriptor_map, lake_block.options_for(descriptor_map))
    conn = conn_block.connection()
    store = lake_block.lake()
    store.check_writable()  # a bad URL or bucket fails here, before the API is asked
    years: list[int | None] = list(school_years or conn_block.school_years) or [None]
    started = dt.datetime.now(dt.UTC)
    timings = _Timings()

    # a slot of the API's global concurrency limit, if it has one (flows.limits)
    async with api_slots(conn.base_url), EdFiClient(conn) as client:
        disc = await client.discover()
        await client.token()  # bad credentials fail here, before anything is written
        timings.mark("connect")
        model = await client.load_model(years[0])
        chosen = select_resources(model, resources, exclude)
        check_resource_names(chosen)  # names from the server shape paths: refuse bad ones now
        refresh = set()
        for name in full_refresh or []:
            try:
                refresh.add(model.find(name).path)
            except KeyError as exc:
                raise ExtractError(
                    f"full_refresh: {exc.args[0]}; name resources as namespace/name, e.g. "
                    "ed-fi/students (nothing was pulled)."
                ) from None
        snapshot = disc.snapshots
        timings.mark("model")
        logger.info(
            "Ed-Fi API %s (data models %s): %d resources x %d school year(s); "
            "%s paging, snapshots %s",
            disc.version,
            disc.data_models,
            len(chosen),
            len(years),
            "cursor" if disc.cursor_paging else "offset",
            "on" if snapshot else "off",
        )
        max_cvs: dict[int | None, int] = {}
        for year in years:
            max_cvs[year] = await newest_change_version(
                client, client.url("changeQueries", year), snapshot
            )

        signature = _run_signature(conn.base_url, years, [r.path for r in chosen], mode)
        process = uuid.uuid4().hex[:8]
        run_id, run_lease = _claim_run(store, signature, started, process)
        held.append(run_lease)
        run_doc: dict[str, Any] = {
            "run_id": run_id,
            "status": "running",
            "signature": signature,
            "mode": mode,
            "started_at": started.isoformat(),
            "api_version": disc.version,
            "data_models": disc.data_models,
            "change_versions": {
                str(y if y is not None else NO_YEAR): v for y, v in max_cvs.items()
            },
        }
        store.write_json(store.run_path(run_id), run_doc)

        # deepest first: the big student-level resources sit at the bottom of the
        # dependency graph, and a big resource started late finishes alone at the end
        data = sorted(
            (r for r in chosen if not r.is_descriptor), key=lambda r: -model.levels[r.path]
        )
        descriptors = [r for r in chosen if r.is_descriptor]
        # resources the server holds nothing of (most of a full Ed-Fi API) are pulled
        # together, one task per year like the descriptors: a Prefect task each costs
        # more than their one request. A pull of the same window (a full one) takes its
        # count from here instead of asking again; an incremental one counts its own
        # window. These requests are the run's, not a resource's row's: their retries
        # get a log line of their own.
        with counting() as planning:
            counted = await _count_resources(client, years, data, max_cvs, snapshot)
        _log_counts(logger, "counting the resources", planning)
        empty = {key for key, n in counted.items() if n == 0}
        work = [(y, r) for y in years for r in data if (y, r.path) not in empty]
        groups = [(y, "descriptors", descriptors) for y in years if descriptors]
        groups += [
            (y, "empty resources", quiet)
            for y in years
            if (quiet := [r for r in data if (y, r.path) in empty])
        ]
        steps = len(work) + len(groups)
        progress = await RunProgress(
            key="edfi-extract-progress",
            total=steps,
            # a unit is a resource, or all descriptors of a school year
            title=f"Extract run {run_id}",
        ).start()
        gate = asyncio.Semaphore(max(1, resource_parallelism))
        options = PullOptions(
            page_size=conn.page_size,
            parallel=conn.max_concurrency,
            snapshot=snapshot,
            cursor=disc.cursor_paging,
            count_tolerance=count_tolerance,
            invalid_utf8=invalid_utf8,
            run_id=run_id,
            owner=f"{run_id}/{process}",
            lease_wait=lease_wait_seconds,
        )

        async def one(year: int | None, resource: Resource) -> dict[str, Any]:
            partition = year if year is not None else NO_YEAR
            label = task_label(resource.full_name, year)
            # counted here, around the task, not in the core: a failed pull (and a task
            # retried after one) still shows every request the client made for it
            counts = RequestCounts()
            async with gate:
                try:
                    with counting(counts):
                        row = await pull_resource(
                            _opaque(client),
                            _opaque(store),
                            _opaque(resource),
                            label=label,
                            data_url=client.url("dataManagementApi", year),
                            school_year=partition,
                            max_cv=max_cvs[year],
                            mode="full" if resource.path in refresh else mode,
                            options=_opaque(options),
                            counted=counted.get((year, resource.path)),
                        )
                except (EdFiError, LakeError, OSError) as exc:
                    logger.error("%s failed: %s", label, exc)
                    row = ResourceResult(
                        resource.full_name, partition, ResourceStatus.FAILED, message=str(exc)
                    ).as_row()
                except Exception as exc:  # a bug or a surprise: still this resource's alone
                    logger.exception("%s failed unexpectedly", label)
                    row = ResourceResult(
                        resource.full_name,
                        partition,
                        ResourceStatus.FAILED,
                        message=f"{type(exc).__name__}: {exc}",
                    ).as_row()
            row.update(counts.columns())
            _log_counts(logger, label, counts)
            await progress.advance(label, row["records"])
            return row

        async def year_group(
            year: int | None, name: str, members: list[Resource]
        ) -> list[dict[str, Any]]:
            partition = year if year is not None else NO_YEAR
            label = task_label(name, year)
            # each resource's row has its own counts; the log gets one line for them all
            async with gate:
                with counting() as counts:
                    found = await pull_descriptors(
                        _opaque(client),
                        _opaque(store),
                        _opaque(members),
                        label=label,
                        data_url=client.url("dataManagementApi", year),
                        school_year=partition,
                        max_cv=max_cvs[year],
                        mode=mode,
                        refresh=_opaque(refresh),
                        options=_opaque(options),
                        counted=_opaque({path: n for (y, path), n in counted.items() if y == year}),
                    )
            _log_counts(logger, label, counts)
            await progress.advance(label, sum(r["records"] for r in found))
            return found

        timings.mark("prepare")
        try:
            results = await asyncio.gather(
                *(year_group(y, name, members) for y, name, members in groups),
                *(one(y, r) for y, r in work),
            )
        except Exception as exc:
            # the run record ends in a final state whatever ended the run (a run killed
            # outright stays "running", and the next run resumes it)
            run_doc.update(
                status=ResourceStatus.FAILED,
                finished_at=dt.datetime.now(dt.UTC).isoformat(),
                error=f"{type(exc).__name__}: {exc}",
            )
            store.write_json(store.run_path(run_id), run_doc)
            raise
        rows: list[dict[str, Any]] = []
        for item in results:
            rows.extend(item if isinstance(item, list) else [item])
        rows = summary_order(rows)

    timings.mark("pull")
    failed = [r for r in rows if r["status"] == ResourceStatus.FAILED]
    summary = {
        "run_id": run_id,
        "lake": store.url,
        "api_version": disc.version,
        "status": RunStatus.FAILED if failed else RunStatus.COMPLETED,
        "resources": rows,
        "records": sum(r["records"] for r in rows),
        "deletes": sum(r["deletes"] for r in rows),
        "key_changes": sum(r["key_changes"] for r in rows),
        "bytes": sum(r["bytes"] for r in rows),
        "invalid_utf8_replaced": sum(r.get("invalid_utf8_replaced", 0) for r in rows),
        "seconds": round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2),
        "started_at": started.isoformat(),
        "requests": client.stats.requests,
        "retries": client.stats.retries,
        "throttled": sum(r["throttled"] for r in rows),
        "token_renewals": sum(r["token_renewals"] for r in rows),
    }
    await acreate_table_artifact(
        table=summary_table(rows, year_specific=years != [None]),
        key="edfi-extract-summary",
        description=f"Extract run {run_id} into {store.url}: {summary['records']} records, "
        f"{len(failed)} failed",
    )
    run_doc.update(
        status=summary["status"],
        finished_at=dt.datetime.now(dt.UTC).isoformat(),
        summary={k: v for k, v in summary.items() if k != "resources"},
        resources=rows,
    )
    store.write_json(store.run_path(run_id), run_doc)
    timings.mark("finish")
    summary["timings"] = timings.seconds
    if failed:
        names = ", ".join(task_label(r["resource"], r["school_year"] or None) for r in failed[:10])
        raise ExtractError(
            f"{len(failed)} of {len(rows)} resource pulls failed and were not committed: "
            f"{names}. The first error: {failed[0]['message']}"
        )
    logger.info(
        "Extracted %d records (%d deletes, %d key changes) into %s in %.1fs",
        summary["records"],
        summary["deletes"],
        summary["key_changes"],
        store.url,
        summary["seconds"],
    )
    if run_gold:
        from flows.gold import gold

        # a subflow of this run; it runs after the pull, so blocking the loop costs nothing
        summary["gold"] = gold(
            lake=lake_block,
            school_years=[y if y is not None else NO_YEAR for y in years],
            descriptor_map=descriptor_map,
        )
    return summary
