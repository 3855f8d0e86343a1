"""Helpers of tests/test_deployments.py: the README's commands, a repository snapshot,
Prefect processes started in their own session and always stopped."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def readme_section(heading: str, readme: Path = ROOT / "README.md") -> str:
    """The text of one README section, up to the next heading of any level."""
    text = readme.read_text(encoding="utf-8")
    start = text.index(f"\n{heading}\n")
    nxt = re.search(r"\n#{2,3} ", text[start + len(heading) + 2 :])
    return text[start : start + len(heading) + 2 + (nxt.start() if nxt else len(text))]


def shell_blocks(section: str) -> str:
    """The ```sh blocks of a README section, in order (other fences are not run)."""
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    if not blocks:
        raise AssertionError("the section has no ```sh block")
    return "\n".join(blocks)


def snapshot_repository(dest: Path) -> Path:
    """A clone of this working tree as it is now (committed or not): the repository the
    workers' git pull step clones from is ``dest/origin``; the clone is returned."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    origin = dest / "origin"
    for raw in listed:
        if not raw:
            continue
        rel = raw.decode()
        src = ROOT / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        target = origin / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost"]
    subprocess.run([*git, "init", "-q", "-b", "main"], cwd=origin, check=True)
    subprocess.run([*git, "add", "-A"], cwd=origin, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "snapshot"], cwd=origin, check=True)
    checkout = dest / "checkout"
    subprocess.run(["git", "clone", "-q", str(origin), str(checkout)], check=True)
    return checkout


def prefect_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: this venv first on PATH, a fresh PREFECT_HOME,
    nothing of the test process's Prefect settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        PREFECT_HOME=str(home),
        # a worker asks for work every 2 s (default 10): the test waits less
        PREFECT_WORKER_QUERY_SECONDS="2",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def start(cmd: list[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
    """A process in its own session (so it and everything it starts can be stopped)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
        )


def _session(leader: int) -> list[psutil.Process]:
    """Every process of the session ``leader`` started, and their descendants (a flow run
    a worker starts may be in a session of its own)."""
    found: dict[int, psutil.Process] = {}
    for p in psutil.process_iter():
        try:
            if os.getsid(p.pid) == leader:
                found[p.pid] = p
                found.update((c.pid, c) for c in p.children(recursive=True))
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
    return list(found.values())


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process started by ``start``, everything in its session and their children:
    SIGTERM, then SIGKILL for whatever is left after ``grace`` seconds."""
    procs = _session(proc.pid)
    for p in procs:
        with contextlib.suppress(psutil.Error):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=grace)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)


def wait_healthy(api_url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{api_url}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"no Prefect server answered at {api_url} in {timeout:.0f}s")
        time.sleep(1)
