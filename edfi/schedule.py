"""The gated scheduler: run units of work as soon as everything they depend on has finished.

Writes into an Ed-Fi API follow the dependency graph: a resource's records can
only be accepted once the records they reference are in. Rather than walking
the graph level by level (where the slowest resource of a level holds back
every resource of the next), each unit waits only for its own prerequisites,
so independent resources overlap in time. ``parallelism`` bounds how many
units run at once; a semaphore taken only *after* a unit's prerequisites are
done means waiting units never hold a slot.

A unit whose run raises has **failed**; every unit that depends on it,
directly or through others, is **blocked**: it is not run (its records would
only be refused for missing references), and its outcome names the failed
units that blocked it. A caller can also count a unit as failed without an
exception, by passing ``failed`` (a predicate on the unit's result).

Units are any hashable values (a resource path, a ``(stage, resource)`` pair);
their dependencies on units that are not scheduled are ignored, so a caller
can pass a subset of a graph. A cycle among the units is refused up front
with ``GraphError``. Nothing here knows about HTTP or Ed-Fi.

    outcomes = await run_gated(
        {"/ed-fi/schools": [], "/ed-fi/students": [], "/ed-fi/ssa": ["/ed-fi/schools", ...]},
        send_resource,
        parallelism=4,
    )
    outcomes["/ed-fi/ssa"].status   # "done" | "failed" | "blocked"
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from .errors import GraphError

__all__ = ["Outcome", "run_gated"]

K = TypeVar("K", bound=Hashable)
R = TypeVar("R")

OutcomeStatus = Literal["done", "failed", "blocked"]


@dataclass
class Outcome(Generic[K, R]):
    """How one unit ended."""

    unit: K
    status: OutcomeStatus
    result: R | None = None  # what ``run`` returned (None if it raised or never ran)
    error: BaseException | None = None  # what ``run`` raised
    blocked_by: tuple[K, ...] = field(default=())  # the failed units upstream (blocked only)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "done"

    @property
    def message(self) -> str:
        """One line for a person: the error, or what blocked the unit."""
        if self.status == "failed" and self.error is not None:
            return str(self.error) or type(self.error).__name__
        if self.status == "blocked":
            names = ", ".join(str(u) for u in self.blocked_by[:3])
            more = f" and {len(self.blocked_by) - 3} more" if len(self.blocked_by) > 3 else ""
            return f"not run: {names}{more} failed"
        return ""


def _check_acyclic(deps: Mapping[K, frozenset[K]]) -> None:
    remaining = {u: len(d) for u, d in deps.items()}
    dependents: dict[K, list[K]] = {u: [] for u in deps}
    for u, ds in deps.items():
        for d in ds:
            dependents[d].append(u)
    ready = [u for u, n in remaining.items() if n == 0]
    seen = 0
    while ready:
        u = ready.pop()
        seen += 1
        for n in dependents[u]:
            remaining[n] -= 1
            if remaining[n] == 0:
                ready.append(n)
    if seen != len(deps):
        stuck = sorted(str(u) for u, n in remaining.items() if n > 0)
        raise GraphError(f"The units cannot be ordered: a cycle through {', '.join(stuck[:5])}.")


async def run_gated(
    dependencies: Mapping[K, Iterable[K]],
    run: Callable[[K], Awaitable[R]],
    *,
    parallelism: int,
    failed: Callable[[R], bool] | None = None,
    on_done: Callable[[Outcome[K, R]], Awaitable[None]] | None = None,
) -> dict[K, Outcome[K, R]]:
    """Run every unit once all it depends on has finished, at most ``parallelism`` at a time.

    Returns one ``Outcome`` per unit, in the order of ``dependencies``.
    ``on_done`` is awaited as each unit ends (progress, logging); an exception
    it raises propagates. Cancelling the caller cancels the running units.
    """
    if parallelism < 1:
        raise ValueError("parallelism must be at least 1")
    deps: dict[K, frozenset[K]] = {
        u: frozenset(d for d in ds if d in dependencies and d != u)
        for u, ds in dependencies.items()
    }
    _check_acyclic(deps)
    finished = {u: asyncio.Event() for u in deps}
    outcomes: dict[K, Outcome[K, R]] = {}
    roots: dict[K, tuple[K, ...]] = {}  # failed units upstream of each failed or blocked unit
    gate = asyncio.Semaphore(parallelism)

    async def one(unit: K) -> None:
        for d in deps[unit]:
            await finished[d].wait()
        upstream = {r for d in deps[unit] if d in roots for r in roots[d]}
        if upstream:
            blocked_by = tuple(sorted(upstream, key=str))
            roots[unit] = blocked_by
            outcome: Outcome[K, R] = Outcome(unit, "blocked", blocked_by=blocked_by)
        else:
            async with gate:
                started = time.perf_counter()
                try:
                    result = await run(unit)
                except Exception as exc:
                    outcome = Outcome(unit, "failed", error=exc)
                else:
                    bad = failed is not None and failed(result)
                    outcome = Outcome(unit, "failed" if bad else "done", result=result)
                outcome.seconds = round(time.perf_counter() - started, 3)
            if outcome.status == "failed":
                roots[unit] = (unit,)
        outcomes[unit] = outcome
        finished[unit].set()
        if on_done is not None:
            await on_done(outcome)

    tasks = [asyncio.create_task(one(u)) for u in deps]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
    return {u: outcomes[u] for u in deps}
