"""Send flow: a folder of Ed-Fi JSON files -> validated -> an Ed-Fi API. Replaces lightbeam.

Input is lightbeam's layout on any fsspec storage; the connection is an
``EdFiConnection`` block or an existing ``lightbeam.yaml`` (run unchanged).
The run itself lives in the core (``edfi.sendrun.SendRun``: settings, input,
dependency-gated units, state, rejects, results); this flow resolves the
blocks, runs validation as one task and each unit (a resource, or every
descriptor type) as one task, and publishes the summary as artifacts.
"""

import inspect
import warnings
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.states import State

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.client import Connection, EdFiClient, choose_school_year
from edfi.errors import SendError
from edfi.filesend import ResourceResult, SendMode
from edfi.lightbeam_config import LightbeamConfig, load_lightbeam_config
from edfi.send import WRITE_CONCURRENCY, write_connection
from edfi.sendrun import DESCRIPTORS, SendRun, SendSettings, config_connection
from edfi.validate.inputs import InputReport
from flows.runners import API_FLOW_WORKERS, threads
from tasks.send import (
    delete_resource,
    descriptor_types,
    resend_deferred,
    send_resource,
    validate_input_task,
)

# The parameter is named ``validate`` as in lightbeam; pydantic notes that the name
# shadows a method of the model Prefect builds for the parameters, which is harmless.
warnings.filterwarnings("ignore", message='Field name "validate"', category=UserWarning)


async def _run(task_fn: Any, *args: Any) -> Any:
    """Run a task and return what it returned, whatever its final state (Failed carries data)."""
    state: State[Any] = await task_fn(*args, return_state=True)
    result = state.result(raise_on_failure=False)
    return await result if inspect.isawaitable(result) else result


