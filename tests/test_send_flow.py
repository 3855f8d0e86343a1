"""The send flow against real sandboxes over HTTP: parity with lightbeam and its fixed failures.

The input is a 10-student district's enrollment slice (students, their school
and education-organization associations, and everything those reference,
descriptors included: 466 records in 49 resources), exported as lightbeam
would receive it from earmover. Each test sends it into an empty sandbox.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edfi.errors import SendError
from edfi.filesend import send_dependencies
from edfi.model import builtin_model
from edfi.sendstate import SendState, target_id
from sandbox.app import Faults
from sandbox.server import RunningSandbox, running_sandbox
from tests.conftest import connection_block, new_s3_lake
from tests.sendkit import export, snapshot

ROOT = Path(__file__).resolve().parents[1]
PEERS = Path(os.environ.get("EDFI_PEERS_VENV", ROOT / ".venv-peers"))
LIGHTBEAM = PEERS / "bin" / "lightbeam"
MODEL = builtin_model()
TOP = ("/ed-fi/studentSchoolAssociations", "/ed-fi/studentEducationOrganizationAssociations")
ALL_DEPS = send_dependencies(MODEL, list(MODEL.resources))
SLICE = sorted({*TOP, *(d for t in TOP for d in ALL_DEPS[t])})
TOTAL = 466
SENT: set[str] = set()  # the slice's resources with records


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, list[bytes]]]:
    folder = tmp_path_factory.mktemp("send-input") / "out"
    with running_sandbox(students=10, seed=7, template=False) as sb:
        counts = export(sb.store(), MODEL, folder, SLICE)
        want = snapshot(sb.store(), MODEL, counts)
    assert sum(counts.values()) == TOTAL
    SENT.update(counts)
    return folder, want


@pytest.fixture
def target() -> Iterator[RunningSandbox]:
    with running_sandbox(students=0, template=False) as sb:
        yield sb


def run_send(sb: RunningSandbox, lake: Path, **kwargs: Any) -> dict[str, Any]:
    from blocks import LakeStorage
    from flows.send import send

    return asyncio.run(
        send(connection=connection_block(sb), state=LakeStorage(url=str(lake)), **kwargs)
    )


async def task_states(flow_run_id: Any, expected: int) -> dict[str, str]:
    """The final state of each task run of a flow run, by name (the server records them late)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    states: dict[str, str] = {}
    async with get_client() as client:
        for _ in range(120):
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            states = {r.name: r.state.type.value for r in runs if r.state is not None}
            if len(states) >= expected and not {"PENDING", "RUNNING"} & set(states.values()):
                break
            await asyncio.sleep(0.5)
    return states


async def summary_table(flow_run_id: Any) -> list[dict[str, Any]]:
    """The rows of a flow run's summary table artifact."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["edfi-send-summary"]))
        )
    data = next(a.data for a in artifacts if a.flow_run_id == flow_run_id)
    rows: list[dict[str, Any]] = json.loads(data) if isinstance(data, str) else data
    return rows


def held(sb: RunningSandbox) -> dict[str, list[bytes]]:
    """The slice's resources that hold records in the source (the others stay empty)."""
    return snapshot(sb.store(), MODEL, [p for p in SLICE if p in SENT])


def copy_input(folder: Path, tmp: Path) -> Path:
    dest = tmp / "input"
    shutil.copytree(folder, dest)
    return dest


def edit_line(file: Path, line: int, change: dict[str, Any], drop: tuple[str, ...] = ()) -> bytes:
    lines = file.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[line - 1])
    record.update(change)
    for name in drop:
        record.pop(name, None)
    lines[line - 1] = json.dumps(record).encode() + b"\n"
    file.write_bytes(b"".join(lines))
    return lines[line - 1].rstrip(b"\n")


