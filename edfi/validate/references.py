"""References must resolve: to a record in the input, or to one the target already holds.

The API answers a dangling reference with a 409 one record at a time, after
the record's parents were sent. Resolving references before sending catches
them all at once: the keys of every referenced resource the input carries are
indexed first, and what the input does not resolve is looked up in the target
with a bounded number of requests (distinct keys once each, the rest reported
as unchecked rather than guessed).

A reference names its target by the target's key fields, except for abstract
targets (``educationOrganizationReference`` -> schools, local education
agencies, ...), whose single identity field is matched to each concrete
resource's own key field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edfi.model import ApiModel, Reference, Resource

from .problems import UNRESOLVED_REFERENCE, Problem
from .walk import ReferenceValue, references


def _frozen(value: Any) -> Any:
    return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value


def target_key(target: Resource, ref_values: Mapping[str, Any]) -> dict[str, Any] | None:
    """The reference's values under ``target``'s key names (None when they cannot match)."""
    names = target.key_names
    if set(names) == set(ref_values):
        return {n: ref_values[n] for n in names}
    if len(names) != len(ref_values):
        return None
    common = set(names) & set(ref_values)
    left_t = sorted(n for n in names if n not in common)
    left_r = sorted(n for n in ref_values if n not in common)
    out = {n: ref_values[n] for n in common}
    out.update({t: ref_values[r] for t, r in zip(left_t, left_r, strict=True)})
    return {n: out[n] for n in names}


def key_tuple(values: Mapping[str, Any], names: Iterable[str]) -> tuple[Any, ...]:
    """A hashable key; numbers compare as text, as the API's query parameters do."""
    return tuple(_frozen(values.get(n)) for n in names)


@dataclass(frozen=True, slots=True)
class Pending:
    """A reference the input does not resolve: to be looked up in the target."""

    path: str
    target: str  # the referenced type as a person names it: School, EducationOrganization
    candidates: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...]  # (target path, key items)

    def describe(self) -> str:
        return ", ".join(f"{k}={v!r}" for k, v in self.candidates[0][1]) if self.candidates else ""


# For each resource a reference can point at: its path, its key names, and the reference's
# field names in that key's order (None: the reference's fields cannot name its key).
_Plan = tuple[tuple[str, tuple[str, ...], tuple[str, ...] | None], ...]


class ReferenceIndex:
    """Natural keys of the input's records, by resource, for local resolution."""

    def __init__(self, model: ApiModel) -> None:
        self.model = model
        self.keys: dict[str, set[tuple[Any, ...]]] = {}
        # by id: the model keeps its references alive, and hashing a frozen dataclass
        # hashes all its fields on every lookup
        self._plans: dict[int, _Plan] = {}

    def _plan(self, reference: Reference) -> _Plan:
        """How a value of ``reference`` maps onto each key it can name, worked out once.

        Every reference of every record is resolved here, and the mapping from a
        reference's field names to its target's key names (``target_key``) is
        the same for all of them.
        """
        plan = self._plans.get(id(reference))
        if plan is None:
            fields = {f.name: f.name for f in reference.fields}
            rows = []
            for t in self.model.targets(reference):
                names = self.model[t].key_names
                mapped = target_key(self.model[t], fields)
                rows.append((t, names, None if mapped is None else tuple(mapped.values())))
            plan = self._plans[id(reference)] = tuple(rows)
        return plan

    def add(self, resource: Resource, record: Mapping[str, Any]) -> None:
        values = resource.key_values(record)
        self.keys.setdefault(resource.path, set()).add(key_tuple(values, resource.key_names))

    def indexed(self, path: str) -> bool:
        return path in self.keys

    def resolve(
        self, resource: Resource, record: Mapping[str, Any], *, only_local_targets: bool
    ) -> list[Pending]:
        """References of ``record`` the input does not resolve.

        With ``only_local_targets`` a reference is judged only when the input
        carries records of a resource it can point at (the rest are assumed to
        be in the target).
        """
        out: list[Pending] = []
        for found in references(resource.shape, record):
            pending = self._pending(found, only_local_targets)
            if pending is not None:
                out.append(pending)
        return out

    def _pending(self, found: ReferenceValue, only_local_targets: bool) -> Pending | None:
        plan = self._plan(found.reference)
        if not plan:
            return None
        if only_local_targets and not any(t in self.keys for t, _, _ in plan):
            return None
        candidates: list[tuple[str, tuple[tuple[str, Any], ...]]] = []
        values = found.values
        for t, names, order in plan:
            if order is None:
                continue
            if tuple(_frozen(values[n]) for n in order) in self.keys.get(t, ()):
                return None
            candidates.append((t, tuple(zip(names, (values[n] for n in order), strict=True))))
        if not candidates:
            return None
        return Pending(found.path, _type_name(found.reference), tuple(candidates))


def _type_name(reference: Reference) -> str:
    target = reference.schema.removesuffix("Reference").split("_", 1)[-1]
    return target[:1].upper() + target[1:]


def unresolved(pending: Pending, *, looked_in_target: bool) -> Problem:
    where = "neither in the input nor in the target" if looked_in_target else "not in the input"
    return Problem(
        pending.path,
        UNRESOLVED_REFERENCE,
        f"The referenced {pending.target} ({pending.describe()}) is {where}.",
    )
