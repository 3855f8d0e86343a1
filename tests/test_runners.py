"""Task runners: every flow's bound, and gold on a real Dask cluster (2 worker processes)
building the same views as the thread pool while a Prefect global concurrency limit on
the lake's storage API holds."""

from __future__ import annotations

import datetime as dt
import importlib
from collections.abc import Iterator
from typing import Any

import cloudpickle
import pytest
from prefect.exceptions import ParameterTypeError
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.callables import parameter_schema

from edfi import amt
from flows import runners
from sandbox.server import running_sandbox
from tests.conftest import new_s3_lake, run_extract

YEARS = [2025, 2026]
AS_OF = dt.date(2025, 3, 3)
# what the school, student and attendance views read (the rest, descriptors too, are built
# empty or unmapped): a short pull
RESOURCES = [
    "ed-fi/schools",
    "ed-fi/localEducationAgencies",
    "ed-fi/students",
    "ed-fi/studentSchoolAssociations",
    "ed-fi/calendarDates",
    "ed-fi/sessions",
    "ed-fi/studentSchoolAttendanceEvents",
]


@pytest.mark.parametrize(
    ("module", "name", "workers"),
    [
        ("flows.extract", "extract", runners.API_FLOW_WORKERS),
        ("flows.publish", "publish", runners.API_FLOW_WORKERS),
        ("flows.send", "send", runners.API_FLOW_WORKERS),
        ("flows.lms", "lms", runners.API_FLOW_WORKERS),
        ("flows.bulk_load", "bulk_load", runners.API_FLOW_WORKERS),
        ("flows.bundle", "bundle", runners.API_FLOW_WORKERS),
        ("flows.gold", "gold", 2),
    ],
)
def test_every_flow_sets_a_bounded_thread_pool(module: str, name: str, workers: int) -> None:
    flow = getattr(importlib.import_module(module), name)
    assert isinstance(flow.task_runner, ThreadPoolTaskRunner)
    assert flow.task_runner._max_workers == workers


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("flows.extract", "extract"),
        ("flows.publish", "publish"),
        ("flows.send", "send"),
        ("flows.lms", "lms"),
        ("flows.bulk_load", "bulk_load"),
        ("flows.bundle", "bundle"),
        ("flows.gold", "gold"),
        ("flows.many", "extract_many"),
        ("flows.many", "publish_many"),
    ],
)
def test_every_flow_keeps_its_parameter_types_on_the_way_to_a_served_run(
    module: str, name: str
) -> None:
    """``flow.serve()`` hands the flow to a spawned process with cloudpickle, by value (the
    module's attribute is the Flow, not its function), and a function pickled by value
    carries only the globals its body uses. Under ``from __future__ import annotations``
    a type named only in the signature (publish's ``mode: Mode``) was then undefined there
    and every served run failed validation ("PublishModel is not fully defined")."""
    flow = getattr(importlib.import_module(module), name)
    travelled = cloudpickle.loads(cloudpickle.dumps(flow))
    assert travelled.fn is not flow.fn
    assert parameter_schema(travelled) == parameter_schema(flow)


def test_publish_parameters_validate_after_the_trip() -> None:
    from flows.publish import publish

    travelled = cloudpickle.loads(cloudpickle.dumps(publish))
    schema = parameter_schema(travelled).model_dump()
    assert schema["properties"]["mode"]["enum"] == ["incremental", "full"]
    assert schema["required"] == ["source", "target", "state"]
    given = {"source": "district", "target": "state-api", "state": "lake", "mode": "full"}
    validated = travelled.validate_parameters(given)
    assert {k: validated[k] for k in given} == given
    assert validated["include_descriptors"] is False
    with pytest.raises(ParameterTypeError, match="mode"):
        travelled.validate_parameters({**given, "mode": "sometimes"})


def test_limit_names_are_per_host_and_port() -> None:
    assert runners.api_limit("https://api.district.org/v7/") == "edfi-api-api.district.org-443"
    assert runners.api_limit("http://127.0.0.1:9000") == "edfi-api-127.0.0.1-9000"
    assert runners.api_limit("s3://bucket/lake") == "edfi-api-bucket-443"


