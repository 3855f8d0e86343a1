"""Record-level checks of an Ed-Fi body against the model, as the ODS/API makes them.

The checks need nothing but the body and the model: required properties
(an empty required string counts as missing), JSON types, string lengths,
numeric ranges, date and time formats, duplicate items in a child
collection, and key unification (a value such as ``schoolId`` that several
references of one record carry must agree). Descriptor existence, natural-key
uniqueness and references to other records are separate layers over the same
``Problem`` type.

Binding follows the ODS/API too: property names match case-insensitively,
numeric strings are accepted for integer and number properties, a date-only
string for a date-time property, and properties the model does not know are
ignored (or, with ``strict=True``, reported). ``bind_record`` returns the body
as bound, so a server stores what the ODS/API would.

Each resource is compiled once per model into a plan (the fields, their
constraints and messages), so checking a record walks the record, not the
OpenAPI document.
"""

from __future__ import annotations

import datetime as dt
import re
import weakref
from collections.abc import Mapping
from typing import Any

from edfi.model import ApiModel, Reference, Resource, Scalar, Shape

from .problems import (
    DUPLICATE_ITEM,
    FORMAT,
    KEY_UNIFICATION,
    MAX_LENGTH,
    MIN_LENGTH,
    RANGE,
    REQUIRED,
    TYPE,
    UNKNOWN_PROPERTY,
    Problem,
)

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$")
_TIME = re.compile(r"^\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
# The ODS/API binds dates with .NET's invariant culture, which also reads month/day/year
# ("1/14/2026", as vendor files and the bundles built on them carry): bound to ISO here.
_US_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def _iso_date(value: str) -> str | None:
    """``value`` as ``yyyy-mm-dd`` when it is an ISO or month/day/year date, else None."""
    if _DATE.match(value):
        return value
    m = _US_DATE.match(value)
    if not m:
        return None
    month, day, year = (int(g) for g in m.groups())
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


_INTEGER = re.compile(r"^\s*[+-]?\d+\s*$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$")
# what a server adds to a record; a body read back from an API carries them
_SERVER = frozenset({"id", "_etag", "_lastModifiedDate", "link"})


def check_record(
    model: ApiModel, resource: Resource, body: Mapping[str, Any], *, strict: bool = False
) -> list[Problem]:
    """Every schema problem of ``body`` as a record of ``resource`` (empty when it is valid)."""
    return bind_record(model, resource, body, strict=strict)[1]


def bind_record(
    model: ApiModel, resource: Resource, body: Any, *, strict: bool = False
) -> tuple[dict[str, Any], list[Problem]]:
    """The body as the ODS/API binds it, and its schema problems.

    The body returned is ``body`` itself when nothing needed binding, else a
    copy (the parts that changed are new; the input is never modified).
    """
    if not isinstance(body, Mapping):
        return {}, [Problem("", TYPE, "The request body must be a JSON object.")]
    plan = _plan(model, resource)
    problems: list[Problem] = []
    bound = plan.node.walk(body, "", problems, strict)
    if plan.unified:
        _unify(plan.unified, bound, problems)
    return dict(bound) if not isinstance(bound, dict) else bound, problems


def pascal(name: str) -> str:
    """A property name as ODS/API messages write it (``city`` -> ``City``)."""
    return name[:1].upper() + name[1:]


# -- plans ------------------------------------------------------------------------------


class _Field:
    """One scalar property: its type, constraints and the messages ODS/API gives."""

    __slots__ = (
        "identity",
        "kind",
        "label",
        "max_len",
        "maximum",
        "min_len",
        "minimum",
        "name",
        "required",
    )

    def __init__(self, s: Scalar):
        self.name = s.name
        self.label = pascal(s.name)
        self.kind = s.kind
        self.required = s.required
        self.min_len = s.min_length or 0
        self.max_len = s.max_length
        self.minimum = s.minimum
        self.maximum = s.maximum
        self.identity = s.identity

    def bind(self, value: Any, prefix: str, problems: list[Problem]) -> Any:
        """``value`` as the API binds it; problems appended under ``prefix + name``.

        The common valid cases (a plain string, an integer within range, a
        boolean) return here, before the property's path is even built: this
        runs for every property of every record validated.
        """
        kind = self.kind
        t = type(value)
        if t is str:
            if kind == "string":
                n = len(value)
                if (
                    n
                    and n >= self.min_len
                    and (self.max_len is None or n <= self.max_len)
                    and not (self.identity and (value[0].isspace() or value[-1].isspace()))
                ):
                    return value
            elif kind == "date" and _DATE.match(value):
                return value
        elif t is int:
            if kind == "integer" or kind == "number":
                low, high = self.minimum, self.maximum
                if (low is None or value >= low) and (high is None or value <= high):
                    return value
        elif t is bool and kind == "boolean":
            return value
        return self._bind(value, prefix + self.name, problems)

    def _bind(self, value: Any, path: str, problems: list[Problem]) -> Any:
        kind = self.kind
        if kind == "integer":
            if isinstance(value, bool):
                return self._invalid(value, path, problems)
            if not isinstance(value, int):
                whole = isinstance(value, float) and value.is_integer()
                if whole or (isinstance(value, str) and _INTEGER.match(value)):
                    value = int(value)
                else:
                    return self._invalid(value, path, problems)
            return self._range(value, path, problems)
        if kind == "number":
            if isinstance(value, bool):
                return self._invalid(value, path, problems)
            if not isinstance(value, int | float):
                if isinstance(value, str) and _NUMBER.match(value):
                    value = int(value) if _INTEGER.match(value) else float(value)
                else:
                    return self._invalid(value, path, problems)
            return self._range(value, path, problems)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "false"):
                return value.strip().lower() == "true"
            return self._invalid(value, path, problems)
        if not isinstance(value, str):
            return self._invalid(value, path, problems)
        if kind == "string":
            n = len(value)
            if n == 0 and self.required:
                message = f"{self.label} is required and should not be left empty."
                problems.append(Problem(path, REQUIRED, message))
            elif n < self.min_len or (self.max_len is not None and n > self.max_len):
                problems.append(
                    Problem(path, MIN_LENGTH if n < self.min_len else MAX_LENGTH, self._length())
                )
            if self.identity and n and (value[0].isspace() or value[-1].isspace()):
                message = f"{self.label} cannot contain leading or trailing spaces."
                problems.append(Problem(path, FORMAT, message))
            return value
        if kind == "date":
            iso = _iso_date(value)
            if iso is None:
                problems.append(Problem(path, FORMAT, self._not_valid(value)))
            return iso or value
        if kind == "date-time":
            if _DATE_TIME.match(value):
                return value
            iso = _iso_date(value)
            if iso is not None:
                return iso + "T00:00:00Z"
            problems.append(Problem(path, FORMAT, self._not_valid(value)))
            return value
        if kind == "time" and not _TIME.match(value):
            problems.append(Problem(path, FORMAT, self._not_valid(value)))
        return value

    def _invalid(self, value: Any, path: str, problems: list[Problem]) -> Any:
        problems.append(Problem(path, TYPE, self._not_valid(value)))
        return value

    def _not_valid(self, value: Any) -> str:
        shown = ("true" if value else "false") if isinstance(value, bool) else value
        if isinstance(value, dict | list):
            shown = "{...}" if isinstance(value, dict) else "[...]"
        return f"The value '{shown}' is not valid for {self.label}."

    def _range(self, value: float, path: str, problems: list[Problem]) -> float:
        low, high = self.minimum, self.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            if low is not None and high is not None:
                text = f"must be between {_num(low)} and {_num(high)}."
            elif low is not None:
                text = f"must be greater than or equal to {_num(low)}."
            elif high is not None:
                text = f"must be less than or equal to {_num(high)}."
            problems.append(Problem(path, RANGE, f"{self.label} {text}"))
        return value

    def _length(self) -> str:
        if self.max_len is None:
            return f"{self.label} must be at least {self.min_len} characters in length."
        if self.min_len:
            return (
                f"{self.label} must be between {self.min_len} and {self.max_len} "
                "characters in length."
            )
        return f"{self.label} must be at most {self.max_len} characters in length."


