"""Lying pages: short-lived tokens, a Total-Count that understates, bytes that are not
UTF-8 and one enormous record -- each through ``tests/hostile.py`` (or the sandbox's
own faults) over real HTTP, each failing before its fix.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import connection_block
from hostile import Hostility, hostile_proxy
from lakecheck import differences
from pydantic import SecretStr

from blocks import EdFiConnection, LakeStorage
from edfi.client import Connection, EdFiClient
from edfi.extract import ExtractError
from edfi.lake import Lake, read_table
from flows.extract import extract
from sandbox.changes import apply_changes
from sandbox.server import RunningSandbox, running_sandbox

pytestmark = pytest.mark.usefixtures("prefect_harness")

OFFSET_PAGING = "7.1"  # an ODS/API before 7.3: no cursor paging, pages by offset


def _through(proxy_url: str, sb: RunningSandbox, **kwargs: Any) -> EdFiConnection:
    return EdFiConnection(
        base_url=proxy_url,
        client_id=sb.client_id,
        client_secret=SecretStr(sb.client_secret),
        **kwargs,
    )


def _run(conn: EdFiConnection, lake_url: str, **kwargs: Any) -> dict[str, Any]:
    return asyncio.run(extract(conn, LakeStorage(url=lake_url), mode="full", **kwargs))


def _runs(lake_url: str) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(Path(lake_url, "runs").glob("*.json"))]


# -- item 7: short-lived tokens ---------------------------------------------------------


def test_one_second_tokens_with_latency_give_an_exact_lake(tmp_path: Path) -> None:
    # a fresh sandbox: no earlier session whose snapshot a token could inherit
    with running_sandbox(students=60, seed=7, faults="token_ttl=1,latency_ms=40") as sb:
        lake_url = str(tmp_path / "lake")
        conn = connection_block(sb, max_concurrency=2, max_retries=2)
        summary = asyncio.run(extract(conn, LakeStorage(url=lake_url), mode="full"))
        assert summary["status"] == "completed"
        assert differences(Lake(lake_url), sb.store(), 0) == {}
        # the run outlived several tokens, renewed within one client session (one view)
        assert len(sb.sandbox.auth.tokens) >= 4, len(sb.sandbox.auth.tokens)
        assert len(sb.sandbox.auth.sessions()) == 1


def test_a_401_renews_the_token_once_for_every_request_it_failed() -> None:
    async def run(sb: RunningSandbox) -> tuple[list[int], int]:
        conn = Connection(sb.base_url, sb.client_id, SecretStr(sb.client_secret))
        async with EdFiClient(conn) as api:
            await api.discover()
            url = api.url("dataManagementApi") + "/ed-fi/schools"
            await api.request("GET", url)
            sb.sandbox.auth.tokens.clear()  # the server forgets every token at once
            answers = await asyncio.gather(*(api.request("GET", url) for _ in range(20)))
            return [a.status for a in answers], api.stats.token_refreshes

    with running_sandbox(students=0) as sb:
        statuses, refreshes = asyncio.run(run(sb))
        assert statuses == [200] * 20
        assert refreshes == 2  # the first token and one renewal
        assert len(sb.sandbox.auth.tokens) == 1


# -- item 4: a Total-Count that understates ----------------------------------------------


def test_a_total_count_that_understates_is_read_past_and_not_committed(tmp_path: Path) -> None:
    events = "ed-fi/studentSchoolAttendanceEvents"
    with (
        running_sandbox(students=60, seed=7) as sb,
        hostile_proxy(sb.base_url, Hostility(version=OFFSET_PAGING)) as proxy,
    ):
        conn = _through(proxy.base_url, sb, page_size=100)
        resource = sb.sandbox.model.find(events)
        # an honest count, offset paging: exact
        honest = _run(conn, str(tmp_path / "honest"), resources=[events, "ed-fi/schools"])
        assert honest["status"] == "completed"
        assert {r["resource"]: r["records"] for r in honest["resources"]} == {
            events: 531,
            "ed-fi/schools": 3,
        }
        assert not [r for r in proxy.requests if "pageToken" in r]
        # the count says 400 of 531: the pages past it hold the rest
        proxy.hostility = Hostility(version=OFFSET_PAGING, understate={resource.name: 131})
        proxy.requests.clear()
        lake_url = str(tmp_path / "lake")
        with pytest.raises(ExtractError) as err:
            _run(conn, lake_url, resources=[events, "ed-fi/schools"])
        assert "1 of 2 resource pulls failed" in str(err.value)
        assert f"{events}: the server's Total-Count says 400 records but it served 531" in str(
            err.value
        )
        lake = Lake(lake_url)
        assert lake.state(resource, 0) is None  # nothing truncated was committed
        assert lake.state(sb.sandbox.model.find("schools"), 0)["rows"] == 3
        read = [r for r in proxy.requests if r.startswith(f"GET /data/v3/{events}?")]
        assert any("offset=500" in r for r in read) and any("offset=600" in r for r in read)
        assert _runs(lake_url)[-1]["status"] == "failed"


def test_an_incremental_window_counted_empty_is_checked_before_the_watermark_moves(
    tmp_path: Path,
) -> None:
    with (
        running_sandbox(students=60, seed=7) as sb,
        hostile_proxy(sb.base_url, Hostility(version=OFFSET_PAGING)) as proxy,
    ):
        conn = _through(proxy.base_url, sb)
        students = sb.sandbox.model.find("students")
        lake_url = str(tmp_path / "lake")
        assert _run(conn, lake_url, resources=["ed-fi/students"])["status"] == "completed"
        before = Lake(lake_url).state(students, 0)
        apply_changes(sb.store(), updates=3, inserts=2, seed=5)
        # the server counts none of the 5 changed students
        proxy.hostility = Hostility(version=OFFSET_PAGING, understate={"students": 5})
        with pytest.raises(ExtractError, match="Total-Count says 0 records but it served 5"):
            asyncio.run(extract(conn, LakeStorage(url=lake_url), resources=["ed-fi/students"]))
        after = Lake(lake_url).state(students, 0)
        assert after["change_version"] == before["change_version"]  # the changes stay due
        proxy.hostility = Hostility(version=OFFSET_PAGING)
        summary = asyncio.run(
            extract(conn, LakeStorage(url=lake_url), resources=["ed-fi/students"])
        )
        assert summary["records"] == 5
        assert "ed-fi/students" not in differences(Lake(lake_url), sb.store(), 0)


# -- item 5: invalid UTF-8 ---------------------------------------------------------------


def test_invalid_utf8_fails_the_resource_or_is_replaced_and_counted(tmp_path: Path) -> None:
    with (
        running_sandbox(students=60, seed=7) as sb,
        hostile_proxy(
            sb.base_url,
            Hostility(version=OFFSET_PAGING, invalid_utf8=("schools", "nameOfInstitution")),
        ) as proxy,
    ):
        conn = _through(proxy.base_url, sb)
        schools = sb.sandbox.model.find("schools")
        first = sorted(sb.store().iter_records(schools), key=lambda r: r["id"])
        lake_url = str(tmp_path / "lake")
        with pytest.raises(ExtractError) as err:
            _run(conn, lake_url, resources=["ed-fi/schools", "ed-fi/students"])
        message = str(err.value)
        assert proxy.poisoned is not None and "offset=0" in proxy.poisoned
        assert "ed-fi/schools: the page at offset 0 of " in message
        assert "/data/v3/ed-fi/schools has text that is not valid UTF-8 in field " in message
        assert "'[0].nameOfInstitution' of record id" in message or (
            "nameOfInstitution' of record id" in message
        )
        assert "invalid_utf8='replace'" in message
        lake = Lake(lake_url)
        assert lake.state(schools, 0) is None
        assert lake.state(sb.sandbox.model.find("students"), 0)["rows"] == 60

        summary = _run(conn, lake_url, resources=["ed-fi/schools"], invalid_utf8="replace")
        assert summary["status"] == "completed"
        assert summary["invalid_utf8_replaced"] == 2
        row = summary["resources"][0]
        assert row["invalid_utf8_replaced"] == 2 and "2 invalid UTF-8" in row["message"]
        files = lake.committed_files(schools, 0)
        names = sorted(read_table(lake, files).column("nameOfInstitution").to_pylist())
        assert sum(n.startswith("caf\ufffd \ufffd") for n in names) == 1
        assert len(names) == len(first) == 3
        for f in files:  # readers other than the writer can read it
            pq.read_table(f).validate(full=True)
            assert duckdb.sql(f"SELECT count(*) FROM '{f}'").fetchall() == [(3,)]


# -- item 8: one enormous record ---------------------------------------------------------


def test_an_enormous_record_is_read_or_fails_its_resource_alone(tmp_path: Path) -> None:
    size = 20 << 20  # bigger than the JSON reader's usual block
    with (
        running_sandbox(students=60, seed=7) as sb,
        hostile_proxy(sb.base_url, Hostility(enormous=("schools", "nameOfInstitution", size))) as p,
    ):
        schools = sb.sandbox.model.find("schools")
        lake_url = str(tmp_path / "lake")
        summary = _run(_through(p.base_url, sb), lake_url, resources=["ed-fi/schools"])
        assert summary["status"] == "completed"
        lake = Lake(lake_url)
        names = read_table(lake, lake.committed_files(schools, 0)).column("nameOfInstitution")
        assert max(len(n) for n in names.to_pylist()) > size

        # over the cap: that resource fails with a clear message, the others commit, the
        # body is not read past the cap, and the run ends in a final state
        p.hostility = Hostility(enormous=("schools", "nameOfInstitution", 200 << 20))
        p.sent = 0
        lake_url = str(tmp_path / "capped")
        with pytest.raises(ExtractError) as err:
            _run(
                _through(p.base_url, sb, max_response_mb=4),
                lake_url,
                resources=["ed-fi/schools", "ed-fi/students"],
            )
        assert "1 of 2 resource pulls failed" in str(err.value)
        assert "over the 4 MB limit (max_response_mb in the connection)" in str(err.value)
        assert p.sent < 2 * (40 << 20), p.sent  # two attempts (the task retries once)
        lake = Lake(lake_url)
        assert lake.state(schools, 0) is None
        assert lake.state(sb.sandbox.model.find("students"), 0)["rows"] == 60
        assert [r["status"] for r in _runs(lake_url)] == ["failed"]
