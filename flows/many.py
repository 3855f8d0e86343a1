"""Scale-out: one deployment run per district API, spread over the work pool's workers.

A state or collaborative pulls (or publishes) many district APIs. The parent
flow here does no API work itself: it starts one run of a deployment per API
and school year (``run_deployment``), so Prefect's work pool hands them to
however many workers exist, on however many machines. Each child run holds a
slot of its API's global concurrency limit while it works (``flows.limits``),
so no district's API sees more runs at once than its owner allows, whoever
started them. The parent waits for every child, gathers each one's summary into
one table artifact (failures first), and fails naming the districts that failed.
There is no queue of our own: work pools, workers and concurrency limits do it.
"""

import asyncio
import json
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
)
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import arun_deployment
from prefect.task_runners import ThreadPoolTaskRunner

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.errors import BlockError
from edfi.vocabulary import Mode
from flows.limits import set_limits
from flows.runners import api_limit

EXTRACT_DEPLOYMENT = "edfi-extract/district"
PUBLISH_DEPLOYMENT = "edfi-publish/source"
# how often the parent asks whether a child run has finished
POLL_SECONDS = 2.0
# the children's own summary tables (flows/extract.py, flows/publish.py)
EXTRACT_SUMMARY = "edfi-extract-summary"
PUBLISH_SUMMARY = "edfi-publish-summary"


def _runner() -> Any:  # typed as Any: the decorator wants the runner's future type
    """A parent starts and waits; it runs no tasks of its own, so one thread is plenty."""
    return ThreadPoolTaskRunner(max_workers=1)


class ScaleOutError(Exception):
    """Some child runs did not complete; the message names their districts."""


def _names(value: list[str], what: str) -> list[str]:
    if isinstance(value, str) or not value:
        raise ValueError(
            f"{what} must be a non-empty list of block names, e.g. ['district-a', 'district-b'], "
            f"not {value!r}"
        )
    bad = [v for v in value if not isinstance(v, str) or not v.strip()]
    if bad:
        raise ValueError(f"{what} must be block names (text), not {bad!r}")
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        raise ValueError(f"{what} names {', '.join(twice)} more than once: list each once")
    return list(value)


def _template(template: str, key: str, name: str) -> str:
    """A block name made from a template: ``{district}-lake`` for district ``a`` is ``a-lake``."""
    try:
        return template.format(**{key: name})
    except (KeyError, IndexError, ValueError):
        raise ValueError(
            f"{template!r} is not a block-name template: use {{{key}}} for the name, e.g. "
            f"'{{{key}}}-lake'"
        ) from None


def _reserved(parameters: dict[str, Any] | None, reserved: tuple[str, ...]) -> dict[str, Any]:
    extra = dict(parameters or {})
    clash = sorted(set(extra) & set(reserved))
    if clash:
        raise ValueError(
            f"parameters must not set {', '.join(clash)}: the scale-out flow sets them for "
            "each run (use its own parameters)"
        )
    return extra


async def _summary_rows(flow_run_id: UUID, key: str) -> list[dict[str, Any]]:
    """The rows of a child run's summary table artifact (none if it ended before one)."""
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]),
            )
        )
    for artifact in found:
        data = artifact.data
        rows = json.loads(data) if isinstance(data, str) else data
        if isinstance(rows, list):
            return [r for r in rows if isinstance(r, dict)]
    return []


def _seconds(run: FlowRun) -> float:
    if run.start_time is not None and run.end_time is not None:
        return round((run.end_time - run.start_time).total_seconds(), 1)
    return round(run.total_run_time.total_seconds(), 1)


async def _row(
    run: FlowRun, label: dict[str, Any], summary_key: str, records_key: str
) -> dict[str, Any]:
    """One line of the parent's table: who, how it ended, what the child's summary says."""
    rows = await _summary_rows(run.id, summary_key)
    state = run.state
    completed = state is not None and state.is_completed()
    failed = [r for r in rows if str(r.get("status", "")).lower() == "failed"]
    message = "" if completed or state is None else str(state.message or state.name)
    return {
        **label,
        "status": state.name if state is not None else "Unknown",
        records_key: sum(int(r.get(records_key) or 0) for r in rows),
        "resources": len(rows),
        "failed_resources": len(failed),
        "seconds": _seconds(run),
        "flow_run": run.name,
        "message": message[:500],
    }


