"""Hostile input: credentials kept secret and sent only where they belong, lying servers.

The lying server is ``tests/hostile.py``, a proxy in front of a real sandbox
over real HTTP; every test here failed before the fix it covers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import connection_block, run_extract
from hostile import Hostility, catcher, hostile_proxy
from pydantic import SecretStr, ValidationError

from blocks import EdFiConnection, LakeStorage
from edfi.amt import DescriptorMapError, load_descriptor_map
from edfi.client import Connection, EdFiClient, EdFiError, EdFiUnsupportedError
from edfi.extract import ExtractError
from flows.extract import extract
from sandbox.server import RunningSandbox, running_sandbox

pytestmark = pytest.mark.usefixtures("prefect_harness")

SECRET = "s3cr3t-do-not-show-4f9a"


# -- item 6: credentials only in secret fields ------------------------------------------


@pytest.mark.parametrize(
    ("options", "named", "field"),
    [
        ({"secret": SECRET}, "'secret'", "secret_access_key"),
        ({"key": "AKIA", "anon": False}, "'key'", "access_key_id"),
        ({"token": SECRET}, "'token'", "session_token"),
        ({"password": SECRET}, "'password'", "credentials block"),
        (
            {"client_kwargs": {"aws_secret_access_key": SECRET, "region_name": "x"}},
            "'client_kwargs.aws_secret_access_key'",
            "secret_access_key",
        ),
    ],
)
def test_storage_options_refuse_secrets(options: dict[str, Any], named: str, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        LakeStorage(url="s3://bucket/lake", storage_options=options)
    message = str(err.value)
    assert named in message and field in message
    assert SECRET not in message
    # harmless options stay allowed
    ok = LakeStorage(url="s3://b/l", storage_options={"client_kwargs": {"region_name": "x"}})
    assert ok.fsspec_options() == {"client_kwargs": {"region_name": "x"}}


def test_base_url_with_credentials_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        EdFiConnection(
            base_url=f"https://someone:{SECRET}@api.example.org/api",
            client_id="id",
            client_secret=SecretStr("x"),
        )
    message = str(err.value)
    assert "user:password@" in message and "'api.example.org'" in message
    assert SECRET not in message and "someone" not in message


def test_secrets_show_neither_in_repr_nor_in_flow_run_parameters(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client

    with running_sandbox(students=0, client_secret=SECRET) as sb:
        conn = connection_block(sb)
        storage = LakeStorage(
            url=str(tmp_path / "lake"),
            access_key_id="AKIAEXAMPLE",
            secret_access_key=SecretStr(SECRET),
            session_token=SecretStr(SECRET),
        )
        assert SECRET not in repr(conn) and SECRET not in repr(storage)
        state = asyncio.run(
            extract(conn, storage, resources=["ed-fi/schools"], mode="full", return_state=True)
        )
        assert state.is_completed()

        async def parameters() -> Any:
            async with get_client() as client:
                run = await client.read_flow_run(state.state_details.flow_run_id)
                return run.parameters

        params = asyncio.run(parameters())
    dumped = json.dumps(params, default=str)
    assert "client_secret" in dumped and "secret_access_key" in dumped
    assert SECRET not in dumped


# -- item 10: parameters checked before the first request -------------------------------


@pytest.fixture
def empty_sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(students=0) as sb:
        yield sb


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"resource_parallelism": 0}, "resource_parallelism must be at least 1"),
        ({"resource_parallelism": -3}, "resource_parallelism must be at least 1"),
        ({"count_tolerance": -0.1}, "count_tolerance must be a share between 0"),
        ({"count_tolerance": float("nan")}, "count_tolerance must be a share between 0"),
    ],
)
def test_bad_parameters_fail_before_any_request(
    empty_sandbox: RunningSandbox, tmp_path: Path, kwargs: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ValueError, match=expected):
        run_extract(empty_sandbox, str(tmp_path / "lake"), **kwargs)
    assert empty_sandbox.sandbox.request_count == 0
    assert not (tmp_path / "lake").exists()


def test_a_typo_in_full_refresh_fails_before_any_data_request(tmp_path: Path) -> None:
    with running_sandbox(students=0) as sb, hostile_proxy(sb.base_url) as proxy:
        conn = EdFiConnection(
            base_url=proxy.base_url, client_id=sb.client_id, client_secret=SecretStr(SECRET)
        )
        conn.client_secret = SecretStr(sb.client_secret)  # the real one
        with pytest.raises(ExtractError) as err:
            asyncio.run(
                extract(conn, LakeStorage(url=str(tmp_path / "lake")), full_refresh=["studnets"])
            )
    assert "full_refresh: 'studnets' is not a resource of this API" in str(err.value)
    assert not [r for r in proxy.requests if r.startswith(("GET /data/", "GET /changeQueries/"))]
    assert "GET /metadata/data/v3/resources/swagger.json" in proxy.requests
    assert [p for p in (tmp_path / "lake").rglob("*") if p.is_file()] == []


def test_a_bad_descriptor_map_fails_before_the_pull(
    empty_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    rows = [{"constantName": "Address.Home", "descriptor": "AddressTypeDescriptor"}]
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(rows))
    with pytest.raises(DescriptorMapError, match="missing property 'codeValue'"):
        run_extract(
            empty_sandbox, str(tmp_path / "lake"), run_gold=True, descriptor_map=str(broken)
        )
    assert empty_sandbox.sandbox.request_count == 0
    # a map saved in a legacy code page: a clear message, not a raw UnicodeDecodeError
    rows = [
        {"constantName": "Address.Home", "descriptor": "AddressTypeDescriptor", "codeValue": "Café"}
    ]
    legacy = tmp_path / "legacy.json"
    legacy.write_bytes(json.dumps(rows, ensure_ascii=False).encode("cp1252"))
    with pytest.raises(DescriptorMapError, match=r"is not UTF-8 .* Save the file as UTF-8"):
        run_extract(
            empty_sandbox, str(tmp_path / "lake"), run_gold=True, descriptor_map=str(legacy)
        )
    assert empty_sandbox.sandbox.request_count == 0
    # UTF-16 (with its byte order mark) is read as such
    utf16 = tmp_path / "utf16.json"
    utf16.write_bytes(json.dumps(rows, ensure_ascii=False).encode("utf-16"))
    assert load_descriptor_map(str(utf16))[0][0].codeValue == "Café"


# -- item 3: credentials go only to the API's own origin ---------------------------------


def _conn(base_url: str, sb: RunningSandbox, **kwargs: Any) -> Connection:
    return Connection(base_url, sb.client_id, SecretStr(sb.client_secret), **kwargs)


async def _login(conn: Connection) -> None:
    async with EdFiClient(conn) as api:
        await api.discover()
        await api.token()


def test_oauth_on_another_host_gets_no_credentials(empty_sandbox: RunningSandbox) -> None:
    with catcher() as (elsewhere, seen), hostile_proxy(empty_sandbox.base_url) as proxy:
        proxy.hostility = Hostility(oauth_url=f"{elsewhere}/oauth/token")
        with pytest.raises(EdFiUnsupportedError) as err:
            asyncio.run(_login(_conn(proxy.base_url, empty_sandbox)))
        assert f"points at {elsewhere}:" not in str(err.value)  # the port is spelled out
        assert "'oauth' URL points at http://127.0.0.2:" in str(err.value)
        assert "allowed_origins" in str(err.value)
        assert seen == []
        # a scheme change on the same host is another origin too
        proxy.hostility = Hostility(
            urls={"dataManagementApi": proxy.base_url.replace("http:", "https:") + "/data/v3/"}
        )
        with pytest.raises(EdFiUnsupportedError, match="'dataManagementApi' URL points at https"):
            asyncio.run(_login(_conn(proxy.base_url, empty_sandbox)))
        # a split deployment the user vouches for
        proxy.hostility = Hostility(oauth_url=f"{elsewhere}/oauth/token")
        asyncio.run(_login(_conn(proxy.base_url, empty_sandbox, allowed_origins=(elsewhere,))))
        assert [s["path"] for s in seen] == ["/oauth/token"]
        assert seen[0]["Authorization"].startswith("Basic ")
        # allowed, but plain http off this machine: still refused without the opt-in
        proxy.hostility = Hostility(oauth_url="http://192.0.2.7/oauth/token")
        with pytest.raises(EdFiUnsupportedError, match=r"plain http to '192\.0\.2\.7'"):
            asyncio.run(
                _login(_conn(proxy.base_url, empty_sandbox, allowed_origins=("http://192.0.2.7",)))
            )
    assert len(seen) == 1


def test_plain_http_off_this_machine_needs_an_opt_in() -> None:
    with pytest.raises(EdFiError, match=r"plain http to 'api\.example\.org'.*allow_insecure_http"):
        Connection("http://api.example.org/api", "id", SecretStr("x"))
    Connection("http://api.example.org/api", "id", SecretStr("x"), allow_insecure_http=True)
    Connection("https://api.example.org/api", "id", SecretStr("x"))
    Connection("http://localhost:8001/api", "id", SecretStr("x"))
    Connection("http://[::1]:8001/api", "id", SecretStr("x"))
