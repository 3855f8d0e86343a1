"""Build and run a sandbox: data sets, the app, and a uvicorn server (thread or foreground)."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvicorn

from edfi.model import ApiModel, builtin_documents, builtin_model, load_model

from .app import Faults, Sandbox
from .store import Store
from .template import with_template

DEFAULT_YEAR = 2025


@dataclass
class RunningSandbox:
    """What a test or the demo needs: where it is, how to log in, and the sandbox itself."""

    base_url: str
    client_id: str
    client_secret: str
    sandbox: Sandbox

    def store(self, year: int | None = None, tenant: str = "") -> Store:
        return self.sandbox.store(year, tenant)

    def info(self) -> dict[str, Any]:
        return {
            "base_url": self.base_url,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }


# ``--openapi compact``: the built-in documents with only the resources the district fills
COMPACT = "compact"


def load_documents(openapi: list[str] | None) -> tuple[ApiModel, list[dict[str, Any]]]:
    """The OpenAPI documents to serve: given files (resources first), else the built-in ones."""
    if not openapi or openapi == [COMPACT]:
        compact = bool(openapi)
        return builtin_model(compact), builtin_documents(compact)
    else:
        docs = []
        for p in openapi:
            with open(p, encoding="utf-8-sig") as fh:
                docs.append(json.load(fh))
        if len(docs) == 1:
            docs.append(
                {
                    "openapi": "3.0.1",
                    "info": {"title": "Descriptors", "version": "1"},
                    "paths": {},
                    "components": {"schemas": {}},
                }
            )
    return load_model(*docs), docs


# Bump when the generator's output changes, so saved databases are regenerated.
DISTRICT_VERSION = 3


def _district_tag(students: int, seed: int, year: int, template: bool) -> str:
    return f"{students}:{seed}:{year}:v{DISTRICT_VERSION}" + ("" if template else ":empty")


def open_store(
    model: ApiModel, path: str, *, students: int, seed: int, year: int, template: bool = True
) -> Store:
    """A data set: reused from ``path`` when it already holds this district, else generated.

    ``template`` starts it as a fresh ODS does (the default descriptors and school
    years, then the district); without it a 0-student data set is completely empty,
    which tests that count every record they POST rely on.
    """
    tag = _district_tag(students, seed, year, template)
    if os.path.exists(path):
        store = Store(model, path, seed=seed + year)
        if store.get_meta("district") == tag:
            return store
        store.close()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    store = Store(model, path, seed=seed + year)
    missing: list[str] = []

    def checked() -> Iterator[tuple[str, list[dict[str, Any]]]]:
        if students <= 0:
            return
        from .district import generate

        for resource, batch in generate(students, seed=seed, school_year=year):
            if resource not in model:
                missing.append(resource)
                continue
            yield resource, batch

    if template:
        store.bulk_load(with_template(model, year, checked()))
    elif students > 0:
        store.bulk_load(checked())
    if missing:
        raise SystemExit(
            f"the OpenAPI document lacks resources the synthetic district needs "
            f"({', '.join(sorted(set(missing))[:5])} ...); serve it with --students 0"
        )
    store.set_meta("district", tag)
    return store


def build_sandbox(
    *,
    students: int = 1000,
    seed: int = 1,
    years: list[int] | None = None,
    tenants: list[str] | None = None,
    db: str | None = None,
    openapi: list[str] | None = None,
    faults: Faults | str | None = None,
    client_secret: str | None = None,
    template: bool = True,
) -> Sandbox:
    """A sandbox with one data set per (tenant, school year), each its own SQLite file.

    Each data set holds the minimal template (default descriptors, school years) and
    ``students`` students of the synthetic district; ``template=False`` leaves out the
    template (``students=0`` is then an empty API).
    """
    model, docs = load_documents(openapi)
    base = Path(db) if db else Path(tempfile.mkdtemp(prefix="edfi-sandbox-")) / "sandbox.sqlite"
    base.parent.mkdir(parents=True, exist_ok=True)
    stores: dict[tuple[str, int | None], Store] = {}
    year_list: list[int | None] = list(years) if years else [None]
    for tenant in tenants or [""]:
        for year in year_list:
            suffix = "".join(f".{p}" for p in (tenant, year) if p)
            path = str(base) + suffix
            stores[(tenant, year)] = open_store(
                model,
                path,
                students=students,
                seed=seed,
                year=year or DEFAULT_YEAR,
                template=template,
            )
    if isinstance(faults, str) or faults is None:
        faults = Faults.parse(faults)
    return Sandbox(
        model,
        docs,
        stores,
        client_secret=client_secret,
        tenants=tenants,
        years=years,
        faults=faults,
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def serve_in_thread(
    sandbox: Sandbox, host: str = "127.0.0.1", port: int = 0
) -> Iterator[RunningSandbox]:
    """Serve a sandbox from a background thread (for tests and the demo)."""
    port = port or free_port(host)
    config = uvicorn.Config(
        sandbox,
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        # the app reads X-Forwarded-* itself (Sandbox.public_base): uvicorn's proxy
        # middleware would only add a call to every request
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="edfi-sandbox", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the sandbox did not start on {host}:{port}")
        time.sleep(0.01)
    try:
        yield RunningSandbox(
            f"http://{host}:{port}", sandbox.client_id, sandbox.client_secret, sandbox
        )
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def running_sandbox(
    host: str = "127.0.0.1", port: int = 0, **kwargs: Any
) -> Iterator[RunningSandbox]:
    """Build a sandbox and serve it on a free port for the duration of the block."""
    sandbox = build_sandbox(**kwargs)
    with serve_in_thread(sandbox, host, port) as running:
        yield running


@contextmanager
def sandbox_process(
    *,
    students: int,
    db: str | Path,
    seed: int = 1,
    faults: str | None = None,
    client_secret: str | None = None,
    host: str = "127.0.0.1",
    template: bool = True,
    openapi: str | None = None,
) -> Iterator[dict[str, Any]]:
    """``edfi-sandbox serve`` in a child process (its own GIL: for benchmarks and big tests).

    Yields the JSON line it prints (``base_url``, ``client_id``, ``client_secret``,
    ``ready_seconds``) once the server answers, and stops it afterwards.
    """
    import subprocess
    import sys

    import httpx

    cmd = [
        sys.executable,
        "-m",
        "sandbox",
        "serve",
        "--host",
        host,
        "--port",
        str(free_port(host)),
        "--students",
        str(students),
        "--seed",
        str(seed),
        "--db",
        str(db),
    ]
    if faults:
        cmd += ["--faults", faults]
    if client_secret:
        cmd += ["--client-secret", client_secret]
    if not template:
        cmd.append("--empty")
    if openapi:
        cmd += ["--openapi", openapi]  # e.g. "compact" (see load_documents)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the sandbox process exited ({proc.wait()}) before serving")
        info: dict[str, Any] = json.loads(line)
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(info["base_url"] + "/", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield info
    finally:
        proc.terminate()
        proc.wait(timeout=30)
