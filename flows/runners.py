"""Task runners: every flow's bounded thread pool, and Dask for the file-parallel flows.

Each flow names its task runner in its decorator so the bound on work in
flight is a decision written down, not Prefect's default (a pool as large as
the machine). The API-facing flows hold one client per API inside the flow
run (one token, one request budget, bounded by the connection's
``max_concurrency``); their tasks are coroutines awaited on the flow's loop,
so the pool only bounds anything handed to it, and it is kept small.

The file-parallel flows (gold, bulk_load, bundle) take ``file_parallel``:
the same thread pool, or prefect-dask's ``DaskTaskRunner`` against an
existing Dask cluster when ``EDFI_DASK_ADDRESS`` names its scheduler (read
when the flow module is imported, so a work pool's job variables can set it),
or per call with ``on_dask(flow, address)``. Work spread over processes can no
longer share one in-process semaphore, so a task that talks to an API takes
one slot of a Prefect global concurrency limit named after that API's host
for its whole run (``api_slot``; never per request, which would cost a server
round trip per request).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

DASK_ADDRESS_ENV = "EDFI_DASK_ADDRESS"

# The API flows' pool. Their per-resource tasks are coroutines awaited on the flow run's
# loop (bounded by their resource_parallelism and the connection's max_concurrency), so
# the pool holds only what a flow hands to it; four threads keep that from ever taking
# the machine (Prefect's default is a pool as large as the machine).
API_FLOW_WORKERS = 4

F = TypeVar("F")


def threads(max_workers: int) -> TaskRunner[PrefectFuture[Any]]:
    """Prefect's thread pool with an explicit bound."""
    return cast(TaskRunner[PrefectFuture[Any]], ThreadPoolTaskRunner(max_workers=max_workers))


def dask(address: str) -> TaskRunner[PrefectFuture[Any]]:
    """prefect-dask's runner on the Dask scheduler at ``address`` (an existing cluster:
    the flow run never starts or stops one)."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:  # the optional extra
        raise RuntimeError(
            f"A Dask scheduler is named ({address}) but prefect-dask is not installed; "
            "install it with: pip install 'edfi-flows[dask]'"
        ) from exc
    return cast(TaskRunner[PrefectFuture[Any]], DaskTaskRunner(address=address))


def file_parallel(max_workers: int) -> TaskRunner[PrefectFuture[Any]]:
    """The runner of a file-parallel flow: Dask when ``EDFI_DASK_ADDRESS`` is set,
    else a thread pool of ``max_workers``."""
    address = os.environ.get(DASK_ADDRESS_ENV, "").strip()
    return dask(address) if address else threads(max_workers)


def on_dask(flow: F, address: str) -> F:
    """``flow`` with its tasks sent to the Dask scheduler at ``address``."""
    return flow.with_options(task_runner=dask(address))  # type: ignore[attr-defined]


def api_limit(url: str) -> str:
    """The global concurrency limit of the API at ``url``: one per host and port
    (``https://api.district.org/v7`` -> ``edfi-api-api.district.org-443``); limit names
    take no ``/`` or ``:``."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    port = parts.port or (443 if parts.scheme in ("https", "s3", "s3a") else 80)
    return "edfi-api-" + re.sub(r"[^A-Za-z0-9.-]", "-", f"{parts.hostname}-{port}")


@contextmanager
def api_slot(limit: str | None) -> Iterator[None]:
    """Hold one slot of the global concurrency limit ``limit`` for the block (a whole task,
    never one request); ``None`` holds nothing (the flow passes the name only when
    ``flows.limits.existing_limits`` found the limit: a slot of a missing one would only
    log a warning per task). Create the limit with
    ``prefect gcl create edfi-api-<host>-<port> --limit N`` to bound that API across every
    process and flow run."""
    if not limit:
        yield
        return
    from prefect.concurrency.sync import concurrency

    with concurrency(limit, occupy=1, strict=True):
        yield
