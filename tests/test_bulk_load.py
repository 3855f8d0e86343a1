"""The bulk_load flow over real HTTP: a district round trip, resume, rejects and resend."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from pydantic import SecretStr

from blocks import LakeStorage
from edfi.errors import SendError
from edfi.model import ApiModel, builtin_model, publishable
from sandbox.changes import body_of
from sandbox.export_xml import export_xml
from sandbox.server import RunningSandbox, open_store, running_sandbox
from sandbox.store import Store
from tests.conftest import connection_block

YEARS = "/ed-fi/schoolYearTypes"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, Path]:
    """A 5-student district and its interchange files."""
    model = builtin_model()
    base = tmp_path_factory.mktemp("district")
    store = open_store(model, str(base / "d.sqlite"), students=5, seed=7, year=2025, template=False)
    export_xml(model, store.iter_records, str(base / "xml"))
    return store, base / "xml"


@pytest.fixture
def target(source: tuple[Store, Path]) -> Iterator[RunningSandbox]:
    """An empty sandbox holding only the school years (which every ODS/API ships)."""
    with running_sandbox(students=0, template=False) as sb:
        store = sb.store()
        for rec in source[0].iter_records(store.model[YEARS]):
            store.upsert(store.model[YEARS], body_of(rec))
        yield sb


def run(sb: RunningSandbox, lake: Path, **kwargs: Any) -> dict[str, Any]:
    from flows.bulk_load import bulk_load

    return asyncio.run(
        bulk_load(connection_block(sb), LakeStorage(url=str(lake)), **kwargs)  # type: ignore[arg-type]
    )


def same(model: ApiModel, a: Store, b: Store, path: str) -> bool:
    r = model[path]
    left = {a.record_key(r, x): publishable(x) for x in a.iter_records(r)}
    right = {b.record_key(r, x): publishable(x) for x in b.iter_records(r)}
    return left == right


def holds(model: ApiModel, a: Store, b: Store, path: str) -> bool:
    """Every record of ``a`` is in ``b``, equal (``b`` may hold more: a template's values)."""
    r = model[path]
    right = {b.record_key(r, x): publishable(x) for x in b.iter_records(r)}
    return all(right.get(a.record_key(r, x)) == publishable(x) for x in a.iter_records(r))


def test_round_trip_and_resume(
    source: tuple[Store, Path], tmp_path: Path, prefect_harness: None
) -> None:
    """The district, exported, loads into a fresh ODS (``--students 0``: the default
    descriptors and school years) and the target then holds the district exactly."""
    store, xml = source
    with running_sandbox(students=0) as target:
        _round_trip(store, xml, target, tmp_path)


def _round_trip(store: Store, xml: Path, target: RunningSandbox, tmp_path: Path) -> None:
    summary = run(target, tmp_path / "lake", data=str(xml))
    assert summary["status"] == "completed"
    assert (summary["failed"], summary["invalid"], summary["blocked"]) == (0, 0, 0)
    loaded = [r["resource"] for r in summary["resources"]]
    model = store.model
    total = sum(sum(1 for _ in store.iter_records(model[p])) for p in loaded)
    assert summary["sent"] == total == 2150 - 17  # every record but the school years
    assert [
        p
        for p in loaded
        if not model[p].is_descriptor and not same(model, store, target.store(), p)
    ] == []
    assert [p for p in loaded if not holds(model, store, target.store(), p)] == []
    # a rerun finds every element already accepted, unchanged
    again = run(target, tmp_path / "lake", data=str(xml))
    assert (again["status"], again["sent"], again["skipped"]) == ("completed", 0, total)


def test_rejects_name_the_element_and_resend(
    source: tuple[Store, Path], target: RunningSandbox, tmp_path: Path, prefect_harness: None
) -> None:
    store, xml = source
    files = tmp_path / "xml"
    shutil.copytree(xml, files)
    # the target lacks one descriptor the district uses: its users fail, their children are blocked
    text = (files / "Interchange-Descriptors.xml").read_text()
    female = text.index("<CodeValue>Female</CodeValue>")
    cut = text.rindex("<SexDescriptor ", 0, female)
    end = text.index("</SexDescriptor>", cut) + len("</SexDescriptor>")
    assert "Namespace>uri://ed-fi.org/SexDescriptor</" in text[cut:end]
    (files / "Interchange-Descriptors.xml").write_text(text[:cut] + text[end:])
    with pytest.raises(SendError, match="kept on the state storage"):
        run(target, tmp_path / "lake", data=str(files))
    from edfi.lake import Lake
    from edfi.rejects import RejectsStore

    lake = Lake(str(tmp_path / "lake"))
    folder = next((tmp_path / "lake" / "_bulk_load_rejects").iterdir())
    run_id = next(p.name for p in folder.iterdir() if p.is_dir())
    rejects = RejectsStore(lake, "_bulk_load_rejects", folder.name).read(run_id)
    refused = [r for r in rejects if not r.blocked]
    assert refused and all("SexDescriptor#Female" in r.message for r in refused)
    first = refused[0].origin or {}
    assert first["file"].endswith(".xml") and first["line"] > 1 and first["element"]
    # fix the target, then send only the rejects
    model = store.model
    female = next(
        r for r in store.iter_records(model["/ed-fi/sexDescriptors"]) if r["codeValue"] == "Female"
    )
    target.store().upsert(model["/ed-fi/sexDescriptors"], body_of(female))
    resent = run(target, tmp_path / "lake", resend_rejects=True)
    assert (resent["status"], resent["sent"], resent["failed"]) == ("completed", len(rejects), 0)
    # the first run loaded everything else: with the resend, the target equals the district
    loaded = [p for p in model.resources if p != YEARS and not p.startswith("/lmsx/")]
    assert [p for p in loaded if not same(model, store, target.store(), p)] == []


def test_default_descriptor_files_load_with_zero_failures(
    spec_dir: Path, tmp_path: Path, prefect_harness: None
) -> None:
    with running_sandbox(students=0, template=False) as sb:
        summary = run(sb, tmp_path / "lake", data=str(spec_dir / "descriptors-ds5.2"))
        assert (summary["status"], summary["failed"], summary["invalid"]) == ("completed", 0, 0)
        assert summary["file_problems"] == []
        model = sb.store().model
        on_target = {
            r.path: {(d["namespace"], d["codeValue"]) for d in sb.store().iter_records(r)}
            for r in model
            if r.is_descriptor
        }
    # every value of the 202 files whose descriptor the target's API has is there (the
    # values of descriptors DS 5.2 added are counted as unsupported, not sent)
    assert all(row["sent"] == row["elements"] for row in summary["resources"])
    assert summary["sent"] + sum(summary["unsupported"].values()) == 3298
    assert all(len(on_target[row["resource"]]) >= row["sent"] for row in summary["resources"])
    loaded = summary["sent"]
    print(f"\n{loaded} descriptor values loaded; skipped: {summary['unsupported']}")


def test_killed_load_resumes_skipping_what_was_accepted(
    source: tuple[Store, Path], target: RunningSandbox, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from edfi.client import Connection, EdFiClient
    from edfi.send import Sender, SendOptions, write_connection
    from edfi.sendstate import SendState
    from edfi.xml.bulk import BulkLoad
    from edfi.xml.reader import XmlLoad, list_files
    from edfi.xml.spool import XmlSpool

    store, xml = source
    model = store.model
    tgt = target.store()

    def on_target() -> int:
        return sum(sum(1 for _ in tgt.iter_records(r)) for r in model if r.path != YEARS)

    lake = str(tmp_path / "lake")
    args = [target.base_url, target.client_id, target.client_secret, str(xml), lake]
    child = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("xml_load_child.py")), *args],
        cwd=Path(__file__).resolve().parents[1],
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    deadline = time.monotonic() + 120
    while on_target() < 700 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    before = on_target()
    total = 2150 - 17
    assert 700 <= before < total, "the load was not killed mid-way"

    async def resume() -> Any:
        conn = write_connection(
            Connection(target.base_url, target.client_id, SecretStr(target.client_secret)), 16
        )
        async with EdFiClient(conn) as client:
            m = await client.load_model()
            sender = Sender(client, m, client.url("dataManagementApi"), SendOptions())
            with XmlSpool(XmlLoad(list_files(str(xml)), m)) as spool:
                spool.build()
                return await BulkLoad(m, spool, sender, state=SendState(lake, "target")).run()

    result = asyncio.run(resume())
    sent = sum(r.sent for r in result.rows.values())
    skipped = sum(r.skipped for r in result.rows.values())
    assert result.failed == 0
    # what the killed run recorded as accepted is skipped; the rest (at most a batch per
    # resource in flight when it died) is sent again -- an idempotent upsert
    assert sent + skipped == total and skipped > 0 and sent < total
    assert skipped <= before
    assert on_target() == total
    loaded = [p for p in result.rows]
    assert [p for p in loaded if not same(model, store, tgt, p)] == []


