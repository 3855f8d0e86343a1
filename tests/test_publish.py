"""Publish: one sandbox into another over real HTTP, and the core's graph rules.

The flow tests need the session Prefect server (``prefect_harness``); the
graph and selection rules are checked on the core alone.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson
import pytest

from edfi.model import builtin_model
from edfi.publish import (
    DependencyGraph,
    PublishError,
    PublishOptions,
    build_graph,
    pair_key,
    parse_graphml,
    publishable,
    select_resources,
    split_names,
)
from sandbox.app import Faults
from sandbox.changes import apply_changes, body_of
from sandbox.server import RunningSandbox, running_sandbox, sandbox_process
from sandbox.store import Store
from tests.conftest import connection_block

EARLY = "uri://ed-fi.org/AttendanceEventCategoryDescriptor#Early departure"
EVENTS = ("/ed-fi/studentSchoolAttendanceEvents", "/ed-fi/studentSectionAttendanceEvents")


# -- helpers ------------------------------------------------------------------------------


def run_publish(source: RunningSandbox, target: Any, lake: Path, **kwargs: Any) -> dict[str, Any]:
    from blocks import LakeStorage
    from flows.publish import publish

    run: Any = publish(
        connection_block(source),
        connection_block(target, max_concurrency=4),
        LakeStorage.model_validate({"url": str(lake)}),
        **kwargs,
    )
    return cast(dict[str, Any], asyncio.run(run))


def contents(store: Store, path: str) -> dict[str, bytes]:
    """A resource's records by natural key, as a client would POST them."""
    resource = store.model[path]
    return {
        store.record_key(resource, r): orjson.dumps(body_of(r), option=orjson.OPT_SORT_KEYS)
        for r in store.iter_records(resource)
    }


def assert_same(source: Store, target: Store, paths: Iterable[str]) -> None:
    differing = [p for p in paths if contents(source, p) != contents(target, p)]
    assert not differing, f"target differs from source in {differing[:5]}"


def published(summary: dict[str, Any]) -> list[str]:
    return [row["resource"] for row in summary["resources"]]


def copy_descriptors(source: Store, target: Store, *, leave_out: str = "") -> None:
    for resource in source.model:
        if resource.is_descriptor:
            for rec in source.iter_records(resource):
                if f"{rec['namespace']}#{rec['codeValue']}" != leave_out:
                    target.upsert(resource, body_of(rec))


# -- the core: graph, selection, bodies ------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> DependencyGraph:
    return build_graph(builtin_model(), None)


def test_include_adds_everything_it_depends_on(graph: DependencyGraph) -> None:
    model = builtin_model()
    chosen = select_resources(
        graph, model, PublishOptions(include=split_names("studentSchoolAttendanceEvents"))
    )
    expected = {
        "/ed-fi/studentSchoolAttendanceEvents",
        *model.ancestors("/ed-fi/studentSchoolAttendanceEvents"),
    }
    assert set(chosen) == expected
    assert {"/ed-fi/students", "/ed-fi/schools", "/ed-fi/sessions"} <= set(chosen)
    assert not any(model[p].is_descriptor for p in chosen)
    # every resource comes after everything it needs
    for i, p in enumerate(chosen):
        assert graph.dependencies[p] & set(chosen) <= set(chosen[:i])
    with_descriptors = select_resources(
        graph,
        model,
        PublishOptions(include=["studentSchoolAttendanceEvents"], include_descriptors=True),
    )
    assert "/ed-fi/attendanceEventCategoryDescriptors" in with_descriptors
    assert with_descriptors.index(
        "/ed-fi/attendanceEventCategoryDescriptors"
    ) < with_descriptors.index("/ed-fi/studentSchoolAttendanceEvents")


def test_exclude_drops_everything_that_depends_on_it(graph: DependencyGraph) -> None:
    model = builtin_model()
    chosen = set(select_resources(graph, model, PublishOptions(exclude=["/ed-fi/sections"])))
    dependents = model.descendants("/ed-fi/sections")
    assert "/ed-fi/studentSectionAssociations" in dependents
    assert "/ed-fi/sections" not in chosen and not chosen & dependents
    assert {"/ed-fi/students", "/ed-fi/courseOfferings"} <= chosen


