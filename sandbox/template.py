"""The minimal template: what a fresh Ed-Fi ODS/API holds before a district loads anything.

A real ODS ships the Data Standard's default descriptor values and its school
years even when it holds no data, and vendor files rely on them (an assessment
bundle's ``AssessmentReportingMethodDescriptor#Scale score``, an LMS extract's
``edfilms`` statuses). Every data set the sandbox serves starts from this
template; the synthetic district is loaded on top, adding only the records the
template lacks (a descriptor is one record per namespace and code value).

The default values come from ``edfi/data/default-descriptors.json.gz``, built by
``python -m sandbox.build_descriptors ../shared/edfi-spec`` (Ed-Fi Data Standard
5.2 and LMS Toolkit values, Apache-2.0; the file carries the attribution).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

from edfi.model import ApiModel

Record = dict[str, Any]
Batches = Iterator[tuple[str, list[Record]]]

DEFAULT_DESCRIPTORS = "default-descriptors.json.gz"
SCHOOL_YEARS = "/ed-fi/schoolYearTypes"


@cache
def default_descriptors() -> dict[str, tuple[Record, ...]]:
    """The shipped default descriptor values, by descriptor resource path."""
    raw = (importlib_resources.files("edfi") / "data" / DEFAULT_DESCRIPTORS).read_bytes()
    doc = json.loads(gzip.decompress(raw))
    return {
        path: tuple(
            {"namespace": ns, "codeValue": code, "shortDescription": short, "description": desc}
            for ns, code, short, desc in rows
        )
        for path, rows in doc["descriptors"].items()
    }


def school_years(school_year: int) -> list[Record]:
    """The school years a data set knows: four back, twelve ahead, ``school_year`` current."""
    return [
        {
            "schoolYear": y,
            "currentSchoolYear": y == school_year,
            "schoolYearDescription": f"{y - 1}-{y}",
        }
        for y in range(school_year - 4, school_year + 13)
    ]


def template(model: ApiModel, school_year: int) -> Batches:
    """The minimal template's records for the resources ``model`` serves, in load order."""
    defaults = default_descriptors()
    for path in model.load_order():
        if path in defaults:
            yield path, list(defaults[path])
        elif path == SCHOOL_YEARS:
            yield path, school_years(school_year)


def _key(model: ApiModel, path: str, record: Record) -> str:
    values = model[path].key_values(record)
    return json.dumps(list(values.values()), sort_keys=True, default=str).lower()


def with_template(
    model: ApiModel, school_year: int, district: Iterable[tuple[str, list[Record]]]
) -> Batches:
    """The template first, then ``district``'s batches without the records it already holds.

    Template resources (descriptors, school years) have no dependencies, so the
    merged stream keeps the load order a bulk loader needs.
    """
    held: dict[str, set[str]] = {}
    for path, batch in template(model, school_year):
        held[path] = {_key(model, path, r) for r in batch}
        yield path, batch
    for path, batch in district:
        keys = held.get(path)
        if keys is None:
            yield path, batch
            continue
        extra = []
        for record in batch:
            key = _key(model, path, record)
            if key not in keys:
                keys.add(key)
                extra.append(record)
        if extra:
            yield path, extra
