"""Deployments against a real Prefect server and real process workers.

One module-scoped setup runs the README's "Deploying" commands as written (its
```sh blocks, taken from README.md) in a clone of this working tree: a
``prefect server start`` on a free port with its own PREFECT_HOME, the blocks,
``prefect deploy --all`` from prefect.yaml, a process worker whose pull steps
git-clone the repository and install its requirements, and the nightly
deployment run to completion. A second worker joins for the scale-out test; the
notification test reuses the server. Every process the module starts is stopped
at the end, whatever happened.

Only these README values are replaced, so that the commands run here: the port
4200 (a free one), the example API's URL and credentials (a sandbox's) and the
example S3 lake (a temporary folder).
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from pydantic import SecretStr

from sandbox.server import RunningSandbox, free_port, running_sandbox
from tests.deploykit import (
    ROOT,
    prefect_env,
    readme_section,
    shell_blocks,
    snapshot_repository,
    start,
    stop,
    wait_healthy,
)

pytestmark = pytest.mark.timeout(900)

SUBMITTED = re.compile(r"Worker '([^']+)' submitting flow run '([0-9a-f-]{36})'")
# what the scale-out children pull: enough to be real, small enough to be quick
CHILD_RESOURCES = ["ed-fi/schools", "ed-fi/students"]


@dataclass
class Deployed:
    api_url: str
    env: dict[str, str]
    checkout: Path
    tmp: Path
    sandbox: RunningSandbox
    readme_rc: int
    readme_log: Path
    worker_logs: list[Path]


def _readme_script(port: int, sb: RunningSandbox, lake: Path) -> str:
    script = shell_blocks(readme_section("### Deploying"))
    for old, new in (
        ("4200", str(port)),
        ("https://api.example.org/v7.3/api", sb.base_url),
        ('client_id="key"', f'client_id="{sb.client_id}"'),
        ('client_secret="secret"', f'client_secret="{sb.client_secret}"'),
        ("s3://district-lake/edfi", str(lake)),
    ):
        assert old in script, f"the README's Deploying commands no longer hold {old!r}"
        script = script.replace(old, new)
    return script


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    tmp = tmp_path_factory.mktemp("deployments")
    checkout = snapshot_repository(tmp)
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    log = tmp / "readme.log"
    with running_sandbox(students=10, seed=3, openapi=["compact"]) as sb:
        env = prefect_env(tmp / "home")
        script = _readme_script(port, sb, tmp / "lake")
        # -x with a time stamp per command: the log says where the time went
        readme = start(
            ["bash", "-xec", "PS4='+ $(date +%T) '\n" + script], log, cwd=checkout, env=env
        )
        second = None
        try:
            try:
                rc = readme.wait(timeout=600)
            except subprocess.TimeoutExpired:
                rc = -1
            run_env = {**env, "PREFECT_API_URL": api_url}
            second_log = tmp / "second-worker.log"
            if rc == 0:
                second = start(
                    [
                        "prefect",
                        "worker",
                        "start",
                        "--pool",
                        "edfi-process",
                        "--limit",
                        "2",
                        "--name",
                        "second-worker",
                    ],
                    second_log,
                    cwd=tmp,
                    env=run_env,
                )
            yield Deployed(
                api_url=api_url,
                env=run_env,
                checkout=checkout,
                tmp=tmp,
                sandbox=sb,
                readme_rc=rc,
                readme_log=log,
                worker_logs=[checkout / "prefect-worker.log", second_log],
            )
        finally:
            if second is not None:
                stop(second)
            stop(readme)  # the server and the first worker run in its session


def _client(api_url: str) -> Any:
    from prefect.client.orchestration import PrefectClient

    return PrefectClient(api_url)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _flow_runs(api_url: str, deployment: str) -> list[Any]:
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    _, name = deployment.split("/")
    async with _client(api_url) as client:
        dep = await client.read_deployment_by_name(deployment)
        assert dep.name == name
        return list(
            await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[dep.id]))
            )
        )


def test_readme_deploying_commands_work_as_written(deployed: Deployed) -> None:
    log = deployed.readme_log.read_text(errors="replace")
    assert deployed.readme_rc == 0, (
        f"the README's commands failed ({deployed.readme_rc}):\n{log[-4000:]}"
    )
    wait_healthy(deployed.api_url, timeout=10)
    runs = _run(_flow_runs(deployed.api_url, "edfi-extract/nightly"))
    # the README's run, and the schedule's next runs (02:00 on the coming days)
    assert [r.state.name for r in runs if not r.state.is_scheduled()] == ["Completed"]
    assert all(
        r.expected_start_time.astimezone(ZoneInfo("America/Chicago")).hour == 2
        for r in runs
        if r.state.is_scheduled()
    )
    # the worker ran the code it cloned, with the pull steps prefect.yaml names
    worker = (deployed.checkout / "prefect-worker.log").read_text(errors="replace")
    assert "Executing deployment step: git_clone" in worker
    assert "Executing deployment step: pip_install_requirements" in worker
    # the nightly run pulled the sandbox into the lake and built gold after it
    lake = deployed.tmp / "lake"
    assert sorted(p.name for p in (lake / "runs").glob("*.json"))
    assert (lake / "gold" / "_manifest.json").is_file()
    summary = json.loads(next((lake / "runs").glob("*.json")).read_text())
    students = len(
        list(
            deployed.sandbox.store().iter_records(
                deployed.sandbox.sandbox.model.find("ed-fi/students")
            )
        )
    )
    rows = {r["resource"]: r for r in summary["resources"]}
    assert rows["ed-fi/students"]["records"] == students == 10

    async def deployments() -> dict[str, Any]:
        async with _client(deployed.api_url) as client:
            found = await client.read_deployments()
            return {d.name: d for d in found}

    deps = _run(deployments())
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    assert sorted(deps) == sorted(d["name"] for d in spec["deployments"])
    nightly = deps["nightly"]
    assert nightly.work_queue_name == "edfi-lake" and "extract" in nightly.tags
    assert [s.active for s in nightly.schedules] == [True]
    assert all(not s.active for s in deps["full-refresh"].schedules)
    # parameter descriptions from the flows' docstrings reach the UI's form
    props = deps["all-districts"].parameter_openapi_schema["properties"]
    assert "Ed-Fi Connection" in props["districts"]["description"]


def _save_blocks(api_url: str, blocks: dict[str, Any]) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        for name, block in blocks.items():
            block.save(name, overwrite=True)


def _windows(api_url: str, run_ids: list[Any]) -> dict[Any, tuple[Any, Any]]:
    """Each run's working window: its first task run's start to its last one's end."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async def read() -> dict[Any, tuple[Any, Any]]:
        found = {}
        async with _client(api_url) as client:
            for rid in run_ids:
                tasks = await client.read_task_runs(
                    flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[rid]))
                )
                starts = [t.start_time for t in tasks if t.start_time]
                ends = [t.end_time for t in tasks if t.end_time]
                assert starts and ends, f"run {rid} has no finished task runs"
                found[rid] = (min(starts), max(ends))
        return found

    return _run(read())