def test_an_element_that_is_no_record_is_a_reject_with_its_place(
    target: RunningSandbox, tmp_path: Path
) -> None:
    from edfi.client import Connection, EdFiClient
    from edfi.send import Sender, write_connection
    from edfi.xml.bulk import BulkLoad
    from edfi.xml.reader import XmlLoad
    from edfi.xml.spool import XmlSpool

    path = tmp_path / "Enrollment.xml"
    path.write_text(
        '<InterchangeStudentEnrollment xmlns="http://ed-fi.org/5.2.0">\n'
        "  <StudentSchoolAssociation>\n"
        '    <StudentReference ref="NOPE"/>\n'
        "    <SchoolReference><SchoolIdentity><SchoolId>1</SchoolId></SchoolIdentity>"
        "</SchoolReference>\n"
        "    <EntryDate>2021-08-23</EntryDate>\n"
        "    <EntryGradeLevel>uri://ed-fi.org/GradeLevelDescriptor#Ninth grade</EntryGradeLevel>\n"
        "  </StudentSchoolAssociation>\n"
        "</InterchangeStudentEnrollment>\n"
    )

    async def load() -> Any:
        conn = write_connection(
            Connection(target.base_url, target.client_id, SecretStr(target.client_secret)), 4
        )
        async with EdFiClient(conn) as client:
            m = await client.load_model()
            sender = Sender(client, m, client.url("dataManagementApi"))
            with XmlSpool(XmlLoad([str(path)], m)) as spool:
                spool.build()
                return await BulkLoad(m, spool, sender).run()

    result = asyncio.run(load())
    row = result.rows["/ed-fi/studentSchoolAssociations"]
    assert (row.elements, row.invalid, row.sent, row.status) == (1, 1, 0, "failed")
    [reject] = result.rejects
    assert (reject.status, reject.origin) == (
        None,
        {
            "file": str(path),
            "line": 2,
            "element": "StudentSchoolAssociation",
            "interchange": "InterchangeStudentEnrollment",
        },
    )
    assert reject.message == (
        "StudentSchoolAssociation/StudentReference: ref 'NOPE' names no element with that id "
        "in this load"
    )


