"""Comparing a lake with what a sandbox holds, independently of the lake writer.

The sandbox's records are typed here by walking the model (strings to dates and
date-times), not through the extract's JSON reader, so a mistake in the writer
shows up as a difference.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from edfi.lake import Lake, read_table
from edfi.model import Resource, Shape
from sandbox.store import Store

LINEAGE = {"_school_year", "_change_version", "_pulled_at"}


def _typed(shape: Shape, record: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, s in shape.scalars.items():
        if record.get(name) is not None:
            out[name] = _scalar(s.kind, record[name])
    for name, ref in shape.references.items():
        value = record.get(name)
        if value:
            out[name] = {
                f.name: _scalar(f.kind, value[f.name])
                for f in ref.fields
                if value.get(f.name) is not None
            }
    for name, sub in shape.collections.items():
        items = record.get(name)
        if items:
            out[name] = [_typed(sub, item) for item in items]
    for name, sub in shape.objects.items():
        if record.get(name):
            out[name] = _typed(sub, record[name])
    return out


def _scalar(kind: str, value: Any) -> Any:
    if kind == "date":
        return dt.date.fromisoformat(value)
    if kind == "date-time":
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if kind == "number":
        return float(value)
    return value


def expected_rows(store: Store, resource: Resource) -> dict[str, dict[str, Any]]:
    """The sandbox's records of a resource as the lake should hold them, by id."""
    out = {}
    for rec in store.iter_records(resource):
        row = _typed(resource.shape, rec)
        row["id"] = rec["id"]
        row["_etag"] = rec["_etag"]
        row["_lastModifiedDate"] = _scalar("date-time", rec["_lastModifiedDate"])
        out[rec["id"]] = row
    return out


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        cleaned = {k: _clean(v) for k, v in value.items() if k not in LINEAGE}
        return {k: v for k, v in cleaned.items() if v is not None and v != [] and v != {}}
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def lake_rows(lake: Lake, resource: Resource, year: int) -> dict[str, dict[str, Any]]:
    """The committed current table of a resource, by id (lineage columns dropped)."""
    files = lake.committed_files(resource, year)
    table = read_table(lake, files)
    rows = [_clean(r) for r in table.to_pylist()]
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows), f"{resource.full_name}: duplicate ids in the lake"
    return by_id


def expected_all(store: Store) -> dict[str, dict[str, dict[str, Any]]]:
    """Every resource's expected rows, captured now (before a test changes the data)."""
    return {r.full_name: expected_rows(store, r) for r in store.model}


def differences(
    lake: Lake,
    store: Store,
    year: int,
    expected: dict[str, dict[str, dict[str, Any]]] | None = None,
) -> dict[str, str]:
    """Resources whose lake table differs from the sandbox (or from ``expected``)."""
    expected = expected if expected is not None else expected_all(store)
    problems: dict[str, str] = {}
    for resource in store.model:
        want = expected[resource.full_name]
        got = lake_rows(lake, resource, year)
        if want.keys() != got.keys():
            problems[resource.full_name] = (
                f"{len(got)} rows in the lake, {len(want)} in the sandbox; "
                f"missing {len(want.keys() - got.keys())}, extra {len(got.keys() - want.keys())}"
            )
            continue
        for id_, row in want.items():
            if _clean(row) != got[id_]:
                problems[resource.full_name] = f"record {id_} differs: {row} != {got[id_]}"
                break
    return problems
