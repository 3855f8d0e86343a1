"""Chaos on one lake: sandbox faults, short tokens, a run killed with -9 and a second
run overlapping it, repeated with seeds; afterwards the lake equals the sandbox
exactly (ids, etags, every field) and gold builds from it (issue 9)."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from random import Random

import pytest
from conftest import run_extract
from test_lake_concurrency import RESOURCES, assert_consistent, outcome, start_run

from blocks import LakeStorage
from edfi import amt
from edfi.lake import Lake
from sandbox.app import Faults
from sandbox.changes import apply_changes
from sandbox.server import RunningSandbox

pytestmark = pytest.mark.usefixtures("prefect_harness")
SEEDS = (5, 11)
# what the concurrency tests pull, and the student-school links besides
CHAOS = [*RESOURCES, "ed-fi/studentEducationOrganizationAssociations"]


def started(lake: Lake, known: set[str]) -> dict[str, str]:
    """The ids of the two runs just started, by mode (the victim is the slower one, but
    under faults either may end first: the kill is counted only if it hit)."""
    deadline = time.monotonic() + 90
    while True:
        lake.invalidate()
        fresh = [r for r in lake.runs() if r["run_id"] not in known]
        if len(fresh) == 2:
            return {r["mode"]: r["run_id"] for r in fresh}
        assert time.monotonic() < deadline, "the runs did not start"
        time.sleep(0.05)


def test_faults_kills_and_overlapping_runs_leave_the_lake_exact(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    sb = small_district
    storage = LakeStorage(url=str(tmp_path / "lake"))
    lake = storage.lake()
    assert run_extract(sb, lake.url, storage=storage, resources=CHAOS)["status"] == "completed"
    kills = 0
    for seed in SEEDS:
        rng = Random(seed)
        apply_changes(
            sb.store(),
            updates=rng.randint(1, 4),
            inserts=rng.randint(0, 2),
            deletes=rng.randint(0, 3),
            key_changes=rng.randint(0, 1),
            seed=seed,
        )
        sb.sandbox.faults = Faults.parse(
            f"error={rng.choice([0.02, 0.05])},throttle=0.03,retry_after=0.1,drop=0.02,"
            f"latency_ms=60,token_ttl={rng.choice([1, 2])},seed={seed}"
        )
        victim_mode, other_mode = rng.sample(["full", "incremental"], 2)
        try:
            known = {r["run_id"] for r in lake.runs()}
            victim = start_run(
                sb, storage, mode=victim_mode, resource_parallelism=2, resources=CHAOS
            )
            other = start_run(sb, storage, mode=other_mode, resource_parallelism=4, resources=CHAOS)
            runs = started(lake, known)
            time.sleep(rng.uniform(0.2, 1.5))
            if victim.poll() is None:
                victim.send_signal(signal.SIGKILL)  # mid-pull, leases and all
            victim.wait()
            survived = outcome(other)
        finally:
            sb.sandbox.faults = Faults()
            for proc in (victim, other):
                if proc.poll() is None:
                    proc.kill()
        assert survived["status"] == "completed", (seed, survived)
        assert survived["run_id"] == runs[other_mode]
        # the kill hit mid-pull only if it left the run's record running (a kill during the
        # process's teardown, after the run completed, leaves nothing to resume)
        lake.invalidate()
        victim_run = next(r for r in lake.runs() if r["run_id"] == runs[victim_mode])
        hit = victim.returncode == -signal.SIGKILL and victim_run["status"] == "running"
        kills += hit
        # the killed run's parameters again: it is resumed, its leases no obstacle
        again = run_extract(sb, lake.url, storage=storage, resources=CHAOS, mode=victim_mode)
        assert again["status"] == "completed", seed
        if hit:
            assert again["run_id"] == runs[victim_mode]
        assert_consistent(lake, sb, CHAOS)
    assert kills, "no run was killed mid-pull"
    manifest = amt.build_gold(lake, views=["SchoolDim"])
    schools = list(sb.store().iter_records(sb.store().model.find("schools")))
    assert manifest["views"]["SchoolDim"]["rows"] == len(schools) > 0
