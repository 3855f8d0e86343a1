"""The sender over real HTTP: upserts, blocked children, retries, 403 deferral, deletes, rejects.

Records come from a small generated district (built in process); the target
is an empty sandbox served over HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import SecretStr

from edfi.client import EdFiClient
from edfi.errors import SendError
from edfi.lake import Lake
from edfi.model import ApiModel
from edfi.rejects import Origin, RejectsStore, cause_of, origin_dict, summarize
from edfi.schedule import run_gated
from edfi.send import Item, Sender, SendOptions, reject_item, write_connection
from sandbox.app import Faults
from sandbox.changes import body_of
from sandbox.server import RunningSandbox, build_sandbox, running_sandbox
from sandbox.store import Store
from tests.conftest import connection_block

CHAIN = (
    "/ed-fi/stateEducationAgencies",
    "/ed-fi/educationServiceCenters",
    "/ed-fi/localEducationAgencies",
    "/ed-fi/schoolYearTypes",
    "/ed-fi/schools",
    "/ed-fi/gradingPeriods",
    "/ed-fi/sessions",
)
BOGUS = "uri://ed-fi.org/EducationOrganizationCategoryDescriptor#Not a category"


@pytest.fixture(scope="module")
def source() -> Store:
    return build_sandbox(students=10, seed=3).store()


@pytest.fixture
def target() -> Iterator[RunningSandbox]:
    with running_sandbox(students=0) as sb:
        yield sb


def copy_descriptors(source: Store, target: Store) -> None:
    for resource in source.model:
        if resource.is_descriptor:
            for rec in source.iter_records(resource):
                target.upsert(resource, body_of(rec))


def records(source: Store, path: str) -> list[dict[str, Any]]:
    return [body_of(r) for r in source.iter_records(source.model[path])]


def items(source: Store, path: str, file: str = "") -> list[Item]:
    return [
        Item(body, Origin(file or f"{path.rsplit('/', 1)[-1]}.jsonl", line))
        for line, body in enumerate(records(source, path), start=1)
    ]


def keys(store: Store, path: str) -> set[str]:
    return {store.record_key(store.model[path], r) for r in store.iter_records(store.model[path])}


async def sender_for(sb: RunningSandbox, **options: Any) -> tuple[EdFiClient, Sender]:
    conn = write_connection(connection_block(sb).connection(), 16)
    client = EdFiClient(conn)
    model: ApiModel = await client.load_model()
    return client, Sender(client, model, client.url("dataManagementApi"), SendOptions(**options))


async def send_chain(sender: Sender, bodies: dict[str, list[Item]]) -> dict[str, Any]:
    deps = {p: sender.model.ancestors(p) for p in bodies}
    outcomes = await run_gated(deps, lambda p: sender.upsert(p, bodies[p]), parallelism=4)
    return {p: o.result for p, o in outcomes.items()}


def test_a_refused_parent_blocks_its_children_without_sending_them(
    source: Store, target: RunningSandbox, tmp_path: Path
) -> None:
    copy_descriptors(source, target.store())
    bodies = {p: items(source, p) for p in CHAIN}
    bad_school = bodies["/ed-fi/schools"][1]
    assert bad_school.body is not None
    bad_id = bad_school.body["schoolId"]
    bad_school.body["educationOrganizationCategories"] = [
        {"educationOrganizationCategoryDescriptor": BOGUS}
    ]

    def of_bad_school(path: str) -> list[Item]:
        return [
            i for i in bodies[path] if i.body and i.body["schoolReference"]["schoolId"] == bad_id
        ]

    children = of_bad_school("/ed-fi/sessions")
    periods = of_bad_school("/ed-fi/gradingPeriods")  # grading periods name their school too
    assert 0 < len(children) < len(bodies["/ed-fi/sessions"])

    async def go() -> tuple[dict[str, Any], Sender, int, float]:
        client, sender = await sender_for(target)  # the model: seconds on a loaded machine
        async with client:
            started = time.perf_counter()
            results = await send_chain(sender, bodies)
            return results, sender, client.stats.requests, time.perf_counter() - started

    results, sender, requests, seconds = asyncio.run(go())
    assert seconds < 5  # blocked records are not retried with backoff (that took minutes)
    schools, sessions = results["/ed-fi/schools"], results["/ed-fi/sessions"]
    assert (schools.sent, schools.failed, schools.blocked) == (2, 1, 0)
    assert (sessions.sent, sessions.failed, sessions.blocked) == (
        len(bodies["/ed-fi/sessions"]) - len(children),
        0,
        len(children),
    )
    assert sessions.retries == 0 and str(sessions.status) == "failed"
    # one POST per record that was sent or refused; none for the blocked ones (plus OAuth etc.)
    assert results["/ed-fi/gradingPeriods"].blocked == len(periods) > 0
    posted = sum(len(v) for v in bodies.values()) - len(children) - len(periods)
    assert posted <= requests <= posted + 5
    refused, *blocked = sender.rejects
    assert (refused.resource, refused.status, refused.where()) == (
        "/ed-fi/schools",
        400,
        "schools.jsonl:2",
    )
    assert "does not exist" in refused.message and refused.body == bad_school.body
    assert {b.where() for b in blocked} == {str(i.origin) for i in (*children, *periods)}
    assert all(
        b.status is None and b.blocked_by == f'/ed-fi/schools {{"schoolId":{bad_id}}}'
        for b in blocked
    )
    groups = summarize(sender.rejects)
    assert sorted((g["resource"], g["count"]) for g in groups) == [
        ("/ed-fi/gradingPeriods", len(periods)),
        ("/ed-fi/schools", 1),
        ("/ed-fi/sessions", len(children)),
    ]
    assert {g["cause"] for g in groups if g["resource"] != "/ed-fi/schools"} == {
        "blocked: references a refused /ed-fi/schools record"
    }
    assert keys(target.store(), "/ed-fi/sessions") == keys(source, "/ed-fi/sessions") - {
        target.store().record_key(target.store().model["/ed-fi/sessions"], i.body or {})
        for i in children
    }

    # the rejects are kept on the lake, grouped by resource and cause, and can be resent
    store = RejectsStore(Lake(str(tmp_path / "lake")), "send", "t", "rejects")
    manifest = store.write("run-1", sender.rejects)
    assert manifest["resources"]["/ed-fi/schools"]["causes"] == {refused.cause: 1}
    assert manifest["resources"]["/ed-fi/sessions"]["blocked"] == len(children)
    back = store.read("run-1")

    def dumped(rejects: list[Any]) -> list[bytes]:
        return sorted(orjson.dumps(r.as_dict(), option=orjson.OPT_SORT_KEYS) for r in rejects)

    assert dumped(back) == dumped(sender.rejects)
    fixed = {
        p: [reject_item(r) for r in back if r.resource == p]
        for p in ("/ed-fi/schools", "/ed-fi/gradingPeriods", "/ed-fi/sessions")
    }
    assert fixed["/ed-fi/schools"][0].body is not None
    fixed["/ed-fi/schools"][0].body.pop("educationOrganizationCategories")
    fixed["/ed-fi/schools"][0].body["educationOrganizationCategories"] = records(
        source, "/ed-fi/schools"
    )[1]["educationOrganizationCategories"]

    async def resend() -> dict[str, Any]:
        client, sender = await sender_for(target)
        async with client:
            return await send_chain(sender, fixed)

    again = resend_results = asyncio.run(resend())
    assert again["/ed-fi/sessions"].sent == len(children) and again["/ed-fi/schools"].sent == 1
    assert resend_results["/ed-fi/sessions"].failed == 0
    for p in CHAIN:
        assert keys(target.store(), p) == keys(source, p), p


def test_a_missing_parent_is_final_at_once_and_max_failures_stops(
    source: Store, target: RunningSandbox
) -> None:
    copy_descriptors(source, target.store())
    sessions = items(source, "/ed-fi/sessions")

    async def go(**options: Any) -> tuple[Any, Sender]:
        client, sender = await sender_for(target, **options)
        async with client:
            try:
                return await sender.upsert("sessions", sessions), sender
            except SendError as exc:
                return exc, sender

    result, sender = asyncio.run(go())
    # no school on the target, and schools are not being written: 409, not retried
    assert (result.failed, result.retries, result.sent) == (len(sessions), 0, 0)
    assert {r.status for r in sender.rejects} == {409}
    stopped, sender = asyncio.run(go(max_failures=2, concurrency=1, per_resource=1))
    assert isinstance(stopped, SendError) and "max_failures=2" in str(stopped)
    assert len(sender.rejects) == 2


def test_target_faults_are_retried_to_the_same_end_state(source: Store) -> None:
    with running_sandbox(
        students=0, faults="error=0.1,throttle=0.1,retry_after=0.05,drop=0.05"
    ) as target:
        copy_descriptors(source, target.store())

        async def go() -> tuple[dict[str, Any], int]:
            client, sender = await sender_for(target)
            async with client:
                return await send_chain(
                    sender, {p: items(source, p) for p in CHAIN}
                ), client.stats.retries

        results, retries = asyncio.run(go())
        assert retries > 0
        assert all(r.failed == 0 and r.sent == len(records(source, p)) for p, r in results.items())
        for p in CHAIN:
            assert keys(target.store(), p) == keys(source, p), p


def test_forbidden_posts_wait_for_their_associations_then_update_and_delete_by_key(
    source: Store, target: RunningSandbox
) -> None:
    copy_descriptors(source, target.store())
    people = ("/ed-fi/students", "/ed-fi/studentSchoolAssociations")
    first = {
        p: items(source, p)
        for p in (*CHAIN, "/ed-fi/calendars", "/ed-fi/graduationPlans", "/ed-fi/students")
    }

    async def go() -> tuple[Any, ...]:
        client, sender = await sender_for(target)
        async with client:
            await send_chain(sender, first)
            target.sandbox.faults = Faults.parse("forbid_students_until_enrolled=1")
            students = await sender.upsert("students", items(source, people[0]))
            ssa = await sender.upsert("studentSchoolAssociations", items(source, people[1]))
            retried = await sender.resend_deferred("students")
            # update one school's name by its key; delete two sessions by key
            school = records(source, "/ed-fi/schools")[0]
            renamed = {**school, "nameOfInstitution": "Renamed High"}
            updated = await sender.update("schools", [Item(renamed)])
            gone = records(source, "/ed-fi/sessions")[:2]
            deleted = await sender.delete(
                "sessions",
                [Item(None, key=sender.model["/ed-fi/sessions"].key_values(b)) for b in gone],
            )
            missing = await sender.delete("sessions", [Item(gone[0])])
            return students, ssa, retried, updated, deleted, missing, sender, school

    students, ssa, retried, updated, deleted, missing, sender, school = asyncio.run(go())
    assert (students.sent, students.deferred) == (0, 10)
    assert ssa.sent == 10 and (retried.sent, retried.failed, retried.deferred) == (10, 0, 0)
    assert sender.totals["/ed-fi/students"].read == 20  # 10 first run + 10 again, not 30
    assert updated.sent == 1 and deleted.sent == 2 and (missing.sent, missing.skipped) == (0, 1)
    got = [
        r
        for r in target.store().iter_records(target.store().model["/ed-fi/schools"])
        if r["schoolId"] == school["schoolId"]
    ]
    assert got[0]["nameOfInstitution"] == "Renamed High"
    assert (
        len(keys(target.store(), "/ed-fi/sessions")) == len(records(source, "/ed-fi/sessions")) - 2
    )
    assert not sender.rejects


def test_an_ordering_conflict_is_retried_until_the_parent_lands(
    source: Store, target: RunningSandbox
) -> None:
    """A district LEA naming its parent LEA, sent before the parent in the same call."""
    copy_descriptors(source, target.store())
    first = {p: items(source, p) for p in CHAIN[:2]}
    parent = records(source, "/ed-fi/localEducationAgencies")[0]
    child = {
        **parent,
        "localEducationAgencyId": 255902,
        "nameOfInstitution": "Grand Bend North",
        "parentLocalEducationAgencyReference": {"localEducationAgencyId": 255901},
    }

    async def leas() -> AsyncIterator[Item]:
        yield Item(child, Origin("leas.jsonl", 1))
        await asyncio.sleep(0.3)  # the child's POST is answered 409 before the parent exists
        yield Item(parent, Origin("leas.jsonl", 2))

    async def go() -> Any:
        client, sender = await sender_for(target)
        async with client:
            await send_chain(sender, first)
            return await sender.upsert("localEducationAgencies", leas())

    result = asyncio.run(go())
    assert (result.sent, result.failed) == (2, 0)
    assert result.retries >= 1  # the 409 named its own (still being written) resource
    assert keys(target.store(), "/ed-fi/localEducationAgencies") == {
        target.store().record_key(target.store().model["/ed-fi/localEducationAgencies"], b)
        for b in (parent, child)
    }


def test_a_refused_descriptor_blocks_the_records_naming_it(
    source: Store, target: RunningSandbox
) -> None:
    grade = "/ed-fi/gradeLevelDescriptors"
    for resource in source.model:
        if resource.is_descriptor and resource.path != grade:
            for rec in source.iter_records(resource):
                target.store().upsert(resource, body_of(rec))
    levels = items(source, grade)
    schools = records(source, "/ed-fi/schools")
    used = {g["gradeLevelDescriptor"] for g in schools[0]["gradeLevels"]}
    bad = next(i for i in levels if f"{i.body['namespace']}#{i.body['codeValue']}" in used)  # type: ignore[index]
    assert bad.body is not None
    del bad.body["shortDescription"]  # required: the target refuses it (400)
    uri = f"{bad.body['namespace']}#{bad.body['codeValue']}"
    naming = [s for s in schools if uri in {g["gradeLevelDescriptor"] for g in s["gradeLevels"]}]

    async def go() -> tuple[dict[str, Any], Sender]:
        client, sender = await sender_for(target)
        async with client:
            bodies = {grade: levels, **{p: items(source, p) for p in CHAIN}}
            return await send_chain(sender, bodies), sender

    results, sender = asyncio.run(go())
    assert (results[grade].failed, results[grade].sent) == (1, len(levels) - 1)
    assert results["/ed-fi/schools"].blocked == len(naming) > 0
    blocked = [r for r in sender.rejects if r.resource == "/ed-fi/schools"]
    assert {r.blocked_by for r in blocked} == {f"{grade} {uri!r}"}


def test_causes_mask_values_so_one_reason_is_one_group() -> None:
    a = cause_of(
        400,
        "POST http://h/data/v3/ed-fi/schools answered 400: "
        "gradeLevelDescriptor value 'uri://ed-fi.org/GradeLevelDescriptor#Ninth grade' "
        "does not exist.",
    )
    b = cause_of(400, "gradeLevelDescriptor value 'uri://x#Tenth grade' does not exist.")
    assert a == b == "HTTP 400: gradeLevelDescriptor value '…' does not exist."
    assert cause_of(409, "Student 604001 and 12 others") == "HTTP 409: Student # and # others"
    assert (
        str(Origin("a.jsonl", 3)) == "a.jsonl:3" and str(Origin(source_id="x1")) == "source id x1"
    )
    assert origin_dict(Origin("a.jsonl", 3)) == {"file": "a.jsonl", "line": 3}
    assert origin_dict({"file": "b.xml", "line": 9}) == {"file": "b.xml", "line": 9}
    assert origin_dict("row 4") == {"detail": "row 4"} and origin_dict(None) is None


def test_a_resource_written_alone_takes_the_whole_budget_and_shares_it_with_others(
    source: Store,
) -> None:
    """per_resource is a share, not a ceiling: alone a resource uses every slot; two split them."""
    student = records(source, "/ed-fi/students")[0]
    staff = records(source, "/ed-fi/staffs")[0]

    def people(body: dict[str, Any], key: str, n: int, start: int) -> list[Item]:
        return [Item({**body, key: str(start + i)}, Origin("p.jsonl", i + 1)) for i in range(n)]

    in_flight: dict[str, int] = {}
    peaks: dict[str, int] = {}
    both_phase = False

    async def go() -> tuple[Any, Any, Any]:
        nonlocal both_phase
        client, sender = await sender_for(target, concurrency=8, per_resource=2)
        real = client.request

        async def counted(method: str, url: str, **kwargs: Any) -> Any:
            name = url.rsplit("/", 1)[-1]
            in_flight[name] = in_flight.get(name, 0) + 1
            writing = sum(1 for n in sender._active.values() if n)
            if writing == (1 if not both_phase else 2):  # the tail of one alone is not counted
                peaks[name] = max(peaks.get(name, 0), in_flight[name])
                peaks["total"] = max(peaks.get("total", 0), sum(in_flight.values()))
            try:
                return await real(method, url, **kwargs)
            finally:
                in_flight[name] -= 1

        client.request = counted  # type: ignore[method-assign]
        async with client:
            alone = await sender.upsert("students", people(student, "studentUniqueId", 40, 900000))
            alone_peak = dict(peaks)
            peaks.clear()
            both_phase = True
            both = await asyncio.gather(
                sender.upsert("students", people(student, "studentUniqueId", 40, 910000)),
                sender.upsert("staffs", people(staff, "staffUniqueId", 40, 920000)),
            )
            return alone, alone_peak, both

    with running_sandbox(students=0, faults="latency_ms=20") as target:
        copy_descriptors(source, target.store())
        alone, alone_peak, both = asyncio.run(go())
    assert alone.sent == 40 and both[0].sent == both[1].sent == 40
    assert alone_peak["students"] == 8  # the whole budget, not per_resource's 2
    assert peaks["total"] <= 8
    assert 2 < peaks["students"] <= 4 and 2 < peaks["staffs"] <= 4  # half each


def test_retry_statuses_are_the_ones_retried_and_429_always_is(source: Store) -> None:
    """A lightbeam config's ``retry_statuses`` is applied as written (lightbeam ignores it)."""
    from edfi.lightbeam_config import LightbeamConfig
    from edfi.sendrun import retry_statuses

    listed = LightbeamConfig("lb.yaml", "http://x", "k", SecretStr("s"), ".", None)
    assert retry_statuses(listed) == frozenset({429, 500, 501, 503, 504})
    only_500 = dataclasses.replace(listed, retry_statuses=(500,))
    assert retry_statuses(only_500) == frozenset({500, 429})
    with running_sandbox(
        students=0, faults="error=0.5,throttle=0.2,retry_after=0.01,seed=5"
    ) as target:
        copy_descriptors(source, target.store())

        async def go() -> tuple[Any, Sender]:
            client, sender = await sender_for(
                target, retry_statuses=retry_statuses(only_500), conflict_retries=0
            )
            async with client:
                return await sender.upsert(
                    "schoolYearTypes", items(source, "/ed-fi/schoolYearTypes")
                ), sender

        result, sender = asyncio.run(go())
    # 503 is not in the list: those writes failed at once; every 500 and 429 was retried
    assert result.failed > 0 and {r.status for r in sender.rejects} == {503}
    assert result.sent + result.failed == len(records(source, "/ed-fi/schoolYearTypes"))
    assert result.sent > 0 and sender.client.stats.retries > 0
