"""Prefect tasks of the gold flow."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from edfi.amt import GoldBuild, YearPart
from flows.runners import api_slot


@task(name="gold-school-year", task_run_name="school year {year}", cache_policy=NONE)
def build_year(build: GoldBuild, year: int, limit: str | None = None) -> YearPart:
    """Every AMT view of one school year, in a DuckDB session of its own (a thread of this
    process, or a Dask worker elsewhere). ``limit``: a global concurrency limit whose slot
    the task holds while it runs (the lake storage's, when one is set on the server)."""
    logger = get_run_logger()
    with api_slot(limit):
        part = build.build_year(year)
    for r in part.results:
        logger.info("%s: %d rows in %.2fs", r.view, r.rows, r.seconds)
    return part
