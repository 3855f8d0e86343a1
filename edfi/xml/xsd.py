"""The interchange schema, read into plain values the mapper can walk.

Ed-Fi's bulk XSDs use a small part of XML Schema: named complex types that
extend a base (``ComplexObjectType``, ``ReferenceType``, ``DescriptorType``,
an abstract entity), sequences and choices of typed elements, and simple types
that restrict a built-in type. This module reads exactly that part and fails
loudly on anything else, so a schema the mapper would misread is never used.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources as importlib_resources
from typing import Any

import fsspec
from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
_XS = f"{{{XS}}}"
BUILTIN_SCHEMA = "xml-ds5.2.xsd.gz"

# the XML Schema built-ins the interchanges use, by the JSON kind their values take
_BUILTIN_KINDS = {
    "string": "string",
    "token": "string",
    "normalizedString": "string",
    "anyURI": "string",
    "ID": "string",
    "IDREF": "string",
    "gYear": "string",
    "duration": "string",
    "int": "integer",
    "integer": "integer",
    "long": "integer",
    "short": "integer",
    "byte": "integer",
    "positiveInteger": "integer",
    "nonNegativeInteger": "integer",
    "unsignedInt": "integer",
    "decimal": "number",
    "double": "number",
    "float": "number",
    "boolean": "boolean",
    "date": "date",
    "dateTime": "date-time",
    "time": "time",
}


class SchemaError(ValueError):
    """The interchange schema uses a construct this reader does not understand."""


@dataclass(frozen=True, slots=True)
class Child:
    """An element declared inside a complex type."""

    name: str
    type: str  # a named type of the schema, or ``xs:<builtin>``
    min: int
    max: int | None  # None: unbounded
    in_choice: bool = False

    @property
    def repeated(self) -> bool:
        return self.max is None or self.max > 1


@dataclass(frozen=True, slots=True)
class ComplexType:
    name: str
    base: str | None
    own: tuple[Child, ...]
    abstract: bool
    # ``xs:restriction`` of ``base``: ``own`` restates the whole content (an extension's
    # way to drop a core element it then re-adds with an extended common type)
    restricts: bool = False


@dataclass(frozen=True, slots=True)
class SimpleType:
    name: str
    base: str  # another simple type or ``xs:<builtin>``


@dataclass
class InterchangeSchema:
    """Every named type and interchange of one schema document."""

    complex: dict[str, ComplexType]
    simple: dict[str, SimpleType]
    interchanges: dict[str, tuple[Child, ...]]  # InterchangeStudent -> its element choices
    namespace: str
    document: bytes  # the schema itself, for validation
    # type -> the extension project (``TPDM``) whose XSD defines it; core types are absent
    projects: dict[str, str] = field(default_factory=dict)

    def children(self, type_name: str) -> tuple[Child, ...]:
        """The elements of a complex type, its bases' first (XSD extension order)."""
        ct = self.complex[type_name]
        if ct.restricts:
            return ct.own
        inherited = self.children(ct.base) if ct.base and ct.base in self.complex else ()
        return (*inherited, *ct.own)

    def owned_children(self, type_name: str) -> tuple[tuple[Child, str | None], ...]:
        """:meth:`children`, each with the extension project its element belongs to.

        That is the project of the type declaring it, with two exceptions from the
        Extensions Framework's override of a common type: a restriction restates
        its base's elements, which stay its base's; and an element the extension
        re-adds in place of one its restriction dropped (``Address`` typed
        ``EXTENSION-AddressExtension`` for ``Address``) is still the core's element
        (only the extended type's own elements are the extension's).
        """
        ct = self.complex[type_name]
        if ct.restricts:
            above = self.projects.get(ct.base or "")
            return tuple((c, above) for c in ct.own)
        inherited = self.owned_children(ct.base) if ct.base and ct.base in self.complex else ()
        project = self.projects.get(type_name)
        dropped = self._dropped(ct.base) if project and ct.base else {}
        return (
            *inherited,
            *(
                (c, None if self.extends_core(c.type, dropped.get(c.name, "")) else project)
                for c in ct.own
            ),
        )

    def _dropped(self, type_name: str) -> dict[str, str]:
        """The elements a restriction drops from its base: name -> core type."""
        ct = self.complex.get(type_name)
        if ct is None or not ct.restricts or ct.base not in self.complex:
            return {}
        kept = {c.name for c in ct.own}
        return {c.name: c.type for c in self.children(ct.base) if c.name not in kept}

    def extends_core(self, type_name: str, core: str) -> bool:
        """Whether an extension type extends the core type ``core`` (``EXTENSION-SchoolExtension``
        of ``School``) rather than defining an entity of its own."""
        name: str | None = type_name
        while name is not None and name in self.projects:
            name = self.complex[name].base if name in self.complex else None
        return name == core

    def extends(self, type_name: str, base: str) -> bool:
        """Whether a complex type is ``base`` or derives from it."""
        name: str | None = type_name
        while name is not None and name in self.complex:
            if name == base:
                return True
            name = self.complex[name].base
        return name == base

    def is_reference(self, type_name: str) -> bool:
        return type_name in self.complex and self.extends(type_name, "ReferenceType")

    def simple_chain(self, type_name: str) -> list[str]:
        """A simple type and every type it restricts, ending at an ``xs:`` built-in."""
        chain = [type_name]
        seen = set()
        while chain[-1] in self.simple:
            if chain[-1] in seen:
                raise SchemaError(f"simple type {chain[-1]} restricts itself")
            seen.add(chain[-1])
            chain.append(self.simple[chain[-1]].base)
        return chain

    def kind(self, type_name: str) -> str:
        """The JSON kind of a simple type's values: string, integer, number, boolean, date, …"""
        builtin = self.simple_chain(type_name)[-1]
        if not builtin.startswith("xs:") or builtin[3:] not in _BUILTIN_KINDS:
            raise SchemaError(f"type {type_name} does not resolve to a known XML Schema type")
        return _BUILTIN_KINDS[builtin[3:]]

    def is_simple(self, type_name: str) -> bool:
        return type_name.startswith("xs:") or type_name in self.simple

    def is_descriptor_value(self, type_name: str) -> bool:
        return "DescriptorReferenceType" in self.simple_chain(type_name)

    def is_school_year(self, type_name: str) -> bool:
        return "SchoolYearType" in self.simple_chain(type_name)

    def element_types(self) -> dict[tuple[str, str], str]:
        """(interchange, element) -> complex type of every interchange element."""
        return {(i, c.name): c.type for i, kids in self.interchanges.items() for c in kids}


