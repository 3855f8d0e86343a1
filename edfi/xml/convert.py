"""One interchange element -> one API record, by a derived :class:`~edfi.xml.mapping.ObjectMap`.

Conversion is a walk of the element's children against the map: no lookups
by similarity, no guessing at run time. A value that does not fit its
property's type, an element the schema does not allow, or a reference with
neither an identity nor a ``ref`` makes the element fail with a message
naming the path; the reader turns that into a reject with the element's
file and line.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .mapping import FieldMap, Leaf, ObjectMap, RefMap


class ElementError(ValueError):
    """This element cannot become a record; the message names where and why."""


@dataclass(slots=True)
class PendingRef:
    """A ``ref="X"`` reference, resolved to the identity of the element with ``id="X"``."""

    target_id: str
    ref: RefMap
    holder: dict[str, Any]
    key: str
    path: str


@dataclass(slots=True)
class Converted:
    record: dict[str, Any]
    pending: list[PendingRef] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)  # schema paths no property takes


_LOCAL: dict[Any, str | None] = {}


def _local(tag: Any) -> str | None:
    """``{ns}Name`` -> ``Name`` (None for a comment or processing instruction), memoized."""
    try:
        return _LOCAL[tag]
    except KeyError:
        local = tag.rpartition("}")[2] if isinstance(tag, str) else None
        if len(_LOCAL) < 100_000:
            _LOCAL[tag] = local
        return local


def _text(el: Any) -> str:
    return el.text or ""


def value(text: str, kind: str, where: str) -> Any:
    """An element's text as the JSON value its property takes."""
    try:
        if kind == "string":
            return text
        raw = text.strip()
        if kind == "integer":
            return int(raw)
        if kind == "number":
            return int(raw) if raw.lstrip("+-").isdigit() else float(raw)
        if kind == "boolean":
            if raw in ("true", "1"):
                return True
            if raw in ("false", "0"):
                return False
            raise ValueError(raw)
        if kind == "school_year":
            # a ``2021-2022`` token names the school year by its ending year
            return int(raw.rpartition("-")[2]) if "-" in raw[1:] else int(raw)
        return raw  # date, date-time, time: ISO text as the API takes it
    except ValueError:
        raise ElementError(f"{where}: {text!r} is not a valid {kind.replace('_', ' ')}") from None


def convert(body: ObjectMap, el: Any, path: str) -> Converted:
    """The record of one top-level element (its ``ref`` references left pending)."""
    out = Converted({})
    _fill(body, el, out.record, out, path)
    return out


def _fill(obj: ObjectMap, el: Any, record: dict[str, Any], out: Converted, path: str) -> None:
    for child in el:
        tag = _local(child.tag)
        if tag is None:
            continue
        fm = obj.fields.get(tag)
        where = f"{path}/{tag}"
        if fm is None:
            raise ElementError(f"{where}: element not allowed here by the interchange schema")
        _apply(fm, child, record, out, where)


def _apply(fm: FieldMap, child: Any, record: dict[str, Any], out: Converted, where: str) -> None:
    action = fm.action
    if action == "scalar":
        record[fm.json] = value(_text(child), fm.kind, where)
    elif action == "reference":
        assert fm.ref is not None
        _reference(fm.ref, child, record, fm.json, out, where)
    elif action == "collection":
        assert fm.sub is not None
        item: dict[str, Any] = {}
        if fm.wrap:
            _apply(fm.sub.fields[_local(child.tag) or ""], child, item, out, where)
        else:
            _fill(fm.sub, child, item, out, where)
        record.setdefault(fm.json, []).append(item)
    elif action == "flatten":
        assert fm.sub is not None
        _fill(fm.sub, child, record, out, where)
    elif action == "object":
        assert fm.sub is not None
        inner: dict[str, Any] = {}
        _fill(fm.sub, child, inner, out, where)
        record[fm.json] = inner
    elif action == "school_year_ref":
        record[fm.json] = {"schoolYear": value(_text(child), "school_year", where)}
    elif action == "ext":
        # an extension's element: into ``_ext.<project>``, created with its first element
        assert fm.sub is not None
        ext = record.setdefault("_ext", {}).setdefault(fm.json, {})
        _apply(fm.sub.fields[_local(child.tag) or ""], child, ext, out, where)
    else:  # skip: no property of the API takes it
        if len(child) or (child.text or "").strip():
            out.dropped[where.split("/", 1)[-1] if "/" in where else where] += 1


def _reference(
    ref: RefMap, el: Any, record: dict[str, Any], key: str, out: Converted, where: str
) -> None:
    target = el.get("ref")
    identity = None
    for child in el:
        if _local(child.tag) == ref.identity:
            identity = child
            break
    if identity is not None:
        values: dict[str, Any] = {}
        _leaves(ref.tree, identity, values, where)
        missing = [f for f in ref.fields if f not in values]
        if missing:
            raise ElementError(f"{where}: the identity lacks {', '.join(missing)}")
        record[key] = values
        return
    if target:
        record[key] = {}
        out.pending.append(PendingRef(target, ref, record, key, where))
        return
    raise ElementError(
        f"{where}: give its {ref.identity} or a ref to an element with an id "
        "(lookups are not supported)"
    )


def _leaves(tree: dict[str, Any], el: Any, values: dict[str, Any], where: str) -> None:
    for child in el:
        tag = _local(child.tag)
        if tag is None:
            continue
        node = tree.get(tag)
        if node is None:
            if tag.endswith("Lookup"):
                continue
            raise ElementError(f"{where}/{tag}: element not allowed in this identity")
        if isinstance(node, Leaf):
            v = value(_text(child), node.kind, f"{where}/{tag}")
            if values.setdefault(node.field, v) != v:
                raise ElementError(
                    f"{where}: {node.field} is given twice with different values "
                    f"({values[node.field]!r}, {v!r})"
                )
        else:
            # a nested reference: its identity wrapper (or a ref we cannot follow here)
            inner = [c for c in child if _local(c.tag) is not None]
            if not inner and child.get("ref"):
                raise ElementError(f"{where}/{tag}: a ref inside an identity is not supported")
            for c in inner:
                sub = node.get(_local(c.tag) or "")
                if isinstance(sub, dict):
                    _leaves(sub, c, values, f"{where}/{tag}")
                elif isinstance(sub, Leaf):
                    _leaves(node, child, values, f"{where}/{tag}")
                    break
