"""Descriptor values must exist: in the input's own descriptor files or in the target.

A record that names ``uri://ed-fi.org/GradeLevelDescriptor#Tenth Grade`` where the
target knows only ``#Tenth grade`` is rejected by the API one record at a time;
checking every value up front against the set the target holds (fetched once
per descriptor type) plus the descriptors the input itself will send finds all
of them in seconds, each with its file, line and path. Values are checked
against their own descriptor type, so a grade level named where a sex is
expected is caught too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from edfi.model import ApiModel, Resource

from .problems import DESCRIPTOR, Problem
from .walk import descriptors


def _type_name(descriptor_path: str) -> str:
    """``GradeLevelDescriptor`` for ``/ed-fi/gradeLevelDescriptors``."""
    name = descriptor_path.rsplit("/", 1)[-1].removesuffix("s")
    return name[:1].upper() + name[1:]


def needed(model: ApiModel, resources: Iterable[str]) -> set[str]:
    """The descriptor resources that records of ``resources`` can name."""
    out: set[str] = set()
    for path in resources:
        out.update(d for _, d in model[path].shape.descriptor_paths())
    return out


class DescriptorIndex:
    """The known values of each descriptor type: (namespace, codeValue) pairs."""

    def __init__(self) -> None:
        self.known: dict[str, set[tuple[str, str]]] = {}
        self.loaded: set[str] = set()  # types whose target values were fetched

    def add(self, descriptor_path: str, namespace: Any, code_value: Any) -> None:
        if isinstance(namespace, str) and isinstance(code_value, str):
            self.known.setdefault(descriptor_path, set()).add((namespace, code_value))

    def add_record(self, descriptor_path: str, record: Mapping[str, Any]) -> None:
        """A descriptor record (from an input file or the target)."""
        self.add(descriptor_path, record.get("namespace"), record.get("codeValue"))

    def check(self, resource: Resource, record: Mapping[str, Any]) -> list[Problem]:
        """A problem for each descriptor value of ``record`` that names no known descriptor.

        Types whose values were neither fetched nor given in the input are not
        judged (nothing is known about them).
        """
        problems: list[Problem] = []
        for found in descriptors(resource.shape, record):
            value = found.value
            if not isinstance(value, str) or "#" not in value:
                type_name = _type_name(found.descriptor)
                problems.append(
                    Problem(
                        found.path,
                        DESCRIPTOR,
                        f"{value!r} is not a descriptor value: write it as "
                        f"uri://namespace/{type_name}#CodeValue.",
                    )
                )
                continue
            known = self.known.get(found.descriptor)
            if known is None and found.descriptor not in self.loaded:
                continue
            namespace, _, code = value.rpartition("#")
            if (namespace, code) not in (known or ()):
                type_name = _type_name(found.descriptor)
                problems.append(
                    Problem(
                        found.path,
                        DESCRIPTOR,
                        f"{type_name} value '{value}' does not exist in the target or in the "
                        "input's descriptor files.",
                    )
                )
        return problems