def local_type(name: str) -> str:
    """A type name without its extension prefix: ``EXTENSION-CredentialStatusDescriptor`` ->
    ``CredentialStatusDescriptor`` (core names have no ``-``)."""
    return name.rpartition("-")[2]


def _occurs(value: str | None, default: int) -> int | None:
    if value is None:
        return default
    return None if value == "unbounded" else int(value)


def _type_ref(value: str | None, where: str) -> str:
    if not value:
        raise SchemaError(f"{where}: element without a named type")
    prefix, _, local = value.rpartition(":")
    return f"xs:{local}" if prefix == "xs" else local


def _group(group: Any, where: str, in_choice: bool = False) -> list[Child]:
    """The elements of a sequence or choice in order, nested groups flattened.

    A group's own occurrence widens its elements': every element of an
    optional choice is optional, every element of a repeated group repeats.
    """
    choice = in_choice or etree.QName(group).localname == "choice"
    optional = group.get("minOccurs") == "0" or etree.QName(group).localname == "choice"
    repeated = group.get("maxOccurs") not in (None, "1")
    out: list[Child] = []
    for item in group:
        if not isinstance(item.tag, str):
            continue
        tag = etree.QName(item).localname
        if tag == "element":
            name = item.get("name")
            if not name:
                raise SchemaError(f"{where}: element reference {item.get('ref')!r} not supported")
            lo = 0 if optional else _occurs(item.get("minOccurs"), 1)
            hi = None if repeated else _occurs(item.get("maxOccurs"), 1)
            kind = _type_ref(item.get("type"), f"{where}/{name}")
            out.append(Child(name, kind, lo or 0, hi, choice))
        elif tag in ("sequence", "choice"):
            nested = _group(item, where, choice)
            if optional or repeated:
                nested = [
                    Child(
                        c.name,
                        c.type,
                        0 if optional else c.min,
                        None if repeated else c.max,
                        c.in_choice,
                    )
                    for c in nested
                ]
            out.extend(nested)
        elif tag == "annotation":
            continue
        else:
            raise SchemaError(f"{where}: xs:{tag} is not supported")
    return out


