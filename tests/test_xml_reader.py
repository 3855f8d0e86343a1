"""Reading interchange files: exact records, refs across files, and every kind of bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import psutil
import pytest

from edfi.model import ApiModel, load_model
from edfi.xml.reader import Record, XmlInputError, XmlLoad, list_files

NS = 'xmlns="http://ed-fi.org/5.2.0"'

STUDENTS = f"""<?xml version="1.0" encoding="UTF-8"?>
<InterchangeStudent {NS}>
  <Student id="S1">
    <StudentUniqueId>604822</StudentUniqueId>
    <Name><FirstName>Lisa</FirstName><LastSurname>Woods</LastSurname></Name>
    <OtherName>
      <FirstName>Liz</FirstName><LastSurname>Woods</LastSurname>
      <OtherNameType>uri://ed-fi.org/OtherNameTypeDescriptor#Nickname</OtherNameType>
    </OtherName>
    <BirthData>
      <BirthDate>2010-04-01</BirthDate><BirthCity>Austin</BirthCity>
      <MultipleBirthStatus>false</MultipleBirthStatus>
    </BirthData>
  </Student>
</InterchangeStudent>
"""

ENROLLMENT = f"""<?xml version="1.0" encoding="UTF-8"?>
<InterchangeStudentEnrollment {NS}>
  <StudentSchoolAssociation>
    <StudentReference ref="S1"/>
    <SchoolReference><SchoolIdentity><SchoolId>255901001</SchoolId></SchoolIdentity></SchoolReference>
    <SchoolYear>2021-2022</SchoolYear>
    <EntryDate>2021-08-23</EntryDate>
    <EntryGradeLevel>uri://ed-fi.org/GradeLevelDescriptor#Ninth grade</EntryGradeLevel>
    <RepeatGradeIndicator>1</RepeatGradeIndicator>
    <EducationPlan>uri://ed-fi.org/EducationPlanDescriptor#Career Pathway</EducationPlan>
  </StudentSchoolAssociation>
  <StudentSchoolAssociation>
    <StudentReference ref="NOPE"/>
    <SchoolReference><SchoolIdentity><SchoolId>255901001</SchoolId></SchoolIdentity></SchoolReference>
    <EntryDate>2021-08-23</EntryDate>
    <EntryGradeLevel>uri://ed-fi.org/GradeLevelDescriptor#Ninth grade</EntryGradeLevel>
  </StudentSchoolAssociation>
