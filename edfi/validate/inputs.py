"""Validating a folder of Ed-Fi JSON files, every layer, every error with file, line and path.

One streaming pass per resource runs the layers a person asked for:
``schema`` (the record against the model, ``check_record``), ``descriptors``
(values exist in the input or the target), ``uniqueness`` (natural keys
unique within the input), and references -- ``local-references`` judges a
reference only when the input carries records of the resource it points at
(the cheap default), ``references`` judges every one. References the input
does not resolve are then looked up in the target, a bounded number of
times. A line that is not JSON is a ``malformed-json`` problem on that line.

Only findings are kept in memory (plus 16-byte key digests), so the report
of a clean million-record folder is a handful of counts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from edfi.jsonfiles import Origin, Records
from edfi.model import ApiModel

from .descriptors import DescriptorIndex, needed
from .problems import MALFORMED_JSON, Problem
from .references import Pending, ReferenceIndex, unresolved
from .remote import TargetLookup
from .schema import check_record
from .uniqueness import KeyTracker

METHODS = ("schema", "descriptors", "uniqueness", "local-references", "references")
DEFAULT_METHODS = ("schema", "descriptors", "uniqueness", "local-references")


class ValidationSetupError(ValueError):
    """The validation asked for cannot run (unknown method); raised before any file is read."""


def parse_methods(methods: str | Iterable[str] | None) -> tuple[str, ...]:
    """``"schema,descriptors"``, a list, ``"*"``/``"all"`` (every layer) or None (the default)."""
    if methods is None:
        return DEFAULT_METHODS
    items = [m.strip() for m in methods.split(",")] if isinstance(methods, str) else list(methods)
    items = [m for m in items if m]
    if items in (["*"], ["all"]):
        return ("schema", "descriptors", "uniqueness", "references")
    unknown = [m for m in items if m not in METHODS]
    if unknown:
        raise ValidationSetupError(
            f"Unknown validation method(s) {', '.join(unknown)}; choose from {', '.join(METHODS)}."
        )
    return tuple(dict.fromkeys(items))


@dataclass
class ResourceReport:
    """One resource's validation: lines read, and the problems of each bad line."""

    resource: str
    records: int = 0
    problems: dict[Origin, list[Problem]] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return len(self.problems)

    def add(self, origin: Origin, found: Sequence[Problem]) -> None:
        if found:
            self.problems.setdefault(origin, []).extend(found)


@dataclass
class InputReport:
    """The whole folder's validation."""

    methods: tuple[str, ...]
    resources: dict[str, ResourceReport] = field(default_factory=dict)
    unchecked_references: int = 0  # over the lookup budget: neither passed nor failed
    stopped_early: bool = False

    @property
    def failed(self) -> int:
        return sum(r.failed for r in self.resources.values())

    @property
    def records(self) -> int:
        return sum(r.records for r in self.resources.values())

    def rows(self) -> list[tuple[str, Origin, Problem]]:
        """Every finding, in resource, file and line order."""
        out: list[tuple[str, Origin, Problem]] = []
        for name, rep in self.resources.items():
            for origin in sorted(rep.problems, key=lambda o: (o.file, o.line)):
                out.extend((name, origin, p) for p in rep.problems[origin])
        return out


async def validate_input(
    model: ApiModel,
    inputs: Records,
    *,
    resources: Sequence[str] | None = None,
    methods: Iterable[str] | str | None = None,
    lookup: TargetLookup | None = None,
    max_failures: int | None = None,
) -> InputReport:
    """Validate ``resources`` (default: every resource of the input) with ``methods``.

    ``lookup`` is the target, for descriptor values and references the input
    does not resolve; without it only the input itself is consulted.
    """
    chosen = parse_methods(methods)
    selected = model.load_order(resources if resources is not None else inputs.resources())
    report = InputReport(chosen)
    descriptor_index = DescriptorIndex()
    if "descriptors" in chosen:
        await _load_descriptors(model, inputs, selected, descriptor_index, lookup)
    check_refs = "references" in chosen or "local-references" in chosen
    ref_index = ReferenceIndex(model)
    if check_refs:
        _index_references(model, inputs, selected, ref_index)
    only_local = "references" not in chosen
    pending: list[tuple[str, Origin, Pending]] = []

    for path in selected:
        resource = model[path]
        rep = report.resources[path] = ResourceReport(path)
        keys = KeyTracker(resource)
        for item in inputs.items(path):
            rep.records += 1
            if item.record is None:
                rep.add(item.origin, [Problem("", MALFORMED_JSON, item.error or "invalid JSON")])
            else:
                found = _check(model, chosen, resource, item.record, descriptor_index)
                if "uniqueness" in chosen:
                    found.extend(keys.check(item.record, str(item.origin)))
                rep.add(item.origin, found)
                if check_refs and not resource.is_descriptor:
                    for p in ref_index.resolve(
                        resource, item.record, only_local_targets=only_local
                    ):
                        pending.append((path, item.origin, p))
            if max_failures is not None and report.failed >= max_failures:
                report.stopped_early = True
                break
        if report.stopped_early:
            break

    await _resolve_remote(report, pending, lookup)
    return report


def _check(
    model: ApiModel,
    chosen: tuple[str, ...],
    resource: Any,
    record: Mapping[str, Any],
    descriptor_index: DescriptorIndex,
) -> list[Problem]:
    found: list[Problem] = []
    if "schema" in chosen:
        found.extend(check_record(model, resource, record))
    if "descriptors" in chosen:
        found.extend(descriptor_index.check(resource, record))
    return found


async def _load_descriptors(
    model: ApiModel,
    inputs: Records,
    selected: Sequence[str],
    index: DescriptorIndex,
    lookup: TargetLookup | None,
) -> None:
    """The input's own descriptor records, then the target's values of each type needed."""
    for path in inputs.resources():
        if model[path].is_descriptor:
            for item in inputs.items(path):
                if item.record is not None:
                    index.add_record(path, item.record)
    if lookup is None:
        return
    wanted = needed(model, selected)
    for path, values in (await lookup.all_descriptor_values(wanted)).items():
        index.loaded.add(path)
        for namespace, code in values:
            index.add(path, namespace, code)


def _index_references(
    model: ApiModel, inputs: Records, selected: Sequence[str], index: ReferenceIndex
) -> None:
    """Keys of every input resource that a selected resource can reference."""
    targets: set[str] = set()
    for path in selected:
        targets.update(model.dependencies[path])
    for path in inputs.resources():
        if path not in targets:
            continue
        resource = model[path]
        index.keys.setdefault(path, set())
        for item in inputs.items(path):
            if item.record is not None:
                index.add(resource, item.record)


async def _resolve_remote(
    report: InputReport,
    pending: list[tuple[str, Origin, Pending]],
    lookup: TargetLookup | None,
) -> None:
    """Look the unresolved references up in the target (bounded); report what is missing."""
    if lookup is not None:
        distinct = {c for _, _, p in pending for c in p.candidates}
        await asyncio.gather(*(lookup.exists(t, k) for t, k in sorted(distinct, key=repr)))
    for path, origin, p in pending:
        if lookup is None:
            report.resources[path].add(origin, [unresolved(p, looked_in_target=False)])
            continue
        outcome: bool | None = False
        for target, key in p.candidates:
            found = await lookup.exists(target, key)
            if found:
                outcome = True
                break
            if found is None:
                outcome = None
        if outcome is None:
            report.unchecked_references += 1
        elif not outcome:
            report.resources[path].add(origin, [unresolved(p, looked_in_target=True)])