def _complex(node: Any) -> ComplexType:
    name = node.get("name") or "(inline)"
    base: str | None = None
    restricts = False
    own: list[Child] = []
    for item in node:
        if not isinstance(item.tag, str):
            continue
        tag = etree.QName(item).localname
        if tag == "complexContent":
            ext = item.find(f"{_XS}extension")
            if ext is None:
                ext = item.find(f"{_XS}restriction")
                restricts = True
            if ext is None:
                raise SchemaError(
                    f"complex type {name}: only xs:extension and xs:restriction are supported"
                )
            base = _type_ref(ext.get("base"), name)
            for part in ext:
                if isinstance(part.tag, str) and etree.QName(part).localname in (
                    "sequence",
                    "choice",
                ):
                    own.extend(_group(part, name))
        elif tag in ("sequence", "choice"):
            own.extend(_group(item, name))
        elif tag in ("annotation", "attribute"):
            continue
        else:
            raise SchemaError(f"complex type {name}: xs:{tag} is not supported")
    return ComplexType(name, base, tuple(own), node.get("abstract") == "true", restricts)


def _simple(node: Any) -> SimpleType:
    name = node.get("name")
    restriction = node.find(f"{_XS}restriction")
    if restriction is None:
        raise SchemaError(f"simple type {name}: only xs:restriction is supported")
    return SimpleType(name, _type_ref(restriction.get("base"), name))


