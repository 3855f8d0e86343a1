"""Bulk load flow: Ed-Fi XML interchange files -> an Ed-Fi API. Replaces the Bulk Load Client.

The files (a folder or one file on any fsspec storage, ``*.xml`` and
``*.xml.gz``, recursive) are checked and optionally validated against the DS
5.2 interchange schema first; a file that fails is skipped whole and listed
with its line. The rest is mapped exactly (``edfi.xml``) onto the target's own
model and written through the sender, one task per resource in dependency
order. What the target accepted is kept per target on the ``state`` storage,
so a rerun skips it; every element that failed is kept in the rejects store
with its file, line and element. The run fails when anything failed.

The run itself lives in the core (``edfi.xml.run.BulkLoadRun``: settings,
source, send or upload, rejects, summary); this flow resolves the blocks,
reads the files as one task and sends each resource as one task, and
publishes progress and the summary as artifacts.
"""

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.client import EdFiClient, choose_school_year
from edfi.errors import SendError
from edfi.schedule import Outcome
from edfi.send import write_connection
from edfi.sendstate import target_id
from edfi.xml.bulk import ResourceRow
from edfi.xml.run import BulkLoadRun, BulkLoadSettings, LogLine
from flows.progress import RunProgress
from flows.runners import API_FLOW_WORKERS, file_parallel
from tasks.bulk_load import check_xml, load_resource


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
    extension_xsd: list[str] | str | None = None,
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
            exceptions kept as rejects. Both keep what the target accepted on
            ``state`` (``bulk``: per element) and skip it on a rerun.
        force: send elements the target already accepted unchanged.
        resend_rejects: send the last run's rejects again (after the target, or the
            records, were fixed) instead of reading ``data`` (``api`` only).
        school_year: year of a year-specific API (default: the connection's latest).
        write_concurrency: writes in flight to the target at once.
        resource_parallelism: resources loaded at once.
        max_failures: stop once this many records failed.
        data_storage_options: fsspec options for ``data`` (credentials of its storage).
        extension_xsd: folders or files (URLs) of Ed-Fi extension XSDs, named as the
            ODS/API serves them (``TPDM-EXTENSION-*.xsd``, from ``/metadata/xsd/tpdm/files``);
            their elements load into ``_ext.<project>`` and their entities into the
            project's resources (read with ``data_storage_options``). A mapping that
            cannot be derived fails the run before anything is read, listing each element
            and property (``api`` only).

    Returns the run summary: status, counts, one row per resource (``bulk``: per
    uploaded file), where the rejects are.
    """
    settings = BulkLoadSettings(
        data=data,
        interchanges=interchanges,
        validate_xsd=validate_xsd,
        method=method,
        force=force,
        resend_rejects=resend_rejects,
        write_concurrency=write_concurrency,
        resource_parallelism=resource_parallelism,
        max_failures=max_failures,
        data_storage_options=data_storage_options,
        extension_xsd=extension_xsd,
    )
    settings.check()
    block: EdFiConnection = await aload_block(connection, EdFiConnection)
    lake_block: LakeStorage = await aload_block(state, LakeStorage)
    year = choose_school_year(block.school_years, school_year, block.base_url)
    run = BulkLoadRun(
        settings,
        lake=lake_block.lake(),
        state_url=lake_block.url,
        state_options=lake_block.fsspec_options(),
        target=target_id(block.base_url, school_year=year, tenant=block.tenant),
        school_year=year,
    )
    async with EdFiClient(write_connection(block.connection(), write_concurrency)) as client:
        _log(await run.open(client))
        if method == "bulk":
            await run.upload(client, _status_logger())
            _log(run.upload_messages())
        else:
            await _send(run)
    summary = run.finish()
    await acreate_table_artifact(
        table=run.table(), key="edfi-bulk-load-summary", description=run.table_description()
    )
    if run.interchange_table():
        await acreate_table_artifact(
            table=run.interchange_table(),
            key="edfi-bulk-load-interchanges",
            description=f"Elements per interchange and resource, run {run.run_id}",
        )
    if run.failed:
        await acreate_markdown_artifact(
            markdown=run.problems_markdown(),
            key="edfi-bulk-load-rejects",
            description=f"What bulk load {run.run_id} could not load",
        )
        raise SendError(run.failure_message())
    get_run_logger().info("%s", run.done_message())
    return summary


async def _send(run: BulkLoadRun) -> None:
    """The ``api`` method: the files checked as one task, then each resource as one task
    (the core converts the files meanwhile)."""
    logger = get_run_logger()
    try:
        if run.spool is not None:
            _log(run.check_messages(await check_xml(run.spool)))
        units = run.units
    except BaseException:
        run.close()
        raise
    # the shared progress: the artifact (updates throttled) and the CLI's progress bar
    progress = await RunProgress(
        "edfi-bulk-load-progress", len(units), f"Bulk load {run.run_id}"
    ).start()

    async def one(path: str) -> ResourceRow:
        assert run.loader is not None
        return await load_resource(run.loader, path, label=run.label(path))

    async def done(outcome: Outcome[str, ResourceRow]) -> None:
        row = outcome.result
        await progress.advance(run.label(outcome.unit), row.sent if row is not None else 0)
        if row is not None and row.status != "sent":
            logger.error(
                "%s: %d invalid, %d failed, %d blocked of %d",
                outcome.unit,
                row.invalid,
                row.failed,
                row.blocked,
                row.elements,
            )

    await run.send(one, done)
    _log(run.read_log)


def _status_logger() -> Any:
    """Log each new status of the bulk operation once."""
    logger = get_run_logger()
    seen: set[str] = set()

    def progress(status: dict[str, Any]) -> None:
        if status.get("status") not in seen:
            seen.add(str(status.get("status")))
            logger.info("Bulk operation %s: %s", status.get("id"), status.get("status"))

    return progress


def _log(lines: list[LogLine]) -> None:
    logger = get_run_logger()
    for level, message in lines:
        logger.log(level, "%s", message)
