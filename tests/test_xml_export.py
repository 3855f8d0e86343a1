"""The XML exporter: a district written as interchange files validates and reads back equal."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from edfi.model import builtin_model, publishable
from edfi.xml.reader import XmlLoad, list_files
from sandbox.export_xml import export_xml
from sandbox.server import open_store

ROOT = Path(__file__).resolve().parents[1]


def test_exported_district_validates_and_reads_back_equal(tmp_path: Path) -> None:
    model = builtin_model()
    store = open_store(model, str(tmp_path / "d.sqlite"), students=60, seed=7, year=2025)
    written = export_xml(model, store.iter_records, str(tmp_path / "xml"))
    assert len(written) == 17 and written["Interchange-Student.xml"] == 60
    load = XmlLoad(list_files(str(tmp_path / "xml")), model, validate=True)
    report = load.check()
    assert report.problems == []
    assert report.ids > 0  # same-file references are written as ref/id
    calendar = (tmp_path / "xml" / "Interchange-EducationOrgCalendar.xml").read_text()
    assert ' ref="id' in calendar and ' id="id' in calendar

    counts: Counter[str] = Counter()
    for rec in load.records():
        assert rec.problem is None and rec.body is not None, rec
        resource = model[rec.resource]
        source = store.find(resource, resource.key_values(rec.body))
        assert source is not None and publishable(source) == rec.body, rec.origin
        counts[rec.resource] += 1
    # every record of every resource that has an interchange came back, once
    every = {r.path: sum(1 for _ in store.iter_records(r)) for r in model}
    assert dict(counts) == {p: n for p, n in every.items() if p in counts}
    assert sorted(p for p, n in every.items() if n and p not in counts) == [
        "/ed-fi/schoolYearTypes",
        "/lmsx/assignmentCategoryDescriptors",
        "/lmsx/assignmentSubmissions",
        "/lmsx/assignments",
        "/lmsx/lmsSourceSystemDescriptors",
        "/lmsx/submissionStatusDescriptors",
        "/lmsx/submissionTypeDescriptors",
    ]
    assert sum(counts.values()) == 11771  # 8,705 of the district, 3,066 default descriptors


def test_cli_writes_gzipped_interchanges(tmp_path: Path) -> None:
    out = tmp_path / "xml"
    done = subprocess.run(
        [sys.executable, "-m", "sandbox", "export-xml", str(out), "--students", "5", "--gzip"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["files"]["Interchange-Student.xml.gz"] == 5
    head = gzip.decompress((out / "Interchange-Student.xml.gz").read_bytes())[:120]
    assert head.startswith(b"<?xml version='1.0' encoding='utf-8'?>\n<InterchangeStudent")
