"""Bundle flow: a vendor file -> an earthmover bundle -> student-ID crosswalk -> send.

The flow runs a bundle as its authors wrote it (earthmover itself, on a working
copy of the bundle folder), after checking every parameter and input file the
bundle declares. Before the run, the student-ID crosswalk (``edfi.crosswalk``)
finds which column of the vendor file holds which Ed-Fi student ID against the
target's own roster, pulled by the project's client; the bundle then reads the
Ed-Fi ``studentUniqueId`` from the column the crosswalk adds. The bundle's
output goes through the ``send`` flow (validation, dependency order, state,
rejects), so a rerun on the same file sends nothing new. Everything a run makes
(the crosswalked and unmatched rows, the match rates, earthmover's outputs and
results) lands on the lake storage under ``bundle/runs/<run id>/``.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import uuid
from pathlib import Path
from typing import Any

import fsspec
import orjson
import pyarrow as pa
from prefect import flow, get_run_logger
from prefect.artifacts import acreate_table_artifact

from blocks import EdFiConnection, LakeStorage, aload_block
from edfi.bundle import (
    BundleError,
    count_lines,
    fetch_bundle,
    open_bundle,
    problems,
    run_earthmover,
)
from edfi.client import EdFiClient
from edfi.crosswalk import XWALK_COLUMN, Crosswalk, MatchRate, best_pair, read_csv, write_csv
from edfi.crosswalk import roster_table as build_roster
from edfi.lake import Lake
from edfi.paging import read_all
from edfi.sendstate import target_id
from edfi.vocabulary import RunStatus
from flows.send import send

ROSTER = "/ed-fi/studentEducationOrganizationAssociations"


async def _roster(block: EdFiConnection, school_year: int | None) -> list[dict[str, Any]]:
    """The target's student education organization associations (with their ID codes)."""
    async with EdFiClient(block.connection()) as client:
        await client.token()
        base = client.url("dataManagementApi", school_year)
        return [r async for r in read_all(client, base, ROSTER)]


def _dedupe_jsonl(data: bytes) -> tuple[bytes, int]:
    """Identical lines once (a bundle may emit one objective assessment per student row)."""
    seen: set[bytes] = set()
    kept: list[bytes] = []
    for line in data.splitlines():
        if line.strip() and line not in seen:
            seen.add(line)
            kept.append(line)
    return b"\n".join(kept) + (b"\n" if kept else b""), len(data.splitlines()) - len(kept)