async def _launch(
    deployment: str,
    jobs: list[tuple[dict[str, Any], dict[str, Any]]],
    summary_key: str,
    records_key: str,
) -> list[dict[str, Any]]:
    """Start every child run at once (the pool's workers take them as they can) and wait."""

    async def one(label: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
        name = " ".join(str(v) for v in label.values() if v is not None)
        run = await arun_deployment(
            deployment,
            parameters=parameters,
            flow_run_name=name,
            tags=[str(next(iter(label.values())))],
            poll_interval=POLL_SECONDS,
            timeout=None,
            as_subflow=True,
        )
        return await _row(run, label, summary_key, records_key)

    return list(await asyncio.gather(*(one(label, params) for label, params in jobs)))


def _failures_first(rows: list[dict[str, Any]], key: str) -> list[dict[str, Any]]:
    return sorted(
        rows, key=lambda r: (r["status"] == "Completed", str(r[key]), str(r.get("school_year")))
    )


def _raise_failed(rows: list[dict[str, Any]], key: str, what: str) -> None:
    failed = [r for r in rows if r["status"] != "Completed"]
    if not failed:
        return
    names = ", ".join(
        f"{r[key]}"
        + (f" ({r['school_year']})" if r.get("school_year") is not None else "")
        + f": {r['status']}"
        for r in failed
    )
    raise ScaleOutError(
        f"{len(failed)} of {len(rows)} {what} runs did not complete: {names}. "
        f"See each run's own page for why (the first: {failed[0]['message'] or 'no message'})."
    )


@flow(
    name="edfi-extract-many",
    description="Many Ed-Fi APIs -> their lakes: one extract run per API and school year, "
    "spread over the work pool, each API within its concurrency limit.",
    task_runner=_runner(),  # the work runs on the workers, not here
)
async def extract_many(
    districts: list[str],
    lake: str = "{district}",
    school_years: list[int] | None = None,
    mode: Mode = "incremental",
    parameters: dict[str, Any] | None = None,
    per_api_limit: int | None = 1,
    deployment: str = EXTRACT_DEPLOYMENT,
) -> list[dict[str, Any]]:
    """Extract many districts' APIs, one deployment run per API and school year.

    Args:
        districts: names of saved "Ed-Fi Connection" blocks, one per district API.
        lake: the name of each district's "Ed-Fi Lake Storage" block, with
            ``{district}`` for the district's block name (default: the same name
            as its connection block). Each district needs its own lake.
        school_years: the years to pull from every district (default: each
            connection block's ``school_years``; one run per year).
        mode: ``incremental`` or ``full``, for every run.
        parameters: other extract parameters for every run, e.g.
            ``{"run_gold": true, "exclude": ["*Descriptors"]}``.
        per_api_limit: how many runs may work against one API host at once (the
            global concurrency limit ``edfi-api-<host>-<port>`` is created or set to
            it); none leaves the limits as they are (``prefect gcl``).
        deployment: the extract deployment each run is a run of.

    Returns one row per run: district, school year, status, records, resources.
    """
    logger = get_run_logger()
    names = _names(districts, "districts")
    extra = _reserved(parameters, ("connection", "lake", "school_years", "mode"))
    lakes = {d: _template(lake, "district", d) for d in names}
    if len(names) > 1 and len(set(lakes.values())) == 1:
        raise ValueError(
            f"every district would write the one lake {lake!r}: give each its own, e.g. "
            "lake='{district}' (a lake block named like each connection block)"
        )
    if per_api_limit is not None and per_api_limit < 1:
        raise ValueError(f"per_api_limit must be at least 1 (or none), not {per_api_limit}")
    # every block is loaded before any run starts: a missing one fails the parent alone
    connections: dict[str, EdFiConnection] = {}
    missing: list[str] = []
    for d in names:
        try:
            connections[d] = await aload_block(d, EdFiConnection)
            await aload_block(lakes[d], LakeStorage)
        except BlockError as exc:
            missing.append(str(exc))
    if missing:
        raise BlockError(" ".join(missing))
    urls = [c.base_url for c in connections.values()]
    if per_api_limit is not None:
        limits = await set_limits(urls, per_api_limit)
        logger.info("At most %d run(s) at once against each of %s", per_api_limit, limits)
    jobs: list[tuple[dict[str, Any], dict[str, Any]]] = []
    for d in names:
        years: list[int | None] = list(school_years or connections[d].school_years) or [None]
        for year in years:
            params: dict[str, Any] = {"connection": d, "lake": lakes[d], "mode": mode, **extra}
            if year is not None:
                params["school_years"] = [year]
            jobs.append(({"district": d, "school_year": year}, params))
    logger.info(
        "Starting %d run(s) of %s for %d district(s) on %d API host(s)",
        len(jobs),
        deployment,
        len(names),
        len({api_limit(u) for u in urls}),
    )
    rows = _failures_first(await _launch(deployment, jobs, EXTRACT_SUMMARY, "records"), "district")
    failed = sum(r["status"] != "Completed" for r in rows)
    await acreate_table_artifact(
        table=rows,
        key="edfi-extract-many",
        description=f"{len(rows)} extract runs over {len(names)} districts: {failed} failed, "
        f"{sum(r['records'] for r in rows)} records",
    )
    _raise_failed(rows, "district", "extract")
    return rows


@flow(
    name="edfi-publish-many",
    description="Many Ed-Fi APIs -> one target API: one publish run per source, spread over "
    "the work pool, each API within its concurrency limit.",
    task_runner=_runner(),  # the work runs on the workers, not here
)
async def publish_many(
    sources: list[str],
    target: str,
    state: str = "{source}",
    parameters: dict[str, Any] | None = None,
    per_api_limit: int | None = 1,
    target_limit: int | None = 4,
    deployment: str = PUBLISH_DEPLOYMENT,
) -> list[dict[str, Any]]:
    """Publish many districts' APIs into one target API, one deployment run per source.

    Args:
        sources: names of saved "Ed-Fi Connection" blocks, one per source API.
        target: the name of the target's "Ed-Fi Connection" block.
        state: the name of each publish's state "Ed-Fi Lake Storage" block, with
            ``{source}`` for the source's block name (one block for all works
            too: each source and target pair keeps its own state in it).
        parameters: other publish parameters for every run, e.g.
            ``{"include_descriptors": true}``.
        per_api_limit: how many runs may read one source API host at once (its
            global concurrency limit is created or set to it; none leaves it).
        target_limit: how many runs may write the target at once (likewise).
        deployment: the publish deployment each run is a run of.

    Returns one row per run: source, status, records written, resources.
    """
    logger = get_run_logger()
    names = _names(sources, "sources")
    extra = _reserved(parameters, ("source", "target", "state"))
    states = {s: _template(state, "source", s) for s in names}
    for value, what in ((per_api_limit, "per_api_limit"), (target_limit, "target_limit")):
        if value is not None and value < 1:
            raise ValueError(f"{what} must be at least 1 (or none), not {value}")
    connections: dict[str, EdFiConnection] = {}
    missing: list[str] = []
    for s in names:
        try:
            connections[s] = await aload_block(s, EdFiConnection)
            await aload_block(states[s], LakeStorage)
        except BlockError as exc:
            missing.append(str(exc))
    try:
        target_block = await aload_block(target, EdFiConnection)
    except BlockError as exc:
        missing.append(str(exc))
    if missing:
        raise BlockError(" ".join(missing))
    target_host = api_limit(target_block.base_url)
    source_urls = [c.base_url for c in connections.values() if api_limit(c.base_url) != target_host]
    if per_api_limit is not None and source_urls:
        await set_limits(source_urls, per_api_limit)
    if target_limit is not None:
        await set_limits([target_block.base_url], target_limit)
    jobs = [
        ({"source": s}, {"source": s, "target": target, "state": states[s], **extra}) for s in names
    ]
    logger.info("Starting %d run(s) of %s into %s", len(jobs), deployment, target_host)
    rows = _failures_first(await _launch(deployment, jobs, PUBLISH_SUMMARY, "written"), "source")
    failed = sum(r["status"] != "Completed" for r in rows)
    await acreate_table_artifact(
        table=rows,
        key="edfi-publish-many",
        description=f"{len(rows)} publish runs into {target}: {failed} failed",
    )
    _raise_failed(rows, "source", "publish")
    return rows