class _Node:
    """A compiled object schema: a resource body, a reference, a collection item, an ``_ext``."""

    __slots__ = (
        "collections",
        "extensions",
        "identity",
        "known",
        "lower",
        "objects",
        "references",
        "scalars",
    )

    def __init__(self) -> None:
        self.scalars: tuple[_Field, ...] = ()
        self.references: tuple[tuple[str, str, bool, _Node], ...] = ()
        self.collections: tuple[tuple[str, str, bool, _Node], ...] = ()
        self.objects: tuple[tuple[str, str, bool, _Node], ...] = ()
        self.extensions: dict[str, _Node] = {}
        self.identity: tuple[str, ...] = ()  # what makes two collection items the same
        self.known: frozenset[str] = frozenset()
        self.lower: dict[str, str] = {}

    def finish(self) -> None:
        names = [f.name for f in self.scalars]
        names += [n for n, *_ in (*self.references, *self.collections, *self.objects)]
        if self.extensions:
            names.append("_ext")
        self.known = frozenset(names)
        self.lower = {n.lower(): n for n in names}
        ident = [f.name for f in self.scalars if f.identity]
        ident += [n for n, _, required, _ in self.references if required]
        self.identity = tuple(ident) or tuple(n for n in names if n != "_ext")

    def walk(
        self, body: Mapping[str, Any], prefix: str, problems: list[Problem], strict: bool
    ) -> Mapping[str, Any]:
        if not self.known.issuperset(body):
            body = self._rename(body, prefix, problems, strict)
        out: dict[str, Any] | None = None
        for f in self.scalars:
            value = body.get(f.name)
            if value is None:
                if f.required:
                    problems.append(Problem(prefix + f.name, REQUIRED, f"{f.label} is required."))
                continue
            new = f.bind(value, prefix, problems)
            if new is not value:
                if out is None:
                    out = dict(body)
                out[f.name] = new
        for group in (self.references, self.objects):
            for name, label, required, node in group:
                value = body.get(name)
                if value is None:
                    if required:
                        problems.append(Problem(prefix + name, REQUIRED, f"{label} is required."))
                    continue
                if not isinstance(value, Mapping):
                    problems.append(
                        Problem(prefix + name, TYPE, f"The value of {label} must be an object.")
                    )
                    continue
                new = node.walk(value, f"{prefix}{name}.", problems, strict)
                if new is not value:
                    if out is None:
                        out = dict(body)
                    out[name] = new
        for name, label, required, node in self.collections:
            value = body.get(name)
            if value is None or value == []:
                if required:
                    problems.append(
                        Problem(prefix + name, REQUIRED, f"{label} must have at least one item.")
                    )
                continue
            if not isinstance(value, list):
                problems.append(
                    Problem(prefix + name, TYPE, f"The value of {label} must be an array.")
                )
                continue
            items = self._items(node, value, f"{prefix}{name}", label, problems, strict)
            if items is not value:
                if out is None:
                    out = dict(body)
                out[name] = items
        if self.extensions:
            ext = body.get("_ext")
            if isinstance(ext, Mapping):
                new_ext = self._ext(ext, prefix, problems, strict)
                if new_ext is not ext:
                    if out is None:
                        out = dict(body)
                    out["_ext"] = new_ext
        return body if out is None else out

    def _items(
        self,
        node: _Node,
        items: list[Any],
        where: str,
        label: str,
        problems: list[Problem],
        strict: bool,
    ) -> list[Any]:
        out: list[Any] | None = None
        seen: dict[Any, int] = {}
        for i, item in enumerate(items):
            if not isinstance(item, Mapping):
                problems.append(
                    Problem(f"{where}[{i}]", TYPE, f"The items of {label} must be objects.")
                )
                continue
            new = node.walk(item, f"{where}[{i}].", problems, strict)
            if new is not item:
                if out is None:
                    out = list(items)
                out[i] = new
            identity = node.identity_of(new)
            first = seen.setdefault(identity, i)
            if first != i:
                problems.append(
                    Problem(
                        f"{where}[{i}]",
                        DUPLICATE_ITEM,
                        f"The {_ordinal(i + 1)} item of the {label} collection is a duplicate "
                        f"of the {_ordinal(first + 1)}.",
                    )
                )
        return items if out is None else out

    def identity_of(self, item: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple(_frozen(item.get(n)) for n in self.identity)

    def _ext(
        self, ext: Mapping[str, Any], prefix: str, problems: list[Problem], strict: bool
    ) -> Mapping[str, Any]:
        out: dict[str, Any] | None = None
        for ns, value in ext.items():
            node = self.extensions.get(ns)
            if node is None:
                if strict:
                    problems.append(
                        Problem(
                            f"{prefix}_ext.{ns}",
                            UNKNOWN_PROPERTY,
                            f"'{ns}' is not an extension of this resource.",
                        )
                    )
                continue
            if not isinstance(value, Mapping):
                message = f"The value of _ext.{ns} must be an object."
                problems.append(Problem(f"{prefix}_ext.{ns}", TYPE, message))
                continue
            new = node.walk(value, f"{prefix}_ext.{ns}.", problems, strict)
            if new is not value:
                if out is None:
                    out = dict(ext)
                out[ns] = new
        return ext if out is None else out

    def _rename(
        self, body: Mapping[str, Any], prefix: str, problems: list[Problem], strict: bool
    ) -> dict[str, Any]:
        """Property names bound case-insensitively; unknown ones dropped (or reported)."""
        out: dict[str, Any] = {}
        for key, value in body.items():
            name = key if key in self.known else self.lower.get(key.lower())
            if name is not None:
                out[name] = value
            elif strict and key not in _SERVER:
                problems.append(
                    Problem(prefix + key, UNKNOWN_PROPERTY, f"{key} is not a known property.")
                )
        return out


class _Plan:
    __slots__ = ("node", "unified")

    def __init__(self, node: _Node, unified: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]):
        self.node = node
        self.unified = unified  # (field name, paths that must agree)