# -- method="bulk": the legacy /bulk/v1 services -------------------------------------------


def test_round_trip_by_the_bulk_services(
    source: tuple[Store, Path], tmp_path: Path, prefect_harness: None
) -> None:
    """The same district through ``/bulk/v1`` (declared, chunked, committed, polled): the
    target then holds the district exactly, as with the per-record API method."""
    store, xml = source
    model = store.model
    with running_sandbox(students=0) as target:
        summary = run(target, tmp_path / "lake", data=str(xml), method="bulk")
        assert (summary["status"], summary["failed"], summary["file_problems"]) == (
            "completed",
            0,
            [],
        )
        assert summary["files"] == 16
        assert all(u["status"] == "Completed" for u in summary["uploads"])
        loaded = [p for p in model.resources if p != YEARS and not p.startswith("/lmsx/")]
        total = sum(sum(1 for _ in store.iter_records(model[p])) for p in loaded)
        assert summary["sent"] == total == 2150 - 17
        assert [
            p
            for p in loaded
            if not model[p].is_descriptor and not same(model, store, target.store(), p)
        ] == []
        assert [p for p in loaded if not holds(model, store, target.store(), p)] == []

        # a rerun: every element is recorded as accepted, nothing is uploaded
        again = run(target, tmp_path / "lake", data=str(xml), method="bulk")
        assert (again["status"], again["sent"], again["operation"]) == ("completed", 0, "")
        assert again["skipped"] >= total
        assert {u["status"] for u in again["uploads"]} == {"Unchanged"}

        # one student changed: only that element goes, in a filtered copy of its file
        edited = tmp_path / "edited"
        shutil.copytree(xml, edited)
        students = edited / "Interchange-Student.xml"
        text = students.read_text()
        first = text.index("<FirstName>") + len("<FirstName>")
        name = text[first : text.index("</FirstName>", first)]
        students.write_text(text[:first] + "Renamed" + text[first + len(name) :])
        changed = run(target, tmp_path / "lake", data=str(edited), method="bulk")
        assert (changed["status"], changed["sent"]) == ("completed", 1)
        [upload] = [u for u in changed["uploads"] if u["status"] != "Unchanged"]
        assert (upload["file"], upload["loaded"]) == (str(students), 1)
        assert any(
            s["firstName"] == "Renamed"
            for s in target.store().iter_records(model["/ed-fi/students"])
        )
        # force: everything again
        forced = run(target, tmp_path / "lake", data=str(edited), method="bulk", force=True)
        assert (forced["sent"], forced["skipped"]) == (total, 0)


