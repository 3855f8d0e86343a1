"""The words every job shares: run modes and the statuses of runs and resources.

A status is a ``StrEnum``, so it equals its plain string (``"failed"``),
serialises as one in JSON, artifacts and summaries, and old comparisons against
string literals keep working. Defining them once keeps flows, tasks and tables
from drifting apart ("published" in one place, "done" in another) and lets a
task decide its Prefect state from the same word the summary row shows.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal, get_args

Mode = Literal["incremental", "full"]
"""``incremental``: only what changed since the last run (change versions); ``full``: everything."""

MODES: tuple[str, ...] = get_args(Mode)


class RunStatus(StrEnum):
    """How a whole run ended: the ``status`` of a flow's summary."""

    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_WARNINGS = "completed with warnings"
    FAILED = "failed"
    UP_TO_DATE = "up to date"  # nothing to do: the target already has every change
    WHAT_IF = "what if"  # a plan was shown, nothing was written
    VALIDATED = "validated"  # checked only, nothing was sent


class ResourceStatus(StrEnum):
    """How one resource (one row of a run's table) ended."""

    PENDING = "pending"  # not started (yet)
    PULLED = "pulled"  # extract: read and committed to the lake
    RESUMED = "resumed"  # extract: finished by an earlier run this one resumes
    PUBLISHED = "published"  # publish: every record written
    SENT = "sent"  # send: every record written
    VALIDATED = "validated"  # send: checked, not sent
    UNCHANGED = "unchanged"  # nothing new since the last run
    SKIPPED = "skipped"  # not run by choice (excluded, not served by the source)
    WARNINGS = "warnings"  # written, but some records were refused as warnings only
    FAILED = "failed"  # some records (or the resource as a whole) failed
    BLOCKED = "blocked"  # not run: something it depends on failed

    @property
    def ok(self) -> bool:
        """Whether a task ending in this status should show as Completed in Prefect."""
        return self not in (ResourceStatus.FAILED, ResourceStatus.BLOCKED)
