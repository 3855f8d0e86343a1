"""A long run's progress: a Prefect progress artifact, and a bar for whoever runs it here.

Prefect shows progress as a progress artifact on the flow run (its percentage
and description update as units of work finish). The command line runs the
flow in its own process and wants the same events for a terminal progress
bar, so ``RunProgress`` also tells any listener registered in this process
with ``listening()``. A listener must be cheap and must not raise: it is called
from the flow's event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID

from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

Listener = Callable[["RunProgress"], None]
"""Called with the run's progress each time it changes."""

_LISTENERS: list[Listener] = []


@contextmanager
def listening(listener: Listener) -> Iterator[None]:
    """Tell ``listener`` about every run's progress in this process while the block runs."""
    _LISTENERS.append(listener)
    try:
        yield
    finally:
        _LISTENERS.remove(listener)


@dataclass
class RunProgress:
    """``done`` of ``total`` units (e.g. resource pulls) of one run, and what finished last."""

    key: str
    total: int
    title: str
    done: int = 0
    last: str = ""
    records: int = 0
    every: float = 1.0
    """Seconds between artifact updates (each is a call to the Prefect server); the last
    unit's update is always sent, and listeners hear of every unit."""
    _artifact: UUID | None = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _sent: float = field(default=0.0, repr=False)

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.total if self.total else 100.0

    @property
    def description(self) -> str:
        text = f"{self.title}: {self.done} of {self.total} done, {self.records:,} records"
        return f"{text}; last: {self.last}" if self.last else text

    async def start(self) -> RunProgress:
        self._artifact = await acreate_progress_artifact(
            progress=self.percent, key=self.key, description=self.description
        )
        self._tell()
        return self

    async def advance(self, what: str, records: int = 0) -> None:
        """One unit finished: ``what`` names it, ``records`` it moved."""
        self.done += 1
        self.last = what
        self.records += records
        self._tell()
        if self._artifact is None:
            return
        if self.done < self.total and time.monotonic() - self._sent < self.every:
            return
        self._sent = time.monotonic()
        # one update at a time, each with the figures as they are when it is sent:
        # updates of units finishing together cannot land out of order
        async with self._lock:
            await aupdate_progress_artifact(
                self._artifact, self.percent, description=self.description
            )

    def _tell(self) -> None:
        for listener in list(_LISTENERS):
            listener(self)
