"""Per-API global concurrency limits, held by whole flow runs.

A state pulling a hundred district APIs runs many extract runs at once on many
workers; each district's API owner allows only so much. A Prefect global
concurrency limit named after the API's host and port (``edfi-api-<host>-<port>``)
bounds how many runs work against that API at once, across every worker and
machine. A run takes its slot once, for as long as it talks to the API -- never
per request, which would cost a server round trip per request.

A limit that does not exist is not waited for (a single district's nightly run
needs none); ``extract_many`` and ``publish_many`` create the limits of the APIs
they start runs against, and ``prefect gcl create`` makes one by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import (
    GlobalConcurrencyLimitCreate,
    GlobalConcurrencyLimitUpdate,
)
from prefect.concurrency.asyncio import concurrency
from prefect.exceptions import ObjectNotFound

from flows.runners import api_limit  # the one naming of a per-API limit (tasks use it too)

# A run can wait long for its slot (other runs of the API may take hours); the lease is
# renewed in the background while the run holds it, and lapses if the run's process dies.
LEASE_SECONDS = 300.0


async def existing_limits(urls: list[str]) -> dict[str, int]:
    """The limits of these APIs that exist (and are active) on the server, with their sizes.

    The one lookup of per-API limits: ``api_slots`` holds a slot of each (the API
    flows), gold passes the name to its tasks, which hold it with ``runners.api_slot``.
    A limit that is missing or switched off is left out, since waiting on it would
    only log a warning (missing) or never block (inactive).
    """
    found: dict[str, int] = {}
    async with get_client() as client:
        for name in sorted({api_limit(u) for u in urls}):
            try:
                limit = await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                continue
            if limit.active:
                found[name] = limit.limit
    return found


async def set_limits(urls: list[str], size: int) -> list[str]:
    """Create or resize the limit of each API to ``size`` runs at once; their names."""
    names = sorted({api_limit(u) for u in urls})
    async with get_client() as client:
        for name in names:
            try:
                limit = await client.read_global_concurrency_limit_by_name(name)
            except ObjectNotFound:
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=size)
                )
                continue
            if limit.limit != size or not limit.active:
                await client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=size, active=True)
                )
    return names


@asynccontextmanager
async def api_slots(*urls: str) -> AsyncIterator[None]:
    """Hold one slot of each of these APIs' limits (those that exist) for the block."""
    found = await existing_limits(list(urls))
    if not found:
        yield
        return
    get_run_logger().info(
        "Taking a slot of %s (runs at once against the API)",
        ", ".join(f"{name} (limit {size})" for name, size in found.items()),
    )
    async with concurrency(sorted(found), occupy=1, lease_duration=LEASE_SECONDS, strict=True):
        yield
