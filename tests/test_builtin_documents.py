"""The built-in documents are the whole official DS 5.0 API (plus lmsx), only shorter.

The sandbox serves ``edfi/data/ds5-*.json``, cut from the official documents by
``sandbox/build_openapi.py`` without their documentation text. These tests pin
that cut against the official documents: the same resources, keys and shapes
(types, formats, lengths, ranges, required, references, descriptors), and a
compact variant holding exactly the resources the synthetic district fills.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edfi.model import ApiModel, builtin_documents, builtin_model, load_model_files
from sandbox.district import GENERATORS

LMSX = {
    "/lmsx/assignments",
    "/lmsx/assignmentSubmissions",
    "/lmsx/assignmentCategoryDescriptors",
    "/lmsx/lmsSourceSystemDescriptors",
    "/lmsx/submissionStatusDescriptors",
    "/lmsx/submissionTypeDescriptors",
}


@pytest.fixture(scope="module")
def official(spec_dir: Path) -> ApiModel:
    return load_model_files(
        str(spec_dir / "openapi" / "resources-ds-5.0.json"),
        str(spec_dir / "openapi" / "descriptors-ds-5.0.json"),
    )


def test_every_official_resource_and_descriptor_with_the_same_shape(official: ApiModel) -> None:
    model = builtin_model()
    assert set(model.resources) == set(official.resources) | LMSX
    assert (len(official), sum(1 for r in official if r.is_descriptor)) == (361, 218)
    for res in official:
        ours = model[res.path]
        assert (ours.key, ours.is_descriptor, ours.schema) == (
            res.key,
            res.is_descriptor,
            res.schema,
        ), res.path
        # every scalar's type, format, lengths, range, required and descriptor; references;
        # collections and embedded objects, recursively
        assert ours.shape == res.shape, res.path
        assert ours.parents == res.parents, res.path
    assert model.abstract == official.abstract


def test_constraints_the_validator_needs_survive_the_cut() -> None:
    students = builtin_model()["/ed-fi/students"].shape.scalars
    assert (students["studentUniqueId"].max_length, students["studentUniqueId"].min_length) == (
        32,
        1,
    )
    assert students["birthDate"].kind == "date" and students["birthDate"].required
    resources, _ = builtin_documents()
    text = json.dumps(resources["components"]["schemas"])
    assert '"_ext"' in text and '"minimum"' in text and '"maximum"' in text
    assert '"minLength"' in text and '"x-Ed-Fi-isIdentity"' in text


def _prose(value: Any, in_properties: bool = False) -> int:
    """How many documentation strings (description, summary) ``value`` holds."""
    if isinstance(value, dict):
        return sum(
            (not in_properties and k in ("description", "summary") and isinstance(v, str))
            + _prose(v, k == "properties" and not in_properties)
            for k, v in value.items()
        )
    if isinstance(value, list):
        return sum(_prose(v) for v in value)
    return 0


def test_documentation_text_is_cut() -> None:
    for doc in builtin_documents():
        assert _prose(doc["components"]["schemas"]) == 0
        ops = [op for path in doc["paths"].values() for op in path.values()]
        assert sum(_prose({k: v for k, v in op.items() if k != "responses"}) for op in ops) == 0
    # what it was cut from holds plenty
    assert _prose({"a": {"description": "x", "properties": {"description": {"summary": "y"}}}}) == 2


def test_compact_variant_is_what_the_district_fills() -> None:
    compact = builtin_model(compact=True)
    assert {r.path for r in compact if not r.is_descriptor} == set(GENERATORS)
    assert {r.path for r in compact if r.is_descriptor} == {
        r.path for r in builtin_model() if r.is_descriptor
    }


def test_shipped_documents_stay_small() -> None:
    sizes = {
        name: len(json.dumps(doc, separators=(",", ":")))
        for name, doc in zip(("resources", "descriptors"), builtin_documents(), strict=True)
    }
    assert sizes["resources"] < 800_000 and sizes["descriptors"] < 700_000, sizes
