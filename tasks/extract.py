"""Prefect tasks of the extract flow: thin wrappers giving the core retries and a log line."""

from __future__ import annotations

import asyncio
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from edfi.client import EdFiClient, EdFiError, counting
from edfi.extract import PullOptions, ResourceResult, extract_resource
from edfi.lake import Lake, LakeError
from edfi.model import Resource
from edfi.vocabulary import Mode, ResourceStatus


@task(
    name="extract-resource",
    task_run_name="{label}",
    cache_policy=NONE,
    retries=1,
    retry_delay_seconds=5,
)
async def pull_resource(
    client: EdFiClient,
    lake: Lake,
    resource: Resource,
    *,
    label: str,
    data_url: str,
    school_year: int,
    max_cv: int,
    mode: Mode,
    options: PullOptions,
    counted: int | None = None,
) -> dict[str, Any]:
    """One (school year, resource): the core does the work; the task adds retries and a log.

    ``counted``: the resource's Total-Count up to ``max_cv``, as the flow just counted it.
    """
    result = await extract_resource(
        client,
        lake,
        resource,
        data_url=data_url,
        school_year=school_year,
        max_cv=max_cv,
        mode=mode,
        options=options,
        counted=counted,
    )
    get_run_logger().info(
        "%s: %s (%s) %d records, %d deletes, %d key changes, %d rows, %.1fs",
        label,
        result.status,
        result.mode,
        result.records,
        result.deletes,
        result.key_changes,
        result.rows,
        result.seconds,
    )
    return result.as_row()


@task(
    name="extract-descriptors",
    task_run_name="{label}",
    cache_policy=NONE,
    retries=1,
    retry_delay_seconds=5,
)
async def pull_descriptors(
    client: EdFiClient,
    lake: Lake,
    resources: list[Resource],
    *,
    label: str,
    data_url: str,
    school_year: int,
    max_cv: int,
    mode: Mode,
    refresh: set[str],
    options: PullOptions,
    counted: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """All descriptor resources of a year in one task (or all the empty ones).

    An API has a hundred or more descriptor resources of a few rows each; a
    Prefect task apiece would cost more in orchestration than the pull itself.
    Each is still pulled, verified and committed on its own. ``counted``: the
    Total-Count up to ``max_cv`` of those the flow just counted, by path.
    """

    async def one(resource: Resource) -> dict[str, Any]:
        # each resource's row shows its own requests, a failed one's too (the flow
        # counts the whole task only for its log line)
        with counting() as counts:
            try:
                result = await extract_resource(
                    client,
                    lake,
                    resource,
                    data_url=data_url,
                    school_year=school_year,
                    max_cv=max_cv,
                    mode="full" if resource.path in refresh else mode,
                    options=options,
                    counted=(counted or {}).get(resource.path),
                )
            except (EdFiError, LakeError, OSError) as exc:
                get_run_logger().error("%s %s failed: %s", resource.full_name, school_year, exc)
                result = ResourceResult(
                    resource.full_name, school_year, ResourceStatus.FAILED, message=str(exc)
                )
        return result.count(counts).as_row()

    rows = list(await asyncio.gather(*(one(r) for r in resources)))
    get_run_logger().info(
        "%s: %d resources, %d records, %d failed",
        label,
        len(rows),
        sum(r["records"] for r in rows),
        sum(r["status"] == ResourceStatus.FAILED for r in rows),
    )
    return rows
