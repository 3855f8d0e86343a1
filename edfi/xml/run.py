"""One run of ``bulk_load``, without Prefect: its settings, its input, its results.

The ``bulk_load`` flow resolves its Prefect blocks (the connection, the state
storage) and hands everything else to a ``BulkLoadRun``:

1. ``BulkLoadRun(...)`` checks the settings before anything is read and fixes
   the run's id;
2. ``open(client)`` reads the target's model and sets up the source: the XML
   files as a spool (``spool``: its ``check``, the first pass, is one task of
   the flow; ``check_messages`` says what it found), or the last run's
   rejects (``resend_rejects``);
3. ``send(runner, on_done)`` sends one resource at a time in dependency order
   (``edfi.xml.bulk.BulkLoad``; the flow's ``runner`` runs each as a task)
   while a worker thread converts the files into the spool, each resource
   sent once the files holding it are converted (``read_log`` then says what
   converting found); or, with ``method="bulk"``, ``upload(client)`` hands the
   files to ``/bulk/v1``;
5. ``finish()`` writes the rejects and returns the run's summary; ``table``,
   ``interchange_table``, ``problems_markdown`` and ``failure_message`` say
   what happened.

Keeping this out of the flow means a script, a test or a benchmark runs the
same load the flow does, and the flow is only Prefect wiring.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from ..client import EdFiClient
from ..errors import SendError
from ..lake import Lake
from ..model import ApiModel
from ..rejects import UPSERT, Reject, RejectsStore, summarize
from ..schedule import Outcome
from ..send import Sender, SendOptions
from ..sendstate import SendState
from .bulk import BulkLoad, Feed, RejectSource, ResourceRow, Source
from .bulkapi import BulkUpload, OperationResult, bulk_url
from .reader import CheckReport, XmlLoad, interchange_name, list_files
from .spool import SpoolReport, XmlSpool
from .xsd import schema_with_extensions

__all__ = ["COLUMNS", "REJECTS", "BulkLoadRun", "BulkLoadSettings"]

COLUMNS = ("resource", "elements", "sent", "skipped", "invalid", "failed", "blocked", "status")
REJECTS = "_bulk_load_rejects"
COUNTS = ("elements", "sent", "skipped", "invalid", "failed", "blocked")

Method = Literal["api", "bulk"]
LogLine = tuple[int, str]  # (logging level, message)


@dataclass
class BulkLoadSettings:
    """What the user asked for (the flow's parameters, less the blocks)."""

    data: str | None = None
    interchanges: list[str] | str | None = None
    validate_xsd: bool = True
    method: Method = "api"
    force: bool = False
    resend_rejects: bool = False
    write_concurrency: int = 32
    resource_parallelism: int = 8
    max_failures: int | None = None
    data_storage_options: dict[str, Any] | None = None
    extension_xsd: list[str] | str | None = None  # folders/files of extension XSDs (TPDM, …)

    def check(self) -> None:
        """Refuse settings that cannot work, before anything is read or written."""
        if self.method not in ("api", "bulk"):
            raise SendError(f"method {self.method!r} is not supported; use 'api' or 'bulk'.")
        if self.method == "bulk" and self.resend_rejects:
            raise SendError(
                "resend_rejects works with method='api' only: the bulk services load whole "
                "files; fix the files and load them again."
            )
        if not self.resend_rejects and not self.data:
            raise SendError("Set `data`: the folder or file URL of the XML interchange files.")
        if self.method == "bulk" and self.extension_xsd:
            raise SendError(
                "extension_xsd works with method='api' only: the bulk services validate the "
                "files with the server's own (extended) schemas."
            )

    @property
    def extension_list(self) -> list[str]:
        if isinstance(self.extension_xsd, str):
            return [u.strip() for u in self.extension_xsd.split(",") if u.strip()]
        return list(self.extension_xsd or ())

    @property
    def interchange_list(self) -> list[str] | None:
        if isinstance(self.interchanges, str):
            return [i.strip() for i in self.interchanges.split(",") if i.strip()]
        return self.interchanges or None


class BulkLoadRun:
    """A bulk load of XML interchange files into one target (see the module docstring)."""

    def __init__(
        self,
        settings: BulkLoadSettings,
        *,
        lake: Lake,
        state_url: str,
        state_options: dict[str, Any] | None,
        target: str,
        school_year: int | None = None,
    ):
        settings.check()
        lake.check_writable()
        self.settings = settings
        self.lake = lake
        self.target = target
        self.year = school_year
        self.state = SendState(state_url, target, storage_options=state_options)
        self.store = RejectsStore(lake, REJECTS, target)
        self.started = dt.datetime.now(dt.UTC)
        self.run_id = self.started.strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
        self.model: ApiModel | None = None
        self.spool: XmlSpool | None = None
        self.source: Source | None = None
        self.loader: BulkLoad | None = None
        self.report: SpoolReport | None = None
        self.operation: OperationResult | None = None
        self.rejects: list[Reject] = []
        self.file_problems: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self._failed = 0
        self.read_log: list[LogLine] = []  # read_messages of a spool converted in send()

    @property
    def method(self) -> Method:
        return self.settings.method

    # -- the api method -------------------------------------------------------------------
    async def open(self, client: EdFiClient) -> list[LogLine]:
        """The target's model and the source: the files as a spool (to build), or rejects."""
        s = self.settings
        if self.method == "bulk":
            await client.discover()
            return []
        self.model = model = await client.load_model(self.year)
        sender = Sender(
            client,
            model,
            client.url("dataManagementApi", self.year),
            SendOptions(
                concurrency=s.write_concurrency,
                per_resource=min(s.write_concurrency, 24),
                max_failures=s.max_failures,
            ),
        )
        log: list[LogLine] = []
        if s.resend_rejects:
            last = self.lake.read_json(self.lake.path(REJECTS, self.target, "last_run.json"))
            if not last:
                raise SendError("No earlier bulk load to this target kept rejects to resend.")
            previous = self.store.read(last["run_id"])
            self.source = RejectSource(previous)
            log.append((logging.INFO, f"Resending {len(previous)} rejects of run {last['run_id']}"))
        else:
            assert s.data is not None
            load = XmlLoad(
                list_files(s.data, s.data_storage_options),
                model,
                schema=schema_with_extensions(s.extension_list, s.data_storage_options),
                validate=s.validate_xsd,
                interchanges=s.interchange_list,
                storage_options=s.data_storage_options,
            )
            self.spool = self.source = XmlSpool(load)
        self.loader = BulkLoad(
            model,
            self.source,
            sender,
            state=self.state,
            force=s.force or s.resend_rejects,
            parallelism=s.resource_parallelism,
        )
        return log

    def check_messages(self, check: CheckReport) -> list[LogLine]:
        """What checking the files found: the files skipped whole, each with its line."""
        return [
            (logging.ERROR, f"Skipped {p.file} (line {p.line}): {p.message}")
            for p in check.problems
        ]

    def read_messages(self, report: SpoolReport) -> list[LogLine]:
        """What converting the files found: elements with no resource, counts."""
        self.report = report
        log: list[LogLine] = [
            (logging.WARNING, f"{n} {e} elements skipped: the target has no resource for them")
            for e, n in sorted(report.unsupported.items())
        ]
        elements = sum(report.records.values()) + sum(report.element_problems.values())
        log.append(
            (
                logging.INFO,
                f"Read {report.files} files: {elements} elements for "
                f"{len(report.records)} resources",
            )
        )
        return log

    @property
    def units(self) -> list[str]:
        """The resources to send (one task each)."""
        assert self.source is not None and self.model is not None
        return [p for p in self.source.resources() if p in self.model]

    def label(self, path: str) -> str:
        assert self.model is not None
        return self.model[path].name

    async def send(
        self,
        runner: Callable[[str], Awaitable[ResourceRow]] | None = None,
        on_done: Callable[[Outcome[str, ResourceRow]], Awaitable[None]] | None = None,
    ) -> None:
        """Every resource in dependency order; ``runner`` runs one (default: here).

        A spool that was checked but not converted yet is converted here, in a
        worker thread, while the resources its first files complete are sent.
        """
        loader = self.loader
        assert loader is not None
        spool = self.spool
        converting: asyncio.Future[SpoolReport] | None = None
        if spool is not None and spool.report is None:
            if not spool.checked:
                await asyncio.to_thread(spool.check)
            loader.feed = feed = Feed(asyncio.get_running_loop())

            def convert() -> SpoolReport:
                try:
                    return spool.convert(feed.announce)
                except BaseException as exc:
                    feed.fail(exc)
                    raise

            converting = asyncio.ensure_future(asyncio.to_thread(convert))
        try:
            try:
                result = await loader.run(runner, on_done)
            finally:
                if converting is not None:
                    await asyncio.wait([converting])  # the thread writes into the spool
            if converting is not None:
                self.read_log = self.read_messages(converting.result())
        finally:
            self.close()
        self.rejects = result.rejects
        self.rows = [r.as_row() for r in result.rows.values()]
        if self.report is not None:
            self.file_problems = [asdict(p) for p in self.report.file_problems]

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()

    # -- the bulk method ------------------------------------------------------------------
    async def upload(
        self, client: EdFiClient, on_status: Callable[[dict[str, Any]], None] | None = None
    ) -> None:
        """``method="bulk"``: the files through ``/bulk/v1``; exceptions become rejects."""
        s = self.settings
        assert s.data is not None
        wanted = s.interchange_list
        self.operation = op = await BulkUpload(
            client, bulk_url(client, self.year), on_status=on_status
        ).run(
            list_files(s.data, s.data_storage_options),
            s.data_storage_options,
            {interchange_name(i) for i in wanted} if wanted else None,
            state=self.state,
            force=s.force,
        )
        for f in op.files:
            for e in f.exceptions:
                if e.get("element") is None and e.get("resource") is None:
                    self.file_problems.append(
                        {
                            "file": f.file,
                            "line": int(e.get("lineNumber") or 0),
                            "message": e["message"],
                        }
                    )
                    continue
                self.rejects.append(
                    Reject(
                        str(e.get("resource") or ""),
                        UPSERT,
                        e.get("code"),
                        str(e.get("message")),
                        origin={
                            "file": f.file,
                            "line": e.get("lineNumber"),
                            "element": e.get("element"),
                            "interchange": f.interchange,
                        },
                    )
                )
        self.rows = [
            {
                "file": f.file,
                "interchange": f.interchange,
                "bytes": f.size,
                "status": f.status,
                "loaded": f.loaded,
                "skipped": f.skipped,
                "exceptions": len(f.exceptions),
            }
            for f in op.files
        ]

    def upload_messages(self) -> list[LogLine]:
        return [
            (logging.ERROR, f"Skipped {p['file']} (line {p['line']}): {p['message']}")
            for p in self.file_problems
        ]

    # -- the end ----------------------------------------------------------------------------
    @property
    def seconds(self) -> float:
        return round((dt.datetime.now(dt.UTC) - self.started).total_seconds(), 2)

    def finish(self) -> dict[str, Any]:
        """The rejects written (and remembered for ``resend_rejects``), the summary."""
        manifest = self.store.write(self.run_id, self.rejects) if self.rejects else None
        if manifest is not None and self.method == "api":
            self.lake.write_json(
                self.lake.path(REJECTS, self.target, "last_run.json"), {"run_id": self.run_id}
            )
        seconds = self.seconds
        if self.method == "bulk":
            self.summary = self._bulk_summary(seconds, manifest)
            return self.summary
        totals = Counter[str]()
        for r in self.rows:
            for k in COUNTS:
                totals[k] += r[k]
        failed = (
            sum(r["invalid"] + r["failed"] + r["blocked"] + r["deferred"] for r in self.rows)
            + sum(bool(r["error"]) for r in self.rows)
            + len(self.file_problems)
        )
        report = self.report
        self.summary = {
            "run_id": self.run_id,
            "status": "failed" if failed else "completed",
            **{k: totals[k] for k in COUNTS},
            "files": report.files if report else 0,
            "file_problems": self.file_problems,
            "unsupported": dict(report.unsupported) if report else {},
            "resources": self.rows,
            "seconds": seconds,
            "records_per_second": round(totals["sent"] / seconds, 1) if seconds else 0.0,
            "rejects": manifest,
        }
        self._failed = failed
        return self.summary

    def _bulk_summary(self, seconds: float, manifest: dict[str, Any] | None) -> dict[str, Any]:
        op = self.operation
        assert op is not None
        sent = sum(f.loaded for f in op.files)
        failed = len(self.rejects) + len(self.file_problems)
        self._failed = failed
        return {
            "run_id": self.run_id,
            "status": "failed" if failed else "completed",
            "method": "bulk",
            "operation": op.id,
            "sent": sent,
            "skipped": sum(f.skipped for f in op.files),
            "failed": len(self.rejects),
            "files": len(op.files),
            "file_problems": self.file_problems,
            "uploads": self.rows,
            "seconds": seconds,
            "phases": op.seconds,
            "records_per_second": round(sent / seconds, 1) if seconds else 0.0,
            "rejects": manifest,
        }

    @property
    def failed(self) -> int:
        """Everything that did not load: files skipped, elements invalid, refused, blocked."""
        return self._failed

    def table(self) -> list[dict[str, Any]]:
        """One row per resource (``api``) or per uploaded file (``bulk``)."""
        if self.method == "bulk":
            return self.rows
        return [{k: r[k] for k in COLUMNS} for r in self.rows]

    def table_description(self) -> str:
        s = self.summary
        if self.method == "bulk":
            return (
                f"Bulk load {self.run_id} through /bulk/v1 ({s['status']}): {s['sent']} "
                f"loaded, {s['skipped']} already there, {self.failed} failed, "
                f"in {s['seconds']}s"
            )
        return (
            f"Bulk load {self.run_id} ({s['status']}): {s['sent']} sent, {s['skipped']} "
            f"already there, {self.failed} failed, in {s['seconds']}s"
        )

    def interchange_table(self) -> list[dict[str, Any]]:
        """Elements per interchange and resource (what the files held), ``api`` only."""
        if self.report is None:
            return []
        return [
            {"interchange": i, "resource": r, "elements": n}
            for (i, r), n in sorted(self.report.per_interchange.items())
        ]

    def problems_markdown(self) -> str:
        lines = ["# What was not loaded", ""]
        if self.file_problems:
            lines += ["## Files skipped", "", "| file | line | problem |", "|---|---|---|"]
            lines += [f"| {p['file']} | {p['line']} | {p['message']} |" for p in self.file_problems]
            lines.append("")
        if self.rejects:
            lines += [
                "## Rejected elements",
                "",
                "| resource | count | cause | where |",
                "|---|---|---|---|",
            ]
            for g in summarize(self.rejects)[:20]:
                lines.append(
                    f"| {g['resource']} | {g['count']} | {g['cause']} | {'; '.join(g['where'])} |"
                )
        return "\n".join(lines)

    def failure_message(self) -> str:
        s = self.summary
        kept = f" ({s['rejects']['count']} kept on the state storage)." if s["rejects"] else "."
        if self.method == "bulk":
            return (
                f"Bulk load {self.run_id} (bulk operation {s['operation']}): {self.failed} "
                f"failed ({len(self.file_problems)} files skipped, {len(self.rejects)} records "
                "refused); the rejects name each one" + kept
            )
        return (
            f"Bulk load {self.run_id}: {self.failed} failed ({len(self.file_problems)} files "
            f"skipped, {s['invalid']} invalid elements, {s['failed']} refused, "
            f"{s['blocked']} blocked); the rejects name each one" + kept
        )

    def done_message(self) -> str:
        s = self.summary
        if self.method == "bulk":
            return (
                f"Loaded {s['sent']} records through /bulk/v1 ({s['skipped']} elements "
                f"already there) in {s['seconds']:.1f}s"
            )
        return f"Loaded {s['sent']} records ({s['skipped']} already there) in {s['seconds']:.1f}s"
