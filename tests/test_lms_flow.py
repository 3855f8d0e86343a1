"""The lms flow on a Prefect test server: the load step end to end, reruns skip."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from blocks import LakeStorage, LmsDatabase
from edfi.errors import LmsError
from sandbox.lms_csv import build_extract, write_day
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import connection_block, run_extract


def test_lms_flow_loads_then_skips(prefect_harness: None, tmp_path: Path) -> None:
    from flows.lms import lms

    extract = build_extract(60, seed=7, days=2)
    root = tmp_path / "lake"
    write_day(extract, 0, str(root / "extract"))
    storage = LakeStorage(url=str(root))
    db = LmsDatabase(database=str(tmp_path / "lms.sqlite"))
    first = asyncio.run(
        lms(storage, db, steps="load", extract_path="extract", now=extract.day_times[0])
    )
    files = len(extract.days[0])
    rows = sum(len(f.rows) for f in extract.days[0])
    assert first["load"]["files_loaded"] == files
    assert first["load"]["inserted"] == rows
    assert first["load"]["parentless"] == 0
    write_day(extract, 1, str(root / "extract"))
    second = asyncio.run(
        lms(storage, db, steps="load", extract_path="extract", now=extract.day_times[1])
    )
    assert second["load"]["files_skipped"] == files
    assert second["load"]["files_loaded"] == len(extract.days[1])
    assert second["load"]["deleted"] > 0


def test_lms_flow_harmonize_needs_a_connection(prefect_harness: None, tmp_path: Path) -> None:
    from flows.lms import lms

    with pytest.raises(LmsError, match="Harmonizing needs the target API"):
        asyncio.run(
            lms(
                LakeStorage(url=str(tmp_path)),
                LmsDatabase(database=str(tmp_path / "lms.sqlite")),
                steps="harmonize",
            )
        )


def test_lms_flow_load_and_harmonize_into_the_sandbox(
    prefect_harness: None, small_district: RunningSandbox, tmp_path: Path
) -> None:
    from flows.lms import lms

    extract = build_extract(60, seed=7, days=1)
    root = tmp_path / "lake"
    write_day(extract, 0, str(root / "extract"))
    storage = LakeStorage(url=str(root))
    db = LmsDatabase(database=str(tmp_path / "lms.sqlite"))
    block = connection_block(small_district)
    summary = asyncio.run(
        lms(storage, db, block, steps="both", extract_path="extract", now=extract.day_times[0])
    )
    harmonized = summary["harmonize"]
    assert harmonized["rejects"] == 0
    assert harmonized["exceptions"]["unmatched_users"] == 3
    assert harmonized["exceptions"]["unmatched_sections"] == 3
    assert harmonized["changes"]["upsert_assignments"] > 0
    assert harmonized["changes"]["upsert_submissions"] > 0
    reports = root / "_lms-reports" / "harmonizer"
    assert (reports / "unmatched_users.csv").is_file()
    assert (reports / "unmatched_sections.csv").is_file()
    again = asyncio.run(lms(storage, db, block, steps="harmonize", now=extract.day_times[0]))
    assert set(again["harmonize"]["changes"].values()) == {0}


def test_lms_flow_refuses_a_target_without_lmsx(
    prefect_harness: None, spec_dir: Path, tmp_path: Path
) -> None:
    from flows.lms import lms

    docs = [
        str(spec_dir / "openapi" / "resources-ds-5.0.json"),
        str(spec_dir / "openapi" / "descriptors-ds-5.0.json"),
    ]
    with (
        running_sandbox(students=0, openapi=docs) as sb,
        pytest.raises(LmsError, match="no lmsx extension"),
    ):
        asyncio.run(
            lms(
                LakeStorage(url=str(tmp_path)),
                LmsDatabase(database=str(tmp_path / "lms.sqlite")),
                connection_block(sb),
                steps="harmonize",
            )
        )


def test_lms_flow_matches_from_an_extract_lake(
    prefect_harness: None, small_district: RunningSandbox, tmp_path: Path
) -> None:
    from flows.lms import lms

    edfi_lake = str(tmp_path / "edfi-lake")
    run_extract(
        small_district,
        edfi_lake,
        resources=[
            "ed-fi/students",
            "ed-fi/studentEducationOrganizationAssociations",
            "ed-fi/sections",
        ],
    )
    extract = build_extract(60, seed=7, days=1)
    root = tmp_path / "lake"
    write_day(extract, 0, str(root / "extract"))
    summary = asyncio.run(
        lms(
            LakeStorage(url=str(root)),
            LmsDatabase(database=str(tmp_path / "lms.sqlite")),
            connection_block(small_district),
            extract_path="extract",
            now=extract.day_times[0],
            edfi_lake=LakeStorage(url=edfi_lake),
        )
    )
    harmonized = summary["harmonize"]
    assert harmonized["matched"] == {
        "users": sum(len(v) for v in extract.matched_users.values()),
        "sections": sum(len(v) for v in extract.matched_sections.values()),
    }
    assert harmonized["rejects"] == 0
    assert harmonized["exceptions"]["unmatched_users"] == 3
