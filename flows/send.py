"""Send flow: a folder of Ed-Fi JSON files -> validated -> an Ed-Fi API. Replaces lightbeam.

Input is lightbeam's layout on any fsspec storage; the connection is an
``EdFiConnection`` block or an existing ``lightbeam.yaml`` (run unchanged).
Validation runs first (one task), then one task per resource, each started as
soon as the resources it references have finished, several at once. The core
(``edfi.filesend``) keeps what the target accepted per natural key on the
state storage (unchanged records are skipped, failed ones always retried) and
every rejected record in the rejects store, with its file and line.
"""

from __future__ import annotations

import datetime as dt
import inspect
import uuid
import warnings
from collections import Counter
from typing import Any

import orjson
from fsspec.core import url_to_fs
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.states import State

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.client import Connection, EdFiClient
from edfi.errors import SendError
from edfi.filesend import (
    SEND_MODES,
    FileSend,
    FileSendOptions,
    RejectsInput,
    ResourceResult,
    SendMode,
    delete_dependencies,
    latest_run,
    results_document,
    select,
    send_dependencies,
    validation_results,
)
from edfi.jsonfiles import Records, discover
from edfi.lake import Lake
from edfi.lightbeam_config import LightbeamConfig, load_lightbeam_config
from edfi.rejects import RejectsStore, summarize
from edfi.schedule import run_gated
from edfi.send import Sender, SendOptions, write_connection
from edfi.sendstate import SendState, target_id
from edfi.validate.inputs import InputReport, parse_methods, validate_input
from edfi.validate.remote import TargetLookup
from edfi.vocabulary import ResourceStatus, RunStatus
from flows.runners import API_FLOW_WORKERS, threads
from tasks.send import (
    delete_resource,
    descriptor_types,
    resend_deferred,
    send_resource,
    validate_input_task,
)

