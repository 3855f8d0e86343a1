"""Publish flow: one Ed-Fi API's data into another, in dependency order, incrementally.

The Ed-Fi API Publisher on Prefect. One async flow run holds one client per
API (one token, one request budget each) and runs the Prefect-free
``edfi.publish.Publisher``: every (stage, resource) is one Prefect task, started
as soon as everything it depends on in the target's dependency graph has
finished. The change version processed and the rejects live on the ``state``
lake storage, keyed by a hash of the (source, target) pair.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.client import Connection, EdFiClient
from edfi.lake import LakeError
from edfi.publish import (
    DEFAULT_AUTHORIZATION_RETRY,
    Publisher,
    PublishError,
    PublishOptions,
    ResourceStats,
    StateStore,
    Unit,
    endpoint_id,
    pair_key,
    split_names,
)
from edfi.vocabulary import Mode
from tasks.publish import publish_unit

TABLE_COLUMNS = (
    "resource",
    "status",
    "read",
    "written",
    "skipped",
    "failed",
    "warnings",
    "deleted",
    "key_changed",
    "seconds",
    "message",
)


def _tuned(
    conn: Connection,
    *,
    retries: int,
    delay_ms: int,
    page_size: int | None = None,
    rate: float | None = None,
) -> Connection:
    changes: dict[str, Any] = {"max_retries": retries, "backoff_seconds": delay_ms / 1000}
    if page_size is not None:
        changes["page_size"] = page_size
    if rate is not None:
        changes["requests_per_second"] = rate
    return dataclasses.replace(conn, **changes)


def _year(block: EdFiConnection, asked: int | None) -> int | None:
    if not block.school_years:
        return None
    if asked is None:
        return max(block.school_years)
    if asked not in block.school_years:
        raise PublishError(
            f"school_year {asked} is not among the connection's school years "
            f"{block.school_years} ({block.base_url})."
        )
    return asked


@flow(
    name="edfi-publish",
    description="Ed-Fi API -> Ed-Fi API in dependency order: key "
    "changes, upserts and deletes, incremental by change version.",
)
async def publish(
    source: EdFiConnection | str,
    target: EdFiConnection | str,
    state: LakeStorage | str,
    include: list[str] | str | None = None,
    include_only: list[str] | str | None = None,
    exclude: list[str] | str | None = None,
    exclude_only: list[str] | str | None = None,
    include_descriptors: bool = False,
    mode: Mode = "incremental",
    last_change_version: int | None = None,
    what_if: bool = False,
    treat_forbidden_post_as_warning: bool = False,
    ignore_isolation: bool = False,
    resend_rejects: bool = False,
    school_year: int | None = None,
    resource_parallelism: int = 10,
    page_fetch_parallelism: int = 5,
    write_parallelism: int = 20,
    page_size: int = 75,
    max_retries: int = 5,
    retry_delay_ms: int = 100,
    rate_limit_per_second: float | None = None,
    authorization_retry: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """Publish the source API's changes to the target API.

    Args:
        source: ``EdFiConnection`` block (or saved block name) to read from.
        target: ``EdFiConnection`` block (or name) to write to.
        state: ``LakeStorage`` block (or name) keeping the change version processed
            and the rejects of each (source, target) pair.
        include: resources to publish with everything they depend on (comma list
            or list; ``/ed-fi/students``, ``ed-fi/students`` or ``students``).
        include_only: resources to publish, without their dependencies.
        exclude: resources to leave out, with everything that depends on them.
        exclude_only: resources to leave out, alone.
        include_descriptors: publish descriptors too (off, as in the Publisher).
        mode: ``incremental`` sends the changes since the last run (and deletes
            and key changes); ``full`` sends every record.
        last_change_version: treat this as the last change version processed
            (overrides the stored one).
        what_if: list the resources, their order and record counts; write nothing.
        treat_forbidden_post_as_warning: a 403 that survives the authorization
            retry is a warning, not a failure.
        ignore_isolation: publish from a source without snapshot isolation.
        resend_rejects: send only the records the last run rejected (after they,
            or the target, were fixed), from the rejects files on ``state``.
        school_year: year of a year-specific API (default: the connection's latest).
        resource_parallelism: resources published at once.
        page_fetch_parallelism: pages of one resource read at once.
        write_parallelism: records of one resource written at once (all writes
            also share the target connection's ``max_concurrency``).
        page_size: records per page read from the source.
        max_retries: retries of a request that failed with 429, 5xx, a timeout or
            a dropped connection, and of a 409 that ordering can explain.
        retry_delay_ms: starting delay of the exponential backoff.
        rate_limit_per_second: cap on requests per second to the target.
        authorization_retry: resource -> associations whose publishing lets the
            target accept it after a 403 (default: students, staffs, contacts).

    Returns the run summary: status, change window, and one row per resource.
    """
    logger = get_run_logger()
    options = PublishOptions(
        mode=mode,
        include=split_names(include),
        include_only=split_names(include_only),
        exclude=split_names(exclude),
        exclude_only=split_names(exclude_only),
        include_descriptors=include_descriptors,
        last_change_version=last_change_version,
        what_if=what_if,
        treat_forbidden_post_as_warning=treat_forbidden_post_as_warning,
        ignore_isolation=ignore_isolation,
        resend_rejects=resend_rejects,
        resource_parallelism=resource_parallelism,
        page_fetch_parallelism=page_fetch_parallelism,
        write_parallelism=write_parallelism,
        page_size=page_size,
        max_retries=max_retries,
        retry_delay_ms=retry_delay_ms,
        authorization_retry=(
            {k: tuple(v) for k, v in authorization_retry.items()}
            if authorization_retry is not None
            else dict(DEFAULT_AUTHORIZATION_RETRY)
        ),
    )
    src_block: EdFiConnection = await aload_block(source, EdFiConnection)
    tgt_block: EdFiConnection = await aload_block(target, EdFiConnection)
    lake_block: LakeStorage = await aload_block(state, LakeStorage)
    src_year, tgt_year = _year(src_block, school_year), _year(tgt_block, school_year)
    try:
        lake = lake_block.lake()
        if not what_if:
            lake.check_writable()
    except LakeError as exc:
        raise LakeError(str(exc)) from None
    key = pair_key(
        endpoint_id(src_block.base_url, src_block.tenant, src_year),
        endpoint_id(tgt_block.base_url, tgt_block.tenant, tgt_year),
    )
    store = StateStore(lake, key)
    src_conn = _tuned(
        src_block.connection(), retries=max_retries, delay_ms=retry_delay_ms, page_size=page_size
    )
    tgt_conn = _tuned(
        tgt_block.connection(),
        retries=max_retries,
        delay_ms=retry_delay_ms,
        rate=rate_limit_per_second,
    )
    started = dt.datetime.now(dt.UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]

    async with EdFiClient(src_conn) as src, EdFiClient(tgt_conn) as tgt:
        publisher = Publisher(
            src, tgt, options, state=store, source_year=src_year, target_year=tgt_year
        )
        prepared = await publisher.prepare()
        for warning in prepared.warnings:
            logger.warning(warning)
        window = prepared.window
        base: dict[str, Any] = {
            "run_id": run_id,
            "state_key": key,
            "source_version": prepared.source_version,
            "target_version": prepared.target_version,
            "resources": [],
            "window": [window.min_cv, window.max_cv] if window else None,
        }
        if window is None:
            last = options.last_change_version
            if last is None:
                last = prepared.state.get("last_change_version")
            logger.info(
                "Nothing to publish: the target has every change up to change "
                "version %s of the source.",
                last,
            )
            return {**base, "status": "up to date"}
        if what_if:
            plan = await publisher.what_if()
            await acreate_table_artifact(
                table=plan,
                key="edfi-publish-what-if",
                description=f"What publishing would send ({len(plan)} resources, change "
                f"versions {window.min_cv or 0}..{window.max_cv}); nothing written.",
            )
            logger.info(
                "What if: %d resources, %d records, in this order: %s",
                len(plan),
                sum(r["records"] for r in plan),
                ", ".join(r["resource"] for r in plan),
            )
            return {**base, "status": "what if", "plan": plan}

        units = [u for _, stage in publisher.stages() for u in stage]
        logger.info(
            "Publishing %s -> %s: %d resources, %d units, change versions %s..%s%s",
            src_block.base_url,
            tgt_block.base_url,
            len(prepared.resources),
            len(units),
            window.min_cv if window.min_cv is not None else "start",
            window.max_cv,
            f" (resending {len(prepared.resend)} rejects)" if prepared.resend else "",
        )
        progress_id = await acreate_progress_artifact(
            progress=0.0,
            key="edfi-publish-progress",
            description=f"Publish run {run_id}: {len(units)} (stage, resource) units",
        )
        finished = 0

        async def run(unit: Unit) -> ResourceStats:
            return await publish_unit(publisher, unit, label=unit.label)

        async def done(unit: Unit, stats: ResourceStats) -> None:
            nonlocal finished
            finished += 1
            if stats.status in ("failed", "blocked"):
                logger.error("%s: %s", unit.label, stats.message)
            await aupdate_progress_artifact(progress_id, 100.0 * finished / max(1, len(units)))

        await publisher.run(run, done)
        outcome = publisher.finish(run_id)
        requests = {
            "source": src.stats.requests,
            "target": tgt.stats.requests,
            "retries": src.stats.retries + tgt.stats.retries,
        }

    rows = [publisher.stats[p].as_row() for p in prepared.resources if p in publisher.stats]
    seconds = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2)
    totals = {
        k: sum(r[k] for r in rows)
        for k in ("read", "written", "skipped", "failed", "warnings", "deleted", "key_changed")
    }
    status = (
        "failed"
        if not outcome["clean"]
        else "completed with warnings"
        if outcome["warnings"]
        else "completed"
    )
    summary = {
        **base,
        "status": status,
        "resources": rows,
        **totals,
        "seconds": seconds,
        "records_per_second": round(totals["written"] / seconds, 1) if seconds else 0.0,
        "requests": requests,
        "rejects": outcome["rejects"],
        "last_change_version": outcome["state"].get("last_change_version"),
    }
    await acreate_table_artifact(
        table=[{k: r[k] for k in TABLE_COLUMNS} for r in rows],
        key="edfi-publish-summary",
        description=f"Publish run {run_id} ({status}): {totals['written']} written, "
        f"{totals['deleted']} deleted, {totals['key_changed']} key changes, "
        f"{totals['failed']} failed in {seconds}s",
    )
    if publisher.rejects:
        await acreate_markdown_artifact(
            markdown=_rejects_markdown(publisher, outcome["rejects"]),
            key="edfi-publish-rejects",
            description=f"Records rejected by run {run_id}",
        )
    if not outcome["clean"]:
        raise PublishError(_failure_message(publisher, outcome))
    logger.info(
        "Published %d records (%d deleted, %d key changes, %d warnings) in %.1fs; "
        "last change version now %s",
        totals["written"],
        totals["deleted"],
        totals["key_changed"],
        totals["warnings"],
        seconds,
        summary["last_change_version"],
    )
    return summary


def _rejects_markdown(publisher: Publisher, manifest: dict[str, Any] | None) -> str:
    lines = [
        "# Rejected records",
        "",
        "Fix the records (edit the files) or the target, then run the flow again with "
        "`resend_rejects=True`.",
        "",
        "| resource | operation | status | message |",
        "|---|---|---|---|",
    ]
    for r in publisher.rejects[:200]:
        message = r.message.replace("|", "\\|").replace("\n", " ")[:300]
        lines.append(
            f"| {r.resource} | {r.operation} | {r.status}"
            f"{' (warning)' if r.warning else ''} | {message} |"
        )
    if len(publisher.rejects) > 200:
        lines.append(f"| ... | | | {len(publisher.rejects) - 200} more |")
    if manifest:
        lines += ["", "Files:", ""]
        lines += [f"- `{v['file']}` ({v['count']})" for v in manifest["resources"].values()]
    return "\n".join(lines) + "\n"


def _failure_message(publisher: Publisher, outcome: dict[str, Any]) -> str:
    parts: list[str] = []
    if outcome["failed_resources"]:
        first = next(s for s in publisher.stats.values() if s.status in ("failed", "blocked"))
        parts.append(
            f"{len(outcome['failed_resources'])} resources did not finish "
            f"({', '.join(outcome['failed_resources'][:5])}); first error: "
            f"{first.message}"
        )
    errors = [r for r in publisher.rejects if not r.warning]
    if errors:
        by: dict[tuple[str, int], int] = {}
        for r in errors:
            by[(r.resource, r.status)] = by.get((r.resource, r.status), 0) + 1
        listed = ", ".join(
            f"{res} {n} x HTTP {status}" for (res, status), n in sorted(by.items())[:8]
        )
        where = ""
        if outcome["rejects"]:
            first_file = next(iter(outcome["rejects"]["resources"].values()))["file"]
            where = f" They are in the rejects files under {first_file.rsplit('/', 2)[0]}."
        parts.append(
            f"{len(errors)} records were rejected by the target: {listed}. First: "
            f"{errors[0].message}.{where} Fix them (or the target) and run again "
            "with resend_rejects=True."
        )
    parts.append("The change version was not advanced, so nothing is lost.")
    return " ".join(parts)
