"""The legacy Bulk Load Services (``/bulk/v1``) of ODS/API 2.x-3.x, served by the sandbox.

A client declares an operation and its files (format, interchange type, size),
uploads each file in chunks (``multipart/form-data``, ``offset`` and ``size``
in the query), commits each file, then polls the operation while the server
loads it, and reads the exceptions of each file:

    POST /bulk/v1/bulkOperations                      201, ids, status Initialized
    POST /bulk/v1/uploads/{file_id}/chunk?offset&size  201 (400: past the size, wrong length)
    POST /bulk/v1/uploads/{file_id}/commit             202 (400: bytes missing)
    GET  /bulk/v1/bulkOperations/{id}                 status of the operation and each file
    GET  /bulk/v1/bulkOperations/{id}/exceptions/{file_id}?offset&limit

Statuses: Initialized (declared), Incomplete (chunks arriving), Ready (every
file committed), Started (loading), Completed, Error (something in it was
not loaded: its exceptions say what), Expired (not committed in time).

Loading uses the same reader and mapper as the ``bulk_load`` flow
(``edfi.xml``): the files of one operation are one load (a ``ref`` resolves
across them), validated against the interchange schema (an invalid file is
skipped whole, one exception naming its line), and each record is written as
a POST would write it (``Store.upsert``: validated, descriptors checked,
references resolved), each all or nothing (a savepoint; 500 commit together,
which halves the CPU per record), so one bad record never fails the others.
It runs in a worker thread, resources in dependency order.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.datastructures import UploadFile as FormFile
from starlette.responses import Response

from edfi.xml.reader import XmlLoad, interchange_name
from edfi.xml.spool import XmlItem, XmlSpool
from edfi.xml.xsd import builtin_schema

from .problems import ApiError, bad_request, data_validation_failed, no_such_data
from .routing import Call

if TYPE_CHECKING:
    from .app import Sandbox
    from .store import Store

INITIALIZED = "Initialized"
INCOMPLETE = "Incomplete"
READY = "Ready"
STARTED = "Started"
COMPLETED = "Completed"
ERROR = "Error"
EXPIRED = "Expired"
_DONE = frozenset({COMPLETED, ERROR, EXPIRED})
MAX_CHUNK = 150 * 1024 * 1024  # the ODS/API's largest chunk
FORMAT = "text/xml"
EXPIRE_SECONDS = 3600.0  # an operation not committed within this is Expired
MAX_EXCEPTIONS_PAGE = 500
BATCH = 500  # records per commit (other writers wait for a batch: ~50 ms)
_BLOCK = 1 << 20


@dataclass
class UploadFile:
    """One declared file: where its bytes go, which ranges arrived, what went wrong in it."""

    id: str
    operation: Operation
    format: str
    interchange_type: str
    size: int
    path: str
    status: str = INITIALIZED
    ranges: list[tuple[int, int]] = field(default_factory=list)  # (offset, end) received
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    loaded: int = 0  # records written

    def missing(self) -> list[tuple[int, int]]:
        """The byte ranges not received yet."""
        gaps: list[tuple[int, int]] = []
        at = 0
        for start, end in sorted(self.ranges):
            if start > at:
                gaps.append((at, start))
            at = max(at, end)
        if at < self.size:
            gaps.append((at, self.size))
        return gaps

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "format": self.format,
            "interchangeType": self.interchange_type,
            "size": self.size,
            "status": self.status,
            # beyond the ODS/API's fields: what a client reports without paging exceptions
            "recordsLoaded": self.loaded,
            "exceptionCount": len(self.exceptions),
        }


@dataclass
class Operation:
    id: str
    store: Store
    created: float
    files: list[UploadFile] = field(default_factory=list)
    status: str = INITIALIZED

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "uploadFiles": [f.as_json() for f in self.files],
        }


class BulkService:
    """The operations of one sandbox, their uploaded bytes in a private temporary folder."""

    def __init__(self, sandbox: Sandbox, expire_seconds: float = EXPIRE_SECONDS):
        self.sandbox = sandbox
        self.expire_seconds = expire_seconds
        self.folder = tempfile.mkdtemp(prefix="edfi-sandbox-bulk-")
        self.operations: dict[str, Operation] = {}
        self.files: dict[str, UploadFile] = {}
        self.lock = threading.Lock()
        self.workers: list[threading.Thread] = []
        weakref.finalize(self, shutil.rmtree, self.folder, True)

    # -- lookups -------------------------------------------------------------------------
    def operation(self, call: Call, op_id: str) -> Operation:
        op = self.operations.get(_guid(op_id))
        if op is None or op.store is not call.store:
            raise no_such_data(f"There is no bulk operation '{op_id}'.")
        self._expire(op)
        return op

    def upload(self, call: Call, file_id: str) -> UploadFile:
        f = self.files.get(_guid(file_id))
        if f is None or f.operation.store is not call.store:
            raise no_such_data(f"There is no upload file '{file_id}'.")
        self._expire(f.operation)
        return f

    def _expire(self, op: Operation) -> None:
        if op.status in (INITIALIZED, INCOMPLETE) and (
            time.monotonic() - op.created > self.expire_seconds
        ):
            op.status = EXPIRED
            for f in op.files:
                if f.status in (INITIALIZED, INCOMPLETE, READY):
                    f.status = EXPIRED
                    _remove(f.path)

    # -- the operation -------------------------------------------------------------------
    def create(self, call: Call, body: Any) -> Operation:
        problems: dict[str, list[str]] = {}
        files = body.get("uploadFiles") if isinstance(body, dict) else None
        if not isinstance(files, list) or not files:
            raise data_validation_failed(
                {"$.uploadFiles": ["At least one upload file is required."]}
            )
        known = {i.lower(): i for i in builtin_schema().interchanges}
        declared: list[tuple[str, str, int]] = []
        for n, spec in enumerate(files):
            where = f"$.uploadFiles[{n}]"
            before = len(problems)
            if not isinstance(spec, dict):
                problems[where] = ["An upload file is an object."]
                continue
            fmt = spec.get("format")
            if not isinstance(fmt, str) or fmt.lower() != FORMAT:
                problems[f"{where}.format"] = [f"The format must be '{FORMAT}'."]
            kind = spec.get("interchangeType")
            name = known.get(interchange_name(kind).lower()) if isinstance(kind, str) else None
            if name is None:
                problems[f"{where}.interchangeType"] = [
                    f"'{kind}' is not an Ed-Fi interchange (e.g. 'descriptors', 'student')."
                ]
            size = spec.get("size")
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                problems[f"{where}.size"] = ["The size is the file's length in bytes, above 0."]
            if len(problems) == before:
                declared.append((str(fmt), str(kind), int(size)))  # type: ignore[arg-type]
        if problems:
            raise data_validation_failed(problems)
        assert call.store is not None
        op = Operation(uuid.uuid4().hex, call.store, time.monotonic())
        os.makedirs(os.path.join(self.folder, op.id))
        for fmt, kind, size in declared:
            fid = uuid.uuid4().hex
            path = os.path.join(self.folder, op.id, fid + ".xml")
            with open(path, "wb") as fh:
                fh.truncate(size)
            op.files.append(UploadFile(fid, op, fmt, kind, size, path))
        with self.lock:
            self.operations[op.id] = op
            self.files.update((f.id, f) for f in op.files)
        return op

    def check_writable(self, f: UploadFile) -> None:
        if f.status == EXPIRED:
            raise bad_request(
                f"Upload file '{f.id}' expired: its operation was not committed within "
                f"{self.expire_seconds:.0f} seconds. Create a new bulk operation."
            )
        if f.status not in (INITIALIZED, INCOMPLETE):
            raise bad_request(f"Upload file '{f.id}' is already committed ({f.status}).")

    def write_chunk(self, f: UploadFile, offset: int, part: FormFile, size: int) -> None:
        """The part's bytes at ``offset`` (a worker thread: a chunk can be 150 MB)."""
        part.file.seek(0)
        written = 0
        with open(f.path, "r+b") as out:
            out.seek(offset)
            while block := part.file.read(_BLOCK):
                written += len(block)
                if written > size:
                    break
                out.write(block)
        if written != size:
            raise bad_request(
                f"The chunk holds {written} bytes but size={size} was given; send exactly "
                "`size` bytes in the file part."
            )

    def commit(self, f: UploadFile) -> None:
        self.check_writable(f)
        gaps = f.missing()
        if gaps:
            shown = ", ".join(f"{a}-{b - 1}" for a, b in gaps[:5])
            raise bad_request(
                f"Upload file '{f.id}' cannot be committed: bytes {shown} of its {f.size} "
                "were never uploaded. Upload those chunks, then commit."
            )
        f.status = READY
        op = f.operation
        if all(x.status == READY for x in op.files):
            op.status = READY
            worker = threading.Thread(
                target=self.process, args=(op,), name=f"bulk-{op.id}", daemon=True
            )
            self.workers.append(worker)
            worker.start()

    # -- loading -------------------------------------------------------------------------
    def process(self, op: Operation) -> None:
        """Load every file of the operation into its data set; exceptions kept per file."""
        op.status = STARTED
        for f in op.files:
            f.status = STARTED
        try:
            self._load(op)
        except Exception as exc:  # a bug here must not leave the operation Started forever
            for f in op.files:
                f.exceptions.append(_exception(None, 0, f"the load stopped: {exc!r}", 500))
        for f in op.files:
            f.status = ERROR if f.exceptions else COMPLETED
            _remove(f.path)
        op.status = ERROR if any(f.status == ERROR for f in op.files) else COMPLETED

    def _load(self, op: Operation) -> None:
        model = self.sandbox.model
        by_path = {f.path: f for f in op.files}
        load = XmlLoad([f.path for f in op.files], model, validate=True)
        with XmlSpool(load) as spool:
            report = spool.build()
            for p in report.file_problems:
                by_path[p.file].exceptions.append(_exception(None, p.line, p.message, 400))
            assert load.report is not None
            known = {i.lower(): i for i in builtin_schema().interchanges}
            for path, root in load.report.interchanges.items():
                f = by_path[path]
                declared = known.get(interchange_name(f.interchange_type).lower())
                if root != declared:
                    f.exceptions.append(
                        _exception(
                            None,
                            1,
                            f"declared as {f.interchange_type}, but the file is an {root}",
                            400,
                        )
                    )
            present = set(spool.resources())
            order = [p for p in model.load_order() if p in present and model[p].is_descriptor]
            order += [p for p in model.load_order() if p in present and p not in order]
            for path in order:
                items = spool.items(path)
                while True:
                    # a batch commits together, each record still its own savepoint
                    with op.store.batch():
                        written = self._write(op, path, items, by_path)
                    if written < BATCH:
                        break

    def _write(
        self, op: Operation, path: str, items: Iterator[XmlItem], by_path: dict[str, UploadFile]
    ) -> int:
        """Up to ``BATCH`` items of one resource written; how many were taken."""
        resource = self.sandbox.model[path]
        taken = 0
        for item in items:
            taken += 1
            f = by_path[item.origin.file]
            o = item.origin
            if item.record is None:
                f.exceptions.append(
                    _exception(o.element, o.line, item.error or "not a record", 400, path)
                )
            else:
                try:
                    op.store.upsert(resource, item.record)
                except ApiError as err:
                    f.exceptions.append(
                        _exception(o.element, o.line, _message(err), err.status, path)
                    )
                else:
                    f.loaded += 1
            if taken == BATCH:
                break
        return taken


