"""One run of ``send``, without Prefect: its settings, its input, its plan and its results.

The ``send`` flow resolves its Prefect blocks (the connection, the state
storage) and hands everything else to a ``SendRun``:

1. ``SendRun(...)`` checks the settings before anything is read (mode, where
   the state and rejects go, where the input is) and fixes the run's id;
2. ``open(client)`` reads the target's model and finds the input's files (or
   the last run's rejects, with ``resend_rejects``) and the resources chosen;
3. ``validate()`` checks every record (modes ``validate`` and ``validate+send``);
4. ``send(run_unit, resend)`` sends (or deletes) one *unit* at a time in
   dependency order, independent units at once (``edfi.schedule.run_gated``);
   a unit is one resource, or every descriptor type together. The flow passes
   ``run_unit`` to run each unit as a Prefect task; by default the unit runs
   here, directly;
5. ``finish(stats)`` writes the rejects and the results file and returns the
   run's summary; ``failure_message`` and ``causes_markdown`` say what failed.

Keeping this out of the flow means a script, a test or a benchmark runs the
same send the flow does, and the flow is only Prefect wiring.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from fsspec.core import url_to_fs

from edfi.client import RETRY_STATUSES, ClientStats, Connection, EdFiClient
from edfi.errors import SendError
from edfi.filesend import (
    SEND_MODES,
    FileSend,
    FileSendOptions,
    RejectsInput,
    ResourceResult,
    SendMode,
    delete_dependencies,
    latest_run,
    results_document,
    select,
    send_dependencies,
    validation_results,
)
from edfi.jsonfiles import Records, discover
from edfi.lake import Lake
from edfi.lightbeam_config import LightbeamConfig
from edfi.model import ApiModel
from edfi.rejects import Reject, RejectsStore, summarize
from edfi.schedule import run_gated
from edfi.send import RESOURCE_CONCURRENCY, WRITE_CONCURRENCY, Sender, SendOptions
from edfi.sendstate import SendState, target_id
from edfi.validate.inputs import InputReport, parse_methods, validate_input
from edfi.validate.remote import TargetLookup
from edfi.vocabulary import ResourceStatus, RunStatus

__all__ = [
    "DESCRIPTORS",
    "SendRun",
    "SendSettings",
    "config_connection",
    "retry_statuses",
]

DESCRIPTORS = "descriptors"  # the one unit that sends every descriptor type
TOP_CAUSES = 10

UnitRunner = Callable[[str, list[str]], Awaitable[list[ResourceResult]]]
Resender = Callable[[str], Awaitable[ResourceResult]]


@dataclass
class SendSettings:
    """What a person chose for this run (the flow's parameters, minus blocks)."""

    mode: SendMode = "validate+send"
    selector: list[str] | str | None = None
    exclude: list[str] | str | None = None
    validate: list[str] | str | None = None  # None: the config's methods, else the default
    force: bool = False
    resend_rejects: bool = False
    max_failures: int | None = None
    write_concurrency: int = WRITE_CONCURRENCY
    resource_parallelism: int = 8
    max_reference_lookups: int = 2000
    results_file: str | None = None


def retry_statuses(cfg: LightbeamConfig | None) -> frozenset[int]:
    """The statuses a write is retried on: the config's ``retry_statuses``, and always 429.

    lightbeam reads ``connection.retry_statuses`` and never applies it, so a
    throttled write fails there. Here the list is applied as written, plus
    429: a throttled request is never the record's fault.
    """
    if cfg is None:
        return RETRY_STATUSES
    return frozenset(cfg.retry_statuses) | {429}


def config_connection(cfg: LightbeamConfig, write_concurrency: int) -> Connection:
    """The target a lightbeam config names; its explicit ``pool_size`` caps the writes."""
    return cfg.connection(max_concurrency=cfg.pool_size or write_concurrency)


def _config_methods(cfg: LightbeamConfig | None) -> tuple[str, ...] | None:
    if cfg is None or cfg.validate_methods == ("schema", "descriptors", "uniqueness"):
        return None  # lightbeam's default: ours adds local references
    methods = list(cfg.validate_methods)
    if "references" in methods and not cfg.references_remote:
        methods[methods.index("references")] = "local-references"
    return tuple(methods)


@dataclass
class SendRun:
    """One send (validate, send, validate+send or delete) of a folder to one target."""

    conn: Connection
    settings: SendSettings
    school_year: int | None = None
    tenant: str | None = None
    source: str = ""  # the input folder's URL ("" with resend_rejects)
    source_options: Mapping[str, Any] = field(default_factory=dict)
    state_url: str | None = None
    state_options: Mapping[str, Any] = field(default_factory=dict)
    config: LightbeamConfig | None = None

    def __post_init__(self) -> None:
        s = self.settings
        if s.mode not in SEND_MODES:
            raise SendError(f"mode must be one of {', '.join(SEND_MODES)} (got {s.mode!r}).")
        if s.max_failures is None and self.config is not None:
            s.max_failures = self.config.max_failures  # validate.references.max_failures
        self.methods = parse_methods(
            s.validate if s.validate is not None else _config_methods(self.config)
        )
        if self.state_url is None and s.mode != "validate":
            raise SendError(
                "Set `state` (a LakeStorage block) or a lightbeam config with `state_dir`: it "
                "keeps what the target accepted and the rejected records."
            )
        if s.resend_rejects and self.state_url is None:
            raise SendError("resend_rejects needs `state`, where the rejects are kept.")
        if not self.source and not s.resend_rejects:
            raise SendError("Set `input` (the folder of JSON files) or a lightbeam config.")
        self.send_options = SendOptions(
            concurrency=s.write_concurrency,
            per_resource=min(s.write_concurrency, RESOURCE_CONCURRENCY),
            max_failures=s.max_failures,
            retry_statuses=retry_statuses(self.config),
        )
        self.target = target_id(
            self.conn.base_url, school_year=self.school_year, tenant=self.tenant
        )
        self.started = dt.datetime.now(dt.UTC)
        self.run_id = self.started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        self.store = (
            RejectsStore(
                Lake(self.state_url, dict(self.state_options)), "_send_rejects", self.target
            )
            if self.state_url
            else None
        )
        self.namespace = self.config.namespace if self.config else "ed-fi"
        self.report: InputReport | None = None
        self.job: FileSend | None = None
        self.results: list[ResourceResult] = []
        self.ignored: list[str] = []
        self._client: EdFiClient | None = None

    # -- reading -----------------------------------------------------------------------------
    @property
    def validates(self) -> bool:
        return self.settings.mode in ("validate", "validate+send")

    async def open(self, client: EdFiClient) -> None:
        """Read the target's model; find the input's resources and choose among them."""
        self._client = client
        await client.discover()
        self.model: ApiModel = await client.load_model(self.school_year)
        self.data_url = client.url("dataManagementApi", self.school_year)
        self.records: Records
        if self.settings.resend_rejects:
            assert self.store is not None
            last = latest_run(self.store)
            self.records = RejectsInput(self.store.read(last))
            self.source = self.store.lake.uri(self.store.run_dir(last))
        else:
            inputs = discover(
                self.source,
                self.model,
                namespace=self.namespace,
                namespace_overrides=self.config.namespace_overrides if self.config else None,
                storage_options=self.source_options,
            )
            self.ignored = list(inputs.ignored)
            self.records = inputs
        self.chosen = select(
            self.model, self.records.resources(), self.settings.selector, self.settings.exclude
        )

    def describe(self) -> str:
        """One line for the log: what is done, to which resources, from where, to where."""
        names = ", ".join(self.model[p].name for p in self.chosen[:8])
        more = " ..." if len(self.chosen) > 8 else ""
        return (
            f"{self.settings.mode} {len(self.chosen)} resources from {self.source} to "
            f"{self.conn.base_url} ({names}{more})"
        )

    async def validate(self) -> InputReport:
        """Every chosen record through every validation layer asked for."""
        assert self._client is not None, "open() first"
        lookup = TargetLookup(
            self._client, self.data_url, max_lookups=self.settings.max_reference_lookups
        )
        self.report = await validate_input(
            self.model,
            self.records,
            resources=self.chosen,
            methods=self.methods,
            lookup=lookup,
            max_failures=self.settings.max_failures,
        )
        return self.report

    # -- sending -----------------------------------------------------------------------------
    @property
    def sends(self) -> bool:
        """Whether records go to the target (not after a validate-only or stopped validation)."""
        if self.settings.mode == "validate":
            return False
        return not (self.report is not None and self.report.stopped_early)

    def units(self) -> dict[str, set[str]]:
        """The units to run and the units each waits for (reversed for deletes).

        Descriptor types are one unit together: they reference nothing but
        each other's absence, a district has a hundred or more of them with a
        handful of records each, and a Prefect task run costs more than
        sending them.
        """
        deps = (
            delete_dependencies(self.model, self.chosen)
            if self.settings.mode == "delete"
            else send_dependencies(self.model, self.chosen)
        )
        units: dict[str, set[str]] = {}
        for path in self.chosen:
            units.setdefault(self._unit(path), set()).update(self._unit(d) for d in deps[path])
        for name, needs in units.items():
            needs.discard(name)
        return units

    def paths(self, unit: str) -> list[str]:
        """The resources of one unit."""
        if unit == DESCRIPTORS:
            return [p for p in self.chosen if self.model[p].is_descriptor]
        return [unit]

    def _unit(self, path: str) -> str:
        return DESCRIPTORS if self.model[path].is_descriptor else path

    async def run_unit(self, unit: str, paths: list[str]) -> list[ResourceResult]:
        """Send (or delete) one unit's resources, directly (the flow runs this in a task)."""
        job = self._job()
        run = job.delete_resource if self.settings.mode == "delete" else job.send_resource
        return list(await asyncio.gather(*(run(p) for p in paths)))

    def _job(self) -> FileSend:
        if self.job is None:
            assert self._client is not None, "open() first"
            state = (
                SendState(self.state_url, self.target, storage_options=self.state_options)
                if self.state_url
                else None
            )
            self.job = FileSend(
                self.model,
                self.records,
                Sender(self._client, self.model, self.data_url, self.send_options),
                state=state,
                options=FileSendOptions(force=self.settings.force),
                invalid=(
                    {p: r.problems for p, r in self.report.resources.items()}
                    if self.report
                    else None
                ),
            )
        return self.job

    async def send(
        self, run_unit: UnitRunner | None = None, resend: Resender | None = None
    ) -> list[ResourceResult]:
        """Every unit once its prerequisites are done; then what a 403 held back.

        ``run_unit(unit, paths)`` returns one result per path (default
        ``self.run_unit``); an exception fails the unit and blocks what
        depends on it. ``resend(path)`` sends a resource's deferred records
        again (default: the job's ``resend_deferred``).
        """
        job = self._job()
        runner = run_unit or self.run_unit
        results: dict[str, ResourceResult] = {}

        async def one(unit: str) -> bool:
            paths = self.paths(unit)
            if job.stopped:
                for p in paths:
                    results[p] = job.skipped_result(p, "not started: max_failures reached")
                return True
            results.update({r.resource: r for r in await runner(unit, paths)})
            return True

        outcomes = await run_gated(
            self.units(), one, parallelism=self.settings.resource_parallelism
        )
        for unit, outcome in outcomes.items():
            if outcome.status == "done":
                continue
            for p in self.paths(unit):
                results[p] = job.skipped_result(p, outcome.message)
                results[p].status = (
                    ResourceStatus.FAILED if outcome.status == "failed" else ResourceStatus.BLOCKED
                )
        for path in list(job.sender.deferred):
            if path in results:
                again = await (resend or job.resend_deferred)(path)
                results[path].merge(again)
        self.results = [results[p] for p in self.chosen]
        return self.results

    # -- results -----------------------------------------------------------------------------
    def rejects(self) -> list[Reject]:
        return self.job.rejects() if self.job is not None else []

    def finish(self, stats: ClientStats | None = None) -> dict[str, Any]:
        """Write the rejects and the results file; the run's summary (``status`` first)."""
        if not self.results and self.report is not None:
            self.results = validation_results(self.model, self.report)
        rejects = self.rejects()
        manifest = (
            self.store.write(self.run_id, rejects) if rejects and self.store is not None else None
        )
        self.rejects_at = (
            self.store.lake.uri(self.store.run_dir(self.run_id))
            if manifest and self.store
            else None
        )
        mode = self.settings.mode
        command = "validate" if mode == "validate" else "delete" if mode == "delete" else "send"
        document = results_document(
            self.model,
            self.results,
            command=command,
            started=self.started,
            data_dir=self.source,
            api_url=self.conn.base_url,
            namespace=self.namespace,
            config_file=self.config.source if self.config else None,
        )
        if self.settings.results_file:
            fs, path = url_to_fs(self.settings.results_file)
            parent = path.rsplit("/", 1)[0]
            if parent:
                fs.makedirs(parent, exist_ok=True)
            with fs.open(path, "wb") as fh:
                fh.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        t0 = self.job.t0 if self.job is not None else None
        self.failed = sum(r.failed for r in self.results)
        self.status = (
            RunStatus.FAILED
            if self.failed
            else RunStatus.VALIDATED
            if mode == "validate"
            else RunStatus.COMPLETED
        )
        seconds = round((dt.datetime.now(dt.UTC) - self.started).total_seconds(), 2)
        return {
            "run_id": self.run_id,
            "status": str(self.status),
            "mode": mode,
            "input": self.source,
            "target": self.target,
            "processed": sum(r.processed for r in self.results),
            "skipped": sum(r.skipped for r in self.results),
            "sent": sum(r.sent for r in self.results),
            "deleted": sum(r.deleted for r in self.results),
            "failed": self.failed,
            "seconds": seconds,
            "requests": stats.requests if stats else 0,
            "retries": stats.retries if stats else 0,
            "resources": [r.row(t0) for r in self.results],
            "rejects": self.rejects_at,
            "rejects_summary": summarize(rejects)[:TOP_CAUSES],
            "results_file": self.settings.results_file,
            "results": document,
        }

    def table(self) -> list[dict[str, Any]]:
        """The summary table: failures first (most failed records first), then the largest."""
        t0 = self.job.t0 if self.job is not None else None
        ordered = sorted(self.results, key=lambda r: (-r.failed, -r.processed, r.resource))
        return [r.row(t0) for r in ordered]

    def causes(self) -> list[tuple[str, str, str, int, str]]:
        """(resource, status or method, message, records, first file:line), most first."""
        counts: Counter[tuple[str, str, str]] = Counter()
        first: dict[tuple[str, str, str], str] = {}
        for r in self.results:
            for f in r.failures.values():
                key = (r.resource, str(f.method or f.status), f.message)
                counts[key] += len(f.lines)
                first.setdefault(key, f"{f.file}:{min(f.lines)}")
        return [(*k, n, first[k]) for k, n in counts.most_common()]

    def causes_markdown(self) -> str:
        """The top failure causes as a markdown table, and where the rejects are."""
        causes = self.causes()
        lines = [
            "# Top failure causes",
            "",
            "| resource | status | message | records | first at |",
            "|---|---|---|---|---|",
        ]
        for resource, status, message, n, where in causes[:TOP_CAUSES]:
            text = message.replace("|", "\\|").replace("\n", " ")[:300]
            lines.append(f"| {resource} | {status} | {text} | {n} | `{where}` |")
        if len(causes) > TOP_CAUSES:
            lines.append(f"| ... | | {len(causes) - TOP_CAUSES} more causes | | |")
        if self.rejects_at:
            lines += [
                "",
                f"The rejected records are in `{self.rejects_at}` (one file per resource, as "
                "sent, and `_reasons.jsonl`). Failed records are tried again on every run; to "
                "send only the rejects after fixing them there, run with `resend_rejects=True`.",
            ]
        return "\n".join(lines) + "\n"

    def failure_message(self) -> str:
        """The exception text of a run with failed records: how many, where, the top cause."""
        per = ", ".join(
            f"{self.model[r.resource].name} {r.failed}" for r in self.results if r.failed
        )
        top = self.causes()[0]
        where = f" The rejected records are in {self.rejects_at}." if self.rejects_at else ""
        verb = "are invalid" if self.settings.mode == "validate" else "failed"
        return (
            f"{self.failed} records {verb} ({per}). Most common: {top[2]} ({top[3]} records, "
            f"first at {top[4]}).{where} Fix them and run again: failed records are always "
            "retried."
        )
