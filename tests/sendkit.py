"""Helpers of the send tests: a district as lightbeam-layout JSONL, and snapshots of a target."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from edfi.model import SERVER_FIELDS, ApiModel
from sandbox.store import Store

DROP = SERVER_FIELDS | {"link"}


def clean(value: Any) -> Any:
    """A record as a person would write it: no server fields, no links."""
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items() if k not in DROP}
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def export(
    store: Store, model: ApiModel, folder: Path, paths: Iterable[str] | None = None
) -> dict[str, int]:
    """Every record of ``paths`` (default: all with records) as ``{resource}.jsonl``."""
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for path in paths if paths is not None else [r.path for r in model]:
        records = [clean(r) for r in store.iter_records(model[path])]
        if not records:
            continue
        res = model[path]
        where = folder / (
            f"{res.name}.jsonl" if res.namespace == "ed-fi" else f"{res.namespace}/{res.name}.jsonl"
        )
        where.parent.mkdir(parents=True, exist_ok=True)
        where.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        counts[path] = len(records)
    return counts


def snapshot(store: Store, model: ApiModel, paths: Iterable[str]) -> dict[str, list[bytes]]:
    """What the target holds of ``paths``, comparable across servers (sorted, no server fields)."""
    return {
        p: sorted(
            orjson.dumps(clean(r), option=orjson.OPT_SORT_KEYS)
            for r in store.iter_records(model[p])
        )
        for p in paths
    }
