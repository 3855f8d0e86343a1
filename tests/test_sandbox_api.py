"""The sandbox's HTTP surface, exercised as an Ed-Fi client would over real HTTP.

Most tests start an empty sandbox (``students=0``) and POST a tiny district of
their own, so every assertion can name exact records, counts and change
versions; the generated district is only needed where volume matters.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edfi.graph import DependencyGraph, parse_graphml
from edfi.model import builtin_model, load_model
from sandbox.server import RunningSandbox, free_port, running_sandbox
from sandbox.store import Window

ROOT = Path(__file__).resolve().parents[1]
SCHOOL = 255901001
OTHER_SCHOOL = 255901107


def descriptor(kind: str, code: str) -> str:
    return f"uri://ed-fi.org/{kind}#{code}"


def token(base_url: str, client_id: str, client_secret: str) -> str:
    r = httpx.post(
        f"{base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, client_secret),
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


class Api:
    """A bearer-authenticated client for one data set (paths relative to ``/data/v3``)."""

    def __init__(self, running: RunningSandbox, prefix: str = "") -> None:
        self.running = running
        self.root = running.base_url + prefix
        self.token = token(self.root, running.client_id, running.client_secret)
        self.http = httpx.Client(
            base_url=self.root,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"/data/v3{path}", params=params)

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(f"/data/v3{path}", json=body)

    def put(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.put(f"/data/v3{path}", json=body)

    def delete(self, path: str) -> httpx.Response:
        return self.http.delete(f"/data/v3{path}")

    def create(self, path: str, body: dict[str, Any]) -> str:
        """POST a new record and return its id (from Location)."""
        r = self.post(path, body)
        assert r.status_code == 201, (path, r.status_code, r.text)
        location = r.headers["Location"]
        assert location.startswith(f"{self.root}/data/v3{path}/")
        return location.rsplit("/", 1)[-1]

    def record(self, path: str, id_: str, **headers: str) -> dict[str, Any]:
        r = self.http.get(f"/data/v3{path}/{id_}", headers=headers)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def all(self, path: str, **params: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        offset = 0
        while True:
            r = self.get(path, offset=offset, limit=500, **params)
            assert r.status_code == 200, r.text
            page = r.json()
            out += page
            if len(page) < 500:
                return out
            offset += 500

    def newest(self, **headers: str) -> int:
        r = self.http.get("/changeQueries/v1/availableChangeVersions", headers=headers)
        assert r.status_code == 200, r.text
        return int(r.json()["newestChangeVersion"])


def student(uid: str, first: str = "Ana", last: str = "Diaz") -> dict[str, Any]:
    return {
        "studentUniqueId": uid,
        "birthDate": "2010-05-04",
        "firstName": first,
        "lastSurname": last,
    }


def ssa(
    uid: str, school: int = SCHOOL, entry: str = "2024-08-20", grade: str = "Ninth grade"
) -> dict[str, Any]:
    return {
        "entryDate": entry,
        "schoolReference": {"schoolId": school},
        "studentReference": {"studentUniqueId": uid},
        "entryGradeLevelDescriptor": descriptor("GradeLevelDescriptor", grade),
    }


def session(name: str = "2024-2025 Fall Semester", school: int = SCHOOL) -> dict[str, Any]:
    return {
        "sessionName": name,
        "schoolReference": {"schoolId": school},
        "schoolYearTypeReference": {"schoolYear": 2025},
        "beginDate": "2024-08-20",
        "endDate": "2024-12-20",
        "termDescriptor": descriptor("TermDescriptor", "Fall Semester"),
        "totalInstructionalDays": 80,
    }


def attendance(uid: str, day: str, session_name: str = "2024-2025 Fall Semester") -> dict[str, Any]:
    return {
        "attendanceEventCategoryDescriptor": descriptor(
            "AttendanceEventCategoryDescriptor", "Excused Absence"
        ),
        "eventDate": day,
        "schoolReference": {"schoolId": SCHOOL},
        "sessionReference": {"schoolId": SCHOOL, "schoolYear": 2025, "sessionName": session_name},
        "studentReference": {"studentUniqueId": uid},
    }


DESCRIPTORS = [
    ("gradeLevelDescriptors", "GradeLevelDescriptor", "Ninth grade"),
    ("gradeLevelDescriptors", "GradeLevelDescriptor", "Tenth grade"),
    ("termDescriptors", "TermDescriptor", "Fall Semester"),
    (
        "educationOrganizationCategoryDescriptors",
        "EducationOrganizationCategoryDescriptor",
        "School",
    ),
    ("attendanceEventCategoryDescriptors", "AttendanceEventCategoryDescriptor", "Excused Absence"),
    (
        "courseIdentificationSystemDescriptors",
        "CourseIdentificationSystemDescriptor",
        "LEA course code",
    ),
]


def seed(api: Api) -> dict[str, str]:
    """A tiny district: descriptors, a school year, two schools, three students, enrollments."""
    ids: dict[str, str] = {}
    for resource, kind, code in DESCRIPTORS:
        ids[f"{kind}#{code}"] = api.create(
            f"/ed-fi/{resource}",
            {"namespace": f"uri://ed-fi.org/{kind}", "codeValue": code, "shortDescription": code},
        )
    ids["year"] = api.create(
        "/ed-fi/schoolYearTypes",
        {"schoolYear": 2025, "currentSchoolYear": True, "schoolYearDescription": "2024-2025"},
    )
    for school, name in ((SCHOOL, "Grand Bend High School"), (OTHER_SCHOOL, "Bend Elementary")):
        ids[f"school{school}"] = api.create(
            "/ed-fi/schools",
            {
                "schoolId": school,
                "nameOfInstitution": name,
                "educationOrganizationCategories": [
                    {
                        "educationOrganizationCategoryDescriptor": descriptor(
                            "EducationOrganizationCategoryDescriptor", "School"
                        )
                    }
                ],
                "gradeLevels": [
                    {"gradeLevelDescriptor": descriptor("GradeLevelDescriptor", "Ninth grade")}
                ],
            },
        )
    for uid in ("S1", "S2", "S3"):
        ids[uid] = api.create("/ed-fi/students", student(uid, first=f"First{uid}"))
    ids["ssaS1"] = api.create("/ed-fi/studentSchoolAssociations", ssa("S1"))
    ids["ssaS2"] = api.create("/ed-fi/studentSchoolAssociations", ssa("S2"))
    ids["ssaS3"] = api.create("/ed-fi/studentSchoolAssociations", ssa("S3", OTHER_SCHOOL))
    return ids


@pytest.fixture
def running() -> Iterator[RunningSandbox]:
    with running_sandbox(students=0, template=False) as sb:
        yield sb


@pytest.fixture
def api(running: RunningSandbox) -> Api:
    return Api(running)


@pytest.fixture
def seeded(api: Api) -> tuple[Api, dict[str, str]]:
    return api, seed(api)


def assert_problem(r: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """Problem details as ODS/API 7.2+ sends them."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    assert body["type"] == f"urn:ed-fi:api:{kind}"
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


