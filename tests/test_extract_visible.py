"""What an extract run shows a person: request counts, task names, table order, progress.

One faulted run over real HTTP (seeded 5xx and 429s on every data request, and
one resource whose pages are broken) is read back from the Prefect server: its
task runs, its summary table artifact and its progress artifact. The run sends
one request at a time, so each resource's requests are one stretch of the
sandbox's fault sequence, which a plain HTTP client reads first: the expected
retries come from the server's answers, not from the client under test.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from conftest import connection_block

from blocks import LakeStorage
from edfi.lake import Lake, take_lease
from flows.progress import RunProgress, listening
from sandbox.app import Faults
from sandbox.server import RunningSandbox, running_sandbox

pytestmark = pytest.mark.usefixtures("prefect_harness")

SPEC = "error=0.1,throttle=0.25,retry_after=0.01,seed=3"
DATA = ["ed-fi/students", "ed-fi/schools", "ed-fi/calendars"]
DESCRIPTORS = ["ed-fi/gradeLevelDescriptors", "ed-fi/academicSubjectDescriptors"]


@pytest.fixture(scope="module")
def sb() -> Iterator[RunningSandbox]:
    with running_sandbox(students=20, seed=5) as running:
        yield running


def _server_sequence(sb: RunningSandbox, n: int) -> list[int]:
    """The statuses the sandbox answers its next ``n`` data requests with under ``SPEC``."""
    token = httpx.post(
        f"{sb.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(sb.client_id, sb.client_secret),
    ).json()["access_token"]
    sb.sandbox.faults = Faults.parse(SPEC)
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        return [http.get(f"{sb.base_url}/data/v3/ed-fi/schools").status_code for _ in range(n)]


def await_result(state: Any) -> dict[str, Any]:
    """A completed flow run's return value."""
    result = state.result()
    return dict(asyncio.run(result) if asyncio.iscoroutine(result) else result)


