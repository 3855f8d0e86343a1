"""The client side of the legacy Bulk Load Services (``/bulk/v1``, ODS/API 2.x-3.x).

Where the ``api`` method maps the XML here and POSTs records, this one hands
the files to the server as they are: it declares an operation with each file's
interchange type and size, uploads each file in chunks (``multipart/form-data``),
commits it, polls the operation with backoff until the server has loaded it,
and pages each file's exceptions -- the records the server could not load,
with their element and line -- so the flow keeps them as rejects.

The interchange type is read from each file's root element before anything is
declared, so a file that is no interchange stops the load before the server
sees a byte. A gzipped or remote file is copied to a local temporary file
first (the protocol needs each file's size up front). Nothing here imports
Prefect.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import fsspec
from lxml import etree

from ..client import EdFiClient
from ..errors import EdFiError
from .elements import ElementPlan, LineMap, StateStore, filtered_name, scan, state_path
from .reader import SAFE_PARSING, XmlInputError

CHUNK = 16 * 1024 * 1024  # bytes per chunk (the ODS/API takes up to 150 MB)
TERMINAL = frozenset({"Completed", "Error", "Expired"})
EXCEPTIONS_PAGE = 500


class BulkApiError(EdFiError):
    """The bulk operation itself failed (refused, expired, or never finished)."""


@dataclass
class FileResult:
    """One uploaded file: what the server made of it, and its exceptions."""

    file: str  # the source URL, as given
    interchange: str
    size: int
    status: str = ""
    loaded: int = 0
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # elements the target had already accepted: not uploaded
    accepted: int = 0  # elements recorded as accepted by this run (the state)


@dataclass(frozen=True)
class Prepared:
    """A file ready to upload: its source URL, its interchange, the local file to send."""

    file: str
    interchange: str
    path: str


@dataclass
class OperationResult:
    id: str
    status: str
    files: list[FileResult]
    seconds: dict[str, float] = field(default_factory=dict)  # upload, processing


def bulk_url(client: EdFiClient, school_year: int | None = None) -> str:
    """``/bulk/v1`` beside the data management API (same tenant and year segments)."""
    data = client.url("dataManagementApi", school_year)
    base, sep, _ = data.rpartition("/data/v3")
    if not sep:
        raise BulkApiError(f"Cannot place /bulk/v1 beside the data management API at {data}.")
    return base + "/bulk/v1"


def interchange_of(path: str) -> str:
    """The interchange a local file holds (its root element), read safely."""
    parser_args: dict[str, Any] = {**SAFE_PARSING, "events": ("start",)}
    try:
        for _, el in etree.iterparse(path, **parser_args):
            name = etree.QName(el).localname
            if not name.startswith("Interchange"):
                raise XmlInputError(f"{path}: the root element {name} is not an Ed-Fi interchange")
            return str(name)
    except etree.XMLSyntaxError as exc:
        raise XmlInputError(f"{path}: not XML ({exc})") from None
    raise XmlInputError(f"{path}: empty file")


def interchange_type(name: str) -> str:
    """``InterchangeStudentEnrollment`` -> ``studentEnrollment``, as ODS/API clients sent it."""
    stem = name.removeprefix("Interchange")
    return stem[:1].lower() + stem[1:]


class _Local:
    """Local, uncompressed copies of the load's files (the originals when they already are)."""

    def __init__(self, files: Sequence[str], storage_options: dict[str, Any] | None):
        self.folder: str | None = None
        self.paths: list[str] = []
        for url in files:
            fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
            protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
            if protocol == "file" and not url.endswith(".gz"):
                self.paths.append(path)
                continue
            if self.folder is None:
                self.folder = tempfile.mkdtemp(prefix="edfi-bulk-upload-")
            local = os.path.join(self.folder, f"{len(self.paths)}.xml")
            compression = "gzip" if url.endswith(".gz") else None
            with (
                fsspec.open(url, "rb", compression=compression, **(storage_options or {})) as src,
                open(local, "wb") as dst,
            ):
                shutil.copyfileobj(src, dst, 1 << 20)
            self.paths.append(local)

    def close(self) -> None:
        if self.folder:
            shutil.rmtree(self.folder, ignore_errors=True)


