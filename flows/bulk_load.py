"""Bulk load flow: Ed-Fi XML interchange files -> an Ed-Fi API. Replaces the Bulk Load Client.

The files (a folder or one file on any fsspec storage, ``*.xml`` and
``*.xml.gz``, recursive) are checked and optionally validated against the DS
5.2 interchange schema first; a file that fails is skipped whole and listed
with its line. The rest is mapped exactly (``edfi.xml``) onto the target's own
model and written through the sender, one task per resource in dependency
order. What the target accepted is kept per target on the ``state`` storage,
so a rerun skips it; every element that failed is kept in the rejects store
with its file, line and element. The run fails when anything failed.
"""

import datetime as dt
import uuid
from collections import Counter
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.client import Connection, EdFiClient
from edfi.errors import SendError
from edfi.rejects import UPSERT, Reject, RejectsStore, summarize
from edfi.schedule import Outcome
from edfi.send import Sender, SendOptions, write_connection
from edfi.sendstate import SendState, target_id
from edfi.xml.bulk import BulkLoad, RejectSource, ResourceRow
from edfi.xml.bulkapi import BulkUpload, bulk_url
from edfi.xml.reader import XmlLoad, interchange_name, list_files
from edfi.xml.spool import SpoolReport, XmlSpool
from flows.runners import API_FLOW_WORKERS, file_parallel
from tasks.bulk_load import load_resource, read_xml

COLUMNS = ("resource", "elements", "sent", "skipped", "invalid", "failed", "blocked", "status")


