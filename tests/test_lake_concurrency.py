"""Two extract runs on one lake at once, as real processes (issue 9, item 1).

A full run and, while it pulls, an incremental run of the same lake: the shipped
``nightly`` and ``full-refresh`` deployments overlapping. Before table leases and
compare-and-swap commits both reported "completed" while committed state files
named parquet versions the other run had deleted. The runs pull a handful of
resources (those the changes touch, and some they do not) behind sandbox latency,
so each run lasts long enough for the other to start inside it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import new_s3_lake, run_extract
from lakecheck import expected_rows, lake_rows

from blocks import LakeStorage
from edfi.lake import Lake, take_lease
from sandbox.app import Faults
from sandbox.changes import apply_changes
from sandbox.server import RunningSandbox

ROUNDS = 2
RESOURCES = [
    "ed-fi/students",
    "ed-fi/studentSchoolAssociations",
    "ed-fi/studentSectionAttendanceEvents",
    "ed-fi/schools",
    "ed-fi/sections",
    "ed-fi/courseOfferings",
    "ed-fi/staffs",
    "ed-fi/calendarDates",
]


def start_run(sb: RunningSandbox, storage: LakeStorage, **params: Any) -> subprocess.Popen[str]:
    """The extract flow in its own process, reporting to this session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    params = {"resources": RESOURCES, **params}
    secret = "SecretStr('testing')" if storage.secret_access_key else "None"
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        from pydantic import SecretStr
        from blocks import EdFiConnection, LakeStorage
        from flows.extract import extract
        conn = EdFiConnection(base_url={sb.base_url!r}, client_id={sb.client_id!r},
                              client_secret=SecretStr({sb.client_secret!r}), max_concurrency=4,
                              page_size=25)
        storage = LakeStorage.model_validate_json({storage.model_dump_json()!r})
        storage.secret_access_key = {secret}
        try:
            summary = asyncio.run(extract(conn, storage, **json.loads({json.dumps(params)!r})))
        except Exception as exc:
            print(json.dumps({{"error": f"{{type(exc).__name__}}: {{exc}}"}}))
            sys.exit(1)
        print(json.dumps({{"run_id": summary["run_id"], "status": summary["status"],
                          "statuses": sorted({{r["status"] for r in summary["resources"]}})}}))
    """)
    env = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        "PREFECT_LOGGING_LEVEL": "ERROR",
    }
    return subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )


def outcome(proc: subprocess.Popen[str], timeout: float = 180) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert lines, f"the run printed no outcome (exit {proc.returncode})"
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def new_run(lake: Lake, proc: subprocess.Popen[str], known: set[str]) -> dict[str, Any]:
    """The run doc of the run ``proc`` started, once it exists (the run is about to pull)."""
    deadline = time.monotonic() + 90
    while True:
        lake.invalidate()
        fresh = [r for r in lake.runs() if r["run_id"] not in known]
        if fresh:
            return fresh[0]
        assert proc.poll() is None, "the run ended before it started pulling"
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)


def both_running(lake: Lake, known: set[str]) -> dict[str, str]:
    """The ids of the two runs just started, by mode, once both are seen running at once."""
    deadline = time.monotonic() + 90
    while True:
        lake.invalidate()
        fresh = [r for r in lake.runs() if r["run_id"] not in known]
        if len(fresh) == 2:
            assert all(r["status"] == "running" for r in fresh), "a run ended before the other"
            return {r["mode"]: r["run_id"] for r in fresh}
        assert time.monotonic() < deadline, "the runs did not start"
        time.sleep(0.05)


def assert_consistent(lake: Lake, sb: RunningSandbox, resources: list[str] = RESOURCES) -> None:
    """Every committed state names only files that exist, and the lake equals the sandbox."""
    lake.invalidate()
    states = [s for p in lake.fs.find(lake.path("state")) if (s := lake.read_json(p))]
    assert sorted(s["resource"] for s in states) == sorted(resources)
    missing = [(s["resource"], f) for s in states for f in lake.files_of(s) if not lake.exists(f)]
    assert missing == []
    store = sb.store()
    for name in resources:
        resource = store.model.find(name)
        assert lake_rows(lake, resource, 0) == expected_rows(store, resource), name


def overlapping_runs(sb: RunningSandbox, storage: LakeStorage) -> None:
    lake = storage.lake()
    summary = run_extract(sb, lake.url, storage=storage, resources=RESOURCES)
    assert summary["status"] == "completed"
    for round_ in range(ROUNDS):
        apply_changes(sb.store(), updates=3, inserts=2, deletes=3, key_changes=1, seed=round_)
        # the first run crawls (a second per request, one resource at a time) until the
        # second is seen running beside it, however long the second's start-up takes on a
        # loaded machine; then both go at the usual pace
        sb.sandbox.faults = Faults(latency_ms=1000)
        try:
            known = {r["run_id"] for r in lake.runs()}
            full = start_run(sb, storage, mode="full", resource_parallelism=1)
            time.sleep(0.5)
            incremental = start_run(sb, storage, resource_parallelism=8)
            docs = both_running(lake, known)
            sb.sandbox.faults = Faults(latency_ms=100)
            first, second = outcome(full), outcome(incremental)
        finally:
            sb.sandbox.faults = Faults()
        assert first["status"] == "completed", first
        assert second["status"] == "completed", second
        # runs with different parameters, and each its own id
        assert first["run_id"] == docs["full"] != second["run_id"] == docs["incremental"]
        assert_consistent(lake, sb)

    # a table another run holds: with no time to wait the run fails at once, naming the
    # holder; given time it waits and completes once the holder lets go
    students = sb.store().model.find("students")
    hold = take_lease(
        lake, lake.lease_name(students, 0), run_id="holding-run-42", owner="holding-run-42/test"
    )
    try:
        refused = outcome(start_run(sb, storage, lease_wait_seconds=0))
        assert "error" in refused, refused
        assert "ed-fi/students (0) is being written by run 'holding-run-42'" in refused["error"]
        known = {r["run_id"] for r in lake.runs()}
        patient = start_run(sb, storage, mode="full", lease_wait_seconds=120)
        new_run(lake, patient, known)
        time.sleep(2)
        assert patient.poll() is None  # waiting for the students table
    finally:
        hold.release()
    assert outcome(patient)["status"] == "completed"
    assert_consistent(lake, sb)


@pytest.mark.usefixtures("prefect_harness")
def test_overlapping_runs_on_a_local_lake(small_district: RunningSandbox, tmp_path: Path) -> None:
    overlapping_runs(small_district, LakeStorage(url=str(tmp_path / "lake")))


@pytest.mark.usefixtures("prefect_harness")
def test_overlapping_runs_on_an_s3_lake(small_district: RunningSandbox, s3_endpoint: str) -> None:
    overlapping_runs(small_district, new_s3_lake(s3_endpoint))


def test_publish_state_is_saved_only_over_the_state_it_read(
    tmp_path: Path, s3_endpoint: str
) -> None:
    """Two publish runs of one pair: the one that saves second, over a state it did not
    read, is refused (its change version would move the other's back)."""
    from edfi.lake import LakeConflict
    from edfi.publish import StateStore

    for lake in (Lake(str(tmp_path / "lake")), new_s3_lake(s3_endpoint).lake()):
        first, second = StateStore(lake, "pair"), StateStore(lake, "pair")
        assert first.read() == {} and second.read() == {}
        first.write({"last_change_version": 10})
        with pytest.raises(LakeConflict, match="Another publish run of this pair"):
            second.write({"last_change_version": 5})
        assert StateStore(lake, "pair").read() == {"last_change_version": 10}
        first.write({"last_change_version": 12})  # a run goes on over its own saves
        assert second.read() == {"last_change_version": 12}
        second.write({"last_change_version": 20})
        assert StateStore(lake, "pair").read() == {"last_change_version": 20}


@pytest.mark.usefixtures("prefect_harness")
def test_a_state_naming_missing_files_is_pulled_again_never_unchanged(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    """What overlapping runs used to leave behind: a committed state whose parquet is gone."""
    sb = small_district
    lake = Lake(str(tmp_path / "lake"))
    assert run_extract(sb, lake.url, resources=RESOURCES)["status"] == "completed"
    students = sb.store().model.find("students")
    for path in lake.committed_files(students, 0):
        lake.rm(path)
    summary = run_extract(sb, lake.url, resources=RESOURCES)
    assert summary["status"] == "completed"
    rows = {r["resource"]: r for r in summary["resources"]}
    assert rows["ed-fi/students"]["status"] == "pulled"
    assert rows["ed-fi/students"]["mode"] == "full"
    assert "missing file" in rows["ed-fi/students"]["message"]
    assert {r["status"] for n, r in rows.items() if n != "ed-fi/students"} == {"unchanged"}
    assert_consistent(lake, sb)


@pytest.mark.usefixtures("prefect_harness")
def test_a_second_publish_of_one_pair_fails_at_once_naming_the_run_that_holds_it(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    from conftest import connection_block

    from edfi.errors import LeaseHeld
    from edfi.publish import endpoint_id, pair_key
    from flows.publish import publish
    from sandbox.server import running_sandbox

    with running_sandbox(students=0) as target:
        lake = Lake(str(tmp_path / "lake"))
        key = pair_key(
            endpoint_id(small_district.base_url, None, None),
            endpoint_id(target.base_url, None, None),
        )
        hold = take_lease(lake, f"publish/{key}", run_id="publish-run-7", owner="publish-run-7/x")
        before = target.sandbox.request_count
        try:
            with pytest.raises(LeaseHeld, match="by run 'publish-run-7'"):
                asyncio.run(
                    publish(
                        connection_block(small_district),
                        connection_block(target),
                        LakeStorage(url=lake.url),
                        include=["ed-fi/schools"],
                    )
                )
        finally:
            hold.release()
        assert target.sandbox.request_count == before  # refused before the target was asked
        assert not lake.exists(lake.path("publish", key, "state.json"))