class BulkUpload:
    """One bulk operation: declare, upload, commit, poll, read exceptions."""

    def __init__(
        self,
        client: EdFiClient,
        base_url: str,
        *,
        chunk_size: int = CHUNK,
        uploads_at_once: int = 4,
        poll_max_seconds: float = 1.0,
        timeout_seconds: float = 6 * 3600,
        on_status: Callable[[dict[str, Any]], None] | None = None,
    ):
        self.client = client
        self.base = base_url.rstrip("/")
        self.chunk_size = chunk_size
        self.uploads_at_once = uploads_at_once
        self.poll_max = poll_max_seconds
        self.timeout = timeout_seconds
        self.on_status = on_status

    async def run(
        self,
        files: Sequence[str],
        storage_options: dict[str, Any] | None = None,
        interchanges: set[str] | None = None,
        *,
        state: StateStore | None = None,
        force: bool = False,
    ) -> OperationResult:
        """Load ``files`` (only those holding one of ``interchanges``, when given).

        With a ``state`` (``edfi.sendstate.SendState`` of the target), what the
        target accepted is recorded per element and skipped on the next run
        (``edfi.xml.elements``); ``force`` uploads everything anyway.
        """
        local = await asyncio.to_thread(_Local, files, storage_options)
        try:
            prepared = await self.prepare(list(files), local.paths, interchanges)
            if state is None:
                return await self.send(prepared)
            return await self._with_state(prepared, state, force)
        finally:
            local.close()

    async def _with_state(
        self, prepared: list[Prepared], store: StateStore, force: bool
    ) -> OperationResult:
        kinds = sorted({p.interchange for p in prepared})
        states = {k: await asyncio.to_thread(store.load, state_path(k)) for k in kinds}
        fresh = force or not any(len(s) for s in states.values())
        scans = [partial(scan, p.path, p.interchange) for p in prepared]
        maps: list[LineMap | None] = [None] * len(prepared)
        folder = tempfile.mkdtemp(prefix="edfi-bulk-filtered-")
        try:
            if fresh:
                # nothing to skip: upload as is, digest the elements meanwhile (one thread:
                # the server loads on one core, this takes another)
                indexing = asyncio.create_task(asyncio.to_thread(lambda: [s() for s in scans]))
                try:
                    result = await self.send(prepared)
                finally:
                    plan = ElementPlan(await indexing)
                sent = list(range(len(prepared)))
            else:
                plan = ElementPlan([await asyncio.to_thread(s) for s in scans])
                plan.skip_accepted(states)
                sent, uploads = [], []
                for f, p in enumerate(prepared):
                    kept = plan.kept(f)
                    if kept == 0:
                        continue
                    sent.append(f)
                    if kept == len(plan.files[f]):
                        uploads.append(p)
                        continue
                    copy = filtered_name(folder, f, p.path)
                    maps[f] = await asyncio.to_thread(plan.write_filtered, f, copy)
                    uploads.append(Prepared(p.file, p.interchange, copy))
                result = (
                    await self.send(uploads)
                    if uploads
                    else OperationResult("", "Unchanged", [], {"upload": 0.0, "processing": 0.0})
                )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        # the plan's files are temporary: let go of them now, not when it is collected
        try:
            by_index = dict(zip(sent, result.files, strict=True))
            files: list[FileResult] = []
            for f, p in enumerate(prepared):
                r = by_index.get(f)
                skipped = len(plan.files[f]) - plan.kept(f)
                if r is None:
                    files.append(FileResult(p.file, p.interchange, 0, "Unchanged", skipped=skipped))
                    continue
                r.skipped = skipped
                line_map = maps[f]
                if line_map is not None:
                    for e in r.exceptions:
                        if e.get("lineNumber"):
                            e["lineNumber"] = line_map.original(int(e["lineNumber"]))
                r.accepted = await asyncio.to_thread(
                    plan.accept, f, r.status, r.exceptions, states[p.interchange]
                )
                files.append(r)
            for s in states.values():
                await asyncio.to_thread(s.compact)
            return OperationResult(result.id, result.status, files, result.seconds)
        finally:
            plan.close()

    async def prepare(
        self, files: Sequence[str], paths: Sequence[str], only: set[str] | None = None
    ) -> list[Prepared]:
        """Each local copy's interchange (its root element), the ones in ``only`` kept."""
        kinds = [await asyncio.to_thread(interchange_of, p) for p in paths]
        chosen = [
            Prepared(url, kind, p)
            for url, kind, p in zip(files, kinds, paths, strict=True)
            if only is None or kind in only
        ]
        if not chosen:
            raise XmlInputError(f"no file holds the interchanges {sorted(only or ())}")
        return chosen

    async def send(self, prepared: Sequence[Prepared]) -> OperationResult:
        """One operation for the prepared files: declare, upload, commit, poll, exceptions."""
        results = [FileResult(p.file, p.interchange, os.path.getsize(p.path)) for p in prepared]
        paths = [p.path for p in prepared]
        empty = [r.file for r in results if r.size == 0]
        if empty:
            raise XmlInputError(f"empty files cannot be uploaded: {', '.join(empty)}")
        started = time.perf_counter()
        created = await self.client.request(
            "POST",
            f"{self.base}/bulkOperations",
            json_body={
                "uploadFiles": [
                    {
                        "format": "text/xml",
                        "interchangeType": interchange_type(r.interchange),
                        "size": r.size,
                    }
                    for r in results
                ]
            },
            ok=(201,),
        )
        op = created.json()
        op_id = str(op["id"])
        file_ids = [str(f["id"]) for f in op["uploadFiles"]]
        if len(file_ids) != len(results):
            raise BulkApiError(
                f"The server declared {len(file_ids)} upload files for {len(results)} files."
            )
        gate = asyncio.Semaphore(self.uploads_at_once)

        async def upload(fid: str, path: str, size: int) -> None:
            async with gate:
                await self._upload(fid, path, size)

        await asyncio.gather(
            *(upload(fid, p, r.size) for fid, p, r in zip(file_ids, paths, results, strict=True))
        )
        uploaded = time.perf_counter()
        status = await self._poll(op_id)
        done = time.perf_counter()
        by_id = {str(f["id"]): f for f in status["uploadFiles"]}
        for fid, r in zip(file_ids, results, strict=True):
            f = by_id.get(fid, {})
            r.status = str(f.get("status", ""))
            r.loaded = int(f.get("recordsLoaded") or 0)
            if r.status != "Completed" or f.get("exceptionCount"):
                r.exceptions = await self._exceptions(op_id, fid)
        return OperationResult(
            op_id,
            str(status["status"]),
            results,
            {
                "upload": round(uploaded - started, 3),
                "processing": round(done - uploaded, 3),
            },
        )

    async def _upload(self, fid: str, path: str, size: int) -> None:
        name = os.path.basename(path)
        offset = 0
        with open(path, "rb") as fh:
            while offset < size:
                data = fh.read(self.chunk_size)
                boundary = uuid.uuid4().hex
                head = (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
                    f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                )
                body = b"".join((head.encode(), data, f"\r\n--{boundary}--\r\n".encode()))
                await self.client.request(
                    "POST",
                    f"{self.base}/uploads/{fid}/chunk",
                    params={"offset": offset, "size": len(data)},
                    content=body,
                    content_type=f"multipart/form-data; boundary={boundary}",
                    ok=(200, 201, 204),
                )
                offset += len(data)
        await self.client.request("POST", f"{self.base}/uploads/{fid}/commit", ok=(200, 202, 204))

    async def _poll(self, op_id: str) -> dict[str, Any]:
        wait = 0.05
        deadline = time.monotonic() + self.timeout
        while True:
            resp = await self.client.request(
                "GET", f"{self.base}/bulkOperations/{op_id}", parse_json=True
            )
            status: dict[str, Any] = resp.json()
            if self.on_status is not None:
                self.on_status(status)
            if status.get("status") in TERMINAL:
                if status["status"] == "Expired":
                    raise BulkApiError(
                        f"Bulk operation {op_id} expired on the server before it was loaded."
                    )
                return status
            if time.monotonic() > deadline:
                raise BulkApiError(
                    f"Bulk operation {op_id} was still {status.get('status')} after "
                    f"{self.timeout:.0f}s; its files may still load on the server."
                )
            await asyncio.sleep(wait)
            wait = min(self.poll_max, wait * 1.5)

    async def _exceptions(self, op_id: str, fid: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while True:
            resp = await self.client.request(
                "GET",
                f"{self.base}/bulkOperations/{op_id}/exceptions/{fid}",
                params={"offset": len(out), "limit": EXCEPTIONS_PAGE},
                parse_json=True,
            )
            page = resp.json()
            if not isinstance(page, list):
                raise BulkApiError(f"The exceptions of upload file {fid} are not a list.")
            out.extend(page)
            if len(page) < EXCEPTIONS_PAGE:
                return out
