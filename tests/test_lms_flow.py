"""The lms flow on a Prefect test server: the load step end to end, reruns skip."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from blocks import LakeStorage, LmsDatabase
from edfi.errors import LmsError
from sandbox.lms_csv import build_extract, write_day


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