def test_send_leaves_the_target_exact_and_reruns_skip(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    folder, want = source
    target.sandbox.faults = Faults.parse("latency_ms=15")
    summary = run_send(target, tmp_path / "lake", input=str(folder))
    assert (summary["status"], summary["processed"], summary["sent"], summary["failed"]) == (
        "completed",
        TOTAL,
        TOTAL,
        0,
    )
    assert held(target) == want
    rows = {r["resource"]: r for r in summary["resources"]}
    # dependency order: nothing starts before what it needs has ended
    for path, row in rows.items():
        for dep in ALL_DEPS[path] & rows.keys():
            assert row["start"] >= rows[dep]["end"], (path, dep)
    # independent resources overlap in time (lightbeam sends one at a time)
    overlaps = [
        (a, b)
        for a in rows
        for b in rows
        if a < b
        and a not in ALL_DEPS[b]
        and b not in ALL_DEPS[a]
        and rows[a]["start"] < rows[b]["end"]
        and rows[b]["start"] < rows[a]["end"]
    ]
    assert len(overlaps) >= 10
    # the results file has lightbeam's shape
    again = run_send(
        target, tmp_path / "lake", input=str(folder), results_file=str(tmp_path / "r.json")
    )
    assert (again["sent"], again["skipped"], again["failed"]) == (0, TOTAL, 0)
    assert {r["status"] for r in again["resources"]} == {"unchanged"}
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["total_records_processed"] == TOTAL and doc["total_records_skipped"] == TOTAL
    assert doc["resources"]["students"] == {
        "records_processed": 10,
        "records_skipped": 10,
        "records_failed": 0,
    }


def test_throttled_failing_dropping_target_ends_exact(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    """429 (lightbeam never retries it), 5xx, dropped connections and 2-second tokens."""
    folder, want = source
    target.sandbox.faults = Faults.parse(
        "throttle=0.15,retry_after=0.01,error=0.05,drop=0.03,token_ttl=2,seed=3"
    )
    summary = run_send(target, tmp_path / "lake", input=str(folder), validate="schema")
    assert (summary["sent"], summary["failed"]) == (TOTAL, 0)
    assert summary["retries"] >= 40  # ~23% of ~470 POSTs were refused or cut at first
    # each resource's row counts the retries and 429s of its own writes
    rows = summary["resources"]
    assert 0 < sum(r["retries"] for r in rows) <= summary["retries"]
    assert sum(r["throttled"] for r in rows) > 0
    assert sum(r["requests"] for r in rows) >= TOTAL
    assert held(target) == want


def test_rejected_record_is_resent_next_run_and_a_change_updates_in_place(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    folder = copy_input(source[0], tmp_path)
    want = source[1]
    students = folder / "students.jsonl"
    original = students.read_bytes().splitlines()[3]
    bad_line = edit_line(students, 4, {"birthSexDescriptor": "uri://ed-fi.org/SexDescriptor#X"})
    # mode=send: no validation, so the target itself refuses it (400)
    flow_state = run_send(
        target, tmp_path / "lake", input=str(folder), mode="send", return_state=True
    )
    assert flow_state.is_failed()
    message = str(flow_state.result(raise_on_failure=False))
    # Prefect's task states tell the truth: the resources with failed records are Failed
    resources = len([p for p in SENT if not MODEL[p].is_descriptor])  # + 1 for descriptors
    tasks = asyncio.run(task_states(flow_state.state_details.flow_run_id, resources + 1))
    assert {name for name, state in tasks.items() if state != "COMPLETED"} == {
        "send /ed-fi/students",
        "send /ed-fi/studentSchoolAssociations",
        "send /ed-fi/studentEducationOrganizationAssociations",
    }
    assert tasks["send /ed-fi/students"] == "FAILED"
    # the summary table: the three failing resources first, then the largest
    table = asyncio.run(summary_table(flow_state.state_details.flow_run_id))
    assert [r["failed"] for r in table[:4]] == [1, 1, 1, 0]
    rest = [r["processed"] for r in table[3:]]
    assert rest == sorted(rest, reverse=True)
    assert all(r["requests"] >= r["sent"] for r in table) and table[0]["requests"] > 0
    assert tasks["send /ed-fi/schools"] == "COMPLETED"
    assert [s for n, s in tasks.items() if n.startswith("descriptors (")] == ["COMPLETED"]
    assert message.startswith(
        "3 records failed (students 1, studentEducationOrganizationAssociations 1, "
        "studentSchoolAssociations 1). Most common: "
    )
    assert "SexDescriptor#X' does not exist" in message
    assert f"first at {folder}/students.jsonl:4)." in message
    rejects = Path(message.split("The rejected records are in ")[1].split(" Fix them")[0][:-1])
    found = sorted(
        (r["resource"], r["origin"]["line"], r["status"], r["blocked_by"])
        for f in rejects.rglob("*.jsonl")
        for r in map(json.loads, f.read_text().splitlines())
    )
    student = json.loads(bad_line)["studentUniqueId"]
    parent = f'/ed-fi/students {{"studentUniqueId":"{student}"}}'
    assert found == [
        ("/ed-fi/studentEducationOrganizationAssociations", 4, None, parent),
        ("/ed-fi/studentSchoolAssociations", 4, None, parent),
        ("/ed-fi/students", 4, 400, None),
    ]
    (student_reject,) = map(
        json.loads, (rejects / "ed-fi" / "students.jsonl").read_text().splitlines()
    )
    assert student_reject["body"] == json.loads(bad_line)
    assert student_reject["origin"] == {"file": str(students), "line": 4}
    # the fix lands in the target: the next run sends exactly the three, skips the rest
    with httpx.Client() as c:
        token = c.post(
            f"{target.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(target.client_id, target.client_secret),
        ).json()["access_token"]
        r = c.post(
            f"{target.base_url}/data/v3/ed-fi/sexDescriptors",
            json={
                "namespace": "uri://ed-fi.org/SexDescriptor",
                "codeValue": "X",
                "shortDescription": "X",
            },
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 201, r.text
    second = run_send(target, tmp_path / "lake", input=str(folder), mode="send")
    assert (second["sent"], second["skipped"], second["failed"]) == (3, TOTAL - 3, 0)
    # a changed record: sent again, replacing the old one (same id, new body)
    store = target.store()
    before = store.find(
        MODEL["/ed-fi/students"], {"studentUniqueId": json.loads(original)["studentUniqueId"]}
    )
    assert before is not None
    students.write_bytes(students.read_bytes().replace(bad_line, original))
    third = run_send(target, tmp_path / "lake", input=str(folder))
    assert (third["sent"], third["skipped"], third["failed"]) == (1, TOTAL - 1, 0)
    after = store.find(MODEL["/ed-fi/students"], {"studentUniqueId": before["studentUniqueId"]})
    assert after is not None and after["id"] == before["id"]
    assert after["birthSexDescriptor"] == json.loads(original)["birthSexDescriptor"]
    got = held(target)
    got.pop("/ed-fi/sexDescriptors")
    assert got == {k: v for k, v in want.items() if k != "/ed-fi/sexDescriptors"}


def test_invalid_records_are_rejects_that_can_be_fixed_and_resent(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    folder = copy_input(source[0], tmp_path)
    want = source[1]
    bad = edit_line(folder / "students.jsonl", 2, {}, drop=("lastSurname",))
    with pytest.raises(SendError, match=r"^3 records failed .*LastSurname is required"):
        run_send(target, tmp_path / "lake", input=str(folder))
    runs = list((tmp_path / "lake" / "_send_rejects").glob("*/*"))
    assert len(runs) == 1
    rejected = runs[0] / "ed-fi" / "students.jsonl"
    (reject,) = map(json.loads, rejected.read_text().splitlines())
    assert reject["body"] == json.loads(bad)
    assert (reject["status"], reject["cause"], reject["origin"]["line"]) == (
        None,
        "invalid: required",
        2,
    )
    assert reject["message"] == "LastSurname is required. (at lastSurname)"
    # fix the record in the rejects file and send just the rejects
    record = json.loads(bad)
    record["lastSurname"] = "Fixed"
    reject["body"] = record
    rejected.write_text(json.dumps(reject) + "\n")
    resent = run_send(target, tmp_path / "lake", resend_rejects=True)
    assert (resent["processed"], resent["sent"], resent["failed"]) == (3, 3, 0)
    got = held(target)
    fixed = [json.loads(b) for b in got["/ed-fi/students"]]
    assert [
        s["lastSurname"] for s in fixed if s["studentUniqueId"] == record["studentUniqueId"]
    ] == ["Fixed"]
    got.pop("/ed-fi/students")
    assert got == {k: v for k, v in want.items() if k != "/ed-fi/students"}


def test_max_failures_stops_before_anything_is_sent(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    folder = copy_input(source[0], tmp_path)
    for line in (1, 2, 3):
        edit_line(folder / "students.jsonl", line, {}, drop=("firstName",))
    with pytest.raises(SendError, match=r"^2 records failed \(students 2\)\. Most common: "):
        run_send(target, tmp_path / "lake", input=str(folder), max_failures=2)
    assert all(v == [] for v in held(target).values())


def test_input_and_state_on_s3(
    prefect_harness: None,
    source: tuple[Path, Any],
    target: RunningSandbox,
    s3_endpoint: str,
) -> None:
    from flows.send import send

    folder, want = source
    data = new_s3_lake(s3_endpoint, "send-input")
    lake = new_s3_lake(s3_endpoint, "send-state")
    fs = data.lake().fs
    for file in folder.rglob("*.jsonl"):
        fs.put_file(str(file), f"{data.url.removeprefix('s3://')}/{file.relative_to(folder)}")
    first = asyncio.run(send(input=data, connection=connection_block(target), state=lake))
    assert (first["sent"], first["failed"]) == (TOTAL, 0)
    assert held(target) == want
    again = asyncio.run(send(input=data, connection=connection_block(target), state=lake))
    assert (again["sent"], again["skipped"]) == (0, TOTAL)


def test_delete_mode_removes_in_reverse_order(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    folder, _ = source
    run_send(target, tmp_path / "lake", input=str(folder), validate="schema")
    removed = run_send(target, tmp_path / "lake", input=str(folder), mode="delete")
    assert (removed["deleted"], removed["failed"]) == (TOTAL, 0)
    assert all(v == [] for v in held(target).values())
    assert len(held(target)) == 49
    rows = {r["resource"]: r for r in removed["resources"]}
    for path, row in rows.items():
        for dep in ALL_DEPS[path] & rows.keys():
            assert rows[dep]["start"] >= row["end"], (dep, path)
    # the state forgot them: sending again sends everything
    again = run_send(target, tmp_path / "lake", input=str(folder), validate="schema")
    assert again["sent"] == TOTAL


def test_a_lightbeam_config_runs_unchanged(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    from flows.send import send

    folder, want = source
    config = tmp_path / "lightbeam.yaml"
    config.write_text(
        "state_dir: ./state\n"
        f"data_dir: {folder}\n"
        "edfi_api:\n"
        f"  base_url: {target.base_url}\n"
        "  mode: shared_instance\n"
        "  client_id: ${SEND_TEST_KEY}\n"
        "  client_secret: ${SEND_TEST_SECRET}\n"
        "connection:\n  pool_size: 4\n"
    )
    summary = asyncio.run(
        send(
            lightbeam_config=str(config),
            lightbeam_params={
                "SEND_TEST_KEY": target.client_id,
                "SEND_TEST_SECRET": target.client_secret,
            },
        )
    )
    assert (summary["sent"], summary["failed"]) == (TOTAL, 0)
    assert held(target) == want
    assert (tmp_path / "state" / "_send_state").is_dir()


KILL_DRIVER = """
import asyncio, sys
from pydantic import SecretStr
from edfi.client import Connection, EdFiClient
from edfi.filesend import FileSend, FileSendOptions, select, send_dependencies
from edfi.jsonfiles import discover
from edfi.schedule import run_gated
from edfi.send import Sender, SendOptions
from edfi.sendstate import SendState

base, key, secret, folder, lake, target = sys.argv[1:7]

async def main():
    conn = Connection(base, key, SecretStr(secret), max_concurrency=4)
    async with EdFiClient(conn) as client:
        await client.discover()
        model = await client.load_model()
        inputs = discover(folder, model)
        chosen = select(model, inputs.resources())
        options = SendOptions(concurrency=4, per_resource=4)
        sender = Sender(client, model, client.url("dataManagementApi"), options)
        job = FileSend(model, inputs, sender, state=SendState(lake, target),
                       options=FileSendOptions(flush_every=10))
        await run_gated(send_dependencies(model, chosen), job.send_resource, parallelism=2)

asyncio.run(main())
"""


def test_kill_9_mid_send_then_rerun_leaves_the_target_exact(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    folder, want = source
    lake = tmp_path / "lake"
    tid = target_id(target.base_url)
    target.sandbox.faults = Faults.parse("latency_ms=25")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILL_DRIVER,
            target.base_url,
            target.client_id,
            target.client_secret,
            str(folder),
            str(lake),
            tid,
        ],
        cwd=ROOT,
    )
    state_root = lake / "_send_state" / tid
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if (
                len(list(state_root.glob("ed-fi/*/seg-*")))
                + len(list(state_root.glob("ed-fi/*/base-*")))
                >= 12
            ):
                break
            assert proc.poll() is None, "the send finished before it could be killed"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    partial = held(target)
    assert 0 < sum(len(v) for v in partial.values()) < TOTAL
    kept = sum(len(SendState(str(lake), tid).load(p)) for p in SLICE)
    assert kept > 0
    target.sandbox.faults = Faults()
    summary = run_send(target, lake, input=str(folder))
    assert (summary["skipped"], summary["sent"], summary["failed"]) == (kept, TOTAL - kept, 0)
    assert held(target) == want


@pytest.mark.skipif(not LIGHTBEAM.exists(), reason="lightbeam is not installed in .venv-peers")
def test_parity_with_lightbeam_send(
    prefect_harness: None, source: tuple[Path, Any], target: RunningSandbox, tmp_path: Path
) -> None:
    folder, want = source
    run_send(target, tmp_path / "lake", input=str(folder))
    ours = held(target)
    with running_sandbox(students=0, template=False) as theirs:
        config = tmp_path / "lightbeam.yaml"
        config.write_text(
            f"data_dir: {folder}/\nstate_dir: {tmp_path}/lb-state\n"
            f"edfi_api:\n  base_url: {theirs.base_url}\n  mode: shared_instance\n"
            f"  client_id: {theirs.client_id}\n  client_secret: {theirs.client_secret}\n"
            "connection:\n  verify_ssl: False\n"
        )
        done = subprocess.run(
            [
                str(LIGHTBEAM),
                "send",
                "-c",
                str(config),
                "--results-file",
                str(tmp_path / "lb.json"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        lightbeams = held(theirs)
    assert json.loads((tmp_path / "lb.json").read_text())["total_records_failed"] == 0
    assert ours == lightbeams == want