</InterchangeStudentEnrollment>
"""


@pytest.fixture(scope="module")
def ds5(spec_dir: Path) -> ApiModel:
    docs = [
        json.loads((spec_dir / "openapi" / f"{n}-ds-5.0.json").read_text("utf-8-sig"))
        for n in ("resources", "descriptors")
    ]
    return load_model(*docs)


def _read(load: XmlLoad) -> list[Record]:
    load.check()
    return list(load.records())


def test_records_are_exact_and_refs_resolve_across_files(tmp_path: Path, ds5: ApiModel) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "Students.xml.gz").write_bytes(gzip.compress(STUDENTS.encode()))
    (tmp_path / "Enrollment.xml").write_text(ENROLLMENT)
    (tmp_path / "notes.txt").write_text("not an interchange")
    files = list_files(f"file://{tmp_path}")
    assert files == [str(tmp_path / "Enrollment.xml"), str(tmp_path / "a" / "Students.xml.gz")]
    load = XmlLoad(files, ds5)
    report = load.check()
    assert (report.problems, report.ids, dict(report.elements)) == (
        [],
        1,
        {"Student": 1, "StudentSchoolAssociation": 2},
    )
    records = list(load.records())
    assert [(r.resource, r.origin.line, r.origin.element) for r in records] == [
        ("/ed-fi/studentSchoolAssociations", 3, "StudentSchoolAssociation"),
        ("/ed-fi/studentSchoolAssociations", 12, "StudentSchoolAssociation"),
        ("/ed-fi/students", 3, "Student"),
    ]
    assert records[0].body == {
        "studentReference": {"studentUniqueId": "604822"},
        "schoolReference": {"schoolId": 255901001},
        "schoolYearTypeReference": {"schoolYear": 2022},
        "entryDate": "2021-08-23",
        "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade",
        "repeatGradeIndicator": True,
        "educationPlans": [
            {"educationPlanDescriptor": "uri://ed-fi.org/EducationPlanDescriptor#Career Pathway"}
        ],
    }
    assert (records[1].body, records[1].problem) == (
        None,
        "StudentSchoolAssociation/StudentReference: ref 'NOPE' names no element with that id "
        "in this load",
    )
    assert records[2].body == {
        "studentUniqueId": "604822",
        "firstName": "Lisa",
        "lastSurname": "Woods",
        "otherNames": [
            {
                "firstName": "Liz",
                "lastSurname": "Woods",
                "otherNameTypeDescriptor": "uri://ed-fi.org/OtherNameTypeDescriptor#Nickname",
            }
        ],
        "birthDate": "2010-04-01",
        "birthCity": "Austin",
        "multipleBirthStatus": False,
    }
    assert records[2].element_id == "S1"
    # the ref was resolved through the index on disk, which closing the load removes
    assert load.ids is not None
    index = Path(load.ids.path)
    assert index.name == "ids.sqlite" and index.stat().st_size > 0
    load.close()
    assert not index.exists() and not index.parent.exists()


def test_an_id_used_twice_skips_the_later_file_and_forgets_its_ids(
    tmp_path: Path, ds5: ApiModel
) -> None:
    twice = (
        f"<InterchangeStudent {NS}>\n"
        '<Student id="S2"><StudentUniqueId>2</StudentUniqueId></Student>\n'
        '<Student id="S1"><StudentUniqueId>3</StudentUniqueId></Student>\n</InterchangeStudent>'
    )
    (tmp_path / "1.xml").write_text(STUDENTS)
    (tmp_path / "2.xml").write_text(twice)
    (tmp_path / "3.xml").write_text(ENROLLMENT.replace('ref="NOPE"', 'ref="S2"'))
    with XmlLoad(list_files(str(tmp_path)), ds5, validate=False) as load:
        report = load.check()
        assert [(Path(p.file).name, p.line, p.message) for p in report.problems] == [
            ("2.xml", 3, "id 'S1' is used twice")
        ]
        assert report.ids == 1  # S2 went with its file
        problems = [r.problem for r in load.records() if r.problem]
    assert problems == [
        "StudentSchoolAssociation/StudentReference: ref 'S2' names no element with that id "
        "in this load"
    ]


def test_the_default_descriptor_files_read_whole(spec_dir: Path, ds5: ApiModel) -> None:
    load = XmlLoad(list_files(str(spec_dir / "descriptors-ds5.2")), ds5)
    records = _read(load)
    assert load.report is not None and load.report.problems == []
    assert len(records) == 3298
    assert [r for r in records if r.problem] == []
    skipped = {r.origin.element for r in records if r.skipped}
    # descriptors DS 5.2 added that a DS 5.0 API has no resource for: counted, not loaded
    assert len([r for r in records if r.skipped]) == 95
    assert len(skipped) == 10 and "CrisisTypeDescriptor" in skipped
    grade = next(r for r in records if r.origin.element == "GradeLevelDescriptor")
    assert (grade.resource, grade.body) == (
        "/ed-fi/gradeLevelDescriptors",
        {
            "codeValue": "Infant/toddler",
            "shortDescription": "Infant/toddler",
            "description": "Infant/toddler",
            "namespace": "uri://ed-fi.org/GradeLevelDescriptor",
        },
    )


XXE = f"""<?xml version="1.0"?>
<!DOCTYPE InterchangeStudent [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
<InterchangeStudent {NS}>
  <Student><StudentUniqueId>&xxe;</StudentUniqueId></Student>
</InterchangeStudent>
"""

INVALID = f"""<?xml version="1.0"?>
<InterchangeStudent {NS}>
  <Student>
    <StudentUniqueId>1</StudentUniqueId>
    <Name><FirstName>A</FirstName><LastSurname>B</LastSurname></Name>
    <BirthData><BirthDate>2010-04-01</BirthDate></BirthData>
  </Student>
  <Student>
    <StudentUniqueId>2</StudentUniqueId>
    <BirthData><BirthDate>not a date</BirthDate></BirthData>
  </Student>
</InterchangeStudent>
"""


def test_bad_files_are_skipped_whole_with_line_and_reason(tmp_path: Path, ds5: ApiModel) -> None:
    (tmp_path / "1-xxe.xml").write_text(XXE)
    (tmp_path / "2-malformed.xml").write_text(f"<InterchangeStudent {NS}>\n<Student>\n</Oops>")
    (tmp_path / "3-invalid.xml").write_text(INVALID)
    (tmp_path / "4-other-ns.xml").write_text('<InterchangeStudent xmlns="http://ed-fi.org/0220"/>')
    (tmp_path / "5-good.xml").write_text(STUDENTS)
    load = XmlLoad(list_files(str(tmp_path)), ds5)
    report = load.check()
    got = {Path(p.file).name: (p.line, p.message) for p in report.problems}
    assert set(got) == {"1-xxe.xml", "2-malformed.xml", "3-invalid.xml", "4-other-ns.xml"}
    assert got["1-xxe.xml"][0] == 2 and "declares a DTD" in got["1-xxe.xml"][1]
    assert "XXE" in got["1-xxe.xml"][1]
    assert got["2-malformed.xml"][0] == 3 and "mismatch" in got["2-malformed.xml"][1]
    assert got["3-invalid.xml"][0] == 10
    assert "Element 'BirthData': This element is not expected" in got["3-invalid.xml"][1]
    assert "http://ed-fi.org/0220" in got["4-other-ns.xml"][1]
    records = list(load.records())
    assert [(Path(r.origin.file).name, r.body["studentUniqueId"]) for r in records if r.body] == [
        ("5-good.xml", "604822")
    ]
    # without validation the invalid file loads what converts, and rejects the rest by element
    loose = XmlLoad([str(tmp_path / "3-invalid.xml")], ds5, validate=False)
    rows = _read(loose)
    assert [r.problem for r in rows] == [None, None]
    assert rows[1].body == {"studentUniqueId": "2", "birthDate": "not a date"}


def test_interchange_filter(tmp_path: Path, ds5: ApiModel) -> None:
    (tmp_path / "s.xml").write_text(STUDENTS)
    (tmp_path / "e.xml").write_text(ENROLLMENT)
    load = XmlLoad(list_files(str(tmp_path)), ds5, interchanges=["Student"])
    assert [r.resource for r in _read(load)] == ["/ed-fi/students"]
    with pytest.raises(XmlInputError, match="unknown interchange"):
        XmlLoad([], ds5, interchanges=["Students"])
    with pytest.raises(XmlInputError, match="no such file"):
        list_files(str(tmp_path / "missing"))


def _students(n: int) -> bytes:
    one = (
        '<Student id="S{i}"><StudentUniqueId>{i}</StudentUniqueId><Name><FirstName>F{i}</FirstName>'
        "<LastSurname>L</LastSurname></Name><BirthData><BirthDate>2010-01-01</BirthDate>"
        "</BirthData></Student>\n"
    )
    body = "".join(one.format(i=i) for i in range(n))
    return f"<InterchangeStudent {NS}>\n{body}</InterchangeStudent>\n".encode()


def test_memory_stays_flat_whatever_the_file_size(tmp_path: Path, ds5: ApiModel) -> None:
    # every element has an id: the index of them is on disk, and the validator's automaton
    # for the root's repeated choice holds nothing per element (each cost 100s of bytes)
    def peak_growth(n: int) -> tuple[int, float]:
        path = tmp_path / f"s{n}.xml.gz"
        path.write_bytes(gzip.compress(_students(n), 1))
        proc = psutil.Process()
        base = proc.memory_info().rss
        peak = base
        load = XmlLoad([str(path)], ds5)
        load.check()
        count = 0
        for i, r in enumerate(load.records()):
            count += r.body is not None
            if i % 5000 == 0:
                peak = max(peak, proc.memory_info().rss)
        return count, (peak - base) / 2**20

    peak_growth(100)  # the first load's one-off costs (the schema compiled, imports)
    small = peak_growth(5_000)
    big = peak_growth(60_000)
    assert (small[0], big[0]) == (5_000, 60_000)
    print(f"\nRSS growth: 5,000 elements {small[1]:.1f} MiB; 60,000 elements {big[1]:.1f} MiB")
    assert big[1] < small[1] + 4  # the ids in memory: 6 MiB more


def test_spool_regroups_a_load_by_resource(tmp_path: Path, ds5: ApiModel) -> None:
    from edfi.xml.spool import XmlSpool

    (tmp_path / "s.xml").write_text(STUDENTS)
    (tmp_path / "e.xml").write_text(ENROLLMENT)
    with XmlSpool(XmlLoad(list_files(str(tmp_path)), ds5)) as spool:
        report = spool.build()
        assert dict(report.records) == {
            "/ed-fi/studentSchoolAssociations": 1,
            "/ed-fi/students": 1,
        }
        assert dict(report.element_problems) == {"/ed-fi/studentSchoolAssociations": 1}
        assert spool.resources() == ["/ed-fi/studentSchoolAssociations", "/ed-fi/students"]
        items = list(spool.items("/ed-fi/studentSchoolAssociations"))
        assert [(i.origin.line, i.origin.element, i.error is None) for i in items] == [
            (3, "StudentSchoolAssociation", True),
            (12, "StudentSchoolAssociation", False),
        ]
        assert items[0].record is not None
        assert items[0].record["studentReference"] == {"studentUniqueId": "604822"}
        assert str(items[1].error).endswith("names no element with that id in this load")
        folder = spool.folder
    assert not Path(folder).exists()


def test_a_ref_to_an_element_that_is_no_record_says_so(tmp_path: Path, ds5: ApiModel) -> None:
    bad = STUDENTS.replace("<StudentUniqueId>604822</StudentUniqueId>", "").replace(
        "<Name>", "<StudentUniqueId>604822</StudentUniqueId><Oops/><Name>"
    )
    (tmp_path / "s.xml").write_text(bad)
    (tmp_path / "e.xml").write_text(ENROLLMENT)
    load = XmlLoad(list_files(str(tmp_path)), ds5, validate=False)
    problems = [r.problem for r in _read(load) if r.problem]
    assert problems == [
        "StudentSchoolAssociation/StudentReference: ref 'S1' names an element that is no "
        "record itself (Student/Oops: element not allowed here by the interchange schema)",
        "StudentSchoolAssociation/StudentReference: ref 'NOPE' names no element with that id "
        "in this load",
        "Student/Oops: element not allowed here by the interchange schema",
    ]


def test_files_on_s3_read_the_same(s3_lake: Any, ds5: ApiModel) -> None:
    import fsspec

    options = s3_lake.fsspec_options()
    root = s3_lake.url.rstrip("/") + "/inbox"
    fs, path = fsspec.core.url_to_fs(root, **options)
    fs.pipe(f"{path}/deep/Students.xml.gz", gzip.compress(STUDENTS.encode()))
    fs.pipe(f"{path}/Enrollment.xml", ENROLLMENT.encode())
    files = list_files(root, options)
    assert [f.rsplit("/", 1)[-1] for f in files] == ["Enrollment.xml", "Students.xml.gz"]
    assert all(f.startswith("s3://") for f in files)
    records = _read(XmlLoad(files, ds5, storage_options=options))
    assert [(r.origin.element, r.origin.line, r.problem is None) for r in records] == [
        ("StudentSchoolAssociation", 3, True),
        ("StudentSchoolAssociation", 12, False),
        ("Student", 3, True),
    ]
    assert records[0].body is not None
    assert records[0].body["studentReference"] == {"studentUniqueId": "604822"}