TOP_CAUSES = 10

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
    write_concurrency: int = 32,
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
    if mode not in SEND_MODES:
        raise SendError(f"mode must be one of {', '.join(SEND_MODES)} (got {mode!r}).")
    options = FileSendOptions(force=force)
    cfg = (
        load_lightbeam_config(lightbeam_config, params=lightbeam_params)
        if lightbeam_config
        else None
    )
    if max_failures is None and cfg is not None:
        max_failures = cfg.max_failures  # lightbeam's validate.references.max_failures
    send_options = SendOptions(
        concurrency=write_concurrency,
        per_resource=min(write_concurrency, 24),
        max_failures=max_failures,
    )
    conn, year, tenant = await _connection(connection, cfg, school_year, write_concurrency)
    methods = parse_methods(validate if validate is not None else _config_methods(cfg))
    state_url, state_options = await _state_location(state, cfg)
    if state_url is None and mode != "validate":
        raise SendError(
            "Set `state` (a LakeStorage block) or a lightbeam config with `state_dir`: it keeps "
            "what the target accepted and the rejected records."
        )
    target = target_id(conn.base_url, school_year=year, tenant=tenant)
    started = dt.datetime.now(dt.UTC)
    run_id = started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    store = (
        RejectsStore(Lake(state_url, state_options), "_send_rejects", target) if state_url else None
    )
    if resend_rejects and store is None:
        raise SendError("resend_rejects needs `state`, where the rejects are kept.")
    input_options: dict[str, Any] = {}
    if isinstance(input, LakeStorage):
        source, input_options = input.url, input.fsspec_options()
    else:
        source = input or (cfg.data_dir if cfg else None) or ""
    if not source and not resend_rejects:
        raise SendError("Set `input` (the folder of JSON files) or a lightbeam config.")

    async with EdFiClient(conn) as client:
        await client.discover()
        model = await client.load_model(year)
        data_url = client.url("dataManagementApi", year)
        records: Records
        if resend_rejects:
            assert store is not None
            last = latest_run(store)
            records = RejectsInput(store.read(last))
            source = store.lake.uri(store.run_dir(last))
        else:
            inputs = discover(
                source,
                model,
                namespace=cfg.namespace if cfg else "ed-fi",
                namespace_overrides=cfg.namespace_overrides if cfg else None,
                storage_options=input_options,
            )
            for ignored in inputs.ignored:
                logger.warning("Ignored %s: its name is not a resource of the target.", ignored)
            records = inputs
        chosen = select(model, records.resources(), selector, exclude)
        logger.info(
            "%s %d resources from %s to %s (%s)",
            mode,
            len(chosen),
            source,
            conn.base_url,
            ", ".join(model[p].name for p in chosen[:8]) + (" ..." if len(chosen) > 8 else ""),
        )

        report: InputReport | None = None
        if mode in ("validate", "validate+send"):
            lookup = TargetLookup(client, data_url, max_lookups=max_reference_lookups)

            async def run_validation() -> InputReport:
                return await validate_input(
                    model,
                    records,
                    resources=chosen,
                    methods=methods,
                    lookup=lookup,
                    max_failures=max_failures,
                )

            report = await _run(validate_input_task, run_validation)
            if isinstance(report, BaseException):
                raise report
            assert report is not None
            if report.unchecked_references:
                logger.warning(
                    "%d references were not checked: over max_reference_lookups=%d.",
                    report.unchecked_references,
                    max_reference_lookups,
                )
            logger.info(
                "Validated %d records with %s: %d invalid.",
                report.records,
                ", ".join(methods),
                report.failed,
            )

        results: list[ResourceResult]
        t0: float | None = None
        job: FileSend | None = None
        if report is not None and (mode == "validate" or report.stopped_early):
            results = validation_results(model, report)
        else:
            send_state = (
                SendState(state_url, target, storage_options=state_options) if state_url else None
            )
            job = FileSend(
                model,
                records,
                Sender(client, model, data_url, send_options),
                state=send_state,
                options=options,
                invalid={p: r.problems for p, r in report.resources.items()} if report else None,
            )
            results = await _run_resources(job, model, chosen, mode, resource_parallelism)
            t0 = job.t0
        requests = {"requests": client.stats.requests, "retries": client.stats.retries}

    rejects = job.rejects() if job is not None else []
    manifest = store.write(run_id, rejects) if rejects and store is not None else None
    rejects_at = store.lake.uri(store.run_dir(run_id)) if manifest and store else None
    command = "validate" if mode == "validate" else "delete" if mode == "delete" else "send"
    document = results_document(
        model,
        results,
        command=command,
        started=started,
        data_dir=source,
        api_url=conn.base_url,
        namespace=cfg.namespace if cfg else "ed-fi",
        config_file=cfg.source if cfg else None,
    )
    if results_file:
        fs, path = url_to_fs(results_file)
        parent = path.rsplit("/", 1)[0]
        if parent:
            fs.makedirs(parent, exist_ok=True)
        with fs.open(path, "wb") as fh:
            fh.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))

    rows = [r.row(t0) for r in results]
    failed = sum(r.failed for r in results)
    status = (
        RunStatus.FAILED
        if failed
        else RunStatus.VALIDATED
        if mode == "validate"
        else RunStatus.COMPLETED
    )
    seconds = round((dt.datetime.now(dt.UTC) - started).total_seconds(), 2)
    summary: dict[str, Any] = {
        "run_id": run_id,
        "status": str(status),
        "mode": mode,
        "input": source,
        "target": target,
        "processed": sum(r.processed for r in results),
        "skipped": sum(r.skipped for r in results),
        "sent": sum(r.sent for r in results),
        "deleted": sum(r.deleted for r in results),
        "failed": failed,
        "seconds": seconds,
        **requests,
        "resources": rows,
        "rejects": rejects_at,
        "rejects_summary": summarize(rejects)[:TOP_CAUSES],
        "results_file": results_file,
        "results": document,
    }
    await acreate_table_artifact(
        table=rows,
        key="edfi-send-summary",
        description=f"Send run {run_id} ({status}, {mode}): {summary['sent']} sent, "
        f"{summary['skipped']} unchanged, {summary['deleted']} deleted, {failed} failed "
        f"in {seconds}s",
    )
    if failed:
        await acreate_markdown_artifact(
            markdown=_causes_markdown(results, rejects_at),
            key="edfi-send-failures",
            description=f"Top causes of the {failed} failed records of send run {run_id}",
        )
        raise SendError(_failure_message(model, results, failed, rejects_at, mode))
    logger.info(
        "%s: %d processed, %d sent, %d unchanged, %d deleted in %.1fs",
        status,
        summary["processed"],
        summary["sent"],
        summary["skipped"],
        summary["deleted"],
        seconds,
    )
    return summary


DESCRIPTORS = "descriptors"  # the one unit (and Prefect task) that sends every descriptor type


