"""What the validator asks the target: descriptor values (once per type) and key lookups.

Both are bounded: descriptors are read page by page once per type the input
can name, and references are looked up by natural key once per distinct key,
up to a budget, so validating a million records never means a million GETs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from edfi.client import EdFiClient

PAGE = 500


class TargetLookup:
    """Read-only questions to one Ed-Fi API (``data_url`` is its ``/data/v3`` root)."""

    def __init__(
        self, client: EdFiClient, data_url: str, *, max_lookups: int = 2000, parallel: int = 8
    ) -> None:
        self.client = client
        self.data_url = data_url.rstrip("/")
        self.max_lookups = max_lookups
        self.lookups = 0
        self._sem = asyncio.Semaphore(parallel)
        self._cache: dict[tuple[str, tuple[tuple[str, Any], ...]], bool] = {}

    async def descriptor_values(self, path: str) -> list[tuple[str, str]]:
        """Every (namespace, codeValue) of one descriptor type in the target."""
        out: list[tuple[str, str]] = []
        offset = 0
        while True:
            resp = await self.client.request(
                "GET",
                self.data_url + path,
                params={"offset": offset, "limit": PAGE},
                parse_json=True,
            )
            page = resp.json()
            if not isinstance(page, list):
                break
            out.extend(
                (str(r.get("namespace")), str(r.get("codeValue")))
                for r in page
                if isinstance(r, dict)
            )
            if len(page) < PAGE:
                return out
            offset += PAGE
        return out

    async def all_descriptor_values(self, paths: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
        async def one(p: str) -> tuple[str, list[tuple[str, str]]]:
            async with self._sem:
                return p, await self.descriptor_values(p)

        return dict(await asyncio.gather(*(one(p) for p in sorted(set(paths)))))

    async def exists(self, path: str, key: tuple[tuple[str, Any], ...]) -> bool | None:
        """Whether the target holds a record of ``path`` with ``key``; None once over budget."""
        cached = self._cache.get((path, key))
        if cached is not None:
            return cached
        if self.lookups >= self.max_lookups:
            return None
        self.lookups += 1
        async with self._sem:
            resp = await self.client.request(
                "GET",
                self.data_url + path,
                params={**{k: v for k, v in key}, "limit": 1},
                ok=(200, 404, 400),
                parse_json=True,
            )
        found = resp.status == 200 and isinstance(resp.json(), list) and bool(resp.json())
        self._cache[(path, key)] = found
        return found