def test_extract_many_spreads_over_workers_within_each_api_limit(deployed: Deployed) -> None:
    assert deployed.readme_rc == 0, "the README's commands failed; see the first test"
    from blocks import EdFiConnection, LakeStorage

    with (
        running_sandbox(students=5, seed=11, years=[2024, 2025], openapi=["compact"]) as a,
        running_sandbox(students=6, seed=12, openapi=["compact"]) as b,
    ):
        c = deployed.sandbox  # the README's sandbox, asked with a wrong secret
        lakes = deployed.tmp / "lakes"
        _save_blocks(
            deployed.api_url,
            {
                "district-a": EdFiConnection(
                    base_url=a.base_url,
                    client_id=a.client_id,
                    client_secret=SecretStr(a.client_secret),
                    school_years=[2024, 2025],
                ),
                "district-b": EdFiConnection(
                    base_url=b.base_url,
                    client_id=b.client_id,
                    client_secret=SecretStr(b.client_secret),
                ),
                "district-c": EdFiConnection(
                    base_url=c.base_url, client_id=c.client_id, client_secret=SecretStr("wrong")
                ),
            },
        )
        _save_blocks(
            deployed.api_url,
            {
                d: LakeStorage(url=str(lakes / d))
                for d in ("district-a", "district-b", "district-c")
            },
        )
        started = time.monotonic()
        run = subprocess.run(
            [
                "prefect",
                "deployment",
                "run",
                "edfi-extract-many/all-districts",
                "--params",
                json.dumps(
                    {
                        "districts": ["district-a", "district-b", "district-c"],
                        "per_api_limit": 1,
                        "parameters": {"resources": CHILD_RESOURCES},
                    }
                ),
                "--watch",
                "--watch-timeout",
                "500",
            ],
            cwd=deployed.tmp,
            env=deployed.env,
            capture_output=True,
            text=True,
            timeout=560,
        )
        seconds = time.monotonic() - started
    print(f"extract-many over 3 districts (4 runs): {seconds:.0f}s")

    parents = _run(_flow_runs(deployed.api_url, "edfi-extract-many/all-districts"))
    assert len(parents) == 1, run.stdout + run.stderr
    parent = parents[0]
    assert parent.state.name == "Failed", run.stdout + run.stderr
    assert "district-c" in parent.state.message
    assert "district-a" not in parent.state.message and "district-b" not in parent.state.message

    async def table() -> list[dict[str, Any]]:
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        async with _client(deployed.api_url) as client:
            found = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[parent.id])
                )
            )
        [artifact] = [x for x in found if x.key == "edfi-extract-many"]
        return json.loads(artifact.data)

    rows = _run(table())

    def count(sb: RunningSandbox, year: int | None) -> int:
        model = sb.sandbox.model
        return sum(len(list(sb.store(year).iter_records(model.find(r)))) for r in CHILD_RESOURCES)

    assert [(r["district"], r["school_year"], r["status"]) for r in rows] == [
        ("district-c", None, "Failed"),
        ("district-a", 2024, "Completed"),
        ("district-a", 2025, "Completed"),
        ("district-b", None, "Completed"),
    ]
    assert [r["records"] for r in rows] == [0, count(a, 2024), count(a, 2025), count(b, None)]
    assert rows[1]["records"] > 5 and rows[3]["resources"] == len(CHILD_RESOURCES)
    assert "401" in rows[0]["message"] or "credentials" in rows[0]["message"].lower()

    # every child ran on a worker; both workers took some
    children = _run(_flow_runs(deployed.api_url, "edfi-extract/district"))
    assert len(children) == 4
    ran_on: dict[str, str] = {}
    for path in deployed.worker_logs:
        for worker, run_id in SUBMITTED.findall(path.read_text(errors="replace")):
            ran_on[run_id] = worker
    workers = {ran_on[str(ch.id)] for ch in children}
    assert len(workers) == 2, f"all children ran on {workers}"

    # never more than the per-API limit (1) against one API: district-a's two years
    # worked one after the other (task runs' times, from the API)
    by_name = {ch.name: ch for ch in children}
    first, second = sorted(
        _windows(
            deployed.api_url, [by_name["district-a 2024"].id, by_name["district-a 2025"].id]
        ).values()
    )
    assert first[1] <= second[0], f"two runs worked against one API at once: {first}, {second}"