def parse_schema(document: bytes) -> InterchangeSchema:
    """Read a schema document (the compact one the project ships, or any built the same way)."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(document, parser)
    complex_types: dict[str, ComplexType] = {}
    simple_types: dict[str, SimpleType] = {}
    interchanges: dict[str, tuple[Child, ...]] = {}
    for node in root:
        if not isinstance(node.tag, str):
            continue
        tag = etree.QName(node).localname
        if tag == "complexType":
            ct = _complex(node)
            complex_types[ct.name] = ct
        elif tag == "simpleType":
            st = _simple(node)
            simple_types[st.name] = st
        elif tag == "element":
            body = node.find(f"{_XS}complexType")
            if body is None:
                raise SchemaError(f"top-level element {node.get('name')} has no inline type")
            interchanges[node.get("name")] = tuple(_complex(body).own)
    return InterchangeSchema(
        complex_types, simple_types, interchanges, root.get("targetNamespace", ""), document
    )


# ``TPDM-EXTENSION-Ed-Fi-Extended-Core.xsd``, ``TPDM-EXTENSION-Interchange-Survey-Extension.xsd``,
# also behind the ODS's download prefix (``EdFi.TPDM.ApiSchema.xsd.TPDM-EXTENSION-…``)
_EXTENSION_FILE = re.compile(r"(?:^|\.)(?P<project>[A-Za-z][A-Za-z0-9]*)-EXTENSION-[^/]*\.xsd$")


@dataclass(frozen=True, slots=True)
class ExtensionFile:
    """One XSD of an Ed-Fi extension project: the project (from the file name) and its bytes."""

    project: str
    name: str
    data: bytes


def read_extension_files(
    urls: Iterable[str], storage_options: Mapping[str, Any] | None = None
) -> list[ExtensionFile]:
    """The extension XSDs in folders or files (any fsspec storage), each with its project.

    A folder is what the ODS/API serves at ``/metadata/xsd/<project>/files``: the
    extension's ``<Project>-EXTENSION-*.xsd`` beside the core files it was
    blended with. The core files are skipped (the core schema is built in); an
    ``EXTENSION-*.xsd`` without its project prefix is refused, since the project
    is what places its elements under ``_ext.<project>``.
    """
    out: list[ExtensionFile] = []
    for url in urls:
        fs, path = fsspec.core.url_to_fs(url, **(storage_options or {}))
        if fs.isdir(path):
            found = sorted(p for p in fs.find(path) if p.endswith(".xsd"))
        elif fs.exists(path):
            found = [path]
        else:
            raise SchemaError(f"{url}: no such extension XSD file or folder")
        mine = []
        for p in found:
            name = p.rsplit("/", 1)[-1]
            m = _EXTENSION_FILE.search(name)
            if m is None:
                if name.startswith("EXTENSION-"):
                    raise SchemaError(
                        f"{p}: an extension XSD must name its project, as the ODS/API serves "
                        f"it: rename it <Project>-{name} (e.g. TPDM-{name})"
                    )
                continue  # a core file the extension was blended with
            with fs.open(p, "rb") as fh:
                mine.append(ExtensionFile(m["project"], name, fh.read()))
        if not mine:
            raise SchemaError(f"{url}: no <Project>-EXTENSION-*.xsd files there")
        out.extend(mine)
    return out


def extend_schema(core: InterchangeSchema, files: Iterable[ExtensionFile]) -> InterchangeSchema:
    """The core schema with extension XSDs added, as one schema (a new value; ``core`` is kept).

    Following the Ed-Fi Extensions Framework, an extension XSD shares the core's
    namespace and includes it; its types are new (``EXTENSION-SchoolExtension``
    extending ``School``, ``EXTENSION-FinancialAid``), and an extended interchange
    restates the core's, an extended element retyped. So the types are added,
    each tagged with its project, and an interchange the extension declares
    replaces the core's. A name defined twice, or an interchange two projects
    extend, is an error: the files could not be validated as one schema.
    """
    files = list(files)
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    complex_types = dict(core.complex)
    simple_types = dict(core.simple)
    interchanges = dict(core.interchanges)
    projects = dict(core.projects)
    merged = etree.fromstring(core.document, parser)
    top = {
        node.get("name"): node
        for node in merged
        if isinstance(node.tag, str) and etree.QName(node).localname == "element"
    }
    extended_by: dict[str, str] = {}
    for f in files:
        try:
            root = etree.fromstring(f.data, parser)
        except etree.XMLSyntaxError as exc:
            raise SchemaError(f"{f.name}: not well-formed XML: {exc}") from None
        ns = root.get("targetNamespace", "")
        if ns != core.namespace:
            raise SchemaError(
                f"{f.name}: targetNamespace {ns!r} is not the core schema's {core.namespace!r} "
                "(an Ed-Fi extension XSD shares the namespace of the core it extends)"
            )
        for node in list(root):
            if not isinstance(node.tag, str):
                continue
            tag = etree.QName(node).localname
            name = node.get("name")
            if tag in ("include", "import", "annotation"):
                continue
            try:
                if tag in ("complexType", "simpleType"):
                    if name in complex_types or name in simple_types:
                        owner = projects.get(name)
                        by = f"the {owner} extension" if owner else "the core schema"
                        raise SchemaError(f"type {name} is already defined by {by}")
                    if tag == "complexType":
                        complex_types[name] = _complex(node)
                    else:
                        simple_types[name] = _simple(node)
                    projects[name] = f.project
                    merged.append(_stripped(node))
                elif tag == "element":
                    body = node.find(f"{_XS}complexType")
                    if body is None:
                        raise SchemaError(f"top-level element {name} has no inline type")
                    if name in extended_by and extended_by[name] != f.project:
                        raise SchemaError(
                            f"{name} is extended by both {extended_by[name]} and {f.project}; "
                            "load one extension's XSDs per run"
                        )
                    extended_by[name] = f.project
                    interchanges[name] = tuple(_complex(body).own)
                    new = _stripped(node)
                    if name in top:
                        top[name].addprevious(new)
                        merged.remove(top[name])
                    else:
                        merged.append(new)
                    top[name] = new
                else:
                    raise SchemaError(f"top-level xs:{tag} is not supported")
            except SchemaError as exc:
                raise SchemaError(f"{f.name}: {exc}") from None
    document = etree.tostring(merged, xml_declaration=True, encoding="UTF-8")
    try:
        etree.XMLSchema(etree.fromstring(document, parser))
    except etree.XMLSchemaParseError as exc:
        names = ", ".join(f.name for f in files)
        raise SchemaError(f"the core schema with {names} is not a valid XSD: {exc}") from None
    return InterchangeSchema(
        complex_types, simple_types, interchanges, core.namespace, document, projects
    )


def _stripped(node: Any) -> Any:
    """A schema node without its documentation (the merged schema is only validated against)."""
    for ann in node.findall(f".//{_XS}annotation"):
        parent = ann.getparent()
        if parent is not None:
            parent.remove(ann)
    return node


_extended: dict[bytes, InterchangeSchema] = {}


def schema_with_extensions(
    urls: Iterable[str] | None, storage_options: Mapping[str, Any] | None = None
) -> InterchangeSchema:
    """The built-in schema, extended by the extension XSDs at ``urls`` (if any).

    Kept per content, so the mapping derived from it is too (a worker loading the
    same extension run after run derives it once).
    """
    urls = list(urls or ())
    if not urls:
        return builtin_schema()
    files = read_extension_files(urls, storage_options)
    digest = hashlib.sha256()
    for f in files:
        digest.update(f"{f.project}\0{f.name}\0{len(f.data)}\0".encode())
        digest.update(f.data)
    key = digest.digest()
    hit = _extended.get(key)
    if hit is None:
        if len(_extended) >= 4:
            _extended.clear()
        hit = _extended[key] = extend_schema(builtin_schema(), files)
    return hit


@cache
def builtin_schema() -> InterchangeSchema:
    """The DS 5.2 interchange schema the project ships."""
    data = (importlib_resources.files("edfi") / "data" / BUILTIN_SCHEMA).read_bytes()
    return parse_schema(gzip.decompress(data))
