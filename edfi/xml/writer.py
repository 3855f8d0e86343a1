"""API records -> interchange XML: the derived mapping run backwards.

Used to export a data set as interchange files (the sandbox's ``export-xml``)
so loads can be tested and measured on files the project makes itself. The
element order is the schema's (the mapping keeps it), a school year is
written as its ``2021-2022`` token, and a reference becomes its
``*Identity`` -- or ``ref="…"`` to an element the same file gives an ``id``,
where the schema allows it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import orjson
from lxml import etree

from ..model import ApiModel, Resource, abstract_field
from .mapping import FieldMap, Leaf, ObjectMap, RefMap

RefId = Callable[[RefMap, Mapping[str, Any]], str | None]


def text(value: Any, kind: str) -> str:
    """A JSON value as the element text the schema expects."""
    if kind == "school_year":
        year = int(value)
        return f"{year - 1}-{year}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(Decimal(repr(value)), "f")
    return str(value)


def element_id(resource: str, key: Mapping[str, Any]) -> str:
    """A stable ``xs:ID`` for a record: its resource and natural key, hashed."""
    digest = hashlib.sha1(resource.encode() + orjson.dumps(dict(key), option=orjson.OPT_SORT_KEYS))
    return "id" + digest.hexdigest()[:16]


def ref_target_id(model: ApiModel, ref: RefMap, values: Mapping[str, Any]) -> str | None:
    """The id :func:`element_id` gives the record a reference points at (concrete targets only)."""
    if len(ref.targets) != 1:
        return None
    resource: Resource = model[ref.targets[0]]
    key = {}
    for k in resource.key_names:
        name = abstract_field(resource, ref.schema, k)
        if name not in values:
            return None
        key[k] = values[name]
    return element_id(resource.path, key)


def build(
    tag: str,
    body: ObjectMap,
    record: Mapping[str, Any],
    ns: str,
    *,
    ident: str | None = None,
    ref_id: RefId | None = None,
) -> Any:
    """One interchange element for one record."""
    el = etree.Element(f"{{{ns}}}{tag}", nsmap={None: ns})
    if ident:
        el.set("id", ident)
    _fill(el, body, record, ns, ref_id)
    return el


def _fill(
    el: Any, obj: ObjectMap, record: Mapping[str, Any], ns: str, ref_id: RefId | None
) -> None:
    for tag, fm in obj.fields.items():
        _emit(el, tag, fm, record, ns, ref_id)


def _emit(
    parent: Any, tag: str, fm: FieldMap, record: Mapping[str, Any], ns: str, ref_id: RefId | None
) -> None:
    q = f"{{{ns}}}{tag}"
    action = fm.action
    if action == "flatten":
        assert fm.sub is not None
        group = etree.Element(q)
        _fill(group, fm.sub, record, ns, ref_id)
        if len(group):
            parent.append(group)
        return
    if action == "ext":  # an extension's element, from ``_ext.<project>`` when the record has it
        assert fm.sub is not None
        ext = (record.get("_ext") or {}).get(fm.json)
        if ext:
            _emit(parent, tag, fm.sub.fields[tag], ext, ns, ref_id)
        return
    if action == "skip" or fm.json not in record or record[fm.json] is None:
        return
    value = record[fm.json]
    if action == "scalar":
        etree.SubElement(parent, q).text = text(value, fm.kind)
    elif action == "school_year_ref":
        etree.SubElement(parent, q).text = text(value["schoolYear"], "school_year")
    elif action == "object":
        assert fm.sub is not None
        _fill(etree.SubElement(parent, q), fm.sub, value, ns, ref_id)
    elif action == "collection":
        assert fm.sub is not None
        for item in value:
            if fm.wrap:
                _emit(parent, tag, fm.sub.fields[tag], item, ns, ref_id)
            else:
                _fill(etree.SubElement(parent, q), fm.sub, item, ns, ref_id)
    elif action == "reference":
        assert fm.ref is not None
        ref_el = etree.SubElement(parent, q)
        target = ref_id(fm.ref, value) if ref_id else None
        if target:
            ref_el.set("ref", target)
        else:
            ident = etree.SubElement(ref_el, f"{{{ns}}}{fm.ref.identity}")
            _identity(ident, fm.ref.tree, value, ns)


def _identity(el: Any, tree: Mapping[str, Any], values: Mapping[str, Any], ns: str) -> None:
    for tag, node in tree.items():
        child = etree.SubElement(el, f"{{{ns}}}{tag}")
        if isinstance(node, Leaf):
            child.text = text(values[node.field], node.kind)
        else:
            _identity(child, node, values, ns)


def write_interchange(
    out: Any,
    interchange: str,
    ns: str,
    elements: Iterable[Any],
) -> int:
    """Stream elements into one interchange document (bounded memory); returns the count."""
    n = 0
    with etree.xmlfile(out, encoding="utf-8") as xf:
        xf.write_declaration()
        with xf.element(f"{{{ns}}}{interchange}", nsmap={None: ns}):
            xf.write("\n")
            for el in elements:
                xf.write(el, pretty_print=True)
                n += 1
    return n
