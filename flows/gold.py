"""Gold flow: the lake's committed current tables -> AMT-shaped views under ``gold/``.

The flow is a thin shell around ``edfi.amt``: it resolves the lake block and
the descriptor map (so a bad map fails before anything is written), runs one
task per school year (every view of that year, in build order, in a DuckDB
session of its own), then commits the manifest that makes the new version
visible. DuckDB already uses every core inside one query; years share nothing
but the version folder, so they run at once: two in the default thread pool,
or spread over the workers of a Dask cluster (``EDFI_DASK_ADDRESS``, see
``flows.runners``).

A gold version is a function of what it reads: when the lake's committed
tables, the descriptor map, the view definitions and the as-of day are those
the committed version was built from, the run builds nothing and ends Cached
(its fingerprint lives in the manifest on the lake, not on a worker's disk).
"""

import datetime as dt
import time
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.states import Completed, State
from prefect.utilities.asyncutils import run_coro_as_sync

from blocks import LakeStorage, load_block
from edfi.amt import GoldBuild, GoldError, YearPart, load_descriptor_map
from edfi.lake import Lake
from edfi.vocabulary import RunStatus
from flows.limits import existing_limits
from flows.runners import file_parallel
from tasks.gold import build_year

# Two school years at once: each DuckDB session already uses every core, so more in one
# process would only multiply the memory held; a Dask cluster spreads them over machines.
GOLD_WORKERS = 2


@flow(
    name="edfi-gold",
    description="Lake -> Analytics Middle Tier (AMT) views as parquet "
    "under gold/, with the descriptor map.",
    task_runner=file_parallel(GOLD_WORKERS),
)
def gold(
    lake: LakeStorage | str,
    school_years: list[int] | None = None,
    descriptor_map: str | None = None,
    as_of: dt.date | None = None,
    force: bool = False,
) -> dict[str, Any] | State[dict[str, Any]]:
    """Build every AMT view from the lake's committed tables.

    Args:
        lake: a ``LakeStorage`` block or the name of a saved one.
        school_years: partitions to build (default: every school year the lake holds).
        descriptor_map: local path or storage URL of a descriptor map JSON file
            (default: AMT's default map, shipped with edfi-flows).
        as_of: the day AMT's "now" stands for (current enrollments, past dates, due
            assignments); default today. A past day shows a past year's lake as AMT
            would have shown it then.
        force: build even when nothing the views read has changed since the committed
            version (by default such a run is skipped and ends Cached).

    Returns a summary: the gold version, one row per view (rows, seconds) and the
    descriptor values used in the data that the map ties to no constant.
    """
    logger = get_run_logger()
    started = time.perf_counter()
    block = load_block(lake, LakeStorage)
    store = block.lake()
    rows, source = load_descriptor_map(descriptor_map, block.options_for(descriptor_map))
    when = dt.datetime.combine(as_of, dt.time.min, dt.UTC) if as_of else None
    build = GoldBuild(
        store, descriptor_map=rows, map_source=source, school_years=school_years, as_of=when
    )
    committed = None if force else build.unchanged()
    if committed is not None:
        build.close()
        return _cached(store, committed, started)
    try:
        limit = _storage_limit(_storage_api(block, store))
        futures = [build_year.submit(build, year, limit) for year in build.years]
        parts: list[YearPart] = [f.result() for f in futures]
        for part in sorted(parts, key=lambda p: p.year):
            build.add_year(part)
        views = [r.as_row() for r in build.results.values()]
        unmapped = build.unmapped()
        manifest = build.commit(unmapped)
    except BaseException:
        build.abort()
        raise
    finally:
        build.close()
    for u in unmapped:
        logger.warning(
            "%s value %r is used in %d rows (%s) but the descriptor map ties it to "
            "no constant; add a row to the map if the views should count it.",
            u["descriptor"],
            u["value"],
            u["rows"],
            ", ".join(u["used_in"]),
        )
    summary: dict[str, Any] = {
        "lake": store.url,
        "version": manifest["version"],
        "manifest": store.uri(store.path("gold", "_manifest.json")),
        "school_years": manifest["school_years"],
        "descriptor_map": source,
        "views": views,
        "years": [p.as_row() for p in sorted(parts, key=lambda p: p.year)],
        "rows": sum(v["rows"] for v in views),
        "seconds": round(time.perf_counter() - started, 2),
        "unmapped_descriptors": unmapped,
        "status": RunStatus.COMPLETED,
    }
    create_table_artifact(
        table=views,
        key="edfi-gold-summary",
        description=f"Gold version {manifest['version']} of {store.url}: {len(views)} views, "
        f"{summary['rows']} rows; {len(unmapped)} unmapped descriptor values",
    )
    logger.info(
        "Built %d AMT views (%d rows) into %s in %.1fs",
        len(views),
        summary["rows"],
        summary["manifest"],
        summary["seconds"],
    )
    return summary


def _storage_api(block: LakeStorage, store: Lake) -> str | None:
    """The API the build's tasks write through: the S3-compatible endpoint (or the bucket
    of another object store); none for a lake on a local or mounted disk."""
    endpoint = (block.fsspec_options().get("client_kwargs") or {}).get("endpoint_url")
    if endpoint:
        return str(endpoint)
    return None if store.local else block.url


def _storage_limit(url: str | None) -> str | None:
    """The storage API's global concurrency limit when the server has it (asked once per
    run; the tasks get its name), else None. The flow is sync, the lookup async."""
    if not url:
        return None
    found: dict[str, int] = run_coro_as_sync(existing_limits([url])) or {}
    return next(iter(found), None)


def _cached(store: Lake, manifest: dict[str, Any], started: float) -> State[dict[str, Any]]:
    """The committed version stands: nothing it was built from has changed."""
    views = [{"view": v, "rows": m["rows"], "seconds": 0.0} for v, m in manifest["views"].items()]
    summary: dict[str, Any] = {
        "lake": store.url,
        "version": manifest["version"],
        "manifest": store.uri(store.path("gold", "_manifest.json")),
        "school_years": manifest["school_years"],
        "descriptor_map": manifest.get("descriptor_map"),
        "views": views,
        "rows": sum(v["rows"] for v in views),
        "seconds": round(time.perf_counter() - started, 2),
        "unmapped_descriptors": manifest.get("unmapped_descriptors", []),
        "status": RunStatus.UP_TO_DATE,
    }
    message = (
        f"Gold version {manifest['version']} is current: the lake's committed tables, the "
        "descriptor map, the view definitions and the as-of day are those it was built from."
    )
    get_run_logger().info(message)
    return Completed(data=summary, message=message, name="Cached")


__all__ = ["GoldError", "gold"]