class _Compiler:
    def __init__(self) -> None:
        self.shapes: dict[int, _Node] = {}
        self.refs: dict[str, _Node] = {}

    def shape(self, shape: Shape) -> _Node:
        node = self.shapes.get(id(shape))
        if node is not None:
            return node
        node = self.shapes[id(shape)] = _Node()
        node.scalars = tuple(_Field(s) for s in shape.scalars.values())
        node.references = tuple(
            (name, pascal(name), ref.required, self.reference(ref))
            for name, ref in shape.references.items()
        )
        # ODS/API names a collection by its items' entity: BellScheduleClassPeriods
        node.collections = tuple(
            (name, _plural(_entity(sub.name)), name in shape.required_collections, self.shape(sub))
            for name, sub in shape.collections.items()
        )
        node.objects = tuple(
            (name, pascal(name), name in shape.required, self.shape(sub))
            for name, sub in shape.objects.items()
        )
        node.extensions = {ns: self.shape(sub) for ns, sub in shape.extensions.items()}
        node.finish()
        return node

    def reference(self, ref: Reference) -> _Node:
        node = self.refs.get(ref.schema)
        if node is None:
            node = self.refs[ref.schema] = _Node()
            node.scalars = tuple(_Field(f) for f in ref.fields)
            node.finish()
        return node


