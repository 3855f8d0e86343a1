"""Bundle flow: vendor files -> earthmover bundles -> student-ID crosswalk -> send.

The flow runs each bundle as its authors wrote it (earthmover itself, on a working
copy of the bundle folder). Every run (a bundle on one input file) is staged and
checked first, all of them before any runs, so bad input stops the flow before
anything is written. The roster for the student-ID crosswalk is read once: from
the target through the project's client, or from an extract lake. The runs fan
out as Prefect tasks (``edfi.bundle.execute``: crosswalk, earthmover, the run's
files on the lake under ``bundle/runs/<run id>/<n>-<label>/``); their outputs go
through the ``send`` flow one after another (validation, dependency order,
state, rejects), so a rerun on the same files sends nothing new.
"""

import asyncio
import datetime as dt
import tempfile
import uuid
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact
from pydantic import BaseModel, Field

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.bundle import (
    BundleError,
    CrosswalkOptions,
    RunOutcome,
    run_folder,
    stage,
)
from edfi.client import EdFiClient
from edfi.crosswalk import KeptRates, lake_roster, roster_table
from edfi.errors import SendError
from edfi.paging import read_all
from edfi.sendstate import target_id
from edfi.vocabulary import RunStatus
from flows.runners import API_FLOW_WORKERS, file_parallel
from flows.send import send
from tasks.bundle import run_bundle

ROSTER = "/ed-fi/studentEducationOrganizationAssociations"


class BundleRun(BaseModel):
    """One more bundle to run in the same flow run, with its own parameters."""

    bundle: str = Field(..., description="Bundle folder (any fsspec URL).")
    parameters: dict[str, str] = Field(
        default_factory=dict, description="The bundle's parameters, as earthmover -p takes them."
    )


async def _api_roster(block: EdFiConnection, school_year: int | None) -> list[dict[str, Any]]:
    """The target's student education organization associations (with their ID codes)."""
    async with EdFiClient(block.connection()) as client:
        await client.token()
        base = client.url("dataManagementApi", school_year)
        return [r async for r in read_all(client, base, ROSTER)]


def _label(bundle: str, params: dict[str, str]) -> str:
    name = bundle.rstrip("/").rsplit("/", 1)[-1]
    file = params.get("INPUT_FILE", "")
    return f"{name} {file.rstrip('/').rsplit('/', 1)[-1]}".strip() if file else name