def test_only_variants_do_not_close_over_the_graph(graph: DependencyGraph) -> None:
    model = builtin_model()
    only = select_resources(
        graph,
        model,
        PublishOptions(include_only=split_names("ed-fi/studentSchoolAttendanceEvents, students")),
    )
    assert only == ["/ed-fi/students", "/ed-fi/studentSchoolAttendanceEvents"]
    rest = set(select_resources(graph, model, PublishOptions(exclude_only=["sections"])))
    assert "/ed-fi/sections" not in rest and "/ed-fi/studentSectionAssociations" in rest
    with pytest.raises(PublishError, match="not a resource"):
        select_resources(graph, model, PublishOptions(include=["studnets"]))


def test_graphml_create_update_split_merges_without_a_cycle() -> None:
    text = """<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph>
      <node id="/ed-fi/schools"/><node id="/ed-fi/students#Create"/>
      <node id="/ed-fi/studentSchoolAssociations"/><node id="/ed-fi/students#Update"/>
      <edge source="/ed-fi/students#Create" target="/ed-fi/studentSchoolAssociations"/>
      <edge source="/ed-fi/schools" target="/ed-fi/studentSchoolAssociations"/>
      <edge source="/ed-fi/studentSchoolAssociations" target="/ed-fi/students#Update"/>
    </graph></graphml>"""
    deps = parse_graphml(text)
    assert deps["/ed-fi/studentSchoolAssociations"] == {"/ed-fi/students", "/ed-fi/schools"}
    assert deps["/ed-fi/students"] == set()
    assert DependencyGraph(deps).order[-1] == "/ed-fi/studentSchoolAssociations"


def test_bodies_and_state_keys_carry_nothing_they_should_not() -> None:
    record = {
        "id": "x",
        "_etag": "1",
        "_lastModifiedDate": "d",
        "a": 1,
        "schoolReference": {"schoolId": 1, "link": {"href": "/x"}},
        "items": [{"b": 2, "link": {}}],
    }
    assert publishable(record) == {"a": 1, "schoolReference": {"schoolId": 1}, "items": [{"b": 2}]}
    key = pair_key("http://a|t|2025", "http://b||")
    assert key == pair_key("http://a|t|2025", "http://b||") != pair_key("http://b||", "x")
    assert "http" not in key
    with pytest.raises(PublishError):
        PublishOptions(mode="nightly")  # type: ignore[arg-type]


# -- flows over two sandboxes -----------------------------------------------------------------


@pytest.fixture
def target() -> Any:
    # empty, without the minimal template: the tests copy in the descriptors they want
    with running_sandbox(students=0, template=False) as sb:
        yield sb


def test_what_if_lists_order_and_writes_nothing(
    prefect_harness: None, small_district: RunningSandbox, target: RunningSandbox, tmp_path: Path
) -> None:
    before = target.store().newest_change_version
    summary = run_publish(
        small_district,
        target,
        tmp_path / "lake",
        what_if=True,
        include="studentSchoolAttendanceEvents",
    )
    assert summary["status"] == "what if"
    plan = summary["plan"]
    order = [row["resource"] for row in plan]
    assert order[-1] == "/ed-fi/studentSchoolAttendanceEvents"
    assert order.index("/ed-fi/students") < order.index("/ed-fi/studentSchoolAttendanceEvents")
    assert plan[-1]["records"] == 531
    assert target.store().newest_change_version == before
    assert not (tmp_path / "lake").exists()


@contextmanager
def served_target(folder: Path) -> Iterator[tuple[Any, Store]]:
    """An empty sandbox in its own process, so it does not share this process's GIL."""
    db = folder / "target.sqlite"
    with sandbox_process(students=0, db=db) as info:
        yield SimpleNamespace(**info), Store(builtin_model(), str(db))


def test_full_publish_of_a_district_makes_the_target_equal(
    prefect_harness: None, tmp_path: Path
) -> None:
    """Every resource, descriptors included. (The 1,000-student publish is in
    bench/publish.py, which checks the same equality; here it would take minutes.)"""
    with (
        running_sandbox(students=150, seed=5) as source,
        served_target(tmp_path) as (
            target,
            target_store,
        ),
    ):
        summary = run_publish(
            source, target, tmp_path / "lake", mode="full", include_descriptors=True
        )
        assert summary["status"] == "completed", summary
        assert summary["failed"] == 0 and summary["written"] == summary["read"] > 25_000
        assert_same(source.store(), target_store, [r.path for r in source.store().model])
    print(
        f"full publish: {summary['written']} records in {summary['seconds']}s "
        f"({summary['records_per_second']}/s)"
    )


