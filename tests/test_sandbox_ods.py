"""The sandbox handles requests as an ODS/API 7.3 does (issue 10's list), over real HTTP.

Each test names the ODS/API behaviour it pins down and asserts status, headers
and the problem details' ``type``/``detail``/``errors`` exactly. Helpers and the
tiny seeded district come from tests/test_sandbox_api.py.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from sandbox.server import RunningSandbox, running_sandbox
from tests.test_sandbox_api import (
    OTHER_SCHOOL,
    SCHOOL,
    Api,
    assert_problem,
    descriptor,
    seed,
    session,
    ssa,
    student,
    token,
)

INVALID = "bad-request:parameter-validation-failed"
DATA_INVALID = "bad-request:data-validation-failed"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningSandbox]:
    with running_sandbox(students=0, template=False) as sb:
        yield sb


@pytest.fixture(scope="module")
def seeded(running: RunningSandbox) -> tuple[Api, dict[str, str]]:
    api = Api(running)
    return api, seed(api)


def test_routes_and_query_names_are_case_insensitive(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    http = api.http
    upper = http.get(
        "/data/v3/ed-fi/Students", params={"LastSurname": "Diaz", "StudentUniqueId": "S2"}
    )
    assert upper.status_code == 200
    assert [s["id"] for s in upper.json()] == [ids["S2"]]
    versions = http.get("/ChangeQueries/V1/AvailableChangeVersions")
    assert versions.status_code == 200
    newest = versions.json()["newestChangeVersion"]
    windowed = http.get(
        "/DATA/v3/ED-FI/students", params={"MinChangeVersion": newest, "TOTALCOUNT": "true"}
    )
    assert windowed.headers["Total-Count"] == str(len(windowed.json()))
    deletes = http.get("/data/v3/ed-fi/students/DELETES")
    assert (deletes.status_code, deletes.json()) == (200, [])
    item = http.get(f"/data/v3/ed-fi/STUDENTS/{ids['S1'].upper()}")
    assert item.status_code == 200
    assert item.json()["id"] == ids["S1"]
    # string values of get-by-example match ignoring case, as in the ODS database
    assert [s["id"] for s in api.get("/ed-fi/students", firstName="firsts3").json()] == [ids["S3"]]


def test_write_bodies_bind_case_insensitively_with_numeric_strings(
    seeded: tuple[Api, dict[str, str]],
) -> None:
    api, _ = seeded
    r = api.post(
        "/ed-fi/STUDENTS",
        {
            "StudentUniqueId": "C1",
            "FIRSTNAME": "Cy",
            "lastsurname": "Case",
            "BirthDate": "2011-01-02",
        },
    )
    assert r.status_code == 201, r.text
    stored = api.record("/ed-fi/students", r.headers["Location"].rsplit("/", 1)[-1])
    assert {k: stored[k] for k in ("studentUniqueId", "firstName", "lastSurname", "birthDate")} == {
        "studentUniqueId": "C1",
        "firstName": "Cy",
        "lastSurname": "Case",
        "birthDate": "2011-01-02",
    }
    enrolled = api.post(
        "/ed-fi/studentSchoolAssociations",
        {**ssa("C1"), "schoolReference": {"schoolId": str(SCHOOL)}},
    )
    assert enrolled.status_code == 201, enrolled.text
    record = api.record(
        "/ed-fi/studentSchoolAssociations", enrolled.headers["Location"].rsplit("/", 1)[-1]
    )
    assert record["schoolReference"]["schoolId"] == SCHOOL
    # the same natural key written with a numeric string updates the same record
    again = api.post(
        "/ed-fi/studentSchoolAssociations",
        {**ssa("C1"), "schoolReference": {"schoolId": str(SCHOOL)}, "fullTimeEquivalency": "0.5"},
    )
    assert again.status_code == 200
    assert again.headers["Location"] == enrolled.headers["Location"]


def test_date_only_for_a_date_time(seeded: tuple[Api, dict[str, str]]) -> None:
    api, _ = seeded
    api.create(
        "/ed-fi/academicSubjectDescriptors",
        {
            "namespace": "uri://ed-fi.org/AcademicSubjectDescriptor",
            "codeValue": "Mathematics",
            "shortDescription": "Mathematics",
        },
    )
    api.create(
        "/ed-fi/assessments",
        {
            "assessmentIdentifier": "MATH-1",
            "namespace": "uri://ed-fi.org/Assessment",
            "assessmentTitle": "Math",
            "academicSubjects": [
                {
                    "academicSubjectDescriptor": descriptor(
                        "AcademicSubjectDescriptor", "Mathematics"
                    )
                }
            ],
        },
    )
    id_ = api.create(
        "/ed-fi/studentAssessments",
        {
            "studentAssessmentIdentifier": "SA-1",
            "assessmentReference": {
                "assessmentIdentifier": "MATH-1",
                "namespace": "uri://ed-fi.org/Assessment",
            },
            "studentReference": {"studentUniqueId": "S1"},
            "administrationDate": "2024-05-01",
        },
    )
    assert (
        api.record("/ed-fi/studentAssessments", id_)["administrationDate"] == "2024-05-01T00:00:00Z"
    )


def test_correlation_id_is_echoed(seeded: tuple[Api, dict[str, str]]) -> None:
    api, _ = seeded
    by_query = api.http.get("/data/v3/ed-fi/widgets", params={"correlationId": "run-42"})
    assert assert_problem(by_query, 404, "not-found")["correlationId"] == "run-42"
    by_header = api.http.post(
        "/data/v3/ed-fi/students", json={}, headers={"correlation-id": "abc-123"}
    )
    assert assert_problem(by_header, 400, DATA_INVALID)["correlationId"] == "abc-123"
    unnamed = assert_problem(api.get("/ed-fi/widgets"), 404, "not-found")["correlationId"]
    assert len(unnamed) == 36  # a GUID of the server's own


def test_key_changes_coalesce_and_recreated_records_are_not_deletes() -> None:
    with running_sandbox(students=0, template=False) as sb:
        api = Api(sb)
        ids = seed(api)
        session_id = api.create("/ed-fi/sessions", session("Fall"))
        start = api.newest()
        assert api.put(f"/ed-fi/sessions/{session_id}", session("Fall A")).status_code == 204
        middle = api.newest()
        assert api.put(f"/ed-fi/sessions/{session_id}", session("Fall B")).status_code == 204
        end = api.newest()
        key = {"schoolId": SCHOOL, "schoolYear": 2025}
        both = api.get("/ed-fi/sessions/keyChanges", totalCount="true")
        assert both.headers["Total-Count"] == "1"
        assert both.json() == [
            {
                "id": session_id,
                "changeVersion": end,
                "oldKeyValues": {"sessionName": "Fall", **key},
                "newKeyValues": {"sessionName": "Fall B", **key},
            }
        ]
        assert api.get("/ed-fi/sessions/keyChanges", minChangeVersion=middle + 1).json() == [
            {
                "id": session_id,
                "changeVersion": end,
                "oldKeyValues": {"sessionName": "Fall A", **key},
                "newKeyValues": {"sessionName": "Fall B", **key},
            }
        ]
        assert api.get("/ed-fi/sessions/keyChanges", maxChangeVersion=start).json() == []

        # S3 and its enrolment are deleted; S3 is then recreated with the same natural key
        before = api.newest()
        assert api.delete(f"/ed-fi/studentSchoolAssociations/{ids['ssaS3']}").status_code == 204
        assert api.delete(f"/ed-fi/students/{ids['S3']}").status_code == 204
        recreated = api.create("/ed-fi/students", student("S3"))
        assert recreated != ids["S3"]
        deletes = api.get("/ed-fi/students/deletes", minChangeVersion=before + 1, totalCount="true")
        assert (deletes.json(), deletes.headers["Total-Count"]) == ([], "0")
        ssa_deletes = api.get("/ed-fi/studentSchoolAssociations/deletes", totalCount="true")
        assert ssa_deletes.headers["Total-Count"] == "1"
        assert [d["id"] for d in ssa_deletes.json()] == [ids["ssaS3"]]


def test_default_page_size_next_page_tokens_and_partitions(
    seeded: tuple[Api, dict[str, str]],
) -> None:
    api, _ = seeded
    page = api.get("/ed-fi/schools", offset=0)
    assert len(page.json()) == 2
    token_ = page.headers["Next-Page-Token"]
    after = api.get("/ed-fi/schools", pageToken=token_, pageSize=10)
    assert (after.json(), after.headers.get("Next-Page-Token")) == ([], None)
    empty = api.get("/ed-fi/cohorts")
    assert (empty.json(), empty.headers.get("Next-Page-Token")) == ([], None)
    small = api.get("/ed-fi/schools/partitions", number=2, allowSmallPartitions="true")
    assert small.status_code == 200
    assert len(small.json()["pageTokens"]) == 2
    bad = api.get("/ed-fi/schools/partitions", number=2, AllowSmallPartitions="maybe")
    assert assert_problem(bad, 400, INVALID)["errors"] == [
        "The value 'maybe' is not valid for AllowSmallPartitions."
    ]


def test_writes_with_use_snapshot_are_refused(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    snap = {"Use-Snapshot": "true"}
    post = api.http.post("/data/v3/ed-fi/students", json=student("U1"), headers=snap)
    body = assert_problem(post, 405, "snapshots:method-not-allowed")
    assert body["title"] == "Method Not Allowed"
    delete = api.http.delete(f"/data/v3/ed-fi/students/{ids['S1']}", headers=snap)
    assert_problem(delete, 405, "snapshots:method-not-allowed")
    assert api.http.get(f"/data/v3/ed-fi/students/{ids['S1']}", headers=snap).status_code == 200


def test_etag_and_if_none_match(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    r = api.http.get(f"/data/v3/ed-fi/schools/{ids[f'school{SCHOOL}']}")
    etag = r.headers["ETag"]
    assert etag == f'"{r.json()["_etag"]}"'
    same = api.http.get(
        f"/data/v3/ed-fi/schools/{ids[f'school{SCHOOL}']}", headers={"If-None-Match": etag}
    )
    assert (same.status_code, same.content, same.headers["ETag"]) == (304, b"", etag)
    other = api.http.get(
        f"/data/v3/ed-fi/schools/{ids[f'school{SCHOOL}']}", headers={"If-None-Match": '"1"'}
    )
    assert other.status_code == 200


def test_validation_as_the_ods_does_it(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    empty = api.post("/ed-fi/students", student("", first=""))
    body = assert_problem(empty, 400, DATA_INVALID)
    assert body["detail"] == "Data validation failed. See 'validationErrors' for details."
    assert body["validationErrors"] == {
        "$.studentUniqueId": ["StudentUniqueId is required and should not be left empty."],
        "$.firstName": ["FirstName is required and should not be left empty."],
    }
    ranged = api.post("/ed-fi/sessions", {**session("Range"), "totalInstructionalDays": -1})
    assert assert_problem(ranged, 400, DATA_INVALID)["validationErrors"] == {
        "$.totalInstructionalDays": ["TotalInstructionalDays must be greater than or equal to 0."]
    }
    grade = {"gradeLevelDescriptor": descriptor("GradeLevelDescriptor", "Ninth grade")}
    school = {
        "schoolId": 9,
        "nameOfInstitution": "Twice",
        "educationOrganizationCategories": [
            {
                "educationOrganizationCategoryDescriptor": descriptor(
                    "EducationOrganizationCategoryDescriptor", "School"
                )
            }
        ],
        "gradeLevels": [grade, grade],
    }
    assert assert_problem(api.post("/ed-fi/schools", school), 400, DATA_INVALID)[
        "validationErrors"
    ] == {
        "$.gradeLevels[1]": [
            "The 2nd item of the SchoolGradeLevels collection is a duplicate of the 1st."
        ]
    }
    spaced = api.post("/ed-fi/students", student(" S9 "))
    assert assert_problem(spaced, 400, DATA_INVALID)["validationErrors"] == {
        "$.studentUniqueId": ["StudentUniqueId cannot contain leading or trailing spaces."]
    }
    # 400 checks come before 409 reference checks: an unknown student and an empty date
    both = api.post("/ed-fi/studentSchoolAssociations", {**ssa("S404"), "entryDate": ""})
    assert assert_problem(both, 400, DATA_INVALID)["validationErrors"] == {
        "$.entryDate": ["The value '' is not valid for EntryDate."]
    }
    unified = api.post(
        "/ed-fi/courseOfferings",
        {
            "localCourseCode": "X-1",
            "courseReference": {"courseCode": "X", "educationOrganizationId": SCHOOL},
            "schoolReference": {"schoolId": SCHOOL},
            "sessionReference": {"schoolId": OTHER_SCHOOL, "schoolYear": 2025, "sessionName": "S"},
        },
    )
    message = (
        "All values supplied for 'schoolId' must match. Review all references and align the "
        f"following conflicting values: '{SCHOOL}', '{OTHER_SCHOOL}'"
    )
    assert assert_problem(unified, 400, DATA_INVALID)["validationErrors"] == {
        "$.schoolReference.schoolId": [message],
        "$.sessionReference.schoolId": [message],
    }
    for method in ("GET", "PUT", "DELETE"):
        r = api.http.request(
            method,
            "/data/v3/ed-fi/students/not-a-guid",
            json=student("S1") if method == "PUT" else None,
        )
        body = assert_problem(r, 400, INVALID)
        assert body["errors"] == ["The value 'not-a-guid' is not valid for Id: ids are GUIDs."]
    assert api.record("/ed-fi/students", ids["S1"])["studentUniqueId"] == "S1"


def test_problem_details_for_methods_and_bodies(seeded: tuple[Api, dict[str, str]]) -> None:
    api, ids = seeded
    patch = api.http.patch(f"/data/v3/ed-fi/students/{ids['S1']}", json=student("S1"))
    body = assert_problem(patch, 405, "method-not-allowed")
    assert body["detail"] == "The request construction was invalid."
    assert body["errors"] == ["The endpoint of the request does not support the 'PATCH' method."]
    on_item = api.post(f"/ed-fi/students/{ids['S1']}", student("S1"))
    assert assert_problem(on_item, 405, "method-not-allowed")["errors"] == [
        'Resource items can only be updated using PUT. To "upsert" an item in the data '
        'collection using POST, remove the "id" from the route.'
    ]
    on_collection = api.http.delete("/data/v3/ed-fi/students")
    assert assert_problem(on_collection, 405, "method-not-allowed")["errors"] == [
        "Resource collections cannot be deleted. To delete a specific item, use DELETE and "
        'include the "id" in the route.'
    ]
    no_body = api.http.post("/data/v3/ed-fi/students", content=b"")
    body = assert_problem(no_body, 400, "bad-request")
    assert body["detail"] == "The request could not be processed. See 'errors' for details."
    assert body["errors"] == ["A non-empty request body is required."]


def test_get_by_example_on_role_named_parameters(seeded: tuple[Api, dict[str, str]]) -> None:
    api, _ = seeded
    r = api.post(
        "/ed-fi/studentSchoolAssociations",
        {
            **ssa("S2", entry="2024-10-01"),
            "classOfSchoolYearTypeReference": {"schoolYear": 2025},
            "nextYearSchoolReference": {"schoolId": OTHER_SCHOOL},
        },
    )
    assert r.status_code == 201, r.text
    new_id = r.headers["Location"].rsplit("/", 1)[-1]
    for params in (
        {"classOfSchoolYear": 2025},
        {"nextYearSchoolId": OTHER_SCHOOL},
        {"NEXTYEARSCHOOLID": OTHER_SCHOOL},
    ):
        found = api.get("/ed-fi/studentSchoolAssociations", **params).json()
        assert [x["id"] for x in found] == [new_id], params


def test_oauth_scope_and_malformed_credentials(seeded: tuple[Api, dict[str, str]]) -> None:
    api, _ = seeded
    sb = api.running
    url = sb.base_url + "/oauth/token"
    creds = (sb.client_id, sb.client_secret)
    scoped = httpx.post(
        url, data={"grant_type": "client_credentials", "scope": str(SCHOOL)}, auth=creds
    )
    assert scoped.status_code == 200
    assert scoped.json()["scope"] == str(SCHOOL)
    unknown = httpx.post(
        url, data={"grant_type": "client_credentials", "scope": "4242"}, auth=creds
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"] == "invalid_scope"
    for header in (
        "Basic",
        "Basic ",
        "Basic !!!notbase64",
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ):
        r = httpx.post(
            url,
            content=b"grant_type=client_credentials",
            headers={
                "Authorization": header.strip() if header == "Basic " else header,
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert r.status_code == 400, header
        assert r.json()["error"] == "invalid_request", header


def test_tenants_discovery_and_unique_ids() -> None:
    with running_sandbox(students=0, tenants=["alpha", "beta"]) as sb:
        doc = httpx.get(f"{sb.base_url}/ALPHA/").json()
        assert doc["urls"]["dataManagementApi"] == f"{sb.base_url}/alpha/data/v3/"
        assert doc["urls"]["oauth"] == f"{sb.base_url}/alpha/oauth/token"
        ids = {Api(sb, f"/{t}").create("/ed-fi/students", student("T1")) for t in ("alpha", "beta")}
        assert len(ids) == 2
    with running_sandbox(students=0, tenants=["alpha", "beta"]) as again:
        ids.add(Api(again, "/alpha").create("/ed-fi/students", student("T1")))
    assert len(ids) == 3, "ids never repeat across tenants or runs"


def test_forwarded_headers_shape_urls(seeded: tuple[Api, dict[str, str]]) -> None:
    api, _ = seeded
    forwarded = {
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "api.example.org",
        "X-Forwarded-Port": "8443",
    }
    doc = httpx.get(api.running.base_url + "/", headers=forwarded).json()
    assert doc["urls"]["oauth"] == "https://api.example.org:8443/oauth/token"
    assert doc["urls"]["dataManagementApi"] == "https://api.example.org:8443/data/v3/"
    default_port = httpx.get(
        api.running.base_url + "/", headers={**forwarded, "X-Forwarded-Port": "443"}
    ).json()
    assert default_port["urls"]["oauth"] == "https://api.example.org/oauth/token"
    r = api.http.post("/data/v3/ed-fi/students", json=student("F1"), headers=forwarded)
    assert r.headers["Location"].startswith("https://api.example.org:8443/data/v3/ed-fi/students/")


# -- issue 9 item 11: sessions and snapshots ----------------------------------------------------


def _first_name(base_url: str, tok: str, id_: str) -> Any:
    r = httpx.get(
        f"{base_url}/data/v3/ed-fi/students/{id_}",
        headers={"Authorization": f"Bearer {tok}", "Use-Snapshot": "true"},
    )
    assert r.status_code == 200, r.text
    return r.json()["firstName"]


def test_a_new_session_sees_current_data_and_a_renewal_keeps_its_snapshot() -> None:
    with running_sandbox(students=0, faults="token_ttl=1") as sb:
        api = Api(sb)
        sid = api.create("/ed-fi/students", student("N1", first="Before"))
        first = token(sb.base_url, sb.client_id, sb.client_secret)
        assert _first_name(sb.base_url, first, sid) == "Before"  # the session's snapshot
        api.http.headers["Authorization"] = (
            f"Bearer {token(sb.base_url, sb.client_id, sb.client_secret)}"
        )
        assert api.post("/ed-fi/students", student("N1", first="After")).status_code == 200
        time.sleep(1.1)  # the first session's token has expired, moments ago
        renewed = httpx.post(
            f"{sb.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(sb.client_id, sb.client_secret),
            headers={"Previous-Token": first},
        ).json()["access_token"]
        assert _first_name(sb.base_url, renewed, sid) == "Before"
        fresh = token(sb.base_url, sb.client_id, sb.client_secret)
        assert _first_name(sb.base_url, fresh, sid) == "After"


def test_the_project_client_keeps_its_snapshot_across_renewals() -> None:
    """edfi.client renews with ``Previous-Token``: one run, one view; the next run, a new one."""
    import asyncio

    from edfi.client import EdFiClient
    from tests.conftest import connection_block

    with running_sandbox(students=0, template=False, faults="token_ttl=1") as sb:
        api = Api(sb)
        sid = api.create("/ed-fi/students", student("R1", first="Before"))

        async def first_name(client: EdFiClient) -> Any:
            r = await client.get_absolute(
                f"{sb.base_url}/data/v3/ed-fi/students/{sid}", headers={"Use-Snapshot": "true"}
            )
            return r.json()["firstName"]

        async def scenario() -> tuple[Any, Any, Any]:
            async with EdFiClient(connection_block(sb).connection()) as run:
                before = await first_name(run)
                api.http.headers["Authorization"] = (
                    f"Bearer {token(sb.base_url, sb.client_id, sb.client_secret)}"
                )
                assert api.post("/ed-fi/students", student("R1", first="After")).status_code == 200
                await asyncio.sleep(1.2)  # the run's token expires: the client renews it
                renewed = await first_name(run)
                refreshes = run.stats.token_refreshes
            async with EdFiClient(connection_block(sb).connection()) as next_run:
                return before, (renewed, refreshes), await first_name(next_run)

        before, (renewed, refreshes), next_run = asyncio.run(scenario())
        assert (before, renewed, next_run) == ("Before", "Before", "After")
        assert refreshes >= 2


def test_a_database_saved_under_another_model_reads_right(tmp_path: Any) -> None:
    """Resource numbers live in the database: a model with fewer resources shifts nothing."""
    import copy

    from edfi.model import builtin_documents, builtin_model, load_model
    from sandbox.store import Store, Window

    model = builtin_model()
    path = str(tmp_path / "saved.sqlite")
    store = Store(model, path)
    store.upsert(model["/ed-fi/students"], student("D1"))
    store.close()
    resources, descriptors = builtin_documents()
    smaller = copy.deepcopy(resources)
    for p in [p for p in smaller["paths"] if p.startswith(("/ed-fi/a", "/ed-fi/b", "/ed-fi/c"))]:
        del smaller["paths"][p]
    other = load_model(smaller, descriptors)
    assert len(other) < len(model)
    reopened = Store(other, path)
    students = other["/ed-fi/students"]
    assert reopened.count(students, Window()) == 1
    assert [s["studentUniqueId"] for s in reopened.iter_records(students)] == ["D1"]
