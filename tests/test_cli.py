"""The ``edfi-flows`` command line, run as a user runs it: the installed console script
in a subprocess, against a sandbox over HTTP, with the test session's Prefect server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from edfi.lake import Lake
from sandbox.server import RunningSandbox, running_sandbox
from tests.lakecheck import expected_rows, lake_rows

CLI = Path(sys.executable).parent / "edfi-flows"


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if not CLI.exists():
        pytest.skip(f"the console script is not installed at {CLI} (pip install -e .)")
    return subprocess.run(
        [str(CLI), *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(students=40, seed=3) as sb:
        yield sb


@pytest.fixture
def cli_env(sandbox: RunningSandbox, prefect_harness: None) -> dict[str, str]:
    """The user's environment: credentials, and the test session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("EDFI_")}
    env.update(
        EDFI_CLIENT_ID=sandbox.client_id,
        EDFI_CLIENT_SECRET=sandbox.client_secret,
        PREFECT_API_URL=str(PREFECT_API_URL.value()),
    )
    return env


def test_help_lists_each_flow_and_its_parameters() -> None:
    top = cli("--help")
    assert top.returncode == 0, top.stderr
    for command in ("extract", "gold", "publish"):
        assert command in top.stdout
    extract = cli("extract", "--help")
    assert extract.returncode == 0, extract.stderr
    for option in ("--base-url", "--connection", "--lake", "--resources", "--run-gold"):
        assert option in extract.stdout
    assert "{incremental,full}" in extract.stdout
    assert "EDFI_CLIENT_SECRET" in extract.stdout


def test_extract_from_the_command_line(
    sandbox: RunningSandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    lake_dir = tmp_path / "lake"
    done = cli(
        "--progress",  # the bar a terminal shows, though stderr is a pipe here
        "extract",
        "--base-url",
        sandbox.base_url,
        "--lake",
        str(lake_dir),
        "--resources",
        "ed-fi/students,ed-fi/schools",
        "--resources",
        "ed-fi/studentSchoolAssociations",
        "--mode",
        "full",
        env=cli_env,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    store = sandbox.store()
    lake = Lake(str(lake_dir))
    pulled = {}
    for name in ("students", "schools", "studentSchoolAssociations"):
        resource = store.model[f"/ed-fi/{name}"]
        want = expected_rows(store, resource)
        assert lake_rows(lake, resource, 0).keys() == want.keys()
        pulled[name] = len(want)
    lines = done.stdout.splitlines()
    # the table: the largest resource first, exact counts, then the status line
    assert lines[0].split()[:3] == ["resource", "school_year", "status"]
    header = lines[0].split()
    body = [dict(zip(header, line.split(), strict=True)) for line in lines[2:5]]
    assert [row["resource"] for row in body] == [
        "ed-fi/studentSchoolAssociations",
        "ed-fi/students",
        "ed-fi/schools",
    ]
    assert {row["resource"]: int(row["records"]) for row in body} == {
        f"ed-fi/{name}": count for name, count in pulled.items()
    }
    assert {row["status"] for row in body} == {"pulled"}
    assert lines[-1].startswith(f"extract: completed, {sum(pulled.values()):,} records")
    # the progress bar ends at every resource pulled, with the records they held
    assert "3/3" in done.stderr
    assert f"{sum(pulled.values()):,} records" in done.stderr


def test_a_failed_run_exits_1_with_the_reason_and_no_traceback(
    sandbox: RunningSandbox, cli_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**cli_env, "EDFI_CLIENT_SECRET": "not-the-secret-9f2c"}
    done = cli("extract", "--base-url", sandbox.base_url, "--lake", str(tmp_path), env=env)
    assert done.returncode == 1
    assert "edfi-flows extract failed:" in done.stderr
    assert "credentials" in done.stderr.lower() or "401" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "not-the-secret-9f2c" not in done.stderr + done.stdout


def test_usage_errors_exit_2_and_name_the_fix(sandbox: RunningSandbox, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDFI_")}
    done = cli("extract", "--base-url", sandbox.base_url, "--lake", str(tmp_path), env=env)
    assert done.returncode == 2
    assert "EDFI_CLIENT_ID and EDFI_CLIENT_SECRET must be set" in done.stderr
    missing = cli("extract", "--lake", str(tmp_path), env=env)
    assert missing.returncode == 2
    assert "missing --connection" in missing.stderr
    typo = cli("extract", "--connection", "x", "--lake", str(tmp_path), "--mode", "ful", env=env)
    assert typo.returncode == 2
    assert "invalid choice: 'ful'" in typo.stderr
