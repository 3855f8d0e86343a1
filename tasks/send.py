"""Prefect tasks of the send flow: validation, and one task per resource.

A resource whose records failed ends in a Failed state carrying its summary
row (Prefect shows what happened, not "Completed" over a loss); the flow reads
the row from the state either way.
"""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE
from prefect.states import Completed, Failed, State

from edfi.filesend import ResourceResult
from edfi.sendrun import DESCRIPTORS, SendRun
from edfi.validate.inputs import InputReport


def _state(result: ResourceResult, verb: str) -> State[Any]:
    name = result.resource
    if result.status.ok:
        return Completed(
            message=f"{name}: {result.status} ({result.sent or result.deleted} {verb}, "
            f"{result.skipped} skipped)",
            data=result,
        )
    return Failed(
        message=f"{name}: {result.failed} of {result.processed} records failed"
        + (f" ({result.message})" if result.message else ""),
        data=result,
    )


@task(name="send-resource", task_run_name="send {path}", cache_policy=NONE)
async def send_resource(run: SendRun, path: str) -> State[Any]:
    """Upsert one resource's records; requests are retried inside the client, not by Prefect."""
    (result,) = await run.run_unit(path, [path])
    return _state(result, "sent")


@task(name="send-descriptors", task_run_name="descriptors ({count} types)", cache_policy=NONE)
async def _descriptor_types(run: SendRun, paths: list[str], count: int) -> State[Any]:
    results = await run.run_unit(DESCRIPTORS, paths)
    failed = [r for r in results if not r.status.ok]
    if failed:
        return Failed(
            message=f"{sum(r.failed for r in failed)} records of {len(failed)} descriptor types "
            f"failed ({', '.join(r.resource for r in failed[:5])})",
            data=results,
        )
    return Completed(
        message=f"{len(results)} descriptor types: {sum(r.sent + r.deleted for r in results)} "
        f"written, {sum(r.skipped for r in results)} skipped",
        data=results,
    )


def descriptor_types(run: SendRun, paths: list[str], **kwargs: Any) -> Any:
    """Every descriptor type in one task (they depend on nothing; a task each costs more)."""
    return _descriptor_types(run, paths, len(paths), **kwargs)


@task(name="resend-deferred", task_run_name="resend deferred {path}", cache_policy=NONE)
async def resend_deferred(run: SendRun, path: str) -> State[Any]:
    """POST again the records the target refused with 403 before their associations existed."""
    assert run.job is not None
    return _state(await run.job.resend_deferred(path), "sent")


@task(name="delete-resource", task_run_name="delete {path}", cache_policy=NONE)
async def delete_resource(run: SendRun, path: str) -> State[Any]:
    """Delete one resource's records by natural key."""
    (result,) = await run.run_unit(path, [path])
    return _state(result, "deleted")


@task(name="validate-input", cache_policy=NONE)
async def validate_input_task(run: SendRun) -> State[Any]:
    """Every validation layer over every selected resource; Failed when a record is invalid."""
    report: InputReport = await run.validate()
    if report.failed:
        return Failed(
            message=f"{report.failed} of {report.records} records are invalid", data=report
        )
    return Completed(message=f"{report.records} records valid", data=report)
