"""Prefect task of the bundle flow: one earthmover run (one bundle on one input file)."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from edfi.bundle import CrosswalkOptions, RunOutcome, Staged, execute
from edfi.lake import Lake


@task(name="bundle-run", task_run_name="{label}", cache_policy=NONE)
async def run_bundle(
    label: str,
    staged: Staged,
    lake: Lake,
    folder: str,
    crosswalk: CrosswalkOptions | None,
    storage_options: dict[str, Any],
    gate: asyncio.Semaphore,
) -> RunOutcome:
    """Crosswalk, earthmover and the run's files on the lake; earthmover runs in a
    subprocess, so runs overlap (``gate`` caps how many at once)."""
    async with gate:
        outcome = await asyncio.to_thread(execute, staged, lake, folder, crosswalk, storage_options)
    x = outcome.crosswalk
    get_run_logger().info(
        "%s: earthmover made %s (%d identical records collapsed)%s",
        label,
        ", ".join(f"{n} {k}" for k, n in outcome.counts.items()) or "nothing",
        outcome.duplicates,
        f"; {x.matched} rows crosswalked, {x.unmatched} unmatched" if x else "",
    )
    return outcome
