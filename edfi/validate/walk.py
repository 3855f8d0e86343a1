"""The descriptor values and references of one record, each with its path in the record.

The descriptor and reference layers both need to visit what a record points
at -- including inside child collections (``gradeLevels[2].gradeLevelDescriptor``)
-- and to name where it is, so they share this one walk over the model's shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

from edfi.model import Reference, Shape


@dataclass(frozen=True, slots=True)
class DescriptorValue:
    path: str  # entryGradeLevelDescriptor, gradeLevels[0].gradeLevelDescriptor
    descriptor: str  # resource path of the descriptor: /ed-fi/gradeLevelDescriptors
    value: Any


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    path: str  # schoolReference, sessions[1].sessionReference
    reference: Reference
    values: dict[str, Any]  # the reference's key fields (without ``link``)


def _is_map(value: Any) -> TypeGuard[Mapping[str, Any]]:
    """Whether ``value`` is an object: a parsed record's are dicts, checked first (the
    ``Mapping`` ABC check costs more than the rest of a walk step)."""
    return type(value) is dict or isinstance(value, Mapping)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def descriptors(
    shape: Shape, body: Mapping[str, Any], prefix: str = ""
) -> Iterator[DescriptorValue]:
    """Every descriptor value present in ``body`` (absent or null: the schema layer's business)."""
    for s in shape.scalars.values():
        if s.descriptor and body.get(s.name) is not None:
            yield DescriptorValue(_join(prefix, s.name), s.descriptor, body[s.name])
    for r in shape.references.values():
        ref = body.get(r.name)
        if _is_map(ref):
            for f in r.fields:
                if f.descriptor and ref.get(f.name) is not None:
                    yield DescriptorValue(
                        _join(prefix, f"{r.name}.{f.name}"), f.descriptor, ref[f.name]
                    )
    for name, child in shape.objects.items():
        value = body.get(name)
        if _is_map(value):
            yield from descriptors(child, value, _join(prefix, name))
    for name, child in shape.collections.items():
        items = body.get(name)
        if isinstance(items, list):
            for i, item in enumerate(items):
                if _is_map(item):
                    yield from descriptors(child, item, f"{_join(prefix, name)}[{i}]")


def references(shape: Shape, body: Mapping[str, Any], prefix: str = "") -> Iterator[ReferenceValue]:
    """Every reference present in ``body`` whose key fields are all given."""
    for r in shape.references.values():
        ref = body.get(r.name)
        if not _is_map(ref):
            continue
        values = {f.name: ref.get(f.name) for f in r.fields}
        if any(v is None for v in values.values()):
            continue  # incomplete: the schema layer reports the missing field
        yield ReferenceValue(_join(prefix, r.name), r, values)
    for name, child in shape.objects.items():
        value = body.get(name)
        if _is_map(value):
            yield from references(child, value, _join(prefix, name))
    for name, child in shape.collections.items():
        items = body.get(name)
        if isinstance(items, list):
            for i, item in enumerate(items):
                if _is_map(item):
                    yield from references(child, item, f"{_join(prefix, name)}[{i}]")