def _token(sb: RunningSandbox) -> dict[str, str]:
    import httpx

    resp = httpx.post(
        f"{sb.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(sb.client_id, sb.client_secret),
    )
    return {"Authorization": f"Bearer {resp.json()['access_token']}"}


def test_bulk_protocol_refuses_bad_uploads(target: RunningSandbox) -> None:
    import httpx

    bulk = f"{target.base_url}/bulk/v1"
    auth = _token(target)
    with httpx.Client(headers=auth) as http:
        bad = http.post(
            f"{bulk}/bulkOperations",
            json={"uploadFiles": [{"format": "text/csv", "interchangeType": "nope", "size": 0}]},
        )
        assert bad.status_code == 400
        assert set(bad.json()["validationErrors"]) == {
            "$.uploadFiles[0].format",
            "$.uploadFiles[0].interchangeType",
            "$.uploadFiles[0].size",
        }
        created = http.post(
            f"{bulk}/bulkOperations",
            json={
                "uploadFiles": [{"format": "text/xml", "interchangeType": "student", "size": 10}]
            },
        )
        assert created.status_code == 201
        op = created.json()
        assert op["status"] == "Initialized"
        [f] = op["uploadFiles"]
        assert (f["interchangeType"], f["size"], f["status"]) == ("student", 10, "Initialized")
        chunk = f"{bulk}/uploads/{f['id']}/chunk"
        # past the declared size
        past = http.post(chunk, params={"offset": 6, "size": 5}, files={"file": b"12345"})
        assert past.status_code == 400 and "past the end" in past.json()["detail"]
        # the part's length differs from size
        short = http.post(chunk, params={"offset": 0, "size": 6}, files={"file": b"12345"})
        assert short.status_code == 400 and "holds 5 bytes" in short.json()["detail"]
        ok = http.post(chunk, params={"offset": 0, "size": 5}, files={"file": b"<Inte"})
        assert ok.status_code == 201
        assert http.get(f"{bulk}/bulkOperations/{op['id']}").json()["status"] == "Incomplete"
        # bytes 5-9 never arrived
        missing = http.post(f"{bulk}/uploads/{f['id']}/commit")
        assert missing.status_code == 400 and "bytes 5-9" in missing.json()["detail"]
        assert http.get(f"{bulk}/bulkOperations/{uuid4().hex}").status_code == 404
        # an operation not committed in time expires: its files take no more bytes
        from sandbox.bulk import service

        service(target.sandbox).expire_seconds = 0
        expired = http.get(f"{bulk}/bulkOperations/{op['id']}").json()
        assert (expired["status"], expired["uploadFiles"][0]["status"]) == ("Expired", "Expired")
        late = http.post(chunk, params={"offset": 5, "size": 5}, files={"file": b"rchan"})
        assert late.status_code == 400 and "expired" in late.json()["detail"]