class _Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def _python(
    deployed: Deployed, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """This Python in the deployed checkout, against the deployment's Prefect server."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=deployed.checkout,
        env=deployed.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_failure_notification_fires_a_webhook(deployed: Deployed) -> None:
    assert deployed.readme_rc == 0, "the README's commands failed; see the first test"
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    _Receiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        hook = f"http://127.0.0.1:{server.server_address[1]}/edfi"
        created = _python(deployed, "-m", "flows.notify", "--webhook", hook)
        assert created.returncode == 0, created.stdout + created.stderr
        # running it again replaces the automation (one of that name)
        again = _python(deployed, "-m", "flows.notify", "--webhook", hook)
        assert again.returncode == 0, again.stdout + again.stderr

        async def automations() -> list[Any]:
            async with _client(deployed.api_url) as client:
                return list(await client.read_automations_by_name("edfi-flows failed or crashed"))

        assert len(_run(automations())) == 1
        # a failing run of an edfi flow: a block that does not exist
        failing = _python(
            deployed,
            "-c",
            "import asyncio; from flows.extract import extract; "
            "asyncio.run(extract(connection='no-such-block', lake='no-such-lake'))",
            timeout=180,
        )
        assert failing.returncode != 0
        deadline = time.monotonic() + 90
        while not _Receiver.received and time.monotonic() < deadline:
            time.sleep(1)
        assert _Receiver.received, "no notification reached the webhook in 90s"
        message = _Receiver.received[0]
        assert message["subject"].startswith("edfi-extract run ")
        assert message["subject"].endswith(" ended Failed")
        assert "no-such-block" in message["body"] and "/runs/flow-run/" in message["body"]
    finally:
        server.shutdown()
        server.server_close()


def test_requirements_match_pyproject() -> None:
    """The git pull step installs requirements.txt: it must be pyproject's list."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = [
        line.strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == deps


@pytest.mark.parametrize("path", ["prefect.yaml", "deploy/docker.yaml"])
def test_every_deployment_names_a_flow_and_its_parameters(path: str) -> None:
    """Both deployment files (the Docker one cannot be deployed here: no Docker engine)
    name flows that load and parameters those flows take."""
    import inspect

    from prefect.flows import load_flow_from_entrypoint

    spec = yaml.safe_load((ROOT / path).read_text())
    names = [d["name"] for d in spec["deployments"]]
    assert len(names) == len(set(names))
    for dep in spec["deployments"]:
        flow = load_flow_from_entrypoint(str(ROOT / dep["entrypoint"]))
        accepted = set(inspect.signature(flow.fn).parameters)
        assert set(dep.get("parameters") or {}) <= accepted, dep["name"]
        assert "edfi" in dep["tags"], dep["name"]
        assert dep.get("schedules") or "scale-out" in dep["tags"], dep["name"]


def test_scale_out_refuses_bad_parameters_before_starting_anything(prefect_harness: None) -> None:
    """Bad lists, templates, limits and missing blocks fail the parent at once, naming the
    problem; no child run is created (there is no deployment to create one here)."""
    from edfi.errors import BlockError
    from flows.many import extract_many, publish_many

    cases: list[tuple[Any, str]] = [
        (lambda: extract_many([]), "must be a non-empty list of block names"),
        (lambda: extract_many(["a", "b", "a"]), "names a more than once"),
        (lambda: extract_many(["a", "b"], lake="one-lake"), "every district would write the one"),
        (lambda: extract_many(["a"], lake="{county}-lake"), "use {district} for the name"),
        (lambda: extract_many(["a"], parameters={"lake": "x"}), "parameters must not set lake"),
        (lambda: extract_many(["a"], per_api_limit=0), "per_api_limit must be at least 1"),
        (lambda: publish_many([], target="t"), "sources must be a non-empty list"),
        (lambda: publish_many(["s"], target="t", target_limit=0), "target_limit must be at least"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)):
            asyncio.run(call())
    with pytest.raises(BlockError, match=r"No saved 'Ed-Fi Connection' block is named 'gone-a'"):
        asyncio.run(extract_many(["gone-a", "gone-b"]))


# what a re-run leaves out: the processes that keep running and the run that waits
LONG_RUNNING = ("prefect server start", "prefect worker start", "prefect deployment run")


def test_readme_deploying_commands_can_run_again(deployed: Deployed) -> None:
    """An operator re-runs the setup (a new block, a changed prefect.yaml): every command
    of the README's Deploying block but the long-running ones must succeed a second time
    against the server the first run set up, and leave the lake queue at one run."""
    assert deployed.readme_rc == 0, "the README's commands failed; see the first test"
    port = int(deployed.api_url.split(":")[2].split("/")[0])
    script = _readme_script(port, deployed.sandbox, deployed.tmp / "lake")
    again = "\n".join(line for line in script.splitlines() if not line.startswith(LONG_RUNNING))
    assert len(script.splitlines()) - len(again.splitlines()) == len(LONG_RUNNING)
    done = subprocess.run(
        ["bash", "-xec", again],
        cwd=deployed.checkout,
        env=deployed.env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    # the queue existed, so the second command of the pair kept its limit
    assert "Work queue with name: 'edfi-lake' already exists." in output
    assert "set-concurrency-limit edfi-lake 1" in output

    async def queue() -> Any:
        async with _client(deployed.api_url) as client:
            return await client.read_work_queue_by_name("edfi-lake", work_pool_name="edfi-process")

    assert _run(queue()).concurrency_limit == 1