async def _read_back(flow_run_id: Any) -> tuple[list[Any], dict[str, Any]]:
    """The run's task runs (in start order) and its artifacts' data, by key."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
    async with get_client() as client:
        tasks = await client.read_task_runs(flow_run_filter=runs)
        artifacts = await client.read_artifacts(flow_run_filter=runs)
    data = {}
    for a in artifacts:
        data[a.key] = (orjson.loads(a.data) if isinstance(a.data, str) else a.data, a.description)
    return sorted(tasks, key=lambda t: t.start_time), data


@pytest.fixture(scope="module")
def faulted_run(sb: RunningSandbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from flows.extract import extract

    answers = _server_sequence(sb, 400)
    sb.sandbox.faults = Faults.parse(SPEC)  # the same sequence again
    lake_url = str(tmp_path_factory.mktemp("lake"))
    # another run is writing calendars: this run's pull of it fails before any request
    lake = Lake(lake_url)
    held = take_lease(
        lake,
        lake.lease_name(sb.sandbox.model.find("ed-fi/calendars"), 0),
        run_id="other-run",
        owner="other-run/1",
    )
    events: list[tuple[int, int, str]] = []
    records = logging.getLogger("prefect.flow_runs")
    seen: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = seen.append  # type: ignore[method-assign]
    records.addHandler(handler)

    def listen(run: RunProgress) -> None:
        events.append((run.done, run.total, run.last))

    try:
        with listening(listen):
            state = asyncio.run(
                extract(
                    connection_block(sb, max_concurrency=1, max_retries=20),
                    LakeStorage(url=lake_url),
                    resources=DATA + DESCRIPTORS,
                    resource_parallelism=1,
                    lease_wait_seconds=0,
                    return_state=True,
                )
            )
    finally:
        held.release()
        records.removeHandler(handler)
        sb.sandbox.faults = Faults()
    tasks, artifacts = asyncio.run(_read_back(state.state_details.flow_run_id))
    return {
        "state": state,
        "answers": answers,
        "tasks": tasks,
        "artifacts": artifacts,
        "events": events,
        "logs": seen,
    }


def test_each_resource_counts_exactly_the_retries_the_server_caused(
    faulted_run: dict[str, Any],
) -> None:
    answers: list[int] = faulted_run["answers"]
    rows = {r["resource"]: r for r in faulted_run["artifacts"]["edfi-extract-summary"][0]}
    # the run's first data request asks for the newest change version, then it counts
    # each resource once to find the empty ones: those stretches end at their
    # successes (1 + 3); then each task's requests, one task after the other
    successes = [i for i, status in enumerate(answers) if status == 200]
    at = successes[len(DATA)] + 1
    expected: dict[str, Counter[str]] = {}
    for task in faulted_run["tasks"]:
        names = DESCRIPTORS if task.name == "descriptors" else [task.name]
        n = sum(rows[name]["requests"] for name in names)
        stretch = answers[at : at + n]
        assert not stretch or stretch[-1] == 200, (task.name, stretch)
        expected[task.name] = Counter(str(s) for s in stretch if s != 200)
        at += n
    assert sum(sum(c.values()) for c in expected.values()) > 3  # the faults were felt
    assert rows["ed-fi/calendars"]["requests"] == 0  # it failed before asking anything
    # each pulled resource's requests, counted once: its partitions (one, for a few
    # records), the page and the empty page that ends the chain, and a request more for
    # every retry; a data resource's count is the one made before the fan-out (a full
    # pull does not ask again), a descriptor's is its own
    for name in ["ed-fi/students", "ed-fi/schools"]:
        assert rows[name]["requests"] == 3 + rows[name]["retries"], name
    for name in DESCRIPTORS:
        assert rows[name]["requests"] == 4 + rows[name]["retries"], name
    for name in DATA:
        assert rows[name]["retries"] == sum(expected[name].values()), name
        assert rows[name]["throttled"] == expected[name]["429"], name
        assert rows[name]["token_renewals"] == 0
    assert sum(rows[d]["retries"] for d in DESCRIPTORS) == sum(expected["descriptors"].values())
    assert sum(rows[d]["throttled"] for d in DESCRIPTORS) == expected["descriptors"]["429"]
    # one warning line per resource that was retried, naming the causes
    warned = {
        r.getMessage()
        for r in faulted_run["logs"]
        if r.levelno == logging.WARNING and "retr" in r.getMessage()
    }
    for name in DATA:
        causes = expected[name]
        if not causes:
            continue
        n = sum(causes.values())
        line = f"{name}: {n} {'retry' if n == 1 else 'retries'} ("
        assert any(w.startswith(line) for w in warned), (line, warned)
        for cause, count in causes.items():
            assert any(f"{cause}: {count}" in w for w in warned if w.startswith(line))


def test_task_names_read_as_the_resource(faulted_run: dict[str, Any]) -> None:
    names = sorted(t.name for t in faulted_run["tasks"])
    assert names == sorted([*DATA, "descriptors"])


def test_the_summary_table_lists_failures_then_the_largest_then_descriptors(
    faulted_run: dict[str, Any],
) -> None:
    assert faulted_run["state"].is_failed()
    rows, description = faulted_run["artifacts"]["edfi-extract-summary"]
    assert rows[0]["resource"] == "ed-fi/calendars"
    assert rows[0]["status"] == "failed" and "other-run" in rows[0]["message"]
    middle = rows[1:3]
    assert {r["resource"] for r in middle} == {"ed-fi/students", "ed-fi/schools"}
    assert middle[0]["records"] >= middle[1]["records"] > 0
    assert middle[0]["resource"] == "ed-fi/students"  # 20 students, fewer schools
    assert {r["resource"] for r in rows[3:]} == set(DESCRIPTORS)
    # the API is not year-specific: no school year, not a year 0
    assert [r["school_year"] for r in rows] == [None] * 5
    for column in ("requests", "retries", "throttled", "token_renewals"):
        assert all(isinstance(r[column], int) for r in rows), column
    assert "1 failed" in description


def test_progress_is_an_artifact_and_reaches_listeners(faulted_run: dict[str, Any]) -> None:
    events = faulted_run["events"]
    assert [done for done, _, _ in events] == [0, 1, 2, 3, 4]
    assert {total for _, total, _ in events} == {4}
    assert sorted(last for _, _, last in events[1:]) == sorted([*DATA, "descriptors"])
    progress, description = faulted_run["artifacts"]["edfi-extract-progress"]
    assert progress == 100.0
    assert "4 of 4 done" in description


def test_year_specific_task_names_carry_the_year(tmp_path: Path) -> None:
    from flows.extract import extract

    with running_sandbox(students=5, years=[2025]) as sb:
        state = asyncio.run(
            extract(
                connection_block(sb, school_years=[2025]),
                LakeStorage(url=str(tmp_path / "lake")),
                resources=["ed-fi/schools", "ed-fi/surveys", "ed-fi/gradeLevelDescriptors"],
                return_state=True,
            )
        )
        assert state.is_completed()
        summary = await_result(state)
    tasks, artifacts = asyncio.run(_read_back(state.state_details.flow_run_id))
    # resources the server holds nothing of are pulled together, in one task per year
    assert sorted(t.name for t in tasks) == [
        "descriptors 2025",
        "ed-fi/schools 2025",
        "empty resources 2025",
    ]
    rows = {r["resource"]: r for r in summary["resources"]}
    assert rows["ed-fi/surveys"]["status"] == "pulled" and rows["ed-fi/surveys"]["rows"] == 0
    table, _ = artifacts["edfi-extract-summary"]
    assert [r["school_year"] for r in table] == [2025, 2025, 2025]
    assert rows["ed-fi/schools"]["rows"] > 0
