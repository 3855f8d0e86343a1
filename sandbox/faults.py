"""Failures the sandbox injects, so clients can be tested against a server that misbehaves.

Faults hit data and change-query requests only (never discovery, OAuth or
metadata): seeded 500/503s, 429 with ``Retry-After``, connections cut in the
middle of a body, added latency, short-lived tokens, broken JSON pages for
named resources, and a target that refuses students until they are enrolled.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from random import Random
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .problems import ApiError

JSON = "application/json"


@dataclass
class Faults:
    """Failures the sandbox injects into data and change-query requests.

    ``error``: share of requests answered 500 or 503; ``throttle``: share answered
    429 with ``Retry-After: retry_after``; ``drop``: share whose connection is cut
    in the middle of the body; ``latency_ms``: added to every response;
    ``token_ttl``: seconds a token lives; ``malformed``: resource names whose
    collection pages are served as broken JSON; ``forbid_students_until_enrolled``:
    refuse POSTs of students (403) until a school association names them.
    """

    error: float = 0.0
    throttle: float = 0.0
    retry_after: float = 1.0
    drop: float = 0.0
    latency_ms: float = 0.0
    token_ttl: float | None = None
    malformed: frozenset[str] = frozenset()
    forbid_students_until_enrolled: bool = False
    seed: int = 1
    rng: Random = field(default_factory=Random, repr=False)

    def __post_init__(self) -> None:
        self.rng = Random(self.seed)

    @classmethod
    def parse(cls, spec: str | None) -> Faults:
        """``error=0.05,throttle=0.02,retry_after=1,drop=0.01,latency_ms=30,token_ttl=5``."""
        faults = cls()
        if not spec:
            return faults
        values: dict[str, Any] = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            name, _, raw = part.partition("=")
            name = name.strip()
            if name not in cls.__dataclass_fields__ or name == "rng":
                known = ", ".join(n for n in cls.__dataclass_fields__ if n != "rng")
                raise ValueError(f"unknown fault {name!r} in --faults; known: {known}")
            if name == "malformed":
                values[name] = frozenset(x for x in raw.split("|") if x)
            elif name == "forbid_students_until_enrolled":
                values[name] = raw.strip().lower() in ("1", "true", "yes", "")
            elif name == "seed":
                values[name] = int(raw)
            else:
                values[name] = float(raw)
        return cls(**values)

    @property
    def active(self) -> bool:
        return bool(self.error or self.throttle or self.drop or self.latency_ms)


async def inject(faults: Faults) -> ApiError | Response | None:
    """The fault this request meets, if any: an error to answer, or a response that breaks."""
    f = faults
    if f.latency_ms:
        await asyncio.sleep(f.latency_ms / 1000)
    if not (f.error or f.throttle or f.drop):
        return None
    roll = f.rng.random()
    if roll < f.error:
        status = 500 if f.rng.random() < 0.5 else 503
        return ApiError(
            status,
            "internal-server-error",
            "Injected Failure",
            "The sandbox injected this failure (--faults error).",
        )
    roll -= f.error
    if roll < f.throttle:
        return ApiError(
            429,
            "too-many-requests",
            "Too Many Requests",
            "The sandbox injected this throttle (--faults throttle).",
            headers={"Retry-After": f"{f.retry_after:g}"},
        )
    roll -= f.throttle
    if roll < f.drop:
        return DroppedResponse()
    return None


class DroppedResponse(Response):
    """Promise a body, send half of it, then cut the connection."""

    def __init__(self) -> None:
        super().__init__(b"", status_code=200)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", JSON.encode()), (b"content-length", b"100000")],
            }
        )
        await send({"type": "http.response.body", "body": b'[{"id":"', "more_body": True})
        raise ConnectionAbortedError("sandbox fault: connection dropped mid-body")