# -- discovery and OAuth --------------------------------------------------------------------


def test_discovery_document(running: RunningSandbox) -> None:
    r = httpx.get(running.base_url + "/")
    assert r.status_code == 200
    doc = r.json()
    base = running.base_url
    assert doc["version"] == "7.3"
    assert doc["informationalVersion"] == "7.3"
    assert doc["suite"] == "3"
    assert doc["build"] == "7.3.0.0"
    assert {m["name"]: m["version"] for m in doc["dataModels"]} == {
        "Ed-Fi": "5.0.0",
        "LMSX": "1.0.0",
    }
    urls = doc["urls"]
    assert urls["dependencies"] == f"{base}/metadata/data/v3/dependencies"
    assert urls["openApiMetadata"] == f"{base}/metadata/"
    assert urls["oauth"] == f"{base}/oauth/token"
    assert urls["dataManagementApi"] == f"{base}/data/v3/"
    assert urls["changeQueries"] == f"{base}/changeQueries/v1/"
    assert urls["xsdMetadata"] == f"{base}/metadata/xsd"
    # every advertised URL that the sandbox serves answers
    assert httpx.get(urls["dependencies"]).status_code == 200
    assert httpx.get(urls["openApiMetadata"]).status_code == 200


def test_oauth_basic_form_and_json(running: RunningSandbox) -> None:
    url = running.base_url + "/oauth/token"
    basic = httpx.post(
        url,
        data={"grant_type": "client_credentials"},
        auth=(running.client_id, running.client_secret),
    )
    form = httpx.post(
        url,
        data={
            "grant_type": "client_credentials",
            "client_id": running.client_id,
            "client_secret": running.client_secret,
        },
    )
    as_json = httpx.post(
        url,
        json={
            "grant_type": "client_credentials",
            "client_id": running.client_id,
            "client_secret": running.client_secret,
        },
    )
    tokens = set()
    for r in (basic, form, as_json):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 1800
        tokens.add(body["access_token"])
        data = httpx.get(
            running.base_url + "/data/v3/ed-fi/schools",
            headers={"Authorization": f"Bearer {body['access_token']}"},
        )
        assert data.status_code == 200
        assert data.json() == []
    assert len(tokens) == 3


