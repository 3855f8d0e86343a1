"""Prefect tasks of the gold flow."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from edfi.amt import GoldBuild


@task(name="gold-view", task_run_name="{view}", cache_policy=NONE)
def build_view(build: GoldBuild, view: str) -> dict[str, Any]:
    """One AMT view for every school year of the lake; returns its summary row."""
    result = build.run_view(view)
    get_run_logger().info("%s: %d rows in %.2fs", view, result.rows, result.seconds)
    return result.as_row()
