"""Build the default descriptor values shipped in ``edfi/data/default-descriptors.json.gz``.

A development tool, not run by the project. A fresh Ed-Fi ODS/API (the
"minimal template") already holds the Data Standard's default descriptor
values, and vendor files rely on them (every assessment bundle uses
``uri://ed-fi.org/AssessmentReportingMethodDescriptor#Scale score``); the
sandbox must hold them too. This script reads the DS 5.2
``InterchangeDescriptors`` XML files, keeps the values whose descriptor
resource exists in the DS 5.0 descriptors OpenAPI document (the model the
sandbox serves), adds the LMS Toolkit's ``lmsx`` descriptor values, and writes
one small gzipped JSON file. Run it from the project root:

    python -m sandbox.build_descriptors ../shared/edfi-spec

Attribution: the default descriptor values are the Ed-Fi Data Standard's
(Ed-Fi-Alliance-OSS/Ed-Fi-Data-Standard, ``Descriptors/``, DS 5.2) and the
``lmsx`` values the Ed-Fi LMS Toolkit's (Ed-Fi-Exchange-OSS/LMS-Toolkit,
``extension/Descriptors/``), both © Ed-Fi Alliance, LLC, licensed under the
Apache License 2.0. The values are copied as data; the shipped file names its
sources.
"""

from __future__ import annotations

import gzip
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

OUTPUT = "default-descriptors.json.gz"

ATTRIBUTION = (
    "Default descriptor values of the Ed-Fi Data Standard 5.2 "
    "(Ed-Fi-Alliance-OSS/Ed-Fi-Data-Standard, Descriptors/*.xml) and the lmsx descriptor "
    "values of the Ed-Fi LMS Toolkit (Ed-Fi-Exchange-OSS/LMS-Toolkit, "
    "extension/Descriptors/*.xml). (c) Ed-Fi Alliance, LLC. Licensed under the Apache "
    "License, Version 2.0 (http://www.apache.org/licenses/LICENSE-2.0). "
    "Built by sandbox/build_descriptors.py; descriptor resources absent from the DS 5.0 "
    "descriptors API are left out."
)

LMS = "uri://ed-fi.org/edfilms"
# The LMS Toolkit's source systems, as its LMSSourceSystemDescriptor code values; the
# harmonizer joins each per-system descriptor on namespace ".../<Type>Descriptor/" + system.
SOURCE_SYSTEMS = (("Canvas", "Canvas"), ("Google", "Google Classroom"), ("Schoology", "Schoology"))

# (descriptor resource, source system, code values) of the LMS Toolkit (its descriptor
# files, completed with the values the LMS extension's description lists and the values
# its extractors write).
LMSX_VALUES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("assignmentCategoryDescriptors", "Canvas", ("Assignment",)),
    (
        "assignmentCategoryDescriptors",
        "Google",
        (
            "COURSE_WORK_TYPE_UNSPECIFIED",
            "Assignment",
            "SHORT_ANSWER_QUESTION",
            "MULTIPLE_CHOICE_QUESTION",
        ),
    ),
    ("assignmentCategoryDescriptors", "Schoology", ("Assignment", "Discussion", "Assessment")),
    ("submissionStatusDescriptors", "Canvas", ("on-time", "late", "missing", "graded")),
    (
        "submissionStatusDescriptors",
        "Google",
        (
            "SUBMISSION_STATE_UNSPECIFIED",
            "NEW",
            "CREATED",
            "TURNED_IN",
            "RETURNED",
            "RECLAIMED_BY_STUDENT",
            "LATE",
            "MISSING",
        ),
    ),
    (
        "submissionStatusDescriptors",
        "Schoology",
        ("on-time", "late", "missing", "draft", "Upcoming"),
    ),
    (
        "submissionTypeDescriptors",
        "Canvas",
        (
            "basic_lti_launch",
            "discussion_topic",
            "media_recording",
            "online_quiz",
            "online_text_entry",
            "online_upload",
            "online_url",
            "none",
            "on_paper",
            "external_tool",
        ),
    ),
    # Google Classroom's extractor writes a coursework's workType as its SubmissionType as
    # well as its AssignmentCategory, but the toolkit's descriptor file lists those codes
    # only as categories: without these every Google assignment's type (ASSIGNMENT) is a
    # missing descriptor. Schoology's extractor writes no SubmissionType, so it needs none.
    (
        "submissionTypeDescriptors",
        "Google",
        (
            "COURSE_WORK_TYPE_UNSPECIFIED",
            "ASSIGNMENT",
            "SHORT_ANSWER_QUESTION",
            "MULTIPLE_CHOICE_QUESTION",
        ),
    ),
)


def _read_xml(path: Path) -> list[tuple[str, list[str]]]:
    """(element name, [namespace, codeValue, shortDescription, description]) per value."""
    out = []
    for el in ET.parse(path).getroot():
        name = el.tag.rsplit("}", 1)[-1]
        fields = {child.tag.rsplit("}", 1)[-1]: (child.text or "").strip() for child in el}
        out.append(
            (
                name,
                [
                    fields["Namespace"],
                    fields["CodeValue"],
                    fields["ShortDescription"],
                    fields.get("Description") or fields["ShortDescription"],
                ],
            )
        )
    return out


def _lmsx() -> dict[str, list[list[str]]]:
    out: dict[str, list[list[str]]] = {
        "/lmsx/lmsSourceSystemDescriptors": [
            [f"{LMS}/LMSSourceSystemDescriptor", code, label, label]
            for code, label in SOURCE_SYSTEMS
        ]
    }
    for name, system, codes in LMSX_VALUES:
        typ = name[0].upper() + name[1:-1]
        out.setdefault(f"/lmsx/{name}", []).extend(
            [f"{LMS}/{typ}/{system}", code, code, code] for code in codes
        )
    return out


def build(spec_dir: Path) -> dict[str, Any]:
    desc = json.loads((spec_dir / "openapi" / "descriptors-ds-5.0.json").read_text("utf-8-sig"))
    # ODS/API route names camel-case a leading acronym ("CTEProgramServiceDescriptor" ->
    # cteProgramServiceDescriptors), so element names are matched without case.
    paths = {
        p.rsplit("/", 1)[-1].lower(): p
        for p in desc["paths"]
        if p.startswith("/ed-fi/") and p.count("/") == 2
    }
    values: dict[str, list[list[str]]] = {}
    left_out: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    for xml in sorted((spec_dir / "descriptors-ds5.2").glob("*.xml")):
        for name, row in _read_xml(xml):
            path = paths.get(name.lower() + "s")
            if path is None:
                left_out[name] = left_out.get(name, 0) + 1
                continue
            key = (row[0].lower(), row[1].lower())
            if key in seen:
                continue
            seen.add(key)
            values.setdefault(path, []).append(row)
    values |= _lmsx()
    if left_out:
        print(
            "left out (not in DS 5.0): "
            + ", ".join(f"{k} ({v})" for k, v in sorted(left_out.items())),
            file=sys.stderr,
        )
    return {"attribution": ATTRIBUTION, "descriptors": dict(sorted(values.items()))}


def main() -> None:
    spec_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/edfi-spec")
    out = Path(__file__).resolve().parent.parent / "edfi" / "data" / OUTPUT
    doc = build(spec_dir)
    data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # mtime=0: the same input builds the same bytes
    out.write_bytes(gzip.compress(data, mtime=0))
    n = sum(len(v) for v in doc["descriptors"].values())
    print(f"{n} values of {len(doc['descriptors'])} descriptor resources -> {out}")


if __name__ == "__main__":
    main()
