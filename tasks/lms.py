"""Prefect tasks of the LMS flow: one for the load, one for the harmonizer."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from edfi.lms import load_directory
from edfi.lms.harmonize import HarmonizeResult, Rules, harmonize


@task(name="lms-load", cache_policy=NONE)
def load_task(
    url: str,
    engine: Any,
    storage_options: dict[str, Any],
    exceptions_url: str,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Every unprocessed extractor file into the store; returns the run's summary."""
    result = load_directory(
        url, engine, storage_options=storage_options, exceptions_url=exceptions_url, now=now
    )
    logger = get_run_logger()
    for f in result.loaded:
        if f.parentless:
            logger.warning(
                "%s: %d rows whose parent is missing (see %s)",
                f.path,
                f.parentless,
                f.exceptions_path,
            )
    return result.summary()


@task(name="lms-harmonize", cache_policy=NONE)
async def harmonize_task(
    client: Any,
    engine: Any,
    writer: Any,
    base_url: str,
    exceptions_url: str,
    storage_options: dict[str, Any],
    rules: Rules,
    now: datetime | None = None,
    lake: Any = None,
    school_year: int = 0,
) -> HarmonizeResult:
    """Match, plan and send the lmsx differences; exception reports on the lake."""
    return await harmonize(
        client,
        engine,
        writer,
        base_url=base_url,
        exceptions_url=exceptions_url,
        rules=rules,
        now=now,
        storage_options=storage_options,
        lake=lake,
        school_year=school_year,
    )
