"""The client counts retries, throttling and token renewals per unit of work, exactly.

Over real HTTP against the sandbox's injected faults: the sandbox's seeded
fault sequence is read first with a plain HTTP client, so the expected counts
come from the server's own answers, not from the client under test.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from pydantic import SecretStr

from edfi.client import (
    Connection,
    EdFiClient,
    EdFiConnectionError,
    RequestCounts,
    counting,
)
from sandbox.app import Faults
from sandbox.server import RunningSandbox, running_sandbox

SPEC = "error=0.3,throttle=0.2,retry_after=0.01,seed=1"


@pytest.fixture(scope="module")
def sb() -> Iterator[RunningSandbox]:
    with running_sandbox(students=0, template=False) as running:
        yield running


def _conn(sb: RunningSandbox, **kwargs: object) -> Connection:
    values: dict[str, object] = {
        "base_url": sb.base_url,
        "client_id": sb.client_id,
        "client_secret": SecretStr(sb.client_secret),
        "max_concurrency": 1,
        "max_retries": 30,
        "backoff_seconds": 0.001,
        "max_backoff_seconds": 0.01,
        **kwargs,
    }
    return Connection(**values)  # type: ignore[arg-type]


def _server_sequence(sb: RunningSandbox, n: int) -> list[int]:
    """The statuses the sandbox answers its next ``n`` data requests with, from ``SPEC``."""
    token = httpx.post(
        f"{sb.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(sb.client_id, sb.client_secret),
    ).json()["access_token"]
    sb.sandbox.faults = Faults.parse(SPEC)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        out = [http.get(f"{sb.base_url}/data/v3/ed-fi/schools").status_code for _ in range(n)]
    sb.sandbox.faults = Faults.parse(SPEC)  # the same sequence again, for the client
    return out


def test_retries_and_throttles_are_counted_by_cause(sb: RunningSandbox) -> None:
    answers = _server_sequence(sb, 80)
    wanted = 12
    successes = [i for i, status in enumerate(answers) if status == 200]
    failures = Counter(str(s) for s in answers[: successes[wanted - 1] + 1] if s != 200)
    assert failures["429"] and (failures["500"] or failures["503"])  # the seed shows all kinds

    async def run() -> RequestCounts:
        async with EdFiClient(_conn(sb)) as client:
            await client.discover()
            with counting() as counts:
                for _ in range(wanted):
                    await client.request("GET", f"{sb.base_url}/data/v3/ed-fi/schools")
            return counts

    try:
        counts = asyncio.run(run())
    finally:
        sb.sandbox.faults = Faults()
    assert counts.retries == sum(failures.values())
    assert counts.reasons == failures
    assert counts.throttled == failures["429"]
    assert counts.requests == wanted + counts.retries
    assert counts.token_renewals == 0
    assert counts.waited_seconds >= 0.01 * failures["429"]  # Retry-After honoured
    assert counts.columns() == {
        "requests": wanted + counts.retries,
        "retries": sum(failures.values()),
        "throttled": failures["429"],
        "token_renewals": 0,
    }
    assert counts.describe().startswith(f"{counts.retries} retries (")


def test_concurrent_units_keep_their_own_counts(sb: RunningSandbox) -> None:
    sb.sandbox.faults = Faults.parse("error=0.3,seed=2")

    async def unit(client: EdFiClient, n: int) -> RequestCounts:
        with counting() as counts:
            await asyncio.gather(
                *(client.request("GET", f"{sb.base_url}/data/v3/ed-fi/schools") for _ in range(n))
            )
        return counts

    async def run() -> tuple[RequestCounts, RequestCounts, RequestCounts]:
        async with EdFiClient(_conn(sb, max_concurrency=4)) as client:
            await client.discover()
            with counting() as total:
                a, b = await asyncio.gather(unit(client, 15), unit(client, 4))
            return a, b, total

    try:
        a, b, total = asyncio.run(run())
    finally:
        sb.sandbox.faults = Faults()
    assert a.requests - a.retries == 15
    assert b.requests - b.retries == 4
    assert total.requests == a.requests + b.requests
    assert total.retries == a.retries + b.retries > 0
    assert total.reasons == a.reasons + b.reasons


def test_a_revoked_token_is_one_renewal(sb: RunningSandbox) -> None:
    async def run() -> tuple[RequestCounts, RequestCounts]:
        async with EdFiClient(_conn(sb)) as client:
            with counting() as first:
                await client.request("GET", f"{sb.base_url}/data/v3/ed-fi/schools")
            sb.sandbox.tokens.clear()  # the server forgets every token: the next one is a 401
            with counting() as second:
                for _ in range(3):
                    await client.request("GET", f"{sb.base_url}/data/v3/ed-fi/schools")
            return first, second

    first, second = asyncio.run(run())
    assert first.columns() == {"requests": 1, "retries": 0, "throttled": 0, "token_renewals": 0}
    # the 401 is answered by renewing the token once; the request is then sent again
    assert second.columns() == {"requests": 4, "retries": 0, "throttled": 0, "token_renewals": 1}
    assert second.describe() == "1 token renewal"


def test_a_request_that_fails_keeps_its_counts(sb: RunningSandbox) -> None:
    sb.sandbox.faults = Faults.parse("drop=1")

    async def run(counts: RequestCounts) -> None:
        async with EdFiClient(_conn(sb, max_retries=2)) as client:
            with counting(counts):
                await client.request("GET", f"{sb.base_url}/data/v3/ed-fi/schools")

    counts = RequestCounts()
    try:
        with pytest.raises(EdFiConnectionError, match="failed after 3 attempts"):
            asyncio.run(run(counts))
    finally:
        sb.sandbox.faults = Faults()
    assert counts.requests == 3
    assert counts.retries == 2
    assert counts.reasons == Counter({"connection": 2})
    assert counts.describe().startswith("2 retries (connection: 2)")


def test_describe_reads_as_one_line() -> None:
    counts = RequestCounts(retries=37, token_renewals=2, waited_seconds=12.46)
    counts.reasons.update({"503": 30, "timeout": 7})
    assert counts.describe() == "37 retries (503: 30, timeout: 7), 2 token renewals, waited 12.5 s"
    assert RequestCounts().describe() == "no retries"
    total = RequestCounts()
    total.add(counts)
    total.add(counts)
    assert total.retries == 74 and total.reasons == Counter({"503": 60, "timeout": 14})