@flow(
    name="edfi-bundle",
    description="Vendor files through earthmover bundles, with the student-ID crosswalk "
    "against the target's roster, validated and sent to an Ed-Fi API.",
    task_runner=file_parallel(API_FLOW_WORKERS),  # bounded: see flows.runners
)
async def bundle(
    bundle: str | None,
    parameters: dict[str, str],
    connection: EdFiConnection | str,
    lake: LakeStorage | str,
    input_files: list[str] | None = None,
    more_bundles: list[BundleRun] | None = None,
    crosswalk: bool = True,
    roster_lake: LakeStorage | str | None = None,
    student_id_columns: list[str] | None = None,
    required_match_rate: float = 0.5,
    force_match_rates: bool = False,
    school_year: int | None = None,
    parallel_runs: int = 2,
    write_concurrency: int = 32,
) -> dict[str, Any]:
    """Run earthmover bundles on vendor files and send what they make.

    Args:
        bundle: the bundle folder (e.g. a checkout of earthmover_edfi_bundles'
            ``assessments/i-Ready``) on local disk or any fsspec storage.
        parameters: the bundle's parameters, as ``earthmover run -p`` takes them
            (``INPUT_FILE``, ``API_YEAR``, …). ``OUTPUT_DIR`` and ``STATE_FILE``
            are the flow's. Input files may be on any fsspec storage.
        connection: ``EdFiConnection`` block (or saved block name) of the target.
        lake: ``LakeStorage`` block (or name) for the run's files, the match rates
            kept between runs, the send state and the rejects.
        input_files: several vendor files (a year's worth of drops) for ``bundle``:
            one run per file, each as its ``INPUT_FILE``.
        more_bundles: other bundles to run in the same flow run, each with its own
            parameters.
        crosswalk: find the student-ID column against the roster; when off, the
            bundle reads ``STUDENT_ID_NAME`` as given.
        roster_lake: an extract lake (``LakeStorage`` block or name) to read the
            roster from (its committed studentEducationOrganizationAssociations)
            instead of the target's API.
        student_id_columns: the vendor file's candidate ID columns (default: each
            bundle's ``POSSIBLE_STUDENT_ID_COLUMNS``).
        required_match_rate: the least match rate a (column, ID type) pair needs
            (the package's ``REQUIRED_ID_MATCH_RATE``).
        force_match_rates: compute the match rates again instead of reusing the ones
            kept for this bundle, target and school year.
        school_year: year of a year-specific target (default: the connection's latest).
        parallel_runs: earthmover runs at once.
        write_concurrency: writes in flight to the target at once.

    Returns the run summary: per run the crosswalk's choice and rates and what
    earthmover made, and the send summaries.
    """
    logger = get_run_logger()
    conn = await aload_block(connection, EdFiConnection)
    store = await aload_block(lake, LakeStorage)
    lake_ = store.lake()
    year = school_year if school_year is not None else max(conn.school_years or [0]) or None
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    target = target_id(conn.base_url, school_year=year, tenant=conn.tenant)
    requested: list[tuple[str, dict[str, str]]] = []
    if bundle:
        base = {k: str(v) for k, v in parameters.items()}
        for file in input_files or [None]:  # type: ignore[list-item]
            requested.append((bundle, {**base, "INPUT_FILE": file} if file else base))
    requested += [(b.bundle, dict(b.parameters)) for b in more_bundles or []]
    if not requested:
        raise BundleError("Give a bundle (or more_bundles) to run.")

    with tempfile.TemporaryDirectory(prefix="edfi-bundle-") as tmp:
        staged = [
            stage(
                _label(b, p),
                b,
                p,
                Path(tmp) / f"{i:02d}",
                store.options_for(b),
                store.options_for(p.get("INPUT_FILE")),
            )
            for i, (b, p) in enumerate(requested)
        ]
        found = [f"{s.label}: {p}" if len(staged) > 1 else p for s in staged for p in s.problems]
        if found:
            raise BundleError(" ".join(found))

        options: dict[int, CrosswalkOptions | None] = dict.fromkeys(range(len(staged)))
        if crosswalk and any(student_id_columns or s.spec.student_id_columns for s in staged):
            if roster_lake is not None:
                source = await aload_block(roster_lake, LakeStorage)
                records = lake_roster(source.lake(), year)
            else:
                records = await _api_roster(conn, year)
            roster = roster_table(records)
            logger.info("Roster: %d associations", len(records))
            for i, s in enumerate(staged):
                options[i] = CrosswalkOptions(
                    roster=roster,
                    kept=KeptRates(lake_, target, s.spec.name),
                    candidates=tuple(student_id_columns or ()),
                    required=required_match_rate,
                    force=force_match_rates,
                )

        gate = asyncio.Semaphore(max(1, parallel_runs))
        outcomes: list[RunOutcome] = await asyncio.gather(
            *(
                run_bundle(
                    s.label,
                    s,
                    lake_,
                    lake_.path(run_folder(run_id, i, s.label)),
                    options[i],
                    store.options_for(s.params.get("INPUT_FILE")),
                    gate,
                )
                for i, s in enumerate(staged)
            )
        )

    runs = [o.summary(lake_) for o in outcomes]
    for outcome in outcomes:
        if outcome.crosswalk is not None:
            x = outcome.crosswalk
            await acreate_table_artifact(
                key="edfi-bundle-match-rates",
                table=x.rows(),
                description=f"{outcome.label}: student-ID match rates; {x.unmatched} rows "
                f"unmatched (kept in {lake_.uri(outcome.unmatched_file or '')}).",
            )
    no_match = [o.no_match_message(required_match_rate) for o in outcomes if o.below_threshold]
    for message in no_match:
        logger.error(message)

    sent: list[dict[str, Any]] = []
    failed: list[str] = []
    for outcome in outcomes:  # one after another: later runs reuse the same assessments
        output = store.model_copy(update={"url": lake_.uri(outcome.output)})
        try:
            sent.append(
                await send(
                    input=output,
                    connection=conn,
                    state=store,
                    school_year=year,
                    write_concurrency=write_concurrency,
                )
            )
        except SendError as exc:  # rejects are kept; the other runs still send
            failed.append(f"{outcome.label}: {exc}")
    summary: dict[str, Any] = {
        "run_id": run_id,
        "run_folder": lake_.uri(lake_.path("bundle", "runs", run_id)),
        "runs": runs,
        "send": sent,
        "sent": sum(s.get("sent", 0) for s in sent),
        "resources": [r for s in sent for r in s.get("resources", [])],
        "status": RunStatus.FAILED if no_match or failed else RunStatus.COMPLETED,
    }
    if failed:
        raise SendError(" ".join([*no_match, *failed]))
    if no_match:
        raise BundleError(" ".join(no_match))
    return summary


__all__ = ["BundleError", "BundleRun", "bundle"]
