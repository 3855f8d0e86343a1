"""Prefect tasks of the publish flow."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from edfi.publish import Publisher, ResourceStats, Unit


@task(name="publish-resource", task_run_name="{label}", cache_policy=NONE)
async def publish_unit(publisher: Publisher, unit: Unit, label: str) -> ResourceStats:
    """One (stage, resource); requests are retried inside the client, not by Prefect."""
    return await publisher.run_unit(unit)
