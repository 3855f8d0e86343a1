"""Benchmark: the send flow against lightbeam (``send`` and ``validate``), on the same files.

The input is the 1,000-student district as JSONL, one file per resource, as
lightbeam reads it (fetched from a source sandbox once, cached, not timed).
Both clients run with their default settings: lightbeam's 8 connections and
one resource at a time; the flow's write cap of 32 and 8 resources at once.

- ``send``: each client sends every file into its own fresh, empty sandbox
  (``python -m sandbox serve`` in its own process) that adds ``--latency`` ms
  to every data response; afterwards the target is compared with the source
  record by record. The flow runs ``validate+send`` (its default): the
  validation is inside its time.
- ``validate``: each client validates every file against the source sandbox
  (same latency) with its default methods -- lightbeam: schema, descriptors,
  uniqueness; the flow: those plus references within the input.

Each client runs in its own process: lightbeam as its command, the flow as
``python bench/send.py --flow-child ...`` (a flow run in a fresh interpreter,
its import time included) against the temporary Prefect server this script
starts. Reported: records/s, seconds, the client process's CPU ms per 1,000
records and peak RSS (sampled every 50 ms), for the flow the Prefect server's
peak RSS and CPU (a separate process: an API server, not the flow's own cost)
and, for send, the target's CPU.

    .venv/bin/python bench/send.py --students 1000 --tasks send
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import psutil  # noqa: E402
from publish import (  # type: ignore[import-not-found]  # noqa: E402
    CACHE,
    children_cpu,
    compare,
    contents,
    cpu_seconds,
    ensure_peers,
    fetch_jsonl,
    jsonl_marker,
    serve,
)


@dataclass
class Result:
    task: str  # send | validate
    client: str
    records: int
    seconds: float
    cpu: float
    peak_mb: float
    target_cpu: float | None
    check: str
    server: Usage | None = None  # the Prefect server's, for the flow

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


@dataclass
class Usage:
    """What a helper process (the Prefect server) used during a round."""

    cpu: float
    peak_mb: float


class PeakRss:
    """The largest RSS of one process while the block runs (sampled every 50 ms).

    One process, not its tree: the flow's process is measured apart from the
    Prefect server it talks to, as lightbeam's is apart from the sandbox.
    """

    def __init__(self, pid: int | None = None) -> None:
        self.pid = pid or os.getpid()
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            proc = psutil.Process(self.pid)
            while not self._stop.is_set():
                self.peak = max(self.peak, proc.memory_info().rss)
                self._stop.wait(0.05)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            pass

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def mb(self) -> float:
        return self.peak / 2**20


def flow_child(config: str, mode: str, out: str) -> None:
    """In the child process: the send flow on a lightbeam configuration, unchanged, at the
    flow's own defaults; its counts written to ``out``."""
    from flows.send import send

    try:
        summary: dict[str, Any] = asyncio.run(
            send(lightbeam_config=config, mode=mode)  # type: ignore[arg-type]
        )
    except Exception as exc:  # a failed run still has figures to show
        print(f"flow {mode}: {str(exc)[:400]}", flush=True)
        summary = {"processed": 0, "sent": 0, "failed": -1}
    counts = {k: summary.get(k) for k in ("processed", "sent", "skipped", "failed")}
    Path(out).write_text(json.dumps(counts))


class PrefectServer:
    """The temporary Prefect server (Prefect's test harness: a uvicorn subprocess, SQLite)."""

    def __enter__(self) -> PrefectServer:
        import prefect.settings
        from prefect.testing.utilities import prefect_test_harness

        self._harness = prefect_test_harness(server_startup_timeout=120)
        self._harness.__enter__()
        self.api_url = str(prefect.settings.PREFECT_API_URL.value())
        self.process = next(
            p
            for p in psutil.Process().children()
            if "prefect.server.api.server:create_app" in " ".join(p.cmdline())
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self._harness.__exit__(None, None, None)


def flow(
    config: Path, mode: str, server: PrefectServer
) -> tuple[dict[str, Any], float, float, float, Usage]:
    """The flow in its own process: counts, seconds, CPU seconds, peak MB, the server's use."""
    out = config.with_suffix(".out.json")
    out.unlink(missing_ok=True)
    cpu0, scpu0 = children_cpu(), cpu_seconds(server.process)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--flow-child", str(config), mode, str(out)],
        env={**os.environ, "PREFECT_API_URL": server.api_url},
    )
    with PeakRss(proc.pid) as peak, PeakRss(server.process.pid) as server_peak:
        proc.wait()
    seconds = time.perf_counter() - t0
    usage = Usage(cpu_seconds(server.process) - scpu0, server_peak.mb)
    counts = json.loads(out.read_text()) if out.exists() else {"processed": 0, "failed": -1}
    return counts, seconds, children_cpu() - cpu0, peak.mb, usage


