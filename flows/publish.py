"""Publish flow: one Ed-Fi API's data into another, in dependency order, incrementally.

The Ed-Fi API Publisher on Prefect. One async flow run holds one client per
API (one token, one request budget each) and runs the Prefect-free
``edfi.publish.Publisher``: every (stage, resource) is one Prefect task, started
as soon as everything it depends on in the target's dependency graph has
finished. The change version processed and the rejects live on the ``state``
lake storage, keyed by a hash of the (source, target) pair.
"""

import datetime as dt
import uuid
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.client import EdFiClient, choose_school_year
from edfi.lake import LakeError, take_lease
from edfi.publish import (
    DEFAULT_AUTHORIZATION_RETRY,
    Publisher,
    PublishError,
    PublishOptions,
    ResourceStats,
    StateStore,
    Unit,
    endpoint_id,
    failure_message,
    pair_key,
    rejects_markdown,
    run_summary,
    split_names,
    summary_table,
    tuned,
)
from edfi.send import WRITE_CONCURRENCY
from edfi.vocabulary import Mode
from flows.limits import api_slots
from flows.progress import RunProgress
from flows.runners import API_FLOW_WORKERS, threads
from tasks.publish import publish_unit


@flow(
    name="edfi-publish",
    description="Ed-Fi API -> Ed-Fi API in dependency order: key "
    "changes, upserts and deletes, incremental by change version.",
    task_runner=threads(API_FLOW_WORKERS),  # bounded: see flows.runners
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
    write_concurrency: int = WRITE_CONCURRENCY,
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
        write_parallelism: records of one resource written at once.
        write_concurrency: requests in flight to the target, all resources
            together. Writes have their own cap: the target block's
            ``max_concurrency`` (default 8) is sized for reading big pages, and
            a write of one record is all round trip.
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
        write_concurrency=write_concurrency,
        page_size=page_size,
        max_retries=max_retries,
        retry_delay_ms=retry_delay_ms,
        rate_limit_per_second=rate_limit_per_second,
        authorization_retry=(
            {k: tuple(v) for k, v in authorization_retry.items()}
            if authorization_retry is not None
            else dict(DEFAULT_AUTHORIZATION_RETRY)
        ),
    )
    src_block = await aload_block(source, EdFiConnection)
    tgt_block = await aload_block(target, EdFiConnection)
    lake_block = await aload_block(state, LakeStorage)
    # one school_year names both sides: a side that lists no years is single-year here
    src_year, tgt_year = (
        choose_school_year(b.school_years, school_year if b.school_years else None, b.base_url)
        for b in (src_block, tgt_block)
    )
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
    started = dt.datetime.now(dt.UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    src_conn = tuned(src_block.connection(), options, reads=True)
    tgt_conn = tuned(tgt_block.connection(), options, reads=False)

    # one run per source and target at a time (its state would be moved under it): a
    # second run fails at once, naming this one; a dead run's lease is taken over
    lease = (
        None
        if what_if
        else take_lease(
            lake,
            f"publish/{key}",
            run_id=run_id,
            owner=f"{run_id}/{uuid.uuid4().hex[:8]}",
            what=f"The publish state of this source and target ({key})",
        )
    )
    try:
        # a slot of each API's global concurrency limit, if it has one (flows.limits)
        async with (
            api_slots(src_block.base_url, tgt_block.base_url),
            EdFiClient(src_conn) as src,
            EdFiClient(tgt_conn) as tgt,
        ):
            publisher = Publisher(
                src,
                tgt,
                options,
                state=StateStore(lake, key),
                source_year=src_year,
                target_year=tgt_year,
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
                logger.info(
                    "Nothing to publish: the target has every change up to change version %s "
                    "of the source.",
                    options.last_change_version or prepared.state.get("last_change_version"),
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
            # the shared progress: the artifact (updates throttled) and the CLI's progress bar
            progress = await RunProgress(
                "edfi-publish-progress", len(units), f"Publish run {run_id}"
            ).start()
            moved: dict[str, int] = {}

            async def run(unit: Unit) -> ResourceStats:
                # a unit with refused records ends Failed in Prefect but is finished for the
                # schedule; only an exception in the unit blocks what depends on it
                state: Any = publish_unit(publisher, unit, label=unit.label, return_state=True)
                await state
                if unit in publisher.unit_errors:
                    raise publisher.unit_errors[unit]
                return publisher.stats[unit.path]

            async def done(unit: Unit, stats: ResourceStats) -> None:
                if stats.status in ("failed", "blocked"):
                    logger.error("%s: %s", unit.label, stats.message)
                # a resource's stats add up over its stages: this unit moved the difference
                total = stats.written + stats.deleted + stats.key_changed
                records, moved[unit.path] = total - moved.get(unit.path, 0), total
                await progress.advance(unit.label, records)

            await publisher.run(run, done)
            outcome = publisher.finish(run_id)
            requests = {
                "source": src.stats.requests,
                "target": tgt.stats.requests,
                "retries": src.stats.retries + tgt.stats.retries,
            }

        seconds = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2)
        summary = run_summary(publisher, outcome, base, seconds, requests)
        await acreate_table_artifact(
            table=summary_table(summary),
            key="edfi-publish-summary",
            description=f"Publish run {run_id} ({summary['status']}): {summary['written']} "
            f"written, {summary['deleted']} deleted, {summary['key_changed']} key changes, "
            f"{summary['failed']} failed, {summary['blocked']} blocked in {seconds}s",
        )
        if publisher.rejects:
            await acreate_markdown_artifact(
                markdown=rejects_markdown(publisher.rejects, outcome["rejects"]),
                key="edfi-publish-rejects",
                description=f"Records rejected by run {run_id}",
            )
        if not outcome["clean"]:
            raise PublishError(failure_message(publisher, outcome))
        logger.info(
            "Published %d records (%d deleted, %d key changes, %d warnings) in %.1fs; "
            "last change version now %s",
            summary["written"],
            summary["deleted"],
            summary["key_changed"],
            summary["warnings"],
            seconds,
            summary["last_change_version"],
        )
        return summary
    finally:
        if lease is not None:
            lease.release()