def test_bulk_services_list_exceptions_per_file(
    target: RunningSandbox, tmp_path: Path, prefect_harness: None
) -> None:
    """An XSD-invalid file is one exception with its line, nothing of it loaded; a record
    the target refuses is an exception with element, line and the server's message; the
    rest of the operation loads."""
    from edfi.client import Connection, EdFiClient
    from edfi.xml.bulkapi import BulkUpload, bulk_url

    invalid = tmp_path / "Interchange-Student.xml"
    invalid.write_text(
        '<InterchangeStudent xmlns="http://ed-fi.org/5.2.0">\n'
        "  <Student>\n"
        "    <StudentUniqueId>1</StudentUniqueId>\n"
        "    <Nickname>no such element</Nickname>\n"
        "  </Student>\n"
        "</InterchangeStudent>\n"
    )
    descriptors = tmp_path / "Interchange-Descriptors.xml"
    descriptors.write_text(
        '<InterchangeDescriptors xmlns="http://ed-fi.org/5.2.0">\n'
        "  <SexDescriptor>\n"
        "    <CodeValue>Other</CodeValue><ShortDescription>Other</ShortDescription>\n"
        "    <Description>Other</Description><Namespace>uri://ed-fi.org/SexDescriptor</Namespace>\n"
        "  </SexDescriptor>\n"
        "  <CourseRepeatCodeDescriptor>\n"
        "    <CodeValue>R</CodeValue><ShortDescription>R</ShortDescription>\n"
        "    <Namespace>uri://ed-fi.org/CourseRepeatCodeDescriptor</Namespace>\n"
        "  </CourseRepeatCodeDescriptor>\n"
        "</InterchangeDescriptors>\n"
    )
    enrollment = tmp_path / "Interchange-StudentEnrollment.xml"
    enrollment.write_text(
        '<InterchangeStudentEnrollment xmlns="http://ed-fi.org/5.2.0">\n'
        "  <StudentSchoolAssociation>\n"
        "    <StudentReference><StudentIdentity><StudentUniqueId>404</StudentUniqueId>"
        "</StudentIdentity></StudentReference>\n"
        "    <SchoolReference><SchoolIdentity><SchoolId>1</SchoolId></SchoolIdentity>"
        "</SchoolReference>\n"
        "    <EntryDate>2021-08-23</EntryDate>\n"
        "    <EntryGradeLevel>uri://ed-fi.org/GradeLevelDescriptor#Ninth grade</EntryGradeLevel>\n"
        "  </StudentSchoolAssociation>\n"
        "</InterchangeStudentEnrollment>\n"
    )

    async def load() -> Any:
        conn = Connection(target.base_url, target.client_id, SecretStr(target.client_secret))
        async with EdFiClient(conn) as client:
            await client.discover()
            upload = BulkUpload(client, bulk_url(client), chunk_size=100)
            return await upload.run([str(invalid), str(descriptors), str(enrollment)])

    result = asyncio.run(load())
    assert result.status == "Error"
    student, desc, enroll = result.files
    assert (student.interchange, student.status, student.loaded) == (
        "InterchangeStudent",
        "Error",
        0,
    )
    [e] = student.exceptions
    assert (e["element"], e["lineNumber"], e["code"]) == (None, 4, 400)
    assert "Nickname" in e["message"]
    # the good file of the operation loads
    assert (desc.status, desc.loaded, desc.exceptions) == ("Completed", 2, [])
    assert any(
        d["codeValue"] == "Other"
        for d in target.store().iter_records(target.store().model["/ed-fi/sexDescriptors"])
    )
    [e] = enroll.exceptions
    assert (enroll.status, e["element"], e["lineNumber"], e["code"], e["resource"]) == (
        "Error",
        "StudentSchoolAssociation",
        2,
        400,
        "/ed-fi/studentSchoolAssociations",
    )
    # the target has no grade level descriptors: the message is the one a POST would get
    assert "GradeLevelDescriptor#Ninth grade' does not exist" in e["message"]

    # the flow: the run fails naming what failed; the refused record is a reject with its place
    with pytest.raises(SendError, match=r"2 failed \(1 files skipped, 1 records refused\)"):
        run(target, tmp_path / "lake", data=str(tmp_path), method="bulk")
    from edfi.lake import Lake
    from edfi.rejects import RejectsStore

    folder = next((tmp_path / "lake" / "_bulk_load_rejects").iterdir())
    run_id = next(p.name for p in folder.iterdir() if p.is_dir())
    [reject] = RejectsStore(Lake(str(tmp_path / "lake")), "_bulk_load_rejects", folder.name).read(
        run_id
    )
    assert (reject.resource, reject.status, reject.origin) == (
        "/ed-fi/studentSchoolAssociations",
        400,
        {
            "file": str(enrollment),
            "line": 2,
            "element": "StudentSchoolAssociation",
            "interchange": "InterchangeStudentEnrollment",
        },
    )
    # a rerun: the descriptors were accepted and are not uploaded again; the refused
    # element and the invalid file are (nothing of them was recorded as accepted)
    with pytest.raises(SendError, match=r"2 failed \(1 files skipped, 1 records refused\)"):
        run(target, tmp_path / "lake", data=str(tmp_path), method="bulk")
    from edfi.sendstate import SendState

    folder_name = next((tmp_path / "lake" / "_send_state").iterdir()).name

    async def rerun() -> Any:
        conn = Connection(target.base_url, target.client_id, SecretStr(target.client_secret))
        async with EdFiClient(conn) as client:
            await client.discover()
            upload = BulkUpload(client, bulk_url(client), chunk_size=100)
            state = SendState(str(tmp_path / "lake"), folder_name)
            return await upload.run([str(invalid), str(descriptors), str(enrollment)], state=state)

    student, desc, enroll = asyncio.run(rerun()).files
    assert (desc.status, desc.skipped, desc.loaded) == ("Unchanged", 2, 0)
    assert (student.status, student.accepted, len(student.exceptions)) == ("Error", 0, 1)
    assert (enroll.status, enroll.accepted, enroll.exceptions[0]["lineNumber"]) == ("Error", 0, 2)