_PLANS: dict[int, tuple[weakref.ref[ApiModel], _Compiler, dict[str, _Plan]]] = {}


def _plan(model: ApiModel, resource: Resource) -> _Plan:
    key = id(model)
    entry = _PLANS.get(key)
    if entry is None or entry[0]() is not model:
        ref = weakref.ref(model, lambda _: _PLANS.pop(key, None))
        entry = _PLANS[key] = (ref, _Compiler(), {})
    plans = entry[2]
    plan = plans.get(resource.path)
    if plan is None:
        plan = plans[resource.path] = _Plan(entry[1].shape(resource.shape), _unification(resource))
    return plan


def _unification(resource: Resource) -> tuple[tuple[str, tuple[tuple[str, ...], ...]], ...]:
    """Values a record holds twice that the ODS/API stores once (key unification).

    A field of a top-level reference shares its column with the record's
    scalar or another reference's field of the same name, unless the
    reference carries a role name (``externalEducationOrganizationReference``)
    or the field is a role-named key field (``gradingPeriodSchoolYear`` is
    ``gradingPeriodReference.schoolYear``).
    """
    role_named = {k.source for k in resource.key if len(k.source) == 2 and k.source[1] != k.name}
    places: dict[str, list[tuple[str, ...]]] = {}
    for name in resource.shape.scalars:
        places.setdefault(name, []).append((name,))
    for name, ref in resource.shape.references.items():
        entity = ref.schema.split("_", 1)[-1].removesuffix("Reference")
        if name.removesuffix("Reference").lower() != entity.lower():
            continue
        for f in ref.fields:
            if (name, f.name) not in role_named:
                places.setdefault(f.name, []).append((name, f.name))
    return tuple((n, tuple(p)) for n, p in places.items() if len(p) > 1)


def _unify(
    groups: tuple[tuple[str, tuple[tuple[str, ...], ...]], ...],
    body: Mapping[str, Any],
    problems: list[Problem],
) -> None:
    for name, paths in groups:
        found: list[tuple[str, Any]] = []
        for path in paths:
            value: Any = body.get(path[0])
            if len(path) == 2:
                value = value.get(path[1]) if isinstance(value, Mapping) else None
            if value is not None:
                found.append((".".join(path), value))
        distinct = {_frozen(v) for _, v in found}
        if len(distinct) > 1:
            shown = ", ".join(f"'{v}'" for v in sorted({str(v) for _, v in found}))
            message = (
                f"All values supplied for '{name}' must match. Review all references "
                f"and align the following conflicting values: {shown}"
            )
            problems.extend(Problem(path, KEY_UNIFICATION, message) for path, _ in found)


def _frozen(value: Any) -> Any:
    """A hashable stand-in for comparing items as the ODS/API does (strings ignore case)."""
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, Mapping):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items() if k != "link"))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def _entity(schema: str) -> str:
    """``edFi_bellScheduleClassPeriod`` -> ``BellScheduleClassPeriod``."""
    return pascal(schema.split("_", 1)[-1])


def _plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    if word.endswith(("s", "x", "ch", "sh")):
        return word + "es"
    return word + "s"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