def _exception(
    element: str | None, line: int, message: str, code: int, resource: str | None = None
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "element": element,
        "lineNumber": line,
        "resource": resource,
        "code": code,
        "message": message,
        "dateTime": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def _message(err: ApiError) -> str:
    text = err.detail
    if err.validation_errors:
        text += " " + "; ".join(f"{k}: {' '.join(v)}" for k, v in err.validation_errors.items())
    if err.errors:
        text += " " + " ".join(err.errors)
    return text


def _remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)


def _guid(raw: str) -> str:
    try:
        return uuid.UUID(raw).hex
    except ValueError:
        return ""


_SERVICES: weakref.WeakKeyDictionary[Sandbox, BulkService] = weakref.WeakKeyDictionary()


def service(sb: Sandbox) -> BulkService:
    """The sandbox's bulk service, made on first use."""
    found = _SERVICES.get(sb)
    if found is None:
        found = _SERVICES[sb] = BulkService(sb)
    return found


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


def _int(call: Call, name: str, default: int | None = None) -> int:
    raw = call.query.get(name.lower())
    if raw in (None, ""):
        if default is None:
            raise bad_request(f"The query parameter '{name}' is required.")
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"The value '{raw}' is not valid for {name}.") from None


# -- handlers ------------------------------------------------------------------------------


