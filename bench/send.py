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

Reported: records/s, seconds, client CPU ms per 1,000 records, the client's
peak memory (RSS sampled every 50 ms) and, for send, the target's CPU.

    flock /tmp/edfi-bench.lock .venv/bin/python bench/send.py --students 1000 --latency 30
"""

from __future__ import annotations

import argparse
import asyncio
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
    own_cpu,
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

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds else 0.0


class PeakRss:
    """The largest RSS of a process while the block runs (sampled every 50 ms)."""

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
        except psutil.NoSuchProcess:
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


def flow(config: Path, mode: str) -> dict[str, Any]:
    """The send flow on a lightbeam configuration, unchanged, at the flow's own defaults."""
    from flows.send import send

    try:
        out: dict[str, Any] = asyncio.run(
            send(lightbeam_config=str(config), mode=mode)  # type: ignore[arg-type]
        )
        return out
    except Exception as exc:  # a failed run still has figures to show
        print(f"flow {mode}: {str(exc)[:400]}", flush=True)
        return {"processed": 0, "sent": 0, "failed": -1}


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
    args: argparse.Namespace, run_dir: Path, jsonl: Path, expected: Any
) -> list[Result]:
    results: list[Result] = []
    total = sum(sum(c.values()) for c in expected.values())
    lmsx = [p.rsplit("/", 1)[-1] for p in expected if p.startswith("/lmsx/")]
    if args.only in ("flow", "both"):
        db = run_dir / "target-flow.sqlite"
        with serve(0, db, fresh=True, latency=args.latency) as target:
            config = run_dir / "flow-send.yaml"
            lightbeam_config(config, target, jsonl, lmsx, state="flow-state")
            cpu0, tcpu0 = own_cpu(), cpu_seconds(target["process"])
            t0 = time.perf_counter()
            with PeakRss() as peak:
                summary = flow(config, "validate+send")
            seconds = time.perf_counter() - t0
            cpu, tcpu = own_cpu() - cpu0, cpu_seconds(target["process"]) - tcpu0
        written, check = compare(expected, db)
        if summary.get("failed"):
            check += f"; {summary['failed']} failed"
        results.append(Result("send", "send flow", written, seconds, cpu, peak.mb, tcpu, check))
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


def validate_rounds(args: argparse.Namespace, run_dir: Path) -> list[Result]:
    students = args.validate_students or args.students
    jsonl, source_db = district_files(students)
    expected = contents(source_db)
    total = sum(sum(c.values()) for c in expected.values())
    lmsx = [p.rsplit("/", 1)[-1] for p in expected if p.startswith("/lmsx/")]
    print(f"validate: {total:,} records ({students} students)", flush=True)
    results: list[Result] = []
    with serve(students, source_db, fresh=False, latency=args.latency) as source:
        if args.only in ("flow", "both"):
            config = run_dir / "flow-validate.yaml"
            lightbeam_config(config, source, jsonl, lmsx, state="flow-state-validate")
            cpu0 = own_cpu()
            t0 = time.perf_counter()
            with PeakRss() as peak:
                summary = flow(config, "validate")
            seconds, cpu = time.perf_counter() - t0, own_cpu() - cpu0
            check = f"{summary.get('processed', 0):,} records, {summary.get('failed')} invalid"
            results.append(
                Result(
                    "validate", "send flow (validate)", total, seconds, cpu, peak.mb, None, check
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
        "peak memory MB | target CPU ms / 1,000 | check |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        n = max(1, r.records)
        target = f"{r.target_cpu / n * 1e6:.0f}" if r.target_cpu is not None else "-"
        print(
            f"| {r.task} | {r.client} | {r.records:,} | {r.seconds:.1f} | {r.rate:,.0f} | "
            f"{r.cpu / n * 1e6:.0f} | {r.peak_mb:.0f} | {target} | {r.check} |"
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
        if not (jsonl / "done.json").exists():
            jsonl.mkdir(parents=True, exist_ok=True)
            (jsonl / "done.json").write_text(json.dumps(asyncio.run(fetch_jsonl(source, jsonl))))
    return jsonl, source_db


def main() -> None:
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
    harness: Any = None
    if args.only in ("flow", "both"):
        from prefect.testing.utilities import prefect_test_harness

        harness = prefect_test_harness(server_startup_timeout=120)
        harness.__enter__()
    results: list[Result] = []
    try:
        if "validate" in args.tasks:  # the short rounds first
            results += validate_rounds(args, run_dir)
        if "send" in args.tasks:
            results += send_rounds(args, run_dir, jsonl, expected)
    finally:
        if harness is not None:
            harness.__exit__(None, None, None)
    report(results)


if __name__ == "__main__":
    main()