def lightbeam_config(
    path: Path, target: dict[str, Any], jsonl: Path, lmsx: list[str], state: str = "lb-state"
) -> None:
    """lightbeam's configuration (the flow reads the same file: ``lightbeam_config``).

    The files are flat, one per resource name, so the ``lmsx`` names that DS 5
    also has (``submissionStatusDescriptors`` ...) are placed by
    ``namespace_overrides``, as a lightbeam user does.
    """
    overrides = "".join(f"    - {name}\n" for name in lmsx)
    path.write_text(
        f"state_dir: {path.parent / state}\n"
        f"data_dir: {jsonl}/\n"
        "namespace: ed-fi\n"
        + ("namespace_overrides:\n  lmsx:\n" + overrides if lmsx else "")
        + "edfi_api:\n"
        f"  base_url: {target['base_url']}\n"
        "  mode: sandbox\n"
        f"  client_id: {target['client_id']}\n"
        f"  client_secret: {target['client_secret']}\n"
        "connection:\n"
        "  verify_ssl: true\n"
        "log_level: WARNING\n"
    )


def lightbeam(command: str, config: Path) -> tuple[float, float, float, str]:
    """Run ``lightbeam <command>``: seconds, CPU seconds, peak MB, the tail of its output."""
    exe = ensure_peers()
    cpu0 = children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [str(exe), command, "-c", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    with PeakRss(proc.pid) as peak:
        out, _ = proc.communicate()
    return time.perf_counter() - t0, children_cpu() - cpu0, peak.mb, out[-600:]


def send_rounds(
    args: argparse.Namespace,
    run_dir: Path,
    jsonl: Path,
    expected: Any,
    server: PrefectServer | None,
) -> list[Result]:
    results: list[Result] = []
    total = sum(sum(c.values()) for c in expected.values())
    lmsx = [p.rsplit("/", 1)[-1] for p in expected if p.startswith("/lmsx/")]
    if server is not None:
        db = run_dir / "target-flow.sqlite"
        with serve(0, db, fresh=True, latency=args.latency) as target:
            config = run_dir / "flow-send.yaml"
            lightbeam_config(config, target, jsonl, lmsx, state="flow-state")
            tcpu0 = cpu_seconds(target["process"])
            summary, seconds, cpu, peak_mb, usage = flow(config, "validate+send", server)
            tcpu = cpu_seconds(target["process"]) - tcpu0
        written, check = compare(expected, db)
        if summary.get("failed"):
            check += f"; {summary['failed']} failed"
        results.append(
            Result("send", "send flow", written, seconds, cpu, peak_mb, tcpu, check, usage)
        )
        report(results[-1:])
    if args.only in ("lightbeam", "both"):
        db = run_dir / "target-lightbeam.sqlite"
        shutil.rmtree(run_dir / "lb-state", ignore_errors=True)
        with serve(0, db, fresh=True, latency=args.latency) as target:
            config = run_dir / "lightbeam-send.yaml"
            lightbeam_config(config, target, jsonl, lmsx)
            tcpu0 = cpu_seconds(target["process"])
            seconds, cpu, peak_mb, tail = lightbeam("send", config)
            tcpu = cpu_seconds(target["process"]) - tcpu0
        written, check = compare(expected, db)
        if written < total:
            check += f" (lightbeam: {tail.strip().splitlines()[-1] if tail.strip() else ''})"
        results.append(
            Result("send", "lightbeam send", written, seconds, cpu, peak_mb, tcpu, check)
        )
        report(results[-1:])
    return results


def validate_rounds(
    args: argparse.Namespace, run_dir: Path, server: PrefectServer | None
) -> list[Result]:
    students = args.validate_students or args.students
    jsonl, source_db = district_files(students)
    expected = contents(source_db)
    total = sum(sum(c.values()) for c in expected.values())
    lmsx = [p.rsplit("/", 1)[-1] for p in expected if p.startswith("/lmsx/")]
    print(f"validate: {total:,} records ({students} students)", flush=True)
    results: list[Result] = []
    with serve(students, source_db, fresh=False, latency=args.latency) as source:
        if server is not None:
            config = run_dir / "flow-validate.yaml"
            lightbeam_config(config, source, jsonl, lmsx, state="flow-state-validate")
            summary, seconds, cpu, peak_mb, usage = flow(config, "validate", server)
            check = f"{summary.get('processed', 0):,} records, {summary.get('failed')} invalid"
            results.append(
                Result(
                    "validate",
                    "send flow (validate)",
                    total,
                    seconds,
                    cpu,
                    peak_mb,
                    None,
                    check,
                    usage,
                )
            )
            report(results[-1:])
        if args.only in ("lightbeam", "both"):
            config = run_dir / "lightbeam-validate.yaml"
            lightbeam_config(config, source, jsonl, lmsx)
            seconds, cpu, peak_mb, tail = lightbeam("validate", config)
            last = tail.strip().splitlines()[-1] if tail.strip() else ""
            results.append(
                Result(
                    "validate", "lightbeam validate", total, seconds, cpu, peak_mb, None, last[:120]
                )
            )
            report(results[-1:])
    return results


def report(results: list[Result]) -> None:
    print(
        "\n| task | client | records | seconds | records/s | client CPU ms / 1,000 records | "
        "client peak MB | Prefect server: peak MB, CPU ms / 1,000 | target CPU ms / 1,000 "
        "| check |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        n = max(1, r.records)
        target = f"{r.target_cpu / n * 1e6:.0f}" if r.target_cpu is not None else "-"
        server = f"{r.server.peak_mb:.0f}, {r.server.cpu / n * 1e6:.0f}" if r.server else "-"
        print(
            f"| {r.task} | {r.client} | {r.records:,} | {r.seconds:.1f} | {r.rate:,.0f} | "
            f"{r.cpu / n * 1e6:.0f} | {r.peak_mb:.0f} | {server} | {target} | {r.check} |"
        )
    for task in dict.fromkeys(r.task for r in results):
        rates = [r.rate for r in results if r.task == task]
        if len(rates) == 2 and rates[1]:
            print(f"ratio ({task}): flow / lightbeam = {rates[0] / rates[1]:.2f}x")
    sys.stdout.flush()


def district_files(students: int) -> tuple[Path, Path]:
    """The district's JSONL folder and source database (made once, cached under bench/.cache)."""
    jsonl = CACHE / f"jsonl-{students}"
    source_db = CACHE / f"sandbox-{students}.sqlite"
    with serve(students, source_db, fresh=False) as source:
        marker = jsonl_marker(jsonl)
        if not marker.exists():
            jsonl.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(asyncio.run(fetch_jsonl(source, jsonl))))
    return jsonl, source_db


def main() -> None:
    if sys.argv[1:2] == ["--flow-child"]:
        flow_child(*sys.argv[2:5])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--students", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=30.0)
    parser.add_argument(
        "--validate-students",
        type=int,
        default=None,
        help="district size of the validate rounds (default: --students)",
    )
    parser.add_argument("--only", choices=("flow", "lightbeam", "both"), default="both")
    parser.add_argument(
        "--tasks", nargs="+", choices=("send", "validate"), default=["send", "validate"]
    )
    args = parser.parse_args()
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    run_dir = CACHE / f"send-run-{args.students}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    jsonl, source_db = district_files(args.students)
    expected = contents(source_db)
    total = sum(sum(c.values()) for c in expected.values())
    print(f"records: {total:,} in {len(expected)} resources; latency {args.latency:g} ms")
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(PrefectServer()) if args.only in ("flow", "both") else None
        if "validate" in args.tasks:  # the short rounds first
            results += validate_rounds(args, run_dir, server)
        if "send" in args.tasks:
            results += send_rounds(args, run_dir, jsonl, expected, server)
    report(results)


if __name__ == "__main__":
    main()
