"""Screenshots of what a user sees in the Prefect UI, for the README (``docs/img/*.png``).

Starts a real ``prefect server start`` on a free port with its own PREFECT_HOME
(a temporary folder: nothing of yours is touched), serves a small sandbox
district and an empty target sandbox, then runs what a user runs: extract
(which builds gold), gold again (nothing changed: Cached), publish into the
target, one gold run that fails (a lake with nothing in it), and a scheduled
extract deployment. Headless Chromium (Debian's ``chromium``, driven by
playwright) then photographs the UI pages the README points at.

    make screenshots        # installs playwright (the "screenshots" extra) first

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``); playwright's own
browser download is not used.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _wait_healthy(api: str, server: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"prefect server start exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"{api}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(1)
    raise SystemExit(f"The Prefect server at {api} did not answer within {timeout:.0f} s")


@contextmanager
def _quiet_console() -> Iterator[None]:
    """The deliberate failure's traceback goes to the server's logs, not this console."""
    handlers = [
        h
        for name in ("prefect.flow_runs", "prefect", "")
        for h in logging.getLogger(name).handlers
        if type(h).__name__ != "APILogHandler"
    ]
    levels = [h.level for h in handlers]
    for h in handlers:
        h.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for h, level in zip(handlers, levels, strict=True):
            h.setLevel(level)


def run_flows(work: Path, students: int) -> dict[str, Any]:
    """The runs the screenshots show; returns their ids."""
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from pydantic import SecretStr

    from blocks import EdFiConnection, LakeStorage
    from flows.extract import extract
    from flows.gold import gold
    from flows.publish import publish
    from sandbox.server import running_sandbox

    ids: dict[str, Any] = {}
    lake = LakeStorage(url=str(work / "lake"))
    with (
        running_sandbox(students=students, seed=1) as source,
        running_sandbox(students=0) as target,
    ):

        def conn(sb: Any) -> EdFiConnection:
            return EdFiConnection(
                base_url=sb.base_url,
                client_id=sb.client_id,
                client_secret=SecretStr(sb.client_secret),
            )

        print("extract (and gold) ...", flush=True)
        state = asyncio.run(
            extract(conn(source), lake, mode="full", run_gold=True, return_state=True)
        )
        ids["extract"] = state.state_details.flow_run_id
        print("gold again: nothing changed ...", flush=True)
        state = gold(lake, return_state=True)
        assert state.name == "Cached", state
        ids["gold_cached"] = state.state_details.flow_run_id
        print("publish ...", flush=True)
        state = asyncio.run(
            publish(
                conn(source),
                conn(target),
                LakeStorage(url=str(work / "publish-state")),
                include="studentSchoolAssociations",
                include_descriptors=True,
                mode="full",
                return_state=True,
            )
        )
        ids["publish"] = state.state_details.flow_run_id
        print("a gold run that fails on purpose (an empty lake) ...", flush=True)
        (work / "empty").mkdir()
        with _quiet_console():
            state = gold(LakeStorage(url=str(work / "empty")), return_state=True)
        assert state.is_failed(), state
        ids["failed"] = state.state_details.flow_run_id

    async def deployment() -> None:
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name="edfi-local", type="process"))
        dep = await extract.ato_deployment(
            name="nightly",
            cron="0 2 * * *",
            tags=["edfi", "district"],
            parameters={"connection": "district-api", "lake": "district-lake"},
        )
        await dep.apply(work_pool_name="edfi-local")

    asyncio.run(deployment())
    return ids


async def _artifact_id(key: str) -> str:
    from prefect import get_client

    async with get_client() as client:
        artifact = await client.read_latest_artifacts()
        for a in artifact:
            if a.key == key:
                return str(a.latest_id)
    raise SystemExit(f"No artifact {key!r} was made")


def shoot(ui: str, ids: dict[str, Any], out: Path, chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    summary = asyncio.run(_artifact_id("edfi-extract-summary"))
    # (file, page, text to wait for, viewport height, whole page)
    pages = [
        ("flow-runs.png", f"{ui}/runs", "edfi-extract", 1180, False),
        (
            "extract-run.png",
            f"{ui}/runs/flow-run/{ids['extract']}",
            "Beginning flow run",
            1000,
            False,
        ),
        ("extract-summary.png", f"{ui}/artifacts/artifact/{summary}", "resource", 760, False),
        ("gold-cached.png", f"{ui}/runs/flow-run/{ids['gold_cached']}", "is current", 620, False),
        ("failed-run.png", f"{ui}/runs/flow-run/{ids['failed']}", "GoldError", 760, False),
        ("deployments.png", f"{ui}/deployments", "nightly", 320, False),
    ]
    made: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 760})
        for name, url, text, height, whole in pages:
            # the summary table is wide: room for its counts beside the resource names
            width = 1900 if name == "extract-summary.png" else 1280
            page.set_viewport_size({"width": width, "height": height})
            page.goto(url)
            try:
                page.get_by_text(text).first.wait_for(timeout=60_000)
            except Exception:
                print(f"  {name}: {text!r} not seen on {url}", flush=True)
            page.wait_for_timeout(6_000)  # charts and the run graph draw after the data
            path = out / name
            page.screenshot(path=str(path), full_page=whole)
            made.append(path)
            print(f"  {path.relative_to(ROOT)} ({path.stat().st_size // 1024} KB)", flush=True)
        browser.close()
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--students", type=int, default=60)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    if not Path(args.chromium).exists():
        raise SystemExit(
            f"No Chromium at {args.chromium}: install it (Debian: apt-get install -y chromium) "
            "or pass --chromium PATH."
        )
    try:
        import playwright  # noqa: F401
    except ImportError:
        raise SystemExit("playwright is missing: pip install -e '.[screenshots]'") from None

    work = Path(tempfile.mkdtemp(prefix="edfi-screenshots-"))
    from sandbox.server import free_port

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    os.environ.update(
        {
            "PREFECT_HOME": str(work / "prefect-home"),
            "PREFECT_API_URL": api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            # INFO reaches the server (the UI's logs); the console shows warnings only
            "PREFECT_LOGGING_LEVEL": "INFO",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_FLOW_RUNS_LEVEL": "WARNING",
            "PREFECT_LOGGING_HANDLERS_CONSOLE_TASK_RUNS_LEVEL": "WARNING",
        }
    )
    prefect = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    log = (work / "server.log").open("wb")
    print(f"prefect server start on port {port} (PREFECT_HOME {work / 'prefect-home'}) ...")
    server = subprocess.Popen(
        [prefect, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    try:
        _wait_healthy(api, server, timeout=300)
        ids = run_flows(work, args.students)
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        print("screenshots ...", flush=True)
        shoot(f"http://127.0.0.1:{port}", ids, out, args.chromium)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
