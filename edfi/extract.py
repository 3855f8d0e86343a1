"""Extract: one (school year, resource) of an Ed-Fi API into the lake, exactly.

``extract_resource`` is the unit a Prefect task runs. It reads the resource's
change window in parallel pages, writes raw JSONL and a new parquet version,
applies deletes and key changes, checks what it read against the server's
Total-Count, and only then commits the new version by writing its state
manifest. Anything short of that leaves the previous version current.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import fnmatch
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc

from .client import EdFiClient, RequestCounts

# exceptions live in edfi.errors; re-exported so old imports keep working
from .errors import ExtractError as ExtractError
from .lake import (
    Conflict,
    JsonlGzWriter,
    Lake,
    Lease,
    LeaseLost,
    ParquetPartWriter,
    arrow_schema,
    iter_batches,
    new_version,
    records_to_table,
    take_lease_async,
    write_jsonl_gz,
)
from .model import ApiModel, Resource
from .paging import (
    RawPage,
    ReadPlan,
    read_raw_pages,
    read_tracked,
    total_count,
    window_has_records,
)
from .vocabulary import Mode as Mode
from .vocabulary import ResourceStatus

NO_YEAR = 0  # partition value for APIs that are not year-specific
LANES = 2  # writer threads per big resource: this is CPU work, and the GIL is mostly free
LANE_MIN_PAGES = 20  # smaller resources keep one writer (and one file)
COMMIT_ATTEMPTS = 3  # pulls of a table whose commit another run's commit overtook


@dataclass
class ResourceResult:
    """What one (school year, resource) pull did: the row of the run's summary table."""

    resource: str
    school_year: int
    status: ResourceStatus  # pulled, unchanged, failed, resumed
    mode: str = ""
    records: int = 0
    deletes: int = 0
    key_changes: int = 0
    rows: int = 0
    bytes: int = 0
    seconds: float = 0.0
    change_version: int | None = None
    message: str = ""
    invalid_utf8_replaced: int = 0  # byte sequences stored as U+FFFD (invalid_utf8="replace")
    # what the client did beneath the pull (see edfi.client.RequestCounts)
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    token_renewals: int = 0

    def count(self, counts: RequestCounts) -> ResourceResult:
        """These request counts in the row (a retried pull: the counts of every attempt)."""
        for name, value in counts.columns().items():
            setattr(self, name, value)
        return self

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PullOptions:
    page_size: int = 500
    parallel: int = 8
    snapshot: bool = True
    cursor: bool = True
    count_tolerance: float = 0.0  # share of records a count may differ by
    invalid_utf8: Literal["fail", "replace"] = "fail"
    run_id: str = ""
    owner: str = ""  # this run's process, as table leases name it (default: run id and pid)
    lease_wait: float = 3600.0  # seconds to wait for a table another run is writing
    pulled_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))