async def _run_resources(
    job: FileSend, model: Any, chosen: list[str], mode: str, parallelism: int
) -> list[ResourceResult]:
    """One task per resource, gated by the dependency graph (reversed for deletes).

    Descriptor types are one task together: they reference nothing but each
    other's absence, a district has a hundred or more of them with a handful
    of records each, and a Prefect task run costs more than sending them.
    """
    deps = (
        delete_dependencies(model, chosen) if mode == "delete" else send_dependencies(model, chosen)
    )
    descriptors = [p for p in chosen if model[p].is_descriptor]

    def unit(path: str) -> str:
        return DESCRIPTORS if model[path].is_descriptor else path

    units: dict[str, set[str]] = {}
    for path in chosen:
        units.setdefault(unit(path), set()).update(unit(d) for d in deps[path])
    for name, needs in units.items():
        needs.discard(name)
    task = delete_resource if mode == "delete" else send_resource
    results: dict[str, ResourceResult] = {}

    async def one(name: str) -> bool:
        paths = descriptors if name == DESCRIPTORS else [name]
        if job.stopped:
            for p in paths:
                results[p] = job.skipped_result(p, "not started: max_failures reached")
            return True
        if name == DESCRIPTORS:
            many = await _run(descriptor_types, job, paths, mode == "delete")
            if isinstance(many, BaseException):
                raise many
            results.update({r.resource: r for r in many})
            return True
        result = await _run(task, job, name)
        if isinstance(result, BaseException):
            raise result
        assert isinstance(result, ResourceResult)
        results[name] = result
        return True

    outcomes = await run_gated(units, one, parallelism=parallelism)
    for name, outcome in outcomes.items():
        if outcome.status == "done":
            continue
        for p in descriptors if name == DESCRIPTORS else [name]:
            results[p] = job.skipped_result(p, outcome.message)
            results[p].status = (
                ResourceStatus.FAILED if outcome.status == "failed" else ResourceStatus.BLOCKED
            )
    for path in list(job.sender.deferred):
        if path in results:
            again = await _run(resend_deferred, job, path)
            if isinstance(again, ResourceResult):
                results[path].merge(again)
    return [results[p] for p in chosen]


async def _connection(
    connection: EdFiConnection | str | None,
    cfg: LightbeamConfig | None,
    school_year: int | None,
    write_concurrency: int,
) -> tuple[Connection, int | None, str | None]:
    if connection is not None:
        block = await aload_block(connection, EdFiConnection)
        conn = write_connection(block.connection(), write_concurrency)
        years = block.school_years
        if school_year is not None and years and school_year not in years:
            raise SendError(
                f"school_year {school_year} is not among the connection's school years {years}."
            )
        year = school_year if school_year is not None else (max(years) if years else None)
        return conn, year, block.tenant
    if cfg is None:
        raise SendError("Set `connection` (an EdFiConnection block) or `lightbeam_config`.")
    conn = cfg.connection(max_concurrency=cfg.pool_size or write_concurrency)
    return conn, school_year if school_year is not None else cfg.school_year, None


def _config_methods(cfg: LightbeamConfig | None) -> tuple[str, ...] | None:
    if cfg is None or cfg.validate_methods == ("schema", "descriptors", "uniqueness"):
        return None  # lightbeam's default: ours adds local references
    methods = list(cfg.validate_methods)
    if "references" in methods and not cfg.references_remote:
        methods[methods.index("references")] = "local-references"
    return tuple(methods)


async def _state_location(
    state: LakeStorage | str | None, cfg: LightbeamConfig | None
) -> tuple[str | None, dict[str, Any]]:
    if state is not None:
        block = await aload_block(state, LakeStorage)
        return block.url, block.fsspec_options()
    if cfg is not None and cfg.state_dir:
        return cfg.state_dir, {}
    return None, {}


def _causes(results: list[ResourceResult]) -> list[tuple[str, str, str, int, str]]:
    counts: Counter[tuple[str, str, str]] = Counter()
    first: dict[tuple[str, str, str], str] = {}
    for r in results:
        for f in r.failures.values():
            key = (r.resource, str(f.method or f.status), f.message)
            counts[key] += len(f.lines)
            first.setdefault(key, f"{f.file}:{min(f.lines)}")
    return [(*k, n, first[k]) for k, n in counts.most_common()]


def _causes_markdown(results: list[ResourceResult], rejects_at: str | None) -> str:
    causes = _causes(results)
    lines = [
        "# Top failure causes",
        "",
        "| resource | status | message | records | first at |",
        "|---|---|---|---|---|",
    ]
    for resource, status, message, n, where in causes[:TOP_CAUSES]:
        text = message.replace("|", "\\|").replace("\n", " ")[:300]
        lines.append(f"| {resource} | {status} | {text} | {n} | `{where}` |")
    if len(causes) > TOP_CAUSES:
        lines.append(f"| ... | | {len(causes) - TOP_CAUSES} more causes | | |")
    if rejects_at:
        lines += [
            "",
            f"The rejected records are in `{rejects_at}` (one file per resource, as sent, and "
            "`_reasons.jsonl`). Failed records are tried again on every run; to send only the "
            "rejects after fixing them there, run with `resend_rejects=True`.",
        ]
    return "\n".join(lines) + "\n"


def _failure_message(
    model: Any, results: list[ResourceResult], failed: int, rejects_at: str | None, mode: str
) -> str:
    per = ", ".join(f"{model[r.resource].name} {r.failed}" for r in results if r.failed)
    top = _causes(results)[0]
    where = f" The rejected records are in {rejects_at}." if rejects_at else ""
    verb = "are invalid" if mode == "validate" else "failed"
    return (
        f"{failed} records {verb} ({per}). Most common: {top[2]} ({top[3]} records, first at "
        f"{top[4]}).{where} Fix them and run again: failed records are always retried."
    )