# -- the conversion beside the sending -----------------------------------------------------


def test_the_spool_announces_each_resource_once_its_files_are_converted(
    source: tuple[Store, Path],
) -> None:
    """Files go in the order the load needs them: descriptors are complete (and can be
    sent) before the files of students are converted."""
    from edfi.xml.reader import XmlLoad, list_files
    from edfi.xml.spool import XmlSpool

    store, xml = source
    with XmlSpool(XmlLoad(list_files(str(xml)), store.model)) as spool:
        spool.check()
        expected = spool.resources()
        announced: list[str] = []
        report = spool.convert(announced.append)
        assert sorted(announced) == expected == spool.resources()
        assert store.model[announced[0]].is_descriptor
        assert announced.index("/ed-fi/schools") < announced.index("/ed-fi/students")
        assert sum(report.records.values()) == sum(
            1 for p in expected for i in spool.items(p) if i.record is not None
        )


def test_a_resource_waits_for_the_conversion_and_a_failed_one_stops_the_wait() -> None:
    from edfi.xml.bulk import Feed

    async def go() -> None:
        feed = Feed(asyncio.get_running_loop())
        students = asyncio.create_task(feed.wait("/ed-fi/students"))
        await asyncio.sleep(0.01)
        assert not students.done()
        await asyncio.to_thread(feed.announce, "/ed-fi/students")
        await students
        grades = asyncio.create_task(feed.wait("/ed-fi/grades"))
        await asyncio.to_thread(feed.fail, OSError("disk full"))
        with pytest.raises(SendError, match="disk full"):
            await grades

    asyncio.run(go())