async def create_operation(sb: Sandbox, call: Call) -> Response:
    raw = await call.request.body()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise data_validation_failed(
            {"$": [f"The request body is not valid JSON: {exc}."]}
        ) from exc
    op = service(sb).create(call, body)
    where = f"{sb.public_base(call)}{call.prefix}/bulk/v1/bulkOperations/{op.id}"
    return _json(op.as_json(), 201, {"Location": where})


async def get_operation(sb: Sandbox, call: Call) -> Response:
    return _json(service(sb).operation(call, call.params["id"]).as_json())


async def get_exceptions(sb: Sandbox, call: Call) -> Response:
    op = service(sb).operation(call, call.params["id"])
    f = next((x for x in op.files if x.id == _guid(call.params["file_id"])), None)
    if f is None:
        raise no_such_data(
            f"Bulk operation '{op.id}' has no upload file '{call.params['fileId']}'."
        )
    offset = _int(call, "offset", 0)
    limit = _int(call, "limit", 25)
    if offset < 0 or not 0 <= limit <= MAX_EXCEPTIONS_PAGE:
        raise bad_request(
            f"offset must be 0 or more and limit between 0 and {MAX_EXCEPTIONS_PAGE}."
        )
    return _json(f.exceptions[offset : offset + limit])


async def upload_chunk(sb: Sandbox, call: Call) -> Response:
    svc = service(sb)
    f = svc.upload(call, call.params["file_id"])
    svc.check_writable(f)
    offset = _int(call, "offset")
    size = _int(call, "size")
    if offset < 0 or size <= 0:
        raise bad_request("offset must be 0 or more and size above 0.")
    if size > MAX_CHUNK:
        raise bad_request(f"A chunk is at most {MAX_CHUNK} bytes (150 MB); size={size}.")
    if offset + size > f.size:
        raise bad_request(
            f"offset {offset} + size {size} is past the end of upload file '{f.id}' "
            f"({f.size} bytes declared)."
        )
    if "multipart/form-data" not in call.request.headers.get("content-type", ""):
        raise bad_request("A chunk is sent as multipart/form-data with the bytes as a file part.")
    form = await call.request.form(max_files=1, max_fields=10)
    try:
        part = next((v for _, v in form.multi_items() if isinstance(v, FormFile)), None)
        if part is None:
            raise bad_request("The multipart body holds no file part with the chunk's bytes.")
        await anyio.to_thread.run_sync(svc.write_chunk, f, offset, part, size)
    finally:
        await form.close()
    f.ranges.append((offset, offset + size))
    f.status = INCOMPLETE
    if f.operation.status == INITIALIZED:
        f.operation.status = INCOMPLETE
    return Response(status_code=201)


async def commit_upload(sb: Sandbox, call: Call) -> Response:
    svc = service(sb)
    svc.commit(svc.upload(call, call.params["file_id"]))
    return Response(status_code=202)
