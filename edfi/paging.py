"""Reading whole resources fast and exactly: parallel pages, bounded memory.

A resource window (its records whose change version lies in [min, max]) is
read in parallel: on ODS/API 7.3+ through cursor partitions (``/partitions``
then ``pageToken`` chains, keyset paging that stays fast at any depth),
otherwise through ``offset``/``limit`` pages. Reads use ``Use-Snapshot`` when
the server has snapshots, so records changing during the pull are neither
lost nor seen twice; without snapshots the offsets are read from the last page
backwards, so records that leave the window while we read cannot shift unread
records out of reach (they are picked up by the next incremental run).

Pages flow to the consumer through a bounded queue: however large the
resource, at most ``2 x parallel`` pages are held in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .client import EdFiClient, EdFiMalformedError

PAGES_PER_CHAIN = 50  # a big resource reads one cursor chain per 50 pages


@dataclass(frozen=True)
class ReadPlan:
    """What to read: a collection URL and its change-version window."""

    url: str  # .../data/v3/ed-fi/students
    min_cv: int | None = None
    max_cv: int | None = None
    snapshot: bool = False

    @property
    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.min_cv is not None:
            out["minChangeVersion"] = self.min_cv
        if self.max_cv is not None:
            out["maxChangeVersion"] = self.max_cv
        return out

    @property
    def headers(self) -> dict[str, str]:
        return {"Use-Snapshot": "true"} if self.snapshot else {}


async def total_count(client: EdFiClient, plan: ReadPlan, suffix: str = "") -> int:
    resp = await client.request(
        "GET",
        plan.url + suffix,
        params={**plan.params, "limit": 0, "totalCount": "true"},
        headers=plan.headers,
    )
    raw = resp.headers.get("total-count")
    if raw is None:
        raise EdFiMalformedError(f"{plan.url}{suffix} did not return a Total-Count header.")
    return int(raw)


async def window_has_records(client: EdFiClient, plan: ReadPlan) -> bool:
    """Whether the window's first page holds a record, whatever Total-Count said.

    A count of 0 on a server that pages by offset (ODS/API < 7.3, whose counts
    can understate) is checked before an incremental run calls the window empty.
    """
    params = {**plan.params, "offset": 0, "limit": 1}
    page, _ = await _get_raw(client, plan.url, params, plan.headers)
    return not page.empty


@dataclass
class RawPage:
    """A page as the server sent it; parsed only when someone asks for the records."""

    body: bytes
    url: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """The page as a person would name it in a message: offset or page token."""
        if "offset" in self.params:
            return f"offset {self.params['offset']}"
        token = str(self.params.get("pageToken", ""))
        return f"page token {token[:24]}" if token else "first page"

    @property
    def empty(self) -> bool:
        return self.body.strip() in (b"[]", b"")

    def records(self) -> list[dict[str, Any]]:
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise EdFiMalformedError(
                f"{self.url} returned a page that is not valid JSON ({exc}); the server or a "
                "proxy in front of it is sending broken responses."
            ) from exc
        if not isinstance(data, list):
            raise EdFiMalformedError(f"{self.url} returned {type(data).__name__}, not a JSON list.")
        return data

    def jsonl(self) -> tuple[bytes, int]:
        """The records as JSON lines, and how many there are.

        ODS/API pages are compact arrays whose records all start with the server's
        ``id``, so the lines are cut without parsing; a page of any other shape is
        parsed and written again. Callers check the count against what they parse.
        """
        body = self.body.strip()
        if body == b"[]":
            return b"", 0
        if body.startswith(b'[{"id":') and body.endswith(b"}]"):
            # one new page-sized object (and one joined), not three: every page of a pull
            # passes here, holding the GIL, and each fresh copy of a few hundred KB costs
            # as much as the scan (this way 0.5 ms a page instead of 1)
            cut = body.replace(b'},{"id":', b'}\n{"id":')
            return b"".join((memoryview(cut)[1:-1], b"\n")), body.count(b'},{"id":') + 1
        return self.exact_jsonl()

    def exact_jsonl(self) -> tuple[bytes, int]:
        records = self.records()
        return b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE) for r in records), len(
            records
        )


async def _get_raw(
    client: EdFiClient, url: str, params: dict[str, Any], headers: dict[str, str]
) -> tuple[RawPage, str | None]:
    resp = await client.request("GET", url, params=params, headers=headers)
    return RawPage(resp.content, url, params), resp.headers.get("next-page-token")


async def _get_page(
    client: EdFiClient, url: str, params: dict[str, Any], headers: dict[str, str]
) -> tuple[list[dict[str, Any]], str | None]:
    resp = await client.request("GET", url, params=params, headers=headers, parse_json=True)
    data = resp.json()
    if not isinstance(data, list):
        raise EdFiMalformedError(f"{url} returned {type(data).__name__}, not a JSON list.")
    return data, resp.headers.get("next-page-token")


async def read_pages(
    client: EdFiClient,
    plan: ReadPlan,
    total: int,
    *,
    page_size: int,
    parallel: int,
    cursor: bool,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every record of the window, page by page (parsed), in no particular order."""
    async for page in read_raw_pages(
        client, plan, total, page_size=page_size, parallel=parallel, cursor=cursor
    ):
        yield page.records()