def test_oauth_refusals(running: RunningSandbox) -> None:
    url = running.base_url + "/oauth/token"
    wrong = httpx.post(
        url,
        data={"grant_type": "client_credentials"},
        auth=(running.client_id, running.client_secret + "x"),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"] == "invalid_client"
    grant = httpx.post(
        url, data={"grant_type": "password"}, auth=(running.client_id, running.client_secret)
    )
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"
    schools = running.base_url + "/data/v3/ed-fi/schools"
    missing = httpx.get(schools)
    body = assert_problem(missing, 401, "security:authentication")
    assert body["detail"] == "The caller could not be authenticated."
    assert body["errors"] == ["Authorization header is missing."]
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    garbage = httpx.get(schools, headers={"Authorization": "Bearer not-a-token"})
    body = assert_problem(garbage, 401, "security:authentication")
    assert body["errors"] == ["Invalid Authorization header."]
    basic = httpx.get(schools, auth=(running.client_id, running.client_secret))
    body = assert_problem(basic, 401, "security:authentication")
    assert body["errors"] == ["Unknown Authorization header scheme."]
    blank = httpx.get(schools, headers={"Authorization": "Bearer"})
    body = assert_problem(blank, 401, "security:authentication")
    assert body["errors"] == ["Missing Authorization header bearer token value."]


def test_token_expiry() -> None:
    with running_sandbox(students=0, template=False, faults="token_ttl=1") as sb:
        tok = token(sb.base_url, sb.client_id, sb.client_secret)
        headers = {"Authorization": f"Bearer {tok}"}
        url = sb.base_url + "/data/v3/ed-fi/schools"
        assert httpx.get(url, headers=headers).status_code == 200
        time.sleep(1.1)
        expired = httpx.get(url, headers=headers)
        body = assert_problem(expired, 401, "security:authentication")
        assert body["errors"] == ["Invalid Authorization header."]
        assert 'error="invalid_token"' in expired.headers["WWW-Authenticate"]
        fresh = token(sb.base_url, sb.client_id, sb.client_secret)
        assert httpx.get(url, headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


# -- metadata ------------------------------------------------------------------------------------


def test_metadata_documents_describe_the_builtin_model(running: RunningSandbox) -> None:
    listing = httpx.get(running.base_url + "/metadata/").json()
    assert [(d["name"], d["endpointUri"]) for d in listing] == [
        ("Resources", f"{running.base_url}/metadata/data/v3/resources/swagger.json"),
        ("Descriptors", f"{running.base_url}/metadata/data/v3/descriptors/swagger.json"),
    ]
    docs = []
    for entry in listing:
        r = httpx.get(entry["endpointUri"])
        assert r.status_code == 200
        docs.append(r.json())
    served = load_model(*docs)
    builtin = builtin_model()
    assert set(served.resources) == set(builtin.resources)
    assert all(served[p].key == builtin[p].key for p in builtin.resources)
    resources_only = load_model(docs[0], docs[1])
    assert any(r.is_descriptor for r in resources_only)


def _dependencies(running: RunningSandbox) -> list[dict[str, Any]]:
    r = httpx.get(running.base_url + "/metadata/data/v3/dependencies")
    assert r.status_code == 200
    entries: list[dict[str, Any]] = r.json()
    return entries


def test_dependencies_order_every_resource_after_what_it_references(
    running: RunningSandbox,
) -> None:
    """lightbeam sends resources by the ``Create`` entries' order, one after another: a
    resource beside the descriptors it names (contacts used to be at 1) is sent first."""
    entries = _dependencies(running)
    model = builtin_model()
    create = {e["resource"]: e["order"] for e in entries if "Create" in e["operations"]}
    update = {e["resource"]: e["order"] for e in entries if e["operations"] == ["Update"]}
    assert set(create) == set(model.resources)
    assert len(entries) == len(model.resources) + 3
    for r in model:
        needs = set(model.dependencies[r.path]) | {d for _, d in r.shape.descriptor_paths()}
        needs.discard(r.path)
        late = sorted(d for d in needs if create[d] >= create[r.path])
        assert not late, f"{r.path} at {create[r.path]} is not after {late}"
    assert all(create[p] == 1 for p in model.resources if model[p].is_descriptor)
    assert create["/ed-fi/contacts"] == 3
    assert create["/ed-fi/students"] == 3
    assert update == {"/ed-fi/staffs": 9, "/ed-fi/students": 14, "/ed-fi/contacts": 15}
    assert create["/ed-fi/studentSectionAssociations"] > create["/ed-fi/studentSchoolAssociations"]
    assert create["/lmsx/assignmentSubmissions"] > create["/ed-fi/studentSchoolAssociations"]
    assert [e["order"] for e in entries] == sorted(e["order"] for e in entries)


def test_dependencies_match_the_ods_api_for_data_standard_5_2(
    running: RunningSandbox, spec_dir: Path
) -> None:
    """The ODS/API's own output (its approval tests, DS 5.2.0): every entry of a resource
    both models have carries the same order, and they come in the same sequence."""
    official = json.loads(
        (spec_dir / "dependencies" / "deps_5.2.0.json").read_text(encoding="utf-8-sig")
    )
    entries = _dependencies(running)
    ours = {e["resource"] for e in entries}
    theirs = [(e["resource"], e["operations"], e["order"]) for e in official]
    both = {r for r, _, _ in theirs} & ours
    assert len(both) == 326
    assert [t for t in theirs if t[0] in both] == [
        (e["resource"], e["operations"], e["order"]) for e in entries if e["resource"] in both
    ]


def test_dependencies_graphml_edges_follow_the_order(running: RunningSandbox) -> None:
    url = running.base_url + "/metadata/data/v3/dependencies"
    entries = _dependencies(running)
    node_order = {
        e["resource"] + ("" if len(e["operations"]) == 2 else "#" + e["operations"][0]): e["order"]
        for e in entries
    }
    graph = httpx.get(url, headers={"Accept": "application/graphml"})
    assert graph.status_code == 200
    assert graph.headers["content-type"].startswith("application/graphml")
    ns = {"g": "http://graphml.graphdrawing.org/xmlns"}
    root = ET.fromstring(graph.text)
    nodes = [n.attrib["id"] for n in root.iterfind(".//g:node", ns)]
    assert nodes == list(node_order)
    edges = [(e.attrib["source"], e.attrib["target"]) for e in root.iterfind(".//g:edge", ns)]
    assert ("/ed-fi/students#Create", "/ed-fi/studentSchoolAssociations") in edges
    assert ("/ed-fi/studentSchoolAssociations", "/ed-fi/students#Update") in edges
    assert ("/ed-fi/studentSchoolAssociations", "/ed-fi/studentSectionAssociations") in edges
    assert ("/ed-fi/sexDescriptors", "/ed-fi/students#Create") in edges
    assert all(node_order[src] < node_order[dst] for src, dst in edges)
    # what the project's publish flow reads from it: the halves merged, no cycle
    merged = DependencyGraph(parse_graphml(graph.text))
    assert set(merged.dependencies) == {e["resource"] for e in entries}
    assert (
        merged.levels["/ed-fi/studentSchoolAssociations"]
        == node_order["/ed-fi/studentSchoolAssociations"]
    )


# -- collections -------------------------------------------------------------------------------


def test_paging_limits_and_total_count(seeded: tuple[Api, dict[str, str]]) -> None:
    api, _ = seeded
    everything = api.get("/ed-fi/students", totalCount="true")
    assert everything.headers["Total-Count"] == "3"
    assert [s["studentUniqueId"] for s in everything.json()] == ["S1", "S2", "S3"]
    page = api.get("/ed-fi/students", offset=1, limit=1)
    assert [s["studentUniqueId"] for s in page.json()] == ["S2"]
    assert "Total-Count" not in page.headers
    beyond = api.get("/ed-fi/students", offset=3, limit=2)
    assert beyond.status_code == 200
    assert beyond.json() == []
    assert api.get("/ed-fi/students", limit=500).status_code == 200
    too_many = api.get("/ed-fi/students", limit=501)
    body = assert_problem(too_many, 400, "bad-request:parameter-validation-failed")
    assert body["detail"] == "The request construction was invalid."
    assert body["errors"] == ["Limit must be a value between 0 and 500."]
    negative = api.get("/ed-fi/students", offset=-1)
    body = assert_problem(negative, 400, "bad-request:parameter-validation-failed")
    assert body["errors"] == ["Offset cannot be a negative value."]
    ten = api.get("/ed-fi/students", limit="ten")
    body = assert_problem(ten, 400, "bad-request:parameter-validation-failed")
    assert body["errors"] == ["The value 'ten' is not valid for Limit."]
    # without a limit, a page holds up to 500 records (the ODS/API's page size limit)
    for i in range(527):
        api.create("/ed-fi/students", student(f"X{i:03}"))
    default = api.get("/ed-fi/students", offset=0, totalCount="true")
    assert len(default.json()) == 500
    assert default.headers["Total-Count"] == "530"
    assert len(api.all("/ed-fi/students")) == 530


def test_get_by_example(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    at_school = api.get("/ed-fi/studentSchoolAssociations", schoolId=SCHOOL, totalCount="true")
    assert at_school.status_code == 200
    assert at_school.headers["Total-Count"] == "2"
    assert sorted(r["id"] for r in at_school.json()) == sorted([ids["ssaS1"], ids["ssaS2"]])
    other = api.get("/ed-fi/studentSchoolAssociations", schoolId=OTHER_SCHOOL).json()
    assert [r["id"] for r in other] == [ids["ssaS3"]]
    by_student = api.get("/ed-fi/studentSchoolAssociations", studentUniqueId="S2").json()
    assert [r["id"] for r in by_student] == [ids["ssaS2"]]
    by_name = api.get("/ed-fi/students", firstName="FirstS3").json()
    assert [r["id"] for r in by_name] == [ids["S3"]]
    by_date = api.get(
        "/ed-fi/studentSchoolAssociations",
        entryDate="2024-08-20",
        schoolId=SCHOOL,
        studentUniqueId="S1",
    ).json()
    assert [r["id"] for r in by_date] == [ids["ssaS1"]]
    assert api.get("/ed-fi/students", firstName="Nobody").json() == []
    unknown = api.get("/ed-fi/students", favoriteColor="blue")
    body = assert_problem(unknown, 400, "bad-request:parameter-validation-failed")
    assert body["errors"] == [
        "The query parameter 'favoriteColor' is not a property of /ed-fi/students."
    ]
    bad_int = api.get("/ed-fi/schools", schoolId="abc")
    body = assert_problem(bad_int, 400, "bad-request:parameter-validation-failed")
    assert body["errors"] == ["The value 'abc' is not valid for SchoolId."]


def test_get_by_id_and_not_found(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    record = api.record("/ed-fi/students", ids["S1"])
    assert record["id"] == ids["S1"]
    assert {k: record[k] for k in ("studentUniqueId", "firstName", "lastSurname", "birthDate")} == {
        "studentUniqueId": "S1",
        "firstName": "FirstS1",
        "lastSurname": "Diaz",
        "birthDate": "2010-05-04",
    }
    assert_problem(api.get("/ed-fi/students/" + "0" * 32), 404, "not-found")
    assert_problem(api.get("/ed-fi/students/" + ids["ssaS1"]), 404, "not-found")
    unknown = api.get("/ed-fi/widgets")
    body = assert_problem(unknown, 404, "not-found")
    assert body["detail"] == "The specified data could not be found."
    assert body["errors"] == ["The resource /ed-fi/widgets is not part of this API."]


def test_records_carry_metadata_and_links(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    record = api.record("/ed-fi/studentSchoolAssociations", ids["ssaS1"])
    assert record["_etag"]
    assert record["_lastModifiedDate"].endswith("Z")
    assert record["schoolReference"]["link"] == {
        "rel": "School",
        "href": f"/ed-fi/schools/{ids[f'school{SCHOOL}']}",
    }
    assert record["studentReference"]["link"] == {
        "rel": "Student",
        "href": f"/ed-fi/students/{ids['S1']}",
    }
    target = api.get(record["studentReference"]["link"]["href"])
    assert target.status_code == 200
    assert target.json()["studentUniqueId"] == "S1"
    school = api.get(record["schoolReference"]["link"]["href"]).json()
    assert school["schoolId"] == SCHOOL


# -- writes ----------------------------------------------------------------------------------------


def test_post_insert_then_update_by_natural_key(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    before = api.record("/ed-fi/students", ids["S1"])
    again = api.post("/ed-fi/students", student("S1", first="Renamed"))
    assert again.status_code == 200
    assert again.headers["Location"] == f"{api.root}/data/v3/ed-fi/students/{ids['S1']}"
    after = api.record("/ed-fi/students", ids["S1"])
    assert after["firstName"] == "Renamed"
    assert after["id"] == ids["S1"]
    assert after["_etag"] != before["_etag"]
    assert again.headers["ETag"] == f'"{after["_etag"]}"'
    count = api.get("/ed-fi/students", totalCount="true").headers["Total-Count"]
    assert count == "3"


def test_post_refusals(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    with_id = api.post("/ed-fi/students", {**student("S9"), "id": ids["S1"]})
    body = assert_problem(with_id, 400, "bad-request:data-validation-failed")
    assert body["detail"] == "The request data was constructed incorrectly."
    assert body["errors"] == [
        "Resource identifiers cannot be assigned by the client. The 'id' property should not "
        "be included in the request body."
    ]

    wrong_type = api.post(
        "/ed-fi/schools",
        {
            "schoolId": "one",
            "nameOfInstitution": "X",
            "educationOrganizationCategories": [],
            "gradeLevels": [],
        },
    )
    body = assert_problem(wrong_type, 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {
        "$.schoolId": ["The value 'one' is not valid for SchoolId."],
        "$.educationOrganizationCategories": [
            "EducationOrganizationCategories must have at least one item."
        ],
        "$.gradeLevels": ["SchoolGradeLevels must have at least one item."],
    }

    missing = api.post("/ed-fi/students", {"studentUniqueId": "S9", "firstName": "A"})
    body = assert_problem(missing, 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {
        "$.birthDate": ["BirthDate is required."],
        "$.lastSurname": ["LastSurname is required."],
    }

    too_long = api.post("/ed-fi/students", student("S9", first="A" * 76))
    body = assert_problem(too_long, 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {
        "$.firstName": ["FirstName must be between 1 and 75 characters in length."]
    }

    bad_date = api.post("/ed-fi/students", {**student("S9"), "birthDate": "04.05.2010"})
    body = assert_problem(bad_date, 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {
        "$.birthDate": ["The value '04.05.2010' is not valid for BirthDate."]
    }

    unknown_descriptor = api.post(
        "/ed-fi/studentSchoolAssociations", ssa("S1", grade="Twelfth grade")
    )
    body = assert_problem(unknown_descriptor, 400, "bad-request:data-validation-failed")
    assert body["validationErrors"] == {
        "$.entryGradeLevelDescriptor": [
            "EntryGradeLevelDescriptor value "
            "'uri://ed-fi.org/GradeLevelDescriptor#Twelfth grade' does not exist."
        ]
    }

    unresolved = api.post("/ed-fi/studentSchoolAssociations", ssa("S404"))
    body = assert_problem(unresolved, 409, "data-conflict:unresolved-reference")
    assert body["detail"] == "The referenced 'Student' item does not exist."
    both = api.post("/ed-fi/studentSchoolAssociations", ssa("S404", school=1))
    body = assert_problem(both, 409, "data-conflict:unresolved-reference")
    assert body["detail"] == "The referenced 'School' item does not exist."
    assert body["errors"] == [
        "The referenced 'School' item does not exist.",
        "The referenced 'Student' item does not exist.",
    ]

    not_json = api.http.post(
        "/data/v3/ed-fi/students", content=b"{nope", headers={"Content-Type": "application/json"}
    )
    body = assert_problem(not_json, 400, "bad-request:data-validation-failed")
    assert list(body["validationErrors"]) == ["$"]
    assert api.get("/ed-fi/students", totalCount="true").headers["Total-Count"] == "3"


def test_put_and_delete(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    before = api.record("/ed-fi/students", ids["S2"])
    r = api.put(f"/ed-fi/students/{ids['S2']}", student("S2", first="Put", last="Changed"))
    assert r.status_code == 204
    after = api.record("/ed-fi/students", ids["S2"])
    assert (after["firstName"], after["lastSurname"]) == ("Put", "Changed")
    assert after["_etag"] != before["_etag"]
    rekey = api.put(f"/ed-fi/students/{ids['S2']}", student("S2-new"))
    body = assert_problem(rekey, 400, "bad-request:data-validation-failed:key-change-not-supported")
    assert body["title"] == "Key Change Not Supported"
    assert body["detail"] == (
        "Identifying values for the Student item cannot be changed. Delete and recreate the "
        "item instead."
    )
    assert api.record("/ed-fi/students", ids["S2"])["studentUniqueId"] == "S2"
    mismatch = api.put(f"/ed-fi/students/{ids['S2']}", {**student("S2"), "id": ids["S1"]})
    body = assert_problem(mismatch, 400, "bad-request:data-validation-failed")
    assert body["errors"] == [
        "The identifier in the request body does not match the one in the URL."
    ]
    assert_problem(api.put("/ed-fi/students/" + "0" * 32, student("S2")), 404, "not-found")

    referenced = api.delete(f"/ed-fi/students/{ids['S2']}")
    body = assert_problem(referenced, 409, "data-conflict:dependent-item-exists")
    assert body["detail"] == (
        "The requested action cannot be performed because this item is referenced by an "
        "existing 'StudentSchoolAssociation' item."
    )
    assert api.delete(f"/ed-fi/studentSchoolAssociations/{ids['ssaS2']}").status_code == 204
    assert api.delete(f"/ed-fi/students/{ids['S2']}").status_code == 204
    assert_problem(api.get(f"/ed-fi/students/{ids['S2']}"), 404, "not-found")
    assert_problem(api.delete(f"/ed-fi/students/{ids['S2']}"), 404, "not-found")
    assert [s["studentUniqueId"] for s in api.all("/ed-fi/students")] == ["S1", "S3"]


def test_delete_of_a_descriptor_in_use_is_a_conflict(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    in_use = ids["GradeLevelDescriptor#Ninth grade"]
    r = api.delete(f"/ed-fi/gradeLevelDescriptors/{in_use}")
    assert_problem(r, 409, "data-conflict:dependent-item-exists")


def test_if_match_with_a_stale_etag_is_refused(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    stale = api.record("/ed-fi/students", ids["S1"])["_etag"]
    api.post("/ed-fi/students", student("S1", first="Newer"))
    r = api.http.put(
        f"/data/v3/ed-fi/students/{ids['S1']}",
        json=student("S1"),
        headers={"If-Match": f'"{stale}"'},
    )
    body = assert_problem(r, 412, "optimistic-lock-failed")
    assert body["detail"] == "The item has been modified by another user."


# -- change queries ------------------------------------------------------------------------------


def test_change_version_window(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    start = api.newest()
    assert start == len(DESCRIPTORS) + 1 + 2 + 3 + 3
    a = api.create("/ed-fi/students", student("W1"))
    b = api.create("/ed-fi/students", student("W2"))
    api.post("/ed-fi/students", student("S1", first="Touched"))
    assert api.newest() == start + 3
    versions = api.http.get("/changeQueries/v1/availableChangeVersions").json()
    assert versions == {"oldestChangeVersion": 0, "newestChangeVersion": start + 3}

    def window(lo: int, hi: int) -> list[str]:
        r = api.get("/ed-fi/students", minChangeVersion=lo, maxChangeVersion=hi, totalCount="true")
        got = [s["id"] for s in r.json()]
        assert r.headers["Total-Count"] == str(len(got))
        return got

    assert window(start + 1, start + 1) == [a]
    assert window(start + 1, start + 2) == [a, b]
    assert window(start + 1, start + 3) == [ids["S1"], a, b]
    assert window(start + 3, start + 3) == [ids["S1"]]
    assert window(start + 4, start + 100) == []
    assert window(0, start) == [ids["S2"], ids["S3"]]
    changed = api.record("/ed-fi/students", ids["S1"])
    assert changed["_etag"] == str(start + 3)


def test_deletes(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    start = api.newest()
    assert api.delete(f"/ed-fi/studentSchoolAssociations/{ids['ssaS3']}").status_code == 204
    assert api.delete(f"/ed-fi/students/{ids['S3']}").status_code == 204
    deletes = api.get("/ed-fi/studentSchoolAssociations/deletes", totalCount="true")
    assert deletes.headers["Total-Count"] == "1"
    assert deletes.json() == [
        {
            "id": ids["ssaS3"],
            "changeVersion": start + 1,
            "keyValues": {
                "entryDate": "2024-08-20",
                "schoolId": OTHER_SCHOOL,
                "studentUniqueId": "S3",
            },
        }
    ]
    assert api.get("/ed-fi/students/deletes").json() == [
        {"id": ids["S3"], "changeVersion": start + 2, "keyValues": {"studentUniqueId": "S3"}}
    ]
    windowed = api.get("/ed-fi/students/deletes", minChangeVersion=start + 3)
    assert windowed.json() == []
    assert api.get("/ed-fi/schools/deletes").json() == []
    filtered = api.get("/ed-fi/students/deletes", schoolId=1)
    body = assert_problem(filtered, 400, "bad-request:parameter-validation-failed")
    assert body["errors"] == ["The query parameter 'schoolId' is not supported here."]


def test_key_changes_with_cascade(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    session_id = api.create("/ed-fi/sessions", session())
    event_id = api.create("/ed-fi/studentSchoolAttendanceEvents", attendance("S1", "2024-09-03"))
    api.create(
        "/ed-fi/courses",
        {
            "courseCode": "ALG-1",
            "courseTitle": "Algebra I",
            "numberOfParts": 1,
            "educationOrganizationReference": {"educationOrganizationId": SCHOOL},
            "identificationCodes": [
                {
                    "courseIdentificationSystemDescriptor": descriptor(
                        "CourseIdentificationSystemDescriptor", "LEA course code"
                    ),
                    "identificationCode": "ALG-1",
                }
            ],
        },
    )
    offering_id = api.create(
        "/ed-fi/courseOfferings",
        {
            "localCourseCode": "ALG-1-01",
            "courseReference": {"courseCode": "ALG-1", "educationOrganizationId": SCHOOL},
            "schoolReference": {"schoolId": SCHOOL},
            "sessionReference": {
                "schoolId": SCHOOL,
                "schoolYear": 2025,
                "sessionName": "2024-2025 Fall Semester",
            },
        },
    )
    section_id = api.create(
        "/ed-fi/sections",
        {
            "sectionIdentifier": "ALG-1-01-A",
            "courseOfferingReference": {
                "localCourseCode": "ALG-1-01",
                "schoolId": SCHOOL,
                "schoolYear": 2025,
                "sessionName": "2024-2025 Fall Semester",
            },
        },
    )
    course = api.all("/ed-fi/courses")[0]
    assert course["educationOrganizationReference"]["link"] == {
        "rel": "School",
        "href": f"/ed-fi/schools/{ids[f'school{SCHOOL}']}",
    }
    before = api.newest()
    old_event = api.record("/ed-fi/studentSchoolAttendanceEvents", event_id)

    r = api.put(f"/ed-fi/sessions/{session_id}", session("Fall 2024"))
    assert r.status_code == 204
    assert api.record("/ed-fi/sessions", session_id)["sessionName"] == "Fall 2024"
    changes = api.get("/ed-fi/sessions/keyChanges").json()
    assert len(changes) == 1
    change = changes[0]
    assert change["id"] == session_id
    assert change["changeVersion"] == before + 1
    assert change["oldKeyValues"] == {
        "sessionName": "2024-2025 Fall Semester",
        "schoolId": SCHOOL,
        "schoolYear": 2025,
    }
    assert change["newKeyValues"] == {
        "sessionName": "Fall 2024",
        "schoolId": SCHOOL,
        "schoolYear": 2025,
    }

    event = api.record("/ed-fi/studentSchoolAttendanceEvents", event_id)
    assert event["sessionReference"]["sessionName"] == "Fall 2024"
    assert event["sessionReference"]["link"]["href"] == f"/ed-fi/sessions/{session_id}"
    assert int(event["_etag"]) > before
    assert event["_etag"] != old_event["_etag"]
    offering = api.record("/ed-fi/courseOfferings", offering_id)
    assert offering["sessionReference"]["sessionName"] == "Fall 2024"
    section = api.record("/ed-fi/sections", section_id)
    assert section["courseOfferingReference"]["sessionName"] == "Fall 2024"
    after = api.newest()
    assert after == before + 4, "session, event, offering and section each got a version"
    moved = api.get("/ed-fi/studentSchoolAttendanceEvents", minChangeVersion=before + 1).json()
    assert [m["id"] for m in moved] == [event_id]
    section_changes = api.get("/ed-fi/sections/keyChanges").json()
    assert [
        (c["id"], c["oldKeyValues"]["sessionName"], c["newKeyValues"]["sessionName"])
        for c in section_changes
    ] == [(section_id, "2024-2025 Fall Semester", "Fall 2024")]
    # the old key is gone: a reference to it no longer resolves
    stale = api.post("/ed-fi/studentSchoolAttendanceEvents", attendance("S2", "2024-09-04"))
    assert_problem(stale, 409, "data-conflict:unresolved-reference")

    ssa_put = api.put(
        f"/ed-fi/studentSchoolAssociations/{ids['ssaS1']}", ssa("S1", entry="2024-09-01")
    )
    assert ssa_put.status_code == 204
    ssa_changes = api.get(
        "/ed-fi/studentSchoolAssociations/keyChanges", minChangeVersion=after + 1
    ).json()
    assert ssa_changes == [
        {
            "id": ids["ssaS1"],
            "changeVersion": after + 1,
            "oldKeyValues": {
                "entryDate": "2024-08-20",
                "schoolId": SCHOOL,
                "studentUniqueId": "S1",
            },
            "newKeyValues": {
                "entryDate": "2024-09-01",
                "schoolId": SCHOOL,
                "studentUniqueId": "S1",
            },
        }
    ]
    clash = api.put(
        f"/ed-fi/studentSchoolAssociations/{ids['ssaS2']}", ssa("S1", entry="2024-09-01")
    )
    body = assert_problem(clash, 409, "data-conflict:non-unique-identity")
    assert body["detail"] == (
        "The identifying value(s) of the item are the same as another item that already exists."
    )
    # every resource has /keyChanges; where keys cannot change it is empty
    students = api.get("/ed-fi/students/keyChanges", totalCount="true")
    assert (students.status_code, students.json()) == (200, [])
    assert students.headers["Total-Count"] == "0"


def test_use_snapshot(running: RunningSandbox, seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    snap = {"Use-Snapshot": "true"}
    before = api.all("/ed-fi/students")
    first = api.http.get("/data/v3/ed-fi/students", headers=snap, params={"totalCount": "true"})
    assert first.json() == before
    snapshot_cv = api.newest()
    assert api.newest(**snap) == snapshot_cv

    api.post("/ed-fi/students", student("S1", first="Changed"))
    api.delete(f"/ed-fi/studentSchoolAssociations/{ids['ssaS3']}")
    api.delete(f"/ed-fi/students/{ids['S3']}")
    api.create("/ed-fi/students", student("S4"))

    live = api.get("/ed-fi/students", totalCount="true")
    assert [s["studentUniqueId"] for s in live.json()] == ["S1", "S2", "S4"]
    assert live.json()[0]["firstName"] == "Changed"
    assert live.headers["Total-Count"] == "3"

    old = api.http.get("/data/v3/ed-fi/students", headers=snap, params={"totalCount": "true"})
    assert old.json() == before
    assert old.headers["Total-Count"] == "3"
    assert api.record("/ed-fi/students", ids["S3"], **snap) == before[2]
    assert api.record("/ed-fi/students", ids["S1"], **snap)["firstName"] == "FirstS1"
    assert api.newest(**snap) == snapshot_cv
    assert api.newest() == snapshot_cv + 4
    ssas = api.http.get("/data/v3/ed-fi/studentSchoolAssociations", headers=snap).json()
    assert [r["id"] for r in ssas] == [ids["ssaS1"], ids["ssaS2"], ids["ssaS3"]]
    deletes = api.http.get("/data/v3/ed-fi/students/deletes", headers=snap).json()
    assert deletes == []

    # an explicit new snapshot sees the new data
    assert running.sandbox.take_snapshot(running.store()) == snapshot_cv + 4
    renewed = api.http.get("/data/v3/ed-fi/students", headers=snap).json()
    assert renewed == live.json()


# -- 7.3 cursor paging -----------------------------------------------------------------------


def cursor_ids(
    api: Api, path: str, page_size: int, token_: str | None = None, **headers: str
) -> list[str]:
    out: list[str] = []
    # the first request of a chain carries no paging parameters (page size 500), as
    # edfi-api-client sends it; pageSize goes with every pageToken; every non-empty page
    # names the next, so a chain ends on an empty page
    params: dict[str, Any] = {} if token_ is None else {"pageToken": token_, "pageSize": page_size}
    for _ in range(10_000):
        r = api.http.get(f"/data/v3{path}", params=params, headers=headers)
        assert r.status_code == 200, r.text
        page = r.json()
        assert len(page) <= (page_size if "pageSize" in params else 500)
        out += [x["id"] for x in page]
        nxt = r.headers.get("Next-Page-Token")
        assert (nxt is None) == (page == [])
        if nxt is None:
            return out
        params = {"pageToken": nxt, "pageSize": page_size}
    raise AssertionError("paging did not end")


def test_partitions_and_page_tokens(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    for i in range(47):
        api.create("/ed-fi/students", student(f"P{i:02}"))
    offset_ids = [s["id"] for s in api.all("/ed-fi/students")]
    assert len(offset_ids) == 50
    for number in (1, 3, 7):
        r = api.get("/ed-fi/students/partitions", number=number)
        assert r.status_code == 200
        tokens = r.json()["pageTokens"]
        assert len(tokens) == number
        seen: list[str] = []
        for t in tokens:
            seen += cursor_ids(api, "/ed-fi/students", 4, t)
        assert seen == offset_ids
    assert cursor_ids(api, "/ed-fi/students", 10) == offset_ids
    assert cursor_ids(api, "/ed-fi/students", 500) == offset_ids
    filtered = api.get(
        "/ed-fi/studentSchoolAssociations/partitions", number=2, schoolId=SCHOOL
    ).json()["pageTokens"]
    got: list[str] = []
    for t in filtered:
        r = api.get("/ed-fi/studentSchoolAssociations", pageToken=t, pageSize=25, schoolId=SCHOOL)
        got += [x["id"] for x in r.json()]
    assert got == [ids["ssaS1"], ids["ssaS2"]]
    assert len(api.get("/ed-fi/schools/partitions", number=5).json()["pageTokens"]) == 2
    assert api.get("/ed-fi/cohorts/partitions", number=5).json() == {"pageTokens": []}
    invalid = "bad-request:parameter-validation-failed"
    body = assert_problem(api.get("/ed-fi/students/partitions", number=201), 400, invalid)
    assert body["errors"] == ["Number must be a value between 1 and 200."]
    body = assert_problem(api.get("/ed-fi/students", pageToken="%%%", pageSize=5), 400, invalid)
    assert body["errors"] == ["The page token '%%%' is not valid."]
    body = assert_problem(api.get("/ed-fi/students", pageSize=5), 400, invalid)
    assert body["errors"][0].startswith("PageToken is required when PageSize is specified")


def test_partitions_number_zero_is_refused(api: Api) -> None:
    r = api.get("/ed-fi/students/partitions", number=0)
    body = assert_problem(r, 400, "bad-request:parameter-validation-failed")
    assert body["errors"] == ["Number must be a value between 1 and 200."]


# -- year-specific routing and tenants -------------------------------------------------------


def test_year_specific_routing() -> None:
    with running_sandbox(students=0, template=False, years=[2024, 2025]) as sb:
        y24 = Api(sb, "/2024")
        y25 = Api(sb, "/2025")
        for api in (y24, y25):
            api.create(
                "/ed-fi/schoolYearTypes",
                {
                    "schoolYear": 2025,
                    "currentSchoolYear": True,
                    "schoolYearDescription": "2024-2025",
                },
            )
        a = y24.create("/ed-fi/students", student("Y1"))
        b = y25.create("/ed-fi/students", student("Y1", first="Other"))
        assert a != b
        assert [s["id"] for s in y24.all("/ed-fi/students")] == [a]
        assert [s["firstName"] for s in y25.all("/ed-fi/students")] == ["Other"]
        only = y24.create("/ed-fi/students", student("Y2"))
        assert [s["id"] for s in y25.all("/ed-fi/students")] == [b]
        assert_problem(y25.get(f"/ed-fi/students/{only}"), 404, "not-found")
        assert sb.store(2024).count(builtin_model()["/ed-fi/students"], Window()) == 2

        bare = httpx.get(
            f"{sb.base_url}/data/v3/ed-fi/students",
            headers={"Authorization": f"Bearer {y25.token}"},
        )
        body = assert_problem(bare, 404, "not-found")
        assert body["errors"] == [
            "This API is year-specific: put the school year first in the path, e.g. "
            "/2025/data/v3/..."
        ]
        other = httpx.get(
            f"{sb.base_url}/2023/data/v3/ed-fi/students",
            headers={"Authorization": f"Bearer {y25.token}"},
        )
        body = assert_problem(other, 404, "not-found")
        assert body["errors"] == ["School year 2023 is not served here."]
        doc = httpx.get(sb.base_url + "/").json()
        assert doc["urls"]["dataManagementApi"] == (
            f"{sb.base_url}/{{schoolYearFromRoute}}/data/v3/"
        )
        assert doc["schoolYears"] == [2024, 2025]


def test_tenants() -> None:
    with running_sandbox(students=0, template=False, tenants=["alpha", "beta"]) as sb:
        alpha = Api(sb, "/alpha")
        beta = Api(sb, "/beta")
        alpha.create("/ed-fi/students", student("T1"))
        assert [s["studentUniqueId"] for s in alpha.all("/ed-fi/students")] == ["T1"]
        assert beta.all("/ed-fi/students") == []
        crossed = httpx.get(
            f"{sb.base_url}/beta/data/v3/ed-fi/students",
            headers={"Authorization": f"Bearer {alpha.token}"},
        )
        assert_problem(crossed, 401, "security:authentication")
        nowhere = httpx.get(
            f"{sb.base_url}/gamma/data/v3/ed-fi/students",
            headers={"Authorization": f"Bearer {alpha.token}"},
        )
        body = assert_problem(nowhere, 404, "not-found")
        assert body["errors"] == ["The first segment of the path must name a tenant: alpha, beta"]
        doc = httpx.get(f"{sb.base_url}/alpha/").json()
        assert doc["urls"]["oauth"] == f"{sb.base_url}/alpha/oauth/token"


# -- the command line ------------------------------------------------------------------


def test_cli_serve() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--port",
            str(port),
            "--students",
            "0",
            "--client-secret",
            "s3cret",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        assert info["base_url"] == f"http://127.0.0.1:{port}"
        assert info["client_id"] == "sandbox"
        assert info["client_secret"] == "s3cret"
        assert isinstance(info["ready_seconds"], float | int)
        for _ in range(200):
            try:
                httpx.get(info["base_url"] + "/")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        basic = base64.b64encode(b"sandbox:s3cret").decode()
        r = httpx.post(
            info["base_url"] + "/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert r.status_code == 200
        schools = httpx.get(
            info["base_url"] + "/data/v3/ed-fi/schools",
            headers={"Authorization": f"Bearer {r.json()['access_token']}"},
        )
        assert schools.status_code == 200
        assert schools.json() == []
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_cli_rejects_unknown_fault() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--port",
            str(free_port()),
            "--students",
            "0",
            "--faults",
            "explode=1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "unknown fault 'explode'" in proc.stderr


# -- the generated district (read-only) ---------------------------------------------------


def test_district_paging_and_get_by_example(district: RunningSandbox) -> None:
    api = Api(district)
    model = builtin_model()
    ssa_resource = model["/ed-fi/studentSchoolAssociations"]
    records = list(district.store().iter_records(ssa_resource))
    school = records[0]["schoolReference"]["schoolId"]
    expected = [r["id"] for r in records if r["schoolReference"]["schoolId"] == school]
    first = api.get("/ed-fi/studentSchoolAssociations", schoolId=school, totalCount="true")
    assert first.headers["Total-Count"] == str(len(expected))
    assert [r["id"] for r in api.all("/ed-fi/studentSchoolAssociations", schoolId=school)] == (
        expected
    )
    offset_ids = [r["id"] for r in api.all("/ed-fi/studentSchoolAssociations")]
    assert offset_ids == [r["id"] for r in records]
    total = api.get("/ed-fi/studentSchoolAssociations", limit=0, totalCount="true")
    assert total.headers["Total-Count"] == str(len(records))
    tokens = api.get("/ed-fi/studentSchoolAssociations/partitions", number=4).json()
    cursor: list[str] = []
    for t in tokens["pageTokens"]:
        cursor += cursor_ids(api, "/ed-fi/studentSchoolAssociations", 100, t)
    assert cursor == offset_ids