def test_incremental_sends_only_changes_with_deletes_and_key_changes(
    prefect_harness: None, small_district: RunningSandbox, target: RunningSandbox, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    scope = (
        "studentSectionAttendanceEvents, studentSchoolAssociations, studentSchoolAttendanceEvents"
    )
    first = run_publish(small_district, target, lake, include=scope, include_descriptors=True)
    assert first["status"] == "completed" and first["window"][0] is None
    paths = published(first)
    source = small_district.store()
    log = apply_changes(source, updates=5, inserts=3, deletes=7, key_changes=4, seed=3)
    small_district.sandbox.take_snapshot(source)  # as a DBA's next snapshot would
    second = run_publish(small_district, target, lake, include=scope, include_descriptors=True)
    assert second["status"] == "completed", second
    assert second["window"] == [first["window"][1] + 1, source.newest_change_version]
    assert_same(source, target.store(), paths)
    changed = sum(
        1
        for p in paths
        for r in source.iter_records(source.model[p])
        if int(r["_etag"]) >= second["window"][0]
    )
    assert second["written"] == changed < first["written"] // 10
    assert second["deleted"] == sum(len(v) for v in log.deleted.values()) == 7
    assert second["key_changed"] >= 4
    third = run_publish(small_district, target, lake, include=scope, include_descriptors=True)
    assert third["status"] == "up to date"


def test_target_faults_end_in_the_same_state(
    prefect_harness: None, small_district: RunningSandbox, tmp_path: Path
) -> None:
    faults = "error=0.04,throttle=0.03,retry_after=0.2,drop=0.02,token_ttl=3"
    with running_sandbox(students=0, faults=faults) as target:
        summary = run_publish(
            small_district,
            target,
            tmp_path / "lake",
            include=list(EVENTS),
            include_descriptors=True,
        )
        assert summary["status"] == "completed", summary
        assert summary["requests"]["retries"] > 0
        # each row counts its own retries and 429s (the rest are the run's reads of metadata)
        rows = summary["resources"]
        assert 0 < sum(r["retries"] for r in rows) <= summary["requests"]["retries"]
        assert sum(r["throttled"] for r in rows) > 0
        assert sum(r["requests"] for r in rows) <= sum(
            summary["requests"][side] for side in ("source", "target")
        )
        assert_same(small_district.store(), target.store(), published(summary))


def test_rejected_records_land_in_rejects_and_resend_after_the_fix(
    prefect_harness: None, small_district: RunningSandbox, target: RunningSandbox, tmp_path: Path
) -> None:
    from flows.publish import publish  # noqa: F401  (the flow module must import cleanly)

    source = small_district.store()
    copy_descriptors(source, target.store(), leave_out=EARLY)
    lake = tmp_path / "lake"
    bad = {
        p: {
            source.record_key(source.model[p], r)
            for r in source.iter_records(source.model[p])
            if r.get("attendanceEventCategoryDescriptor") == EARLY
        }
        for p in EVENTS
    }
    assert all(bad.values())
    with pytest.raises(PublishError, match="resend_rejects=True") as failure:
        run_publish(small_district, target, lake, include=list(EVENTS))
    assert "HTTP 400" in str(failure.value)
    state_dirs = list((lake / "publish").iterdir())
    assert len(state_dirs) == 1
    state = orjson.loads((state_dirs[0] / "state.json").read_bytes())
    assert "last_change_version" not in state
    run_id = state["pending_rejects"]["run_id"]
    rejected: dict[str, set[str]] = {}
    for p in EVENTS:
        lines = (state_dirs[0] / "rejects" / run_id / f"{p.strip('/')}.jsonl").read_bytes()
        for line in lines.splitlines():
            item = orjson.loads(line)
            assert item["status"] == 400 and EARLY in item["message"]
            assert item["body"]["attendanceEventCategoryDescriptor"] == EARLY
            rejected.setdefault(p, set()).add(source.record_key(source.model[p], item["body"]))
    assert rejected == bad

    copy_descriptors(source, target.store())  # the fix: the target learns the descriptor
    summary = run_publish(small_district, target, lake, include=list(EVENTS), resend_rejects=True)
    assert summary["status"] == "completed", summary
    assert summary["written"] == sum(len(v) for v in bad.values())
    assert_same(source, target.store(), list(EVENTS))
    state = orjson.loads((state_dirs[0] / "state.json").read_bytes())
    assert state["last_change_version"] >= 1 and "pending_rejects" not in state
    again = run_publish(small_district, target, lake, include=list(EVENTS))
    assert again["status"] == "up to date"


def test_forbidden_student_updates_resolve_through_the_retry_stage(
    prefect_harness: None, small_district: RunningSandbox, target: RunningSandbox, tmp_path: Path
) -> None:
    lake = tmp_path / "lake"
    first = run_publish(small_district, target, lake, include="students", include_descriptors=True)
    assert first["status"] == "completed" and "/ed-fi/studentSchoolAssociations" not in published(
        first
    )
    target.sandbox.faults = Faults.parse("forbid_students_until_enrolled=1")
    summary = run_publish(
        small_district,
        target,
        lake,
        mode="full",
        include="studentSchoolAssociations",
        include_descriptors=True,
    )
    assert summary["status"] == "completed", summary
    students = next(r for r in summary["resources"] if r["resource"] == "/ed-fi/students")
    assert students["written"] == 60 and students["failed"] == 0
    assert "60 retried" in students["message"]
    assert_same(small_district.store(), target.store(), published(summary))


def test_an_empty_target_without_descriptors_fails_fast_naming_the_option(
    prefect_harness: None, small_district: RunningSandbox, target: RunningSandbox, tmp_path: Path
) -> None:
    started = time.perf_counter()
    with pytest.raises(PublishError, match="include_descriptors=True") as failure:
        run_publish(small_district, target, tmp_path / "lake", include="studentSchoolAssociations")
    assert time.perf_counter() - started < 30
    assert re.search(r"no records in \d+ descriptor resources", str(failure.value))
    store = target.store()
    assert not any(next(iter(store.iter_records(r)), None) for r in store.model)


def test_refused_records_fail_their_task_and_their_row(
    prefect_harness: None, small_district: RunningSandbox, target: RunningSandbox, tmp_path: Path
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterKey,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.objects import StateType

    FINAL = {StateType.COMPLETED, StateType.FAILED}

    from blocks import LakeStorage
    from flows.publish import publish

    copy_descriptors(small_district.store(), target.store(), leave_out=EARLY)
    run: Any = publish(
        connection_block(small_district),
        connection_block(target),
        LakeStorage.model_validate({"url": str(tmp_path / "lake")}),
        include=list(EVENTS),
        return_state=True,
    )
    state = asyncio.run(run)
    assert state.is_failed()
    flow_run_id = state.state_details.flow_run_id

    async def read() -> tuple[dict[str, StateType | None], list[dict[str, Any]]]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    key=ArtifactFilterKey(any_=["edfi-publish-summary"])
                ),
            )
        mine = [a for a in artifacts if a.flow_run_id == flow_run_id]
        data = mine[0].data
        rows = orjson.loads(data) if isinstance(data, str) else data
        return {r.name: r.state_type for r in runs}, rows

    # Prefect records task-run states from events, after the flow has returned: on a
    # loaded machine the last ones land a moment later, so wait for them (bounded)
    wanted = {f"upserts:{p.strip('/')}" for p in EVENTS} | {"upserts:ed-fi/students"}
    deadline = time.monotonic() + 60
    tasks, rows = asyncio.run(read())
    while not all(tasks.get(name) in FINAL for name in wanted) and time.monotonic() < deadline:
        time.sleep(0.5)
        tasks, rows = asyncio.run(read())
    for p in EVENTS:
        assert tasks[f"upserts:{p.strip('/')}"] == StateType.FAILED
    assert tasks["upserts:ed-fi/students"] == StateType.COMPLETED
    status = {r["resource"]: r["status"] for r in rows}
    assert {status[p] for p in EVENTS} == {"failed"}
    assert status["/ed-fi/students"] == "published"
    assert all(r["failed"] > 0 for r in rows if r["resource"] in EVENTS)
    # the table lists failures first, then the largest resources, with the client's counts
    failing = [r["failed"] + r["blocked"] > 0 for r in rows]
    assert failing == sorted(failing, reverse=True) and failing[0]
    assert all(r["requests"] > 0 and r["throttled"] == 0 for r in rows if r["read"])