@flow(
    name="edfi-bulk-load",
    description="Ed-Fi XML interchange files -> an Ed-Fi API, mapped exactly from the "
    "schemas, in dependency order, resumable.",
    task_runner=file_parallel(API_FLOW_WORKERS),  # bounded: see flows.runners
)
async def bulk_load(
    connection: EdFiConnection | str,
    state: LakeStorage | str,
    data: str | None = None,
    interchanges: list[str] | str | None = None,
    validate_xsd: bool = True,
    method: Literal["api", "bulk"] = "api",
    force: bool = False,
    resend_rejects: bool = False,
    school_year: int | None = None,
    write_concurrency: int = 32,
    resource_parallelism: int = 8,
    max_failures: int | None = None,
    data_storage_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load interchange XML files into an Ed-Fi API.

    Args:
        connection: ``EdFiConnection`` block (or saved block name) of the target.
        state: ``LakeStorage`` block (or name) keeping what the target accepted and
            the rejects of each run.
        data: a folder or file URL (any fsspec storage) of ``*.xml`` / ``*.xml.gz``
            interchange files, read recursively.
        interchanges: only these interchanges (``Student``, ``StudentEnrollment``, …).
        validate_xsd: validate each file against the DS 5.2 interchange schema first
            (an invalid file is skipped whole and listed with its line).
        method: ``api``: records mapped here, transactional POSTs through the sender;
            ``bulk``: the files handed to the server's legacy Bulk Load Services
            (``/bulk/v1``: declared, uploaded in chunks, committed, polled), its
            exceptions kept as rejects. ``force`` and the state do not apply to it: the
            server loads whole files (an upsert, so a rerun is harmless).
        force: send elements the target already accepted unchanged.
        resend_rejects: send the last run's rejects again (after the target, or the
            records, were fixed) instead of reading ``data``.
        school_year: year of a year-specific API (default: the connection's latest).
        write_concurrency: writes in flight to the target at once.
        resource_parallelism: resources loaded at once.
        max_failures: stop once this many records failed.
        data_storage_options: fsspec options for ``data`` (credentials of its storage).

    Returns the run summary: status, counts, one row per resource, where the rejects are.
    """
    logger = get_run_logger()
    if method not in ("api", "bulk"):
        raise SendError(f"method {method!r} is not supported; use 'api' or 'bulk'.")
    if method == "bulk" and resend_rejects:
        raise SendError(
            "resend_rejects works with method='api' only: the bulk services load whole files; "
            "fix the files and load them again."
        )
    if not resend_rejects and not data:
        raise SendError("Set `data`: the folder or file URL of the XML interchange files.")
    block: EdFiConnection = await aload_block(connection, EdFiConnection)
    lake_block: LakeStorage = await aload_block(state, LakeStorage)
    lake = lake_block.lake()
    lake.check_writable()
    year = _year(block, school_year)
    target = target_id(block.base_url, school_year=year, tenant=block.tenant)
    store = RejectsStore(lake, "_bulk_load_rejects", target)
    started = dt.datetime.now(dt.UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    conn = write_connection(block.connection(), write_concurrency)

    if method == "bulk":
        assert data is not None
        return await _bulk_method(
            conn, year, data, interchanges, store, run_id, started, data_storage_options
        )

    async with EdFiClient(conn) as client:
        model = await client.load_model(year)
        sender = Sender(
            client,
            model,
            client.url("dataManagementApi", year),
            SendOptions(
                concurrency=write_concurrency,
                per_resource=min(write_concurrency, 24),
                max_failures=max_failures,
            ),
        )
        report: SpoolReport | None = None
        spool: XmlSpool | None = None
        if resend_rejects:
            last = lake.read_json(lake.path("_bulk_load_rejects", target, "last_run.json"))
            if not last:
                raise SendError("No earlier bulk load to this target kept rejects to resend.")
            previous = store.read(last["run_id"])
            source: Any = RejectSource(previous)
            logger.info("Resending %d rejects of run %s", len(previous), last["run_id"])
        else:
            assert data is not None
            files = list_files(data, data_storage_options)
            load = XmlLoad(
                files,
                model,
                validate=validate_xsd,
                interchanges=(
                    [i.strip() for i in interchanges.split(",") if i.strip()]
                    if isinstance(interchanges, str)
                    else interchanges
                ),
                storage_options=data_storage_options,
            )
            spool = XmlSpool(load)
            report = await read_xml(spool)
            for p in report.file_problems:
                logger.error("Skipped %s (line %d): %s", p.file, p.line, p.message)
            for element, count in sorted(report.unsupported.items()):
                logger.warning(
                    "%d %s elements skipped: the target has no resource for them", count, element
                )
            logger.info(
                "Read %d files: %d elements for %d resources",
                report.files,
                sum(report.records.values()) + sum(report.element_problems.values()),
                len(report.records),
            )
            source = spool
        loader = BulkLoad(
            model,
            source,
            sender,
            state=SendState(lake_block.url, target, storage_options=lake_block.fsspec_options()),
            force=force or resend_rejects,
            parallelism=resource_parallelism,
        )

        units = [p for p in source.resources() if p in model]
        progress_id = await acreate_progress_artifact(
            progress=0.0,
            key="edfi-bulk-load-progress",
            description=f"Bulk load {run_id}: {len(units)} resources",
        )
        finished = 0

        async def run_one(path: str) -> ResourceRow:
            return await load_resource(loader, path, label=model[path].name)

        async def done(outcome: Outcome[str, ResourceRow]) -> None:
            nonlocal finished
            finished += 1
            await aupdate_progress_artifact(progress_id, 100.0 * finished / max(1, len(units)))
            row = outcome.result
            if row is not None and row.status != "sent":
                logger.error(
                    "%s: %d invalid, %d failed, %d blocked of %d",
                    outcome.unit,
                    row.invalid,
                    row.failed,
                    row.blocked,
                    row.elements,
                )

        try:
            result = await loader.run(run_one, done)
        finally:
            if spool is not None:
                spool.close()

    manifest = store.write(run_id, result.rejects) if result.rejects else None
    if manifest is not None:
        lake.write_json(
            lake.path("_bulk_load_rejects", target, "last_run.json"), {"run_id": run_id}
        )
    rows = [r.as_row() for r in result.rows.values()]
    file_problems = [p.__dict__ for p in report.file_problems] if report else []
    seconds = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2)
    totals = Counter[str]()
    for r in rows:
        for k in ("elements", "sent", "skipped", "invalid", "failed", "blocked"):
            totals[k] += r[k]
    failed = result.failed + len(file_problems)
    status = "failed" if failed else "completed"
    summary: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        **totals,
        "files": report.files if report else 0,
        "file_problems": file_problems,
        "unsupported": dict(report.unsupported) if report else {},
        "resources": rows,
        "seconds": seconds,
        "records_per_second": round(totals["sent"] / seconds, 1) if seconds else 0.0,
        "rejects": manifest,
    }
    await acreate_table_artifact(
        table=[{k: r[k] for k in COLUMNS} for r in rows],
        key="edfi-bulk-load-summary",
        description=f"Bulk load {run_id} ({status}): {totals['sent']} sent, "
        f"{totals['skipped']} already there, {failed} failed, in {seconds}s",
    )
    if report is not None and report.per_interchange:
        await acreate_table_artifact(
            table=[
                {"interchange": i, "resource": r, "elements": n}
                for (i, r), n in sorted(report.per_interchange.items())
            ],
            key="edfi-bulk-load-interchanges",
            description=f"Elements per interchange and resource, run {run_id}",
        )
    if failed:
        await acreate_markdown_artifact(
            markdown=_problems_markdown(result.rejects, file_problems),
            key="edfi-bulk-load-rejects",
            description=f"What bulk load {run_id} could not load",
        )
        raise SendError(
            f"Bulk load {run_id}: {failed} failed ({len(file_problems)} files skipped, "
            f"{totals['invalid']} invalid elements, {totals['failed']} refused, "
            f"{totals['blocked']} blocked); the rejects name each one"
            + (f" ({manifest['count']} kept on the state storage)." if manifest else ".")
        )
    logger.info(
        "Loaded %d records (%d already there) in %.1fs", totals["sent"], totals["skipped"], seconds
    )
    return summary


def _year(block: EdFiConnection, asked: int | None) -> int | None:
    if not block.school_years:
        return asked
    if asked is None:
        return max(block.school_years)
    if asked not in block.school_years:
        raise SendError(
            f"school_year {asked} is not among the connection's school years "
            f"{block.school_years} ({block.base_url})."
        )
    return asked


def _problems_markdown(rejects: list[Any], file_problems: list[dict[str, Any]]) -> str:
    lines = ["# What was not loaded", ""]
    if file_problems:
        lines += ["## Files skipped", "", "| file | line | problem |", "|---|---|---|"]
        lines += [f"| {p['file']} | {p['line']} | {p['message']} |" for p in file_problems]
        lines.append("")
    if rejects:
        lines += [
            "## Rejected elements",
            "",
            "| resource | count | cause | where |",
            "|---|---|---|---|",
        ]
        for g in summarize(rejects)[:20]:
            lines.append(
                f"| {g['resource']} | {g['count']} | {g['cause']} | {'; '.join(g['where'])} |"
            )
    return "\n".join(lines)


async def _bulk_method(
    conn: Connection,
    year: int | None,
    data: str,
    interchanges: list[str] | str | None,
    store: RejectsStore,
    run_id: str,
    started: dt.datetime,
    storage_options: dict[str, Any] | None,
) -> dict[str, Any]:
    """``method="bulk"``: the files through ``/bulk/v1``; exceptions become rejects."""
    logger = get_run_logger()
    files = list_files(data, storage_options)
    wanted = (
        {
            interchange_name(i.strip())
            for i in (interchanges.split(",") if isinstance(interchanges, str) else interchanges)
            if i.strip()
        }
        if interchanges
        else None
    )
    async with EdFiClient(conn) as client:
        await client.discover()
        seen: set[str] = set()

        def progress(status: dict[str, Any]) -> None:
            if status.get("status") not in seen:
                seen.add(str(status.get("status")))
                logger.info("Bulk operation %s: %s", status.get("id"), status.get("status"))

        result = await BulkUpload(client, bulk_url(client, year), on_status=progress).run(
            files, storage_options, wanted
        )
    rejects: list[Reject] = []
    file_problems: list[dict[str, Any]] = []
    for f in result.files:
        for e in f.exceptions:
            if e.get("element") is None and e.get("resource") is None:
                file_problems.append(
                    {"file": f.file, "line": int(e.get("lineNumber") or 0), "message": e["message"]}
                )
                continue
            rejects.append(
                Reject(
                    str(e.get("resource") or ""),
                    UPSERT,
                    e.get("code"),
                    str(e.get("message")),
                    origin={
                        "file": f.file,
                        "line": e.get("lineNumber"),
                        "element": e.get("element"),
                        "interchange": f.interchange,
                    },
                )
            )
    for p in file_problems:
        logger.error("Skipped %s (line %d): %s", p["file"], p["line"], p["message"])
    manifest = store.write(run_id, rejects) if rejects else None
    seconds = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2)
    rows = [
        {
            "file": f.file,
            "interchange": f.interchange,
            "bytes": f.size,
            "status": f.status,
            "loaded": f.loaded,
            "exceptions": len(f.exceptions),
        }
        for f in result.files
    ]
    sent = sum(f.loaded for f in result.files)
    failed = len(rejects) + len(file_problems)
    status = "failed" if failed else "completed"
    summary: dict[str, Any] = {
        "run_id": run_id,
        "status": status,
        "method": "bulk",
        "operation": result.id,
        "sent": sent,
        "failed": len(rejects),
        "files": len(result.files),
        "file_problems": file_problems,
        "uploads": rows,
        "seconds": seconds,
        "phases": result.seconds,
        "records_per_second": round(sent / seconds, 1) if seconds else 0.0,
        "rejects": manifest,
    }
    await acreate_table_artifact(
        table=rows,
        key="edfi-bulk-load-summary",
        description=f"Bulk load {run_id} through /bulk/v1 ({status}): {sent} loaded, "
        f"{failed} failed, in {seconds}s",
    )
    if failed:
        await acreate_markdown_artifact(
            markdown=_problems_markdown(rejects, file_problems),
            key="edfi-bulk-load-rejects",
            description=f"What bulk load {run_id} could not load",
        )
        raise SendError(
            f"Bulk load {run_id} (bulk operation {result.id}): {failed} failed "
            f"({len(file_problems)} files skipped, {len(rejects)} records refused); the "
            "rejects name each one"
            + (f" ({manifest['count']} kept on the state storage)." if manifest else ".")
        )
    logger.info("Loaded %d records through /bulk/v1 in %.1fs", sent, seconds)
    return summary