@flow(
    name="edfi-send",
    description="Ed-Fi JSON files (lightbeam layout) -> validated -> an Ed-Fi API, in "
    "dependency order, resending only what changed or failed.",
    task_runner=threads(API_FLOW_WORKERS),  # bounded: see flows.runners
)
async def send(
    input: LakeStorage | str | None = None,
    connection: EdFiConnection | str | None = None,
    lightbeam_config: str | None = None,
    state: LakeStorage | str | None = None,
    selector: list[str] | str | None = None,
    exclude: list[str] | str | None = None,
    validate: list[str] | str | None = None,
    mode: SendMode = "validate+send",
    force: bool = False,
    resend_rejects: bool = False,
    max_failures: int | None = None,
    school_year: int | None = None,
    write_concurrency: int = WRITE_CONCURRENCY,
    resource_parallelism: int = 8,
    max_reference_lookups: int = 2000,
    results_file: str | None = None,
    lightbeam_params: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Validate and send a folder of Ed-Fi JSON files to an Ed-Fi API.

    Args:
        input: folder of ``{resource}.jsonl`` files: an fsspec URL (credentials from
            the environment) or a ``LakeStorage`` block (URL and credentials); default:
            the lightbeam config's ``data_dir``.
        connection: ``EdFiConnection`` block (or saved block name) of the target.
        lightbeam_config: path of an existing ``lightbeam.yaml`` to take the target,
            data and state folders, namespace and validation settings from.
        state: ``LakeStorage`` block (or name) keeping what the target accepted and
            the rejects; default: the lightbeam config's ``state_dir``.
        selector: resources to send, globs (``students``, ``*Associations``,
            ``ed-fi/*``); default all in the input.
        exclude: resources to leave out, globs.
        validate: validation methods: ``schema``, ``descriptors``, ``uniqueness``,
            ``local-references`` (references to resources the input carries),
            ``references`` (every reference; looked up in the target), or ``*``.
            Default: schema, descriptors, uniqueness, local-references.
        mode: ``validate`` (check only), ``send`` (no validation), ``validate+send``
            (invalid records are rejected, the rest sent) or ``delete`` (remove the
            input's records from the target by natural key, reverse order).
        force: send records the target already accepted unchanged.
        resend_rejects: send the last run's rejects folder (after fixing it) instead
            of ``input``.
        max_failures: stop once this many records failed (validation or target).
        school_year: year of a year-specific API (default: the connection's latest).
        write_concurrency: writes in flight to the target at once (the writes' own
            cap; a lightbeam config's explicit ``pool_size`` wins).
        resource_parallelism: resources sent at once.
        max_reference_lookups: most GETs validation may send to resolve references
            the input does not.
        results_file: where to write lightbeam's ``--results-file`` document.
        lightbeam_params: lightbeam's ``--params`` (values for ``${VAR}`` in its config).

    Returns the run summary: status, counts, one row per resource, where the rejects are.
    """
    logger = get_run_logger()
    cfg = (
        load_lightbeam_config(lightbeam_config, params=lightbeam_params)
        if lightbeam_config
        else None
    )
    conn, year, tenant = await _connection(connection, cfg, school_year, write_concurrency)
    state_url, state_options = await _state_location(state, cfg)
    source, source_options = await _input_location(input, cfg)
    run = SendRun(
        conn,
        SendSettings(
            mode=mode,
            selector=selector,
            exclude=exclude,
            validate=validate,
            force=force,
            resend_rejects=resend_rejects,
            max_failures=max_failures,
            write_concurrency=write_concurrency,
            resource_parallelism=resource_parallelism,
            max_reference_lookups=max_reference_lookups,
            results_file=results_file,
        ),
        school_year=year,
        tenant=tenant,
        source=source,
        source_options=source_options,
        state_url=state_url,
        state_options=state_options,
        config=cfg,
    )
    async with EdFiClient(conn) as client:
        await run.open(client)
        for ignored in run.ignored:
            logger.warning("Ignored %s: its name is not a resource of the target.", ignored)
        logger.info("%s", run.describe())
        if run.validates:
            report = await _run(validate_input_task, run)
            if isinstance(report, BaseException):
                raise report
            _log_validation(run, report, max_reference_lookups)
        if run.sends:
            await run.send(_unit_task(run), _resend_task(run))
        summary = run.finish(client.stats)

    status, failed = summary["status"], summary["failed"]
    await acreate_table_artifact(
        table=run.table(),
        key="edfi-send-summary",
        description=f"Send run {run.run_id} ({status}, {mode}): {summary['sent']} sent, "
        f"{summary['skipped']} unchanged, {summary['deleted']} deleted, {failed} failed "
        f"in {summary['seconds']}s",
    )
    if failed:
        await acreate_markdown_artifact(
            markdown=run.causes_markdown(),
            key="edfi-send-failures",
            description=f"Top causes of the {failed} failed records of send run {run.run_id}",
        )
        raise SendError(run.failure_message())
    logger.info(
        "%s: %d processed, %d sent, %d unchanged, %d deleted in %.1fs",
        status,
        summary["processed"],
        summary["sent"],
        summary["skipped"],
        summary["deleted"],
        summary["seconds"],
    )
    return summary


def _unit_task(run: SendRun) -> Any:
    """Each unit as a Prefect task: one per resource, one for every descriptor type."""
    task = delete_resource if run.settings.mode == "delete" else send_resource

    async def one(unit: str, paths: list[str]) -> list[ResourceResult]:
        if unit == DESCRIPTORS:
            many = await _run(descriptor_types, run, paths)
        else:
            many = await _run(task, run, unit)
            many = many if isinstance(many, BaseException) else [many]
        if isinstance(many, BaseException):
            raise many
        return list(many)

    return one


def _resend_task(run: SendRun) -> Any:
    async def again(path: str) -> ResourceResult:
        result = await _run(resend_deferred, run, path)
        if isinstance(result, BaseException):
            raise result
        assert isinstance(result, ResourceResult)
        return result

    return again


def _log_validation(run: SendRun, report: InputReport, max_lookups: int) -> None:
    logger = get_run_logger()
    if report.unchecked_references:
        logger.warning(
            "%d references were not checked: over max_reference_lookups=%d.",
            report.unchecked_references,
            max_lookups,
        )
    logger.info(
        "Validated %d records with %s: %d invalid.",
        report.records,
        ", ".join(run.methods),
        report.failed,
    )


async def _connection(
    connection: EdFiConnection | str | None,
    cfg: LightbeamConfig | None,
    school_year: int | None,
    write_concurrency: int,
) -> tuple[Connection, int | None, str | None]:
    if connection is not None:
        block = await aload_block(connection, EdFiConnection)
        conn = write_connection(block.connection(), write_concurrency)
        year = choose_school_year(block.school_years, school_year, block.base_url)
        return conn, year, block.tenant
    if cfg is None:
        raise SendError("Set `connection` (an EdFiConnection block) or `lightbeam_config`.")
    year = school_year if school_year is not None else cfg.school_year
    return config_connection(cfg, write_concurrency), year, None


async def _state_location(
    state: LakeStorage | str | None, cfg: LightbeamConfig | None
) -> tuple[str | None, dict[str, Any]]:
    if state is not None:
        block = await aload_block(state, LakeStorage)
        return block.url, block.fsspec_options()
    if cfg is not None and cfg.state_dir:
        return cfg.state_dir, {}
    return None, {}


async def _input_location(
    input: LakeStorage | str | None, cfg: LightbeamConfig | None
) -> tuple[str, dict[str, Any]]:
    if isinstance(input, LakeStorage):
        return input.url, input.fsspec_options()
    return input or (cfg.data_dir if cfg else None) or "", {}
