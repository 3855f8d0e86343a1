"""Prefect tasks of the publish flow."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE
from prefect.states import Failed

from edfi.publish import Publisher, ResourceStats, Unit


@task(name="publish-resource", task_run_name="{label}", cache_policy=NONE)
async def publish_unit(publisher: Publisher, unit: Unit, label: str) -> Any:
    """One (stage, resource); requests are retried inside the client, not by Prefect.

    A unit whose records the target refused finishes (its dependents still run,
    record by record) but its task ends Failed, so the UI shows what the
    summary row says.
    """
    stats: ResourceStats = await publisher.run_unit(unit)
    if stats.records_failed:
        return Failed(
            message=f"{label}: {stats.failed} records refused, {stats.blocked} blocked "
            "(kept in the rejects)",
            data=stats,
        )
    return stats