def test_gold_asks_for_its_storage_limit_through_the_one_lookup(prefect_harness: None) -> None:
    """gold (sync) and the API flows (async) find per-API limits the same way: a missing
    or inactive limit is not passed on, an active one by its name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import (
        GlobalConcurrencyLimitCreate,
        GlobalConcurrencyLimitUpdate,
    )

    from flows.gold import _storage_limit

    endpoint = "http://minio.limits.test:9000"
    name = runners.api_limit(endpoint)
    assert _storage_limit(None) is None
    assert _storage_limit(endpoint) is None
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=2))
        try:
            assert _storage_limit(endpoint) == name
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(active=False))
            assert _storage_limit(endpoint) is None
        finally:
            client.delete_global_concurrency_limit_by_name(name)


def test_a_named_scheduler_without_prefect_dask_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import builtins

    real = builtins.__import__

    def no_dask(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("prefect_dask"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_dask)
    monkeypatch.setenv(runners.DASK_ADDRESS_ENV, "tcp://10.0.0.5:8786")
    with pytest.raises(RuntimeError, match=r"pip install 'edfi-flows\[dask\]'"):
        runners.file_parallel(2)


def test_the_storage_api_of_a_lake_is_its_endpoint(s3_endpoint: str) -> None:
    from blocks import LakeStorage
    from flows.gold import _storage_api

    s3 = new_s3_lake(s3_endpoint)
    assert _storage_api(s3, s3.lake()) == s3_endpoint
    bare = LakeStorage(url="s3://district-lake/edfi")
    assert _storage_api(bare, bare.lake()) == "s3://district-lake/edfi"
    local = LakeStorage(url="/data/lake")
    assert _storage_api(local, local.lake()) is None


@pytest.fixture(scope="module")
def two_year_lake(prefect_harness: None, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A small district of two school years, extracted into a local lake."""
    from blocks import LakeStorage

    url = str(tmp_path_factory.mktemp("two-years"))
    with running_sandbox(students=12, seed=11, years=YEARS) as sb:
        summary = run_extract(
            sb,
            url,
            mode="full",
            resources=RESOURCES,
            connection_kwargs={"school_years": YEARS},
        )
        assert summary["status"] == "completed"
    return LakeStorage(url=url)


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _views(block: Any) -> dict[str, tuple[Any, list[Any]]]:
    """Each committed view: its schema and its rows (DuckDB's parallel writer keeps no order)."""
    lake = block.lake()
    views = {}
    for v in amt.VIEWS:
        table = amt.read_view(lake, v)
        views[v] = (table.schema, sorted(table.to_pylist(), key=repr))
    return views


def test_gold_on_dask_builds_what_threads_build_within_the_storage_limit(
    two_year_lake: Any, dask_cluster: Any, prefect_harness: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import get_task_stream
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    import flows.gold as flows_gold
    from flows.gold import gold

    threaded = gold(two_year_lake, as_of=AS_OF)
    assert threaded["school_years"] == YEARS
    expected = _views(two_year_lake)
    assert sum(len(rows) for _, rows in expected.values()) == threaded["rows"] > 0

    # one slot for the whole storage API: the two years may not be built at once (the lake
    # is local to keep the test short; the flow takes it for an S3 endpoint's, and the
    # limit's name goes to the workers as the tasks' parameter)
    endpoint = "http://minio.district.test:9000"
    monkeypatch.setattr(flows_gold, "_storage_api", lambda block, store: endpoint)
    limit = runners.api_limit(endpoint)
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=limit, limit=1))
    try:
        on_dask = runners.on_dask(gold, dask_cluster.scheduler.address)
        with get_task_stream(dask_cluster) as stream:
            distributed = on_dask(two_year_lake, as_of=AS_OF, force=True)
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name(limit)

    assert distributed["version"] != threaded["version"]
    assert distributed["views"] == [
        {**v, "seconds": d["seconds"]}
        for v, d in zip(threaded["views"], distributed["views"], strict=True)
    ]
    assert distributed["unmapped_descriptors"] == threaded["unmapped_descriptors"]
    got = _views(two_year_lake)
    for view, (schema, rows) in expected.items():
        assert got[view][0].equals(schema), view
        assert got[view][1] == rows, view
    # each year ran in a Dask worker process, the two on different workers
    years = [t for t in stream.data if "build_year" in t["key"] or "gold" in t["key"]]
    assert len(years) == 2
    assert len({t["worker"] for t in years}) == 2
    # the limit held: the two builds never overlapped in time
    a, b = sorted(distributed["years"], key=lambda p: p["started"])
    assert {a["school_year"], b["school_year"]} == set(YEARS)
    assert dt.datetime.fromisoformat(a["finished"]) <= dt.datetime.fromisoformat(b["started"])