@flow(
    name="edfi-bundle",
    description="A vendor file through an earthmover bundle, with the student-ID crosswalk "
    "against the target's roster, validated and sent to an Ed-Fi API.",
)
async def bundle(
    bundle: str,
    parameters: dict[str, str],
    connection: EdFiConnection | str,
    lake: LakeStorage | str,
    crosswalk: bool = True,
    student_id_columns: list[str] | None = None,
    required_match_rate: float = 0.5,
    force_match_rates: bool = False,
    school_year: int | None = None,
    write_concurrency: int = 32,
) -> dict[str, Any]:
    """Run an earthmover bundle on a vendor file and send what it makes.

    Args:
        bundle: the bundle folder (e.g. a checkout of earthmover_edfi_bundles'
            ``assessments/i-Ready``) on local disk or any fsspec storage.
        parameters: the bundle's parameters, as ``earthmover run -p`` takes them
            (``INPUT_FILE``, ``API_YEAR``, …). ``OUTPUT_DIR`` and ``STATE_FILE``
            are the flow's. Input files may be on any fsspec storage.
        connection: ``EdFiConnection`` block (or saved block name) of the target.
        lake: ``LakeStorage`` block (or name) for the run's files, the match rates
            kept between runs, the send state and the rejects.
        crosswalk: find the student-ID column against the target's roster; when off,
            the bundle reads ``STUDENT_ID_NAME`` as given.
        student_id_columns: the vendor file's candidate ID columns (default: the
            bundle's ``POSSIBLE_STUDENT_ID_COLUMNS``).
        required_match_rate: the least match rate a (column, ID type) pair needs
            (the package's ``REQUIRED_ID_MATCH_RATE``).
        force_match_rates: compute the match rates again instead of reusing the ones
            kept for this bundle, target and school year.
        school_year: year of a year-specific target (default: the connection's latest).
        write_concurrency: writes in flight to the target at once.

    Returns the run summary: the crosswalk's choice and rates, what earthmover made,
    and the send summary.
    """
    logger = get_run_logger()
    conn = await aload_block(connection, EdFiConnection)
    store = await aload_block(lake, LakeStorage)
    lake_ = store.lake()
    year = school_year if school_year is not None else max(conn.school_years or [0]) or None
    run_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    run_dir = f"bundle/runs/{run_id}"  # relative to the lake root, as every lake.path part
    params = {k: str(v) for k, v in parameters.items()}
    summary: dict[str, Any] = {"run_id": run_id, "run_folder": lake_.uri(lake_.path(run_dir))}

    with tempfile.TemporaryDirectory(prefix="edfi-bundle-") as tmp:
        work = Path(tmp)
        spec = open_bundle(fetch_bundle(bundle, work))
        found = problems(spec, params)
        if found:
            raise BundleError(" ".join(found))
        summary["bundle"] = spec.name
        # earthmover reads local files: bring every declared input here
        for item in spec.input_files:
            if params.get(item.param):
                local = work / "inputs" / f"{item.param}{Path(params[item.param]).suffix}"
                local.parent.mkdir(exist_ok=True)
                with fsspec.open(params[item.param], "rb") as src:
                    local.write_bytes(src.read())
                params[item.param] = str(local)

        candidates = list(student_id_columns or spec.student_id_columns)
        no_match: str | None = None
        if crosswalk and candidates and "INPUT_FILE" in params:
            chosen, rates, unmatched = await _crosswalk(
                lake_,
                run_dir,
                spec.name,
                target_id(conn.base_url, school_year=year, tenant=conn.tenant),
                params,
                candidates,
                required_match_rate,
                force_match_rates,
                lambda: _roster(conn, year),
            )
            summary["crosswalk"] = {
                "chosen": chosen.as_row() if chosen else None,
                "rates": [r.as_row() for r in rates],
                "unmatched_rows": unmatched,
                "unmatched_file": lake_.uri(lake_.path(run_dir, "unmatched.csv")),
            }
            await acreate_table_artifact(
                key="edfi-bundle-match-rates",
                table=[
                    {**r.as_row(), "chosen": r == chosen}
                    for r in sorted(rates, key=lambda r: -r.rate)
                ],
                description=f"{spec.name}: student-ID match rates; {unmatched} rows unmatched "
                f"(kept in {summary['crosswalk']['unmatched_file']}).",
            )
            if chosen is None:
                best = max(rates, key=lambda r: r.rate)
                no_match = (
                    f"No student-ID column reaches the required match rate "
                    f"{required_match_rate:.0%}: the best is {best.source_column!r} as "
                    f"{best.edfi_column} at {best.rate:.1%}; nothing student-level was sent."
                )
                logger.error(no_match)
            params["STUDENT_ID_NAME"] = XWALK_COLUMN

        made = run_earthmover(spec, params, work / "output")
        counts = count_lines(made.files)
        summary["earthmover"] = counts
        out_dir = f"{run_dir}/output"
        duplicates = 0
        for name, path in made.files.items():
            data, dropped = _dedupe_jsonl(path.read_bytes())
            duplicates += dropped
            lake_.write_bytes(lake_.path(out_dir, f"{name}.jsonl"), data)
        lake_.write_json(lake_.path(run_dir, "earthmover_results.json"), made.results)
        summary["duplicates_collapsed"] = duplicates
        logger.info(
            "earthmover made %s (%d identical records collapsed)",
            ", ".join(f"{n} {k}" for k, n in counts.items()),
            duplicates,
        )

    output = store.model_copy(update={"url": lake_.uri(lake_.path(out_dir))})
    sent = await send(
        input=output,
        connection=conn,
        state=store,
        school_year=year,
        write_concurrency=write_concurrency,
    )
    summary["send"] = sent
    summary["resources"] = sent.get("resources", [])
    summary["status"] = RunStatus.FAILED if no_match else sent.get("status", RunStatus.COMPLETED)
    if no_match:
        raise BundleError(no_match)
    return summary


async def _crosswalk(
    lake: Lake,
    run_dir: str,
    bundle_name: str,
    target: str,
    params: dict[str, str],
    candidates: list[str],
    required: float,
    force: bool,
    fetch_roster: Any,
) -> tuple[MatchRate | None, list[MatchRate], int]:
    """Score (or reuse) the rates, apply the best pair, point INPUT_FILE at the result."""
    source = Path(params["INPUT_FILE"])
    data = read_csv(source.read_bytes())
    roster = build_roster(await fetch_roster())
    x = Crosswalk(data, roster)
    try:
        kept_at = lake.path("bundle", "match_rates", target, f"{_slug(bundle_name)}.json")
        kept = None if force else lake.read_json(kept_at)
        if kept and set(kept.get("candidates", [])) == set(candidates):
            rates = [MatchRate(**r) for r in kept["rates"]]
        else:
            rates = x.match_rates(candidates)
            lake.write_json(
                kept_at,
                {
                    "candidates": candidates,
                    "rates": [
                        {
                            "source_column": r.source_column,
                            "edfi_column": r.edfi_column,
                            "matches": r.matches,
                            "rows": r.rows,
                        }
                        for r in rates
                    ],
                },
            )
        chosen = best_pair(rates, required)
        if chosen is None:
            matched, unmatched = data.slice(0, 0), data
        else:
            matched, unmatched = x.apply(chosen)
    finally:
        x.close()
    xwalked = source.with_name(f"xwalked{source.suffix or '.csv'}")
    if chosen is None:  # the bundle still makes what is not student-level (assessments, seeds)
        columns = [*data.column_names, XWALK_COLUMN]
        xwalked.write_bytes(write_csv(pa.table({c: pa.array([], pa.string()) for c in columns})))
    else:
        xwalked.write_bytes(write_csv(matched))
    lake.write_bytes(lake.path(run_dir, "unmatched.csv"), write_csv(unmatched))
    lake.write_bytes(lake.path(run_dir, "input_xwalked.csv"), xwalked.read_bytes())
    lake.write_bytes(
        lake.path(run_dir, "match_rates.json"), orjson.dumps([r.as_row() for r in rates])
    )
    params["INPUT_FILE"] = str(xwalked)
    return chosen, rates, unmatched.num_rows


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-") or "bundle"


__all__ = ["BundleError", "bundle"]
