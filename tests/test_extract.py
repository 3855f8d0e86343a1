"""The extract flow against the sandbox over real HTTP: exact lakes, local and S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import connection_block, run_extract
from lakecheck import differences, expected_all, lake_rows

from blocks import LakeStorage
from edfi.client import EdFiAuthError, EdFiConnectionError
from edfi.extract import ExtractError
from edfi.lake import Lake, LakeError, read_table
from sandbox.app import Faults
from sandbox.changes import apply_changes
from sandbox.server import RunningSandbox, running_sandbox

pytestmark = pytest.mark.usefixtures("prefect_harness")


def files_under(root: str) -> list[str]:
    return [str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file()]


# -- full ------------------------------------------------------------------------------


def test_full_extract_equals_the_sandbox(district: RunningSandbox, district_lake: str) -> None:
    lake = Lake(district_lake)
    assert differences(lake, district.store(), 0) == {}
    store = district.store()
    for resource in store.model:
        state = lake.state(resource, 0)
        assert state is not None, resource.full_name
        assert state["rows"] == len(lake_rows(lake, resource, 0))
        assert state["change_version"] == store.newest_change_version


def test_parquet_is_typed_from_the_openapi_schema(
    district_lake: str, district: RunningSandbox
) -> None:
    lake = Lake(district_lake)
    model = district.sandbox.model
    ssa = read_table(lake, lake.committed_files(model.find("studentSchoolAssociations"), 0))
    assert ssa.schema.field("entryDate").type == pa.date32()
    assert ssa.schema.field("_lastModifiedDate").type == pa.timestamp("us", tz="UTC")
    assert ssa.schema.field("schoolReference").type == pa.struct([("schoolId", pa.int64())])
    assert ssa.schema.field("_school_year").type == pa.int32()
    students = read_table(
        lake, lake.committed_files(model.find("studentEducationOrganizationAssociations"), 0)
    )
    races = students.schema.field("races").type
    assert pa.types.is_list(races)
    assert races.value_type == pa.struct([("raceDescriptor", pa.string())])


def test_lake_layout_is_hive_style_with_raw_jsonl(district_lake: str) -> None:
    files = files_under(district_lake)
    assert any(
        f.startswith("current/ed-fi/students/school_year=0/v") and f.endswith(".parquet")
        for f in files
    )
    assert any(
        f.startswith("raw/ed-fi/students/school_year=0/run=")
        and f.endswith("records-0-00000.jsonl.gz")
        for f in files
    )
    assert "state/ed-fi/students/school_year=0.json" in files
    runs = [f for f in files if f.startswith("runs/")]
    assert len(runs) == 1
    run = json.loads(Path(district_lake, runs[0]).read_text())
    assert run["status"] == "completed"
    # one table version per resource: superseded and orphaned versions are gone
    versions = {f.rsplit("/", 2)[0] for f in files if f.startswith("current/")}
    assert len(versions) == len({f.rsplit("/", 3)[0] for f in files if f.startswith("current/")})


def test_full_extract_to_s3(s3_lake: LakeStorage) -> None:
    with running_sandbox(students=150, seed=4) as sb:
        summary = run_extract(sb, "", storage=s3_lake, mode="full")
        assert summary["status"] == "completed"
        assert summary["lake"].startswith("s3://")
        lake = s3_lake.lake()
        lake.invalidate()
        assert differences(lake, sb.store(), 0) == {}
        # and incrementally, with deletes and key changes, on S3 as on disk
        apply_changes(sb.store(), updates=2, inserts=1, deletes=3, key_changes=1, seed=2)
        # 2 updated + 1 new student, 1 new + 1 re-keyed enrolment
        assert run_extract(sb, "", storage=s3_lake)["records"] == 5
        lake.invalidate()
        assert differences(lake, sb.store(), 0) == {}


# -- incremental ---------------------------------------------------------------------


def test_incremental_applies_updates_inserts_deletes_and_key_changes(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    lake_url = str(tmp_path / "lake")
    store = small_district.store()
    assert run_extract(small_district, lake_url, mode="full")["status"] == "completed"
    log = apply_changes(store, updates=3, inserts=2, deletes=4, key_changes=2, seed=5)

    summary = run_extract(small_district, lake_url)
    assert summary["status"] == "completed"
    assert differences(Lake(lake_url), store, 0) == {}

    by_name = {r["resource"]: r for r in summary["resources"]}
    # only the changes were pulled: 3 updated + 2 new students, 2 new + 2 re-keyed enrolments
    assert by_name["ed-fi/students"]["records"] == 5
    assert by_name["ed-fi/studentSchoolAssociations"]["records"] == 4
    assert by_name["ed-fi/studentSchoolAssociations"]["key_changes"] == 2
    assert by_name["ed-fi/studentSectionAttendanceEvents"]["deletes"] == 4
    assert summary["records"] == 9
    changed = {
        "ed-fi/students",
        "ed-fi/studentSchoolAssociations",
        "ed-fi/studentSectionAttendanceEvents",
    }
    assert {r["resource"] for r in summary["resources"] if r["status"] == "pulled"} == changed
    assert all(
        r["status"] == "unchanged" for r in summary["resources"] if r["resource"] not in changed
    )
    deleted = set(log.deleted["/ed-fi/studentSectionAttendanceEvents"])
    events = lake_rows(Lake(lake_url), store.model.find("studentSectionAttendanceEvents"), 0)
    assert not deleted & events.keys()


def test_full_refresh_repulls_only_named_resources(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    lake_url = str(tmp_path / "lake")
    some = ["ed-fi/schools", "ed-fi/students", "ed-fi/studentSchoolAssociations"]
    run_extract(small_district, lake_url, mode="full", resources=some)
    summary = run_extract(small_district, lake_url, full_refresh=["schools"], resources=some)
    pulled = {r["resource"]: r for r in summary["resources"] if r["status"] == "pulled"}
    assert list(pulled) == ["ed-fi/schools"]
    assert pulled["ed-fi/schools"]["records"] == 3
    assert pulled["ed-fi/schools"]["mode"] == "full"


# -- faults and concurrency ----------------------------------------------------------


def test_faults_give_the_same_lake_as_a_clean_run(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    small_district.sandbox.faults = Faults.parse(
        "error=0.08,throttle=0.05,retry_after=0.2,drop=0.03,token_ttl=3,seed=11"
    )
    try:
        summary = run_extract(
            small_district,
            str(tmp_path / "lake"),
            mode="full",
            connection_kwargs={"max_retries": 10},
        )
    finally:
        small_district.sandbox.faults = Faults()
    assert summary["status"] == "completed"
    assert summary["retries"] > 10
    assert differences(Lake(str(tmp_path / "lake")), small_district.store(), 0) == {}


def test_records_changed_during_the_pull_are_neither_lost_nor_duplicated(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    store = small_district.store()
    before = expected_all(store)
    small_district.sandbox.faults = Faults(latency_ms=15)
    changed = threading.Event()

    def change_mid_pull() -> None:
        # wait until the run has taken its snapshot and is reading pages
        deadline = time.monotonic() + 60
        while small_district.sandbox.request_count < 40:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)
        apply_changes(store, updates=5, inserts=3, deletes=6, key_changes=2, seed=9)
        changed.set()

    worker = threading.Thread(target=change_mid_pull)
    worker.start()
    try:
        lake_url = str(tmp_path / "lake")
        summary = run_extract(small_district, lake_url, mode="full")
    finally:
        worker.join()
        small_district.sandbox.faults = Faults()
    assert changed.is_set(), "the changes did not happen during the pull"
    assert summary["status"] == "completed"
    # the run read one consistent snapshot: exactly the data as it was when it started
    assert differences(Lake(lake_url), store, 0, expected=before) == {}
    # and the next incremental run (a new session, a new snapshot) brings it up to date
    run_extract(small_district, lake_url)
    assert differences(Lake(lake_url), store, 0) == {}


def test_a_killed_run_is_resumed_without_repulling_or_duplicates(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    lake_url = str(tmp_path / "lake")
    small_district.sandbox.faults = Faults(latency_ms=40)
    script = textwrap.dedent(f"""
        import asyncio, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pydantic import SecretStr
        from blocks import EdFiConnection, LakeStorage
        from flows.extract import extract
        conn = EdFiConnection(base_url={small_district.base_url!r},
                              client_id={small_district.client_id!r},
                              client_secret=SecretStr({small_district.client_secret!r}),
                              max_concurrency=2)
        asyncio.run(extract(conn, LakeStorage(url={lake_url!r}), mode="full",
                            resource_parallelism=2))
    """)
    from prefect.settings import PREFECT_API_URL

    # the subprocess reports to this session's Prefect server
    env = {**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    state_dir = Path(lake_url, "state")
    try:
        deadline = time.monotonic() + 240
        while len(list(state_dir.rglob("*.json"))) < 40:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
        small_district.sandbox.faults = Faults()
    committed_before = {p.relative_to(state_dir) for p in state_dir.rglob("*.json")}

    summary = run_extract(small_district, lake_url, mode="full")
    assert summary["status"] == "completed"
    statuses = {r["status"] for r in summary["resources"]}
    assert statuses == {"resumed", "pulled"}
    resumed = [r for r in summary["resources"] if r["status"] == "resumed"]
    assert len(resumed) >= len(committed_before) - 2  # a commit or two may race the kill
    assert all(r["records"] == 0 for r in resumed)
    assert differences(Lake(lake_url), small_district.store(), 0) == {}


# -- school years --------------------------------------------------------------------


def test_school_years_land_in_separate_partitions(tmp_path: Path) -> None:
    with running_sandbox(students=25, seed=3, years=[2024, 2025]) as sb:
        lake_url = str(tmp_path / "lake")
        summary = run_extract(
            sb, lake_url, mode="full", connection_kwargs={"school_years": [2024, 2025]}
        )
        assert summary["status"] == "completed"
        assert {r["school_year"] for r in summary["resources"]} == {2024, 2025}
        lake = Lake(lake_url)
        for year in (2024, 2025):
            assert differences(lake, sb.store(year), year) == {}
            assert Path(lake_url, f"current/ed-fi/students/school_year={year}").is_dir()
        students = sb.sandbox.model.find("students")
        ids_2024 = set(lake_rows(lake, students, 2024))
        ids_2025 = set(lake_rows(lake, students, 2025))
        assert ids_2024 and ids_2025 and not ids_2024 & ids_2025
        table = read_table(lake, lake.committed_files(students, 2024))
        assert set(table.column("_school_year").to_pylist()) == {2024}


# -- bad input ------------------------------------------------------------------------


def _nothing_visible(lake_url: str) -> None:
    files = files_under(lake_url) if Path(lake_url).exists() else []
    assert not [f for f in files if f.startswith(("state/", "current/"))], files


def test_wrong_secret_is_one_clear_error(small_district: RunningSandbox, tmp_path: Path) -> None:
    from blocks import EdFiConnection
    from flows.extract import extract

    conn = EdFiConnection(
        base_url=small_district.base_url,
        client_id=small_district.client_id,
        client_secret="not-the-secret",
    )
    import asyncio

    with pytest.raises(EdFiAuthError) as err:
        asyncio.run(extract(conn, LakeStorage(url=str(tmp_path / "lake"))))
    assert "rejected the client credentials" in str(err.value)
    assert repr(small_district.client_id) in str(err.value)
    assert "not-the-secret" not in str(err.value)
    _nothing_visible(str(tmp_path / "lake"))


def test_unreachable_url_is_one_clear_error(tmp_path: Path) -> None:
    from sandbox.server import free_port

    with running_sandbox(students=0) as sb:
        pass
    bad = RunningSandbox(
        f"http://127.0.0.1:{free_port()}", sb.client_id, sb.client_secret, sb.sandbox
    )
    with pytest.raises(EdFiConnectionError) as err:
        run_extract(bad, str(tmp_path / "lake"))
    assert "Cannot reach the Ed-Fi API" in str(err.value)
    assert "Check the base URL" in str(err.value)
    _nothing_visible(str(tmp_path / "lake"))


def test_malformed_json_page_fails_that_resource_and_commits_nothing_of_it(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    small_district.sandbox.faults = Faults(malformed=frozenset({"schools"}))
    lake_url = str(tmp_path / "lake")
    try:
        with pytest.raises(ExtractError) as err:
            run_extract(small_district, lake_url, mode="full", resources=["ed-fi/schools"])
    finally:
        small_district.sandbox.faults = Faults()
    assert "ed-fi/schools" in str(err.value)
    assert "not valid JSON" in str(err.value)
    _nothing_visible(lake_url)


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("nosuch://bucket/lake", "storage protocol 'nosuch'"),
        ("lake-without-scheme", "is not a storage URL"),
    ],
)
def test_invalid_storage_url_is_one_clear_error(
    small_district: RunningSandbox, url: str, fragment: str
) -> None:
    with pytest.raises(LakeError) as err:
        run_extract(small_district, "", storage=LakeStorage(url=url))
    assert fragment in str(err.value)


def test_missing_bucket_fails_before_anything_is_read(
    small_district: RunningSandbox, s3_endpoint: str
) -> None:
    storage = LakeStorage(
        url="s3://no-such-bucket/lake",
        access_key_id="testing",
        secret_access_key="testing",
        endpoint_url=s3_endpoint,
    )
    before = small_district.sandbox.request_count
    with pytest.raises(LakeError) as err:
        run_extract(small_district, "", storage=storage)
    assert "Cannot write to the lake" in str(err.value)
    assert small_district.sandbox.request_count == before


def test_unknown_resource_pattern_is_rejected(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    with pytest.raises(ExtractError) as err:
        run_extract(small_district, str(tmp_path / "lake"), resources=["ed-fi/studnets"])
    assert "'ed-fi/studnets' matches no resource" in str(err.value)
    _nothing_visible(str(tmp_path / "lake"))


# -- secrets ------------------------------------------------------------------------------


def test_secrets_never_reach_logs_artifacts_manifests_or_paths(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import httpx
    from prefect.settings import PREFECT_API_URL

    secret = "S3cr3t-" + os.urandom(6).hex()
    caplog.set_level(logging.DEBUG)
    with running_sandbox(students=10, seed=2, client_secret=secret) as sb:
        sb.sandbox.faults = Faults.parse("error=0.1,token_ttl=2,seed=4")
        lake_url = str(tmp_path / "lake")
        summary = run_extract(sb, lake_url, mode="full", resources=["ed-fi/s*"])
    assert summary["status"] == "completed"
    assert secret not in caplog.text
    assert secret not in json.dumps(summary)
    for path in Path(lake_url).rglob("*"):
        assert secret not in str(path)
        if path.is_file() and path.suffix == ".json":
            assert secret not in path.read_text()

    api = str(PREFECT_API_URL.value()).rstrip("/")
    logs = httpx.post(
        f"{api}/logs/filter", json={"limit": 200, "offset": 0, "sort": "TIMESTAMP_DESC"}
    ).json()
    artifacts = httpx.post(
        f"{api}/artifacts/filter", json={"limit": 200, "offset": 0, "sort": "CREATED_DESC"}
    ).json()
    texts = [log["message"] for log in logs] + [json.dumps(a["data"]) for a in artifacts]
    assert texts, "no logs or artifacts were recorded"
    assert not [t for t in texts if secret in t]


def test_connection_block_keeps_the_secret_secret(small_district: RunningSandbox) -> None:
    block: Any = connection_block(small_district)
    assert small_district.client_secret not in repr(block)
    assert small_district.client_secret not in str(block.model_dump())
    conn = block.connection()
    assert small_district.client_secret not in repr(conn)


def test_run_gold_builds_the_analytics_tables_after_the_pull(
    small_district: RunningSandbox, tmp_path: Path
) -> None:
    lake_url = str(tmp_path / "lake")
    summary = run_extract(small_district, lake_url, mode="full", run_gold=True)
    gold = summary["gold"]
    manifest = json.loads(Path(lake_url, "gold", "_manifest.json").read_text())
    assert manifest["version"] == gold["version"]
    rows = {v["view"]: v["rows"] for v in gold["views"]}
    enrolled = [
        r
        for r in small_district.store().iter_records(
            small_district.sandbox.model.find("studentSchoolAssociations")
        )
        if not r.get("exitWithdrawDate")
    ]
    assert rows["StudentSchoolDim"] == len(enrolled) > 0
