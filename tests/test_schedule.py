"""The gated scheduler: prerequisites first, independent units together, failures block."""

from __future__ import annotations

import asyncio
import time

import pytest

from edfi.errors import GraphError
from edfi.schedule import Outcome, run_gated


def test_units_start_when_their_own_prerequisites_finish() -> None:
    # a -> slow (0.3 s); b -> fast (0.05 s) -> c. c must not wait for slow.
    deps = {"slow": [], "fast": [], "c": ["fast"], "d": ["slow", "c"]}
    starts: dict[str, float] = {}
    ends: dict[str, float] = {}
    t0 = time.perf_counter()

    async def run(unit: str) -> str:
        starts[unit] = time.perf_counter() - t0
        await asyncio.sleep(0.3 if unit == "slow" else 0.05)
        ends[unit] = time.perf_counter() - t0
        return unit.upper()

    outcomes = asyncio.run(run_gated(deps, run, parallelism=4))
    assert list(outcomes) == ["slow", "fast", "c", "d"]
    assert all(o.status == "done" for o in outcomes.values())
    assert outcomes["d"].result == "D"
    assert starts["c"] >= ends["fast"] and starts["c"] < ends["slow"]  # overlapped with slow
    assert starts["d"] >= max(ends["slow"], ends["c"])


def test_parallelism_bounds_running_units_not_waiting_ones() -> None:
    running = peak = 0

    async def run(unit: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    deps: dict[int, list[int]] = {i: [] for i in range(12)}
    deps[99] = list(range(12))
    outcomes = asyncio.run(run_gated(deps, run, parallelism=3))
    assert peak == 3
    assert len(outcomes) == 13 and all(o.ok for o in outcomes.values())


def test_a_failure_blocks_everything_downstream_and_names_the_cause() -> None:
    deps = {
        "schools": [],
        "students": [],
        "sessions": ["schools"],
        "sections": ["sessions"],
        "ssa": ["schools", "students"],
        "grades": ["sections", "ssa"],
    }
    ran: list[str] = []
    done: list[tuple[str, str]] = []

    async def run(unit: str) -> int:
        ran.append(unit)
        if unit == "sessions":
            raise RuntimeError("sessions: HTTP 500 after 5 retries")
        return 0 if unit != "ssa" else 3

    async def on_done(o: Outcome[str, int]) -> None:
        done.append((o.unit, o.status))

    outcomes = asyncio.run(
        run_gated(deps, run, parallelism=2, failed=lambda n: n > 0, on_done=on_done)
    )
    assert sorted(ran) == ["schools", "sessions", "ssa", "students"]
    status = {u: o.status for u, o in outcomes.items()}
    assert status == {
        "schools": "done",
        "students": "done",
        "sessions": "failed",
        "sections": "blocked",
        "ssa": "failed",  # by the predicate: it returned 3
        "grades": "blocked",
    }
    assert outcomes["sections"].blocked_by == ("sessions",)
    assert outcomes["grades"].blocked_by == ("sessions", "ssa")
    assert outcomes["grades"].message == "not run: sessions, ssa failed"
    assert outcomes["sessions"].message == "sessions: HTTP 500 after 5 retries"
    assert isinstance(outcomes["sessions"].error, RuntimeError)
    assert sorted(done) == sorted(status.items())


def test_unknown_prerequisites_are_ignored_and_cycles_refused() -> None:
    async def run(unit: str) -> str:
        return unit

    outcomes = asyncio.run(run_gated({"a": ["not scheduled"], "b": ["a"]}, run, parallelism=1))
    assert [o.status for o in outcomes.values()] == ["done", "done"]
    with pytest.raises(GraphError, match="cycle through a, b"):
        asyncio.run(run_gated({"a": ["b"], "b": ["a"], "c": []}, run, parallelism=1))
    with pytest.raises(ValueError, match="parallelism"):
        asyncio.run(run_gated({"a": []}, run, parallelism=0))
