"""Shared fixtures: sandboxes over real HTTP, Prefect, a moto S3 server, extracted lakes."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from sandbox.server import RunningSandbox, free_port, running_sandbox

SPEC_DIR = Path(__file__).resolve().parents[2] / "shared" / "edfi-spec"
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


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


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[None]:
    """One temporary Prefect server for the whole session (it takes seconds to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


def connection_block(sb: RunningSandbox, **kwargs: Any) -> Any:
    """An Ed-Fi connection block for a running sandbox (not saved to a server)."""
    from blocks import EdFiConnection

    return EdFiConnection(
        base_url=sb.base_url,
        client_id=sb.client_id,
        client_secret=SecretStr(sb.client_secret),
        **kwargs,
    )


def run_extract(sb: RunningSandbox, lake_url: str, **kwargs: Any) -> dict[str, Any]:
    """Run the extract flow (needs ``prefect_harness``) against a sandbox into a lake."""
    from blocks import LakeStorage
    from flows.extract import extract

    storage = kwargs.pop("storage", None) or LakeStorage(url=lake_url)
    conn_kwargs = kwargs.pop("connection_kwargs", {})
    return asyncio.run(extract(connection_block(sb, **conn_kwargs), storage, **kwargs))


@pytest.fixture(scope="session")
def district_lake(
    district: RunningSandbox, prefect_harness: None, tmp_path_factory: pytest.TempPathFactory
) -> str:
    """The 1,000-student district extracted once into a local lake (read-only)."""
    url = str(tmp_path_factory.mktemp("district-lake"))
    summary = run_extract(district, url, mode="full")
    assert summary["status"] == "completed"
    return url


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server over real HTTP (in-process ``mock_aws`` breaks s3fs)."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def new_s3_lake(s3_endpoint: str, prefix: str = "lake") -> Any:
    """A ``LakeStorage`` block on a new bucket of the moto server."""
    import boto3

    from blocks import LakeStorage

    bucket = f"{prefix}-{uuid.uuid4().hex[:10]}"
    boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    ).create_bucket(Bucket=bucket)
    return LakeStorage(
        url=f"s3://{bucket}/edfi",
        access_key_id="testing",
        secret_access_key=SecretStr("testing"),
        endpoint_url=s3_endpoint,
        region_name="us-east-1",
    )


@pytest.fixture
def s3_lake(s3_endpoint: str) -> Any:
    """A ``LakeStorage`` block on a fresh bucket of the moto server."""
    return new_s3_lake(s3_endpoint)
