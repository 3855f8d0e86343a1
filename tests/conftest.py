"""Shared fixtures: sandboxes over real HTTP, a moto S3 server, PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.server import RunningSandbox, running_sandbox

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "edfi-spec"


@pytest.fixture(scope="session")
def spec_dir() -> Path:
    """The official Ed-Fi specifications beside the project (skip where absent)."""
    path = Path(os.environ.get("EDFI_SPEC_DIR", SPEC_DIR))
    if not path.is_dir():
        pytest.skip(f"Ed-Fi specification folder not found at {path} (set EDFI_SPEC_DIR)")
    return path


@pytest.fixture(scope="session")
def district() -> Iterator[RunningSandbox]:
    """The 1,000-student district, read-only: tests must not change its data."""
    with running_sandbox(students=1000, seed=1) as sb:
        yield sb


@pytest.fixture
def small_district() -> Iterator[RunningSandbox]:
    """A fresh 60-student district a test may change freely."""
    with running_sandbox(students=60, seed=7) as sb:
        yield sb
