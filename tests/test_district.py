"""The synthetic district must be loadable by a strict Ed-Fi API, in order, as is."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import pytest

from edfi.model import ApiModel, Reference, Shape, builtin_model
from sandbox.district import generate

STUDENTS = 300
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")

Batches = list[tuple[str, list[dict[str, Any]]]]


@pytest.fixture(scope="module")
def model() -> ApiModel:
    return builtin_model()


@pytest.fixture(scope="module")
def batches() -> Batches:
    return list(generate(STUDENTS, seed=7))


@pytest.fixture(scope="module")
def records(batches: Batches) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path, batch in batches:
        out[path].extend(batch)
    return out


def _dump(batches: Batches) -> bytes:
    return orjson.dumps(batches)


def test_deterministic_for_same_arguments_and_seed_sensitive() -> None:
    first = _dump(list(generate(120, seed=3)))
    assert first == _dump(list(generate(120, seed=3)))
    assert first != _dump(list(generate(120, seed=4)))


def test_grand_bend_identifiers(records: dict[str, list[dict[str, Any]]]) -> None:
    assert [r["educationServiceCenterId"] for r in records["/ed-fi/educationServiceCenters"]] == [
        255950
    ]
    leas = records["/ed-fi/localEducationAgencies"]
    assert [(r["localEducationAgencyId"], r["nameOfInstitution"]) for r in leas] == [
        (255901, "Grand Bend ISD")
    ]
    assert leas[0]["educationServiceCenterReference"] == {"educationServiceCenterId": 255950}
    schools = {r["schoolId"]: r["nameOfInstitution"] for r in records["/ed-fi/schools"]}
    assert schools[255901001] == "Grand Bend High School"
    assert schools[255901044] == "Grand Bend Middle School"
    assert schools[255901107] == "Grand Bend Elementary School"


def test_bigger_district_adds_schools() -> None:
    schools = [r for path, b in generate(4000) if path == "/ed-fi/schools" for r in b]
    ids = [s["schoolId"] for s in schools]
    assert len(ids) == len(set(ids)) > 3
    assert {255901001, 255901044, 255901107} <= set(ids)


def test_every_resource_has_records(
    model: ApiModel, records: dict[str, list[dict[str, Any]]]
) -> None:
    """Every resource the district fills (the compact model's): the others stay empty."""
    compact = builtin_model(compact=True)
    filled = [r.path for r in compact if not r.is_descriptor]
    assert len(filled) == 48
    assert [p for p in filled if not records.get(p)] == []
    assert sorted(p for p in records if not model[p].is_descriptor) == sorted(filled)


def test_batches_are_bounded(batches: Batches) -> None:
    assert all(0 < len(b) <= 5000 for _, b in batches)


def test_order_every_reference_target_fully_yielded_first(
    model: ApiModel, batches: Batches
) -> None:
    finished: set[str] = set()
    current: str | None = None
    for path, _ in batches:
        if path != current:
            assert path not in finished, f"{path} yielded in two runs"
            if current is not None:
                finished.add(current)
            current = path
        for dep in model.dependencies[path]:
            needed = model[dep]
            if needed.is_descriptor or dep in finished:
                continue
            # an unused target (one abstract base member, an optional reference) may never appear
            assert not any(p == dep for p, _ in batches), f"{path} came before {dep}"


def _walk(
    model: ApiModel, shape: Shape, body: Mapping[str, Any], where: str
) -> Iterator[tuple[str, Reference, Mapping[str, Any]]]:
    """Checks a body's shape; yields every reference found, at any depth."""
    allowed = set(shape.scalars) | set(shape.references) | set(shape.collections)
    allowed |= set(shape.objects)
    extra = set(body) - allowed
    assert not extra, f"{where}: unknown properties {sorted(extra)}"
    for name in shape.required:
        assert name in body, f"{where}: required {name} missing"
    for name in shape.required_collections:
        assert body.get(name), f"{where}: required collection {name} empty"
    for name, value in body.items():
        if name in shape.scalars:
            s = shape.scalars[name]
            if s.kind == "string":
                assert isinstance(value, str), f"{where}.{name}"
                if s.max_length:
                    assert len(value) <= s.max_length, f"{where}.{name} too long"
            elif s.kind == "date":
                assert DATE.match(value), f"{where}.{name}={value}"
            elif s.kind == "date-time":
                assert DATE_TIME.match(value), f"{where}.{name}={value}"
            elif s.kind == "integer":
                assert isinstance(value, int) and not isinstance(value, bool)
            elif s.kind == "boolean":
                assert isinstance(value, bool)
            elif s.kind == "number":
                assert isinstance(value, int | float) and not isinstance(value, bool)
        elif name in shape.references:
            ref = shape.references[name]
            assert set(value) == {f.name for f in ref.fields}, f"{where}.{name}: {value}"
            yield where, ref, value
        elif name in shape.collections:
            assert isinstance(value, list)
            for k, item in enumerate(value):
                yield from _walk(model, shape.collections[name], item, f"{where}.{name}[{k}]")
        else:
            yield from _walk(model, shape.objects[name], value, f"{where}.{name}")


def _descriptor_values(body: Any, path: tuple[str, ...]) -> Iterator[str]:
    if isinstance(body, list):
        for item in body:
            yield from _descriptor_values(item, path)
        return
    if not isinstance(body, dict) or path[0] not in body:
        return
    value = body[path[0]]
    if len(path) == 1:
        yield value
    else:
        yield from _descriptor_values(value, path[1:])


def _id_field(model: ApiModel, path: str) -> str:
    return model[path].schema.split("_", 1)[-1] + "Id"


def test_records_valid_against_model(
    model: ApiModel, records: dict[str, list[dict[str, Any]]]
) -> None:
    keys: dict[str, set[tuple[Any, ...]]] = {}
    for path, recs in records.items():
        res = model[path]
        seen: set[tuple[Any, ...]] = set()
        for r in recs:
            assert not {"id", "_etag", "_lastModifiedDate"} & set(r)
            key = tuple(orjson.dumps(v) for v in res.key_values(r).values())
            assert key not in seen, f"{path}: duplicate key {res.key_values(r)}"
            seen.add(key)
        keys[path] = seen
    descriptors = {
        path: {f"{r['namespace']}#{r['codeValue']}" for r in recs}
        for path, recs in records.items()
        if model[path].is_descriptor
    }
    for path, recs in records.items():
        res = model[path]
        if res.is_descriptor:
            continue
        desc_paths = list(res.shape.descriptor_paths())
        for r in recs:
            for where, ref, value in _walk(model, res.shape, r, path):
                targets = model.targets(ref)
                assert targets, f"{where}: {ref.name} has no target"
                if ref.schema == "edFi_educationOrganizationReference":
                    eid = value["educationOrganizationId"]
                    ok = any(
                        (orjson.dumps(eid),) in keys.get(t, set())
                        and model[t].key_names == (_id_field(model, t),)
                        for t in targets
                    )
                else:
                    target = model[targets[0]]
                    wanted = tuple(
                        orjson.dumps(value[_field_for(ref, k.name, target.key_names)])
                        for k in target.key
                    )
                    ok = wanted in keys.get(targets[0], set())
                assert ok, f"{where}: {ref.name} {value} resolves to nothing"
            for dpath, dres in desc_paths:
                for v in _descriptor_values(r, dpath):
                    assert v in descriptors.get(dres, set()), f"{path}.{'.'.join(dpath)}: {v}"


def _field_for(ref: Reference, key_name: str, target_keys: tuple[str, ...]) -> str:
    names = [f.name for f in ref.fields]
    if key_name in names:
        return key_name
    raise AssertionError(f"{ref.name} has no field for key {key_name} of {target_keys}")


def test_descriptor_uris_are_standard(records: dict[str, list[dict[str, Any]]]) -> None:
    grades = {r["codeValue"] for r in records["/ed-fi/gradeLevelDescriptors"]}
    assert {"Kindergarten", "First grade", "Ninth grade", "Twelfth grade"} <= grades
    status = records["/lmsx/submissionStatusDescriptors"]
    assert {r["namespace"] for r in status} == {
        "uri://ed-fi.org/edfilms/SubmissionStatusDescriptor/Canvas"
    }
    ns = {r["namespace"] for r in records["/ed-fi/attendanceEventCategoryDescriptors"]}
    assert ns == {"uri://ed-fi.org/AttendanceEventCategoryDescriptor"}


def test_one_enrollment_per_student_some_withdrawn() -> None:
    ssa = [r for p, b in generate(1000) if p == "/ed-fi/studentSchoolAssociations" for r in b]
    students = Counter(r["studentReference"]["studentUniqueId"] for r in ssa)
    assert len(students) == 1000 and set(students.values()) == {1}
    assert any("exitWithdrawDate" in r for r in ssa)


def test_attendance_only_exceptions_and_chronic_absence(
    records: dict[str, list[dict[str, Any]]],
) -> None:
    events = records["/ed-fi/studentSchoolAttendanceEvents"]
    cats = Counter(e["attendanceEventCategoryDescriptor"].split("#")[1] for e in events)
    assert set(cats) <= {"Excused Absence", "Unexcused Absence", "Tardy", "Early departure"}
    instructional = sum(
        1
        for r in records["/ed-fi/calendarDates"]
        if r["calendarReference"]["schoolId"] == 255901001
        and r["calendarEvents"][0]["calendarEventDescriptor"].endswith("#Instructional day")
    )
    assert 175 <= instructional <= 185
    absences = Counter(
        e["studentReference"]["studentUniqueId"]
        for e in events
        if "Absence" in e["attendanceEventCategoryDescriptor"]
    )
    rates = [
        absences.get(s["studentUniqueId"], 0) / instructional for s in records["/ed-fi/students"]
    ]
    assert max(rates) > 0.10
    assert 0.02 < sum(rates) / len(rates) < 0.08
    section_cats = {
        e["attendanceEventCategoryDescriptor"].split("#")[1]
        for e in records["/ed-fi/studentSectionAttendanceEvents"]
    }
    assert "In Attendance" not in section_cats
