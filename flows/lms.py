"""LMS flow: extractor CSVs -> the LMS data store -> harmonized with Ed-Fi -> lmsx.

The LMS Toolkit's loader and harmonizer on Prefect. ``steps`` runs the load,
the harmonizer, or both (the default). The extract is read from the
``extract`` storage block (any fsspec URL, e.g. the bucket the extractors
write to); the LMS data store is the ``database`` block (SQLite by default);
the harmonizer reads the target through the ``connection`` block and writes
``lmsx`` assignments and submissions through the one sender. Parentless rows
and harmonizer exceptions land as CSVs under ``reports`` on the extract's
storage, and a table artifact gives their counts.
"""

from datetime import datetime
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact

from blocks import EdFiConnection, LakeStorage, LmsDatabase, aload_block
from edfi.client import EdFiClient
from edfi.errors import LmsError
from edfi.lms.harmonize import Rules
from flows.runners import API_FLOW_WORKERS, threads
from tasks.lms import harmonize_task, load_task


def _join(url: str, path: str) -> str:
    return f"{url.rstrip('/')}/{path.strip('/')}" if path else url


@flow(
    name="edfi-lms",
    description="LMS extractor CSVs -> LMS data store (lms schema) -> harmonized with Ed-Fi "
    "-> lmsx assignments and submissions.",
    task_runner=threads(API_FLOW_WORKERS),  # bounded: see flows.runners
)
async def lms(
    extract: LakeStorage | str,
    database: LmsDatabase | str,
    connection: EdFiConnection | str | None = None,
    steps: Literal["load", "harmonize", "both"] = "both",
    extract_path: str = "",
    reports_path: str = "_lms-reports",
    user_rules: dict[str, str] | None = None,
    school_year: int | None = None,
    now: datetime | None = None,
    edfi_lake: LakeStorage | str | None = None,
) -> dict[str, Any]:
    """Load the extract, then harmonize it into the target API.

    Args:
        extract: storage block (or its saved name) of the extractors' output.
        database: the LMS data store block (or its saved name).
        connection: the target Ed-Fi API block (or its saved name); needed to harmonize.
        steps: ``load``, ``harmonize`` or ``both``.
        extract_path: folder below the storage block's URL holding the extract.
        reports_path: folder below the storage block's URL for exception reports.
        user_rules: source system -> ``sis`` or ``email`` (how its users match students;
            default Canvas and Schoology by SIS id, Google by email).
        school_year: the school year of a year-specific target API.
        now: the run's time (default: now); soft deletes and Schoology's missing/upcoming
            submissions are decided against it.
        edfi_lake: an extract lake (block or saved name) to read students, their mails and
            sections from instead of the API.
    """
    logger = get_run_logger()
    storage = await aload_block(extract, LakeStorage)
    db = await aload_block(database, LmsDatabase)
    options = storage.fsspec_options()
    url = _join(storage.url, extract_path)
    reports = _join(storage.url, reports_path)
    engine = db.engine()
    summary: dict[str, Any] = {}
    rows: list[dict[str, Any]] = []
    try:
        if steps in ("load", "both"):
            loaded = load_task(url, engine, options, f"{reports}/parentless", now)
            summary["load"] = loaded
            rows.append({"report": "parentless rows", "count": loaded["parentless"]})
            logger.info(
                "loaded %d files (%d skipped): %d inserted, %d updated, %d soft-deleted",
                loaded["files_loaded"],
                loaded["files_skipped"],
                loaded["inserted"],
                loaded["updated"],
                loaded["deleted"],
            )
        if steps in ("harmonize", "both"):
            if connection is None:
                raise LmsError("Harmonizing needs the target API: set the connection block.")
            conn_block = await aload_block(connection, EdFiConnection)
            from edfi.send import Sender, write_connection

            rules = Rules(users=user_rules) if user_rules else Rules()
            async with EdFiClient(write_connection(conn_block.connection())) as client:
                await client.discover()
                base = client.url("dataManagementApi", school_year)
                model = await client.load_model(school_year)
                if "/lmsx/assignments" not in model.resources:
                    raise LmsError(
                        "The target API has no lmsx extension (/lmsx/assignments): install "
                        "the Ed-Fi LMS extension on the ODS/API before harmonizing."
                    )
                sender = Sender(client, model, base)
                lake = None
                if edfi_lake is not None:
                    lake = (await aload_block(edfi_lake, LakeStorage)).lake()
                result = await harmonize_task(
                    client,
                    engine,
                    sender,
                    base,
                    f"{reports}/harmonizer",
                    options,
                    rules,
                    now,
                    lake,
                    school_year or 0,
                )
            summary["harmonize"] = {
                "matched": result.matched,
                "exceptions": result.exceptions,
                "changes": result.changes,
                "reports": result.reports,
                "rejects": len(sender.rejects),
            }
            rows.extend({"report": k, "count": v} for k, v in result.exceptions.items())
            if sender.rejects:
                raise LmsError(
                    f"{len(sender.rejects)} lmsx records were refused by the target; "
                    "see the run's rejects and rerun after fixing them."
                )
    finally:
        engine.dispose()
        if rows:
            await acreate_table_artifact(
                key="lms-exceptions", table=rows, description="LMS exception counts"
            )
    return summary


if __name__ == "__main__":
    import asyncio
    import sys

    print(asyncio.run(lms(LakeStorage(url=sys.argv[1]), LmsDatabase(), steps="load")))