def summary_order(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows as a person reads a run's summary: failures first, then the largest resources,
    descriptors last (an API has a hundred or more, nearly all a few rows each)."""

    def key(row: dict[str, Any]) -> tuple[bool, bool, int, int, str, int]:
        return (
            row.get("status") != ResourceStatus.FAILED,
            str(row.get("resource", "")).endswith("Descriptors"),
            -int(row.get("records") or 0),  # pulled by this run, then the table's size
            -int(row.get("rows") or 0),
            str(row.get("resource", "")),
            int(row.get("school_year") or 0),
        )

    return sorted(rows, key=key)


def select_resources(
    model: ApiModel, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
) -> list[Resource]:
    """Resources matching ``include`` globs (default all) and no ``exclude`` glob.

    Globs match ``namespace/name`` (``ed-fi/student*``, ``lmsx/*``, ``*Descriptors``)
    or the bare name. A glob matching nothing is an error: it is almost always a typo.
    """

    def matches(r: Resource, pattern: str) -> bool:
        pattern = pattern.strip().strip("/")
        return fnmatch.fnmatchcase(r.full_name, pattern) or fnmatch.fnmatchcase(r.name, pattern)

    resources = list(model)
    for pattern in [*(include or []), *(exclude or [])]:
        if not any(matches(r, pattern) for r in resources):
            raise ExtractError(
                f"The resource pattern {pattern!r} matches no resource of this API "
                "(patterns match namespace/name, e.g. ed-fi/students or lmsx/*)."
            )
    chosen = [
        r
        for r in resources
        if (not include or any(matches(r, p) for p in include))
        and not any(matches(r, p) for p in exclude or [])
    ]
    return sorted(chosen, key=lambda r: (model.levels[r.path], r.path))


async def extract_resource(
    client: EdFiClient,
    lake: Lake,
    resource: Resource,
    *,
    data_url: str,
    school_year: int,
    max_cv: int,
    mode: Mode,
    options: PullOptions,
    counted: int | None = None,
) -> ResourceResult:
    """Pull one resource's changes up to ``max_cv`` and commit the new current table.

    The table's lease is held throughout, so a second run on the lake waits for it
    (up to ``options.lease_wait``) instead of pulling the same table at once. The
    commit is a compare-and-swap of the state read at the start: if another run
    committed in between (its lease had expired), this pull is discarded and the
    table is pulled again from the newer state.

    ``counted`` is the server's Total-Count of the resource's whole window up to
    ``max_cv`` if the caller has just asked for it (the extract flow counts every
    resource before its fan-out): a pull of that same window (a full one) then
    does not ask again. Under a snapshot the count cannot change; without one, a
    count that no longer holds is caught as ever: the pull counts again when the
    records it read differ.

    Request counts (retries, throttling, token renewals) are the caller's to take,
    with ``edfi.client.counting()`` around this call: a pull that fails raises, and
    a retried task makes the call again, so only the caller sees every request.
    """
    what = f"{resource.full_name} ({school_year})"
    owner = options.owner or f"{options.run_id}/{os.getpid()}"
    for attempt in range(COMMIT_ATTEMPTS):
        lease = await take_lease_async(
            lake,
            lake.lease_name(resource, school_year),
            run_id=options.run_id,
            owner=owner,
            wait=options.lease_wait,
            what=what,
        )
        try:
            return await _pull(
                client,
                lake,
                resource,
                lease,
                data_url=data_url,
                school_year=school_year,
                max_cv=max_cv,
                mode=mode,
                options=options,
                counted=counted,
            )
        except (Conflict, LeaseLost) as exc:
            if attempt == COMMIT_ATTEMPTS - 1:
                raise ExtractError(
                    f"{what}: another run committed this table {COMMIT_ATTEMPTS} times while "
                    f"this one pulled it ({exc}); nothing of this run's pull was committed."
                ) from exc
        finally:
            lease.release()
    raise AssertionError("unreachable")


async def _pull(
    client: EdFiClient,
    lake: Lake,
    resource: Resource,
    lease: Lease,
    *,
    data_url: str,
    school_year: int,
    max_cv: int,
    mode: Mode,
    options: PullOptions,
    counted: int | None,
) -> ResourceResult:
    started = time.perf_counter()
    result = ResourceResult(resource.full_name, school_year, ResourceStatus.PULLED)
    read = lake.read_state(resource, school_year)  # under the lease: what the commit replaces
    state: dict[str, Any] | None = read.value
    if state is not None:
        missing = lake.missing_files(state)
        if missing:
            # a damaged table (files lost to an old overlapping run, or deleted by hand) is
            # pulled again in full, never reported unchanged
            result.message = (
                f"the committed state named {len(missing)} missing file(s), e.g. "
                f"{lake.relative(missing[0])}; pulled in full"
            )
            state = None
    full = mode == "full" or state is None
    result.mode = "full" if full else "incremental"
    if state is not None and state.get("run_id") == options.run_id and options.run_id:
        result.status = ResourceStatus.RESUMED  # finished by the run this one resumes
        result.change_version = state["change_version"]
        result.rows = state.get("rows", 0)
        return result
    if not full and state is not None and state["change_version"] >= max_cv:
        result.status = ResourceStatus.UNCHANGED
        result.change_version = state["change_version"]
        result.rows = state.get("rows", 0)
        result.seconds = time.perf_counter() - started
        return result

    min_cv = None if full or state is None else int(state["change_version"]) + 1
    url = f"{data_url}{resource.path}"
    plan = ReadPlan(url, min_cv, max_cv if max_cv >= 0 else None, options.snapshot)
    raw_dir = lake.raw_dir(resource, school_year, options.run_id)
    lake.rm(raw_dir)  # what a crashed attempt of this run left behind
    version = new_version()
    version_dir = lake.within(lake.current_dir(resource, school_year), version)
    schema = arrow_schema(resource)
    committed = False
    try:
        if counted is not None and min_cv is None:
            expected = counted  # the same window, counted by the caller just now
        else:
            expected = await total_count(client, plan)
        if (
            not full
            and state is not None
            and expected == 0
            and not await _has_tracked(client, plan, resource)
            and (options.cursor or not await window_has_records(client, plan))
        ):
            # nothing changed: move the watermark, keep the table as it is -- by the same
            # compare-and-swap, so a newer commit of another run is never overwritten
            lease.check()
            lake.commit(
                resource,
                school_year,
                {
                    **state,
                    "change_version": max_cv,
                    "run_id": options.run_id,
                    "checked_at": dt.datetime.now(dt.UTC).isoformat(),
                },
                read,
                lease,
            )
            result.status = ResourceStatus.UNCHANGED
            result.change_version = max_cv
            result.rows = state.get("rows", 0)
            return result
        target = version_dir if full else lake.within(version_dir, "_staging")
        # a big resource is often the last one running: one writer thread would hold it
        # to one core, so its pages are typed and written by several lanes at once
        lanes = [
            _Lane(
                JsonlGzWriter(lake, raw_dir, f"records-{i}"),
                ParquetPartWriter(lake, target, schema, prefix=f"part-{i}"),
            )
            for i in range(LANES if expected > LANE_MIN_PAGES * options.page_size else 1)
        ]
        changed_ids: list[pa.Array] = []
        pages = read_raw_pages(
            client,
            plan,
            expected,
            page_size=options.page_size,
            parallel=options.parallel,
            cursor=options.cursor,
        )
        turn = asyncio.Lock()
        failed = False

        async def drain(lane: _Lane) -> None:
            nonlocal failed
            while not failed:
                async with turn:
                    page = await anext(pages, None)
                if page is None:
                    return
                try:
                    # typing, compressing and writing mostly release the GIL: worker
                    # threads do them while the event loop keeps fetching
                    table, replaced = await asyncio.to_thread(
                        _store_page, page, resource, school_year, max_cv, options, lane
                    )
                except BaseException:
                    failed = True  # the other lanes stop after their current page
                    raise
                if not full:
                    changed_ids.append(table.column("id").combine_chunks())
                result.records += table.num_rows
                result.invalid_utf8_replaced += replaced

        try:
            outcomes = await asyncio.gather(
                *(drain(lane) for lane in lanes), return_exceptions=True
            )
        finally:
            await pages.aclose()
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        if result.invalid_utf8_replaced:
            result.message = (
                f"{result.invalid_utf8_replaced} invalid UTF-8 byte sequences stored as U+FFFD"
            )
        # the last row group of each lane is encoded and compressed here: in a worker
        # thread, as the pages were, so the event loop keeps the other pulls' requests
        # going (on the loop, closing was a tenth of its busy time)
        staged, rows = await asyncio.to_thread(_close_lanes, lanes)
        result.bytes += sum(lane.raw.bytes for lane in lanes)
        if result.records != expected:
            # counted again: a window that grew while an unsnapshotted read ran is consistent
            # if the count now agrees; a count that understates (or lies) does not
            expected = await total_count(client, plan)
        _verify(resource, result.records, expected, options.count_tolerance)
        files = staged
        if not full:
            deletes = await read_tracked(client, plan, "deletes", page_size=options.page_size)
            result.deletes = len(deletes)
            if deletes:
                result.bytes += write_jsonl_gz(
                    lake, lake.within(raw_dir, "deletes.jsonl.gz"), deletes
                )
            if resource.key_changes:
                keyed = await read_tracked(client, plan, "keyChanges", page_size=options.page_size)
                result.key_changes = len(keyed)
                if keyed:
                    result.bytes += write_jsonl_gz(
                        lake, lake.within(raw_dir, "key_changes.jsonl.gz"), keyed
                    )
            drop = pa.concat_arrays(
                [*changed_ids, pa.array([d["id"] for d in deletes], pa.string())]
            )
            old_files = lake.files_of(state) if state else []
            files, rows = _merge(lake, old_files, staged, drop, version_dir, schema)
            lake.rm(lake.within(version_dir, "_staging"))
        if options.snapshot and not full:
            # every record of the snapshot is in the table, and nothing else
            server_all = await total_count(client, ReadPlan(url, None, None, True))
            if rows != server_all:
                raise ExtractError(
                    f"{resource.full_name} ({school_year}): after applying the changes the "
                    f"table has {rows} rows but the server holds {server_all}; rerun with "
                    f"full_refresh=['{resource.full_name}']."
                )
        result.rows = rows
        lease.check()
        committed = True  # from here the version is either current or never will be
        lake.commit(
            resource,
            school_year,
            {
                "resource": resource.full_name,
                "school_year": school_year,
                "change_version": max_cv,
                "version": version,
                "files": [lake.relative(f) for f in files],  # the lake can move
                "rows": rows,
                "run_id": options.run_id,
                "mode": result.mode,
                "committed_at": dt.datetime.now(dt.UTC).isoformat(),
                "columns": schema.names,
            },
            read,
            lease,
        )
        result.change_version = max_cv
    except BaseException as exc:
        # a version a committed state may name is never removed here: only one that lost
        # its compare-and-swap (Conflict) or never got to it
        if not committed or isinstance(exc, Conflict):
            lake.rm(version_dir)
        raise
    finally:
        result.seconds = round(time.perf_counter() - started, 3)
    return result


@dataclass
class _Lane:
    """One writer of a pull's pages: its own raw JSONL parts and parquet parts."""

    raw: JsonlGzWriter
    table: ParquetPartWriter


def _close_lanes(lanes: list[_Lane]) -> tuple[list[str], int]:
    """Every lane's parquet files and the rows they hold; a table with no rows still
    gets one (empty) file, so readers see its schema."""
    for lane in lanes:
        lane.raw.close()
    staged = [f for lane in lanes for f in lane.table.close(placeholder=False)]
    staged = staged or lanes[0].table.close()
    return staged, sum(lane.table.rows for lane in lanes)


def _store_page(
    page: RawPage,
    resource: Resource,
    school_year: int,
    max_cv: int,
    options: PullOptions,
    lane: _Lane,
) -> tuple[pa.Table, int]:
    jsonl, table, replaced = _convert(page, resource, school_year, max_cv, options)
    lane.raw.write(jsonl, table.num_rows)
    lane.table.write(table)
    return table, replaced


def _convert(
    page: RawPage, resource: Resource, school_year: int, max_cv: int, options: PullOptions
) -> tuple[bytes, pa.Table, int]:
    """A page as JSON lines and as typed rows, and how many invalid UTF-8 sequences it had.

    A page the fast cut gets wrong is redone. The JSON reader does not check
    UTF-8, and a string that is not UTF-8 makes a parquet file that pyarrow and
    DuckDB cannot read, so the page is checked first: it fails the resource (or,
    with ``invalid_utf8="replace"``, the bytes become U+FFFD and are counted).
    """
    replaced = 0
    try:
        page.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if options.invalid_utf8 != "replace":
            raise ExtractError(_invalid_utf8_message(page, resource, exc)) from None
        text = page.body.decode("utf-8", "replace")
        replaced = text.count("\ufffd") - page.body.decode("utf-8", "ignore").count("\ufffd")
        page = RawPage(text.encode("utf-8"), page.url, page.params)
    jsonl, count = page.jsonl()
    try:
        table = records_to_table(
            jsonl,
            resource,
            school_year=school_year,
            change_version=max_cv,
            pulled_at=options.pulled_at,
        )
        if table.num_rows == count:
            return jsonl, table, replaced
    except pa.ArrowInvalid:
        pass
    jsonl, count = page.exact_jsonl()  # raises EdFiMalformedError for broken JSON
    try:
        table = records_to_table(
            jsonl,
            resource,
            school_year=school_year,
            change_version=max_cv,
            pulled_at=options.pulled_at,
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ExtractError(
            f"{resource.full_name}: the page at {page.where} of {page.url} cannot be typed "
            f"by its OpenAPI schema ({exc}); the lake keeps its previous version."
        ) from None
    return jsonl, table, replaced


def _invalid_utf8_message(page: RawPage, resource: Resource, exc: UnicodeDecodeError) -> str:
    """Which resource, page, record and field hold bytes that are not UTF-8."""
    where = f"at byte {exc.start} of the page"
    try:
        records = json.loads(page.body.decode("utf-8", "surrogateescape"))
        found = _bad_string(records, "")
        if found is not None:
            path, record_id = found
            where = f"in field {path!r}" + (f" of record id {record_id!r}" if record_id else "")
    except ValueError:
        pass
    return (
        f"{resource.full_name}: the page at {page.where} of {page.url} has text that is "
        f"not valid UTF-8 {where}; nothing of this pull is committed (its parquet would be "
        "unreadable). Fix the record on the server, or run with invalid_utf8='replace' to "
        "store U+FFFD in place of the bad bytes (the run reports how many)."
    )


def _bad_string(value: Any, path: str, record_id: str = "") -> tuple[str, str] | None:
    """The first string (or key) holding undecodable bytes: its path and record id."""
    if isinstance(value, str):
        return (path, record_id) if any("\udc80" <= ch <= "\udcff" for ch in value) else None
    if isinstance(value, list):
        for i, item in enumerate(value):
            rid = record_id
            if not path and isinstance(item, dict):
                rid = str(item.get("id", ""))
            found = _bad_string(item, f"{path}[{i}]" if path else "", rid)
            if found is not None:
                return found
    if isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else key
            found = _bad_string(key, sub, record_id) or _bad_string(item, sub, record_id)
            if found is not None:
                return found
    return None


async def _has_tracked(client: EdFiClient, plan: ReadPlan, resource: Resource) -> bool:
    """Whether the window holds deletes or key changes."""
    if await total_count(client, plan, "/deletes"):
        return True
    return resource.key_changes and bool(await total_count(client, plan, "/keyChanges"))


def _verify(resource: Resource, got: int, expected: int, tolerance: float) -> None:
    if got == expected:
        return
    if expected and abs(got - expected) / expected <= tolerance:
        return
    if got > expected:
        raise ExtractError(
            f"{resource.full_name}: the server's Total-Count says {expected} records but it "
            f"served {got} (pages past the count still held records); its count is wrong, so "
            "the pull is not committed. Ask the API's owner to check the server (ODS/API "
            "before 7.3 miscounts some filtered queries), or raise count_tolerance."
        )
    raise ExtractError(
        f"{resource.full_name}: read {got} records but the server counted {expected} for the "
        "same window; the pull is not committed. If the server changes data during pulls and "
        "has no snapshots, raise count_tolerance or run again."
    )


def _merge(
    lake: Lake,
    old_files: Iterable[str],
    staged: Iterable[str],
    drop: pa.Array,
    version_dir: str,
    schema: pa.Schema,
) -> tuple[list[str], int]:
    """The new version: old rows not changed or deleted, then the changed rows; its
    files and how many rows they hold."""
    writer = ParquetPartWriter(lake, version_dir, schema, prefix="part-0")
    drop_set = pc.unique(drop) if len(drop) else drop
    for batch in iter_batches(lake, old_files, schema):
        if len(drop_set):
            batch = batch.filter(pc.invert(pc.is_in(batch.column("id"), value_set=drop_set)))
        writer.write(batch)
    for batch in iter_batches(lake, staged, schema):
        writer.write(batch)
    files = writer.close()
    return files, writer.rows


async def newest_change_version(client: EdFiClient, change_url: str, snapshot: bool) -> int:
    resp = await client.request(
        "GET",
        f"{change_url}/availableChangeVersions",
        headers={"Use-Snapshot": "true"} if snapshot else None,
        parse_json=True,
    )
    body = resp.json() or {}
    for name in ("newestChangeVersion", "NewestChangeVersion"):
        if name in body:
            return int(body[name])
    raise ExtractError(f"{change_url}/availableChangeVersions has no newestChangeVersion.")