async def read_all(client: EdFiClient, base: str, path: str) -> AsyncIterator[dict[str, Any]]:
    """Every record of one resource (``base`` a data URL, ``path`` like ``/ed-fi/students``),
    for the flows that read a target's current records rather than a change window."""
    plan = ReadPlan(f"{base}{path}")
    total = await total_count(client, plan)
    cursor = bool(client.discovery and client.discovery.cursor_paging)
    async for page in read_pages(
        client, plan, total, page_size=client.conn.page_size, parallel=4, cursor=cursor
    ):
        for record in page:
            yield record


async def read_raw_pages(
    client: EdFiClient,
    plan: ReadPlan,
    total: int,
    *,
    page_size: int,
    parallel: int,
    cursor: bool,
) -> AsyncGenerator[RawPage, None]:
    """Every page of the window as sent, in no particular order (bounded memory).

    ``total`` (the server's Total-Count) only plans the reads: offset paging reads
    on past the counted pages until a page comes back empty, so a count that
    understates cannot truncate the table (the caller's reconciliation then sees
    more records than counted), and a count of 0 is checked with one read.
    Cursor chains end on the server's word, not the count; an empty window
    (count 0) is not read there, which keeps full pulls of the many empty
    resources of an API at one request each.
    """
    if total == 0 and cursor:
        return
    queue: asyncio.Queue[RawPage | BaseException | None] = asyncio.Queue(
        maxsize=max(2, parallel * 2)
    )
    pages = math.ceil(total / page_size)
    workers = max(1, min(parallel, pages))

    async def run_cursor() -> None:
        # partitions (and chains) grow with the resource: see the chains below
        n = max(1, min(pages, max(workers * 2, pages // PAGES_PER_CHAIN), parallel * 8))
        resp = await client.request(
            "GET",
            plan.url + "/partitions",
            params={**plan.params, "number": n},
            headers=plan.headers,
            parse_json=True,
        )
        tokens = list((resp.json() or {}).get("pageTokens") or [])

        async def chain(token: str | None) -> None:
            while token:
                params = {**plan.params, "pageSize": page_size, "pageToken": token}
                page, token = await _get_raw(client, plan.url, params, plan.headers)
                await queue.put(page)

        # one chain per partition: chains wait in the client's shared request queue, so
        # a resource's share of the requests grows with its size and the big ones are
        # not left to finish alone, at a fraction of the budget, after the rest are done
        await asyncio.gather(*(chain(t) for t in tokens))

    async def run_offsets() -> None:
        # last page first: see the module docstring
        offsets = [i * page_size for i in range(pages - 1, -1, -1)]
        pending: asyncio.Queue[int] = asyncio.Queue()
        for o in offsets:
            pending.put_nowait(o)

        async def worker() -> None:
            while not pending.empty():
                offset = pending.get_nowait()
                params = {**plan.params, "offset": offset, "limit": page_size}
                page, _ = await _get_raw(client, plan.url, params, plan.headers)
                await queue.put(page)

        await asyncio.gather(*(worker() for _ in range(workers)))
        # past the count: a server whose Total-Count understates (seen on ODS/API < 7.3)
        # would otherwise have its table cut short without anyone noticing
        offset = pages * page_size
        while True:
            params = {**plan.params, "offset": offset, "limit": page_size}
            page, _ = await _get_raw(client, plan.url, params, plan.headers)
            if page.empty:
                return
            await queue.put(page)
            offset += page_size

    async def produce() -> None:
        try:
            await (run_cursor() if cursor else run_offsets())
        except BaseException as exc:  # handed to the consumer, re-raised there
            await queue.put(exc)
            return
        await queue.put(None)

    producer = asyncio.create_task(produce())
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        if not producer.done():
            producer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await producer


async def read_tracked(
    client: EdFiClient, plan: ReadPlan, kind: str, *, page_size: int
) -> list[dict[str, Any]]:
    """All ``/deletes`` or ``/keyChanges`` entries of the window (small: read in order)."""
    out: list[dict[str, Any]] = []
    offset = 0
    while True:
        params = {**plan.params, "offset": offset, "limit": page_size}
        page, _ = await _get_page(client, f"{plan.url}/{kind}", params, plan.headers)
        out.extend(page)
        if len(page) < page_size:
            return out
        offset += page_size
