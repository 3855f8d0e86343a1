"""One model of an Ed-Fi API, built from its OpenAPI metadata.

Everything the project knows about resources -- names, natural keys,
references, dependency order, property types, descriptors -- comes from here,
so the client, the sandbox, the lake writer and the publisher agree.

The natural key of a resource is read the way the ODS/API itself exposes it:
the fields of the resource's own ``<schema>Reference`` schema (the shape other
resources use to point at it, and the shape of ``keyValues`` in ``/deletes``).
Each key field is then located inside a record: a scalar identity property, or
a field of one of the record's references (role names such as
``gradingPeriodSchoolYear`` are resolved to ``gradingPeriodReference.schoolYear``).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources as importlib_resources
from typing import Any

# exceptions live in edfi.errors; re-exported so old imports keep working
from .errors import ModelError as ModelError
from .graph import DependencyGraph
from .graph import closure as closure

SCALAR_KINDS = ("string", "integer", "number", "boolean", "date", "date-time", "time")


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar property: its JSON type, refined by format (date, date-time, time, int64).

    The constraints (lengths, range, identity) are kept as the OpenAPI document
    states them, so the validator can answer as the ODS/API does.
    """

    name: str
    kind: str
    fmt: str | None
    required: bool
    max_length: int | None = None
    descriptor: str | None = None  # path of the descriptor resource for descriptor-valued strings
    min_length: int | None = None
    minimum: float | None = None
    maximum: float | None = None
    identity: bool = False  # part of the identity of its record or collection item


@dataclass(frozen=True, slots=True)
class Reference:
    """A reference property pointing at another resource (or at an abstract base)."""

    name: str
    schema: str  # e.g. edFi_schoolReference
    required: bool
    fields: tuple[Scalar, ...]


@dataclass(slots=True)
class Shape:
    """An object schema: a resource body, a collection item or an embedded object."""

    name: str
    scalars: dict[str, Scalar] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)
    collections: dict[str, Shape] = field(default_factory=dict)
    objects: dict[str, Shape] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    required_collections: frozenset[str] = frozenset()
    # ``_ext``: extension namespace (``tpdm``, ``sample``) -> the extension's shape
    extensions: dict[str, Shape] = field(default_factory=dict)

    def descriptor_paths(self) -> Iterator[tuple[tuple[str, ...], str]]:
        """Every descriptor-valued property, as (path of property names, descriptor resource)."""
        for s in self.scalars.values():
            if s.descriptor:
                yield (s.name,), s.descriptor
        for r in self.references.values():
            for f in r.fields:
                if f.descriptor:
                    yield (r.name, f.name), f.descriptor
        for name, shape in (*self.collections.items(), *self.objects.items()):
            for p, d in shape.descriptor_paths():
                yield (name, *p), d


@dataclass(frozen=True, slots=True)
class KeyField:
    """One natural-key field and where its value lives in a record."""

    name: str
    kind: str
    source: tuple[str, ...]  # ("entryDate",) or ("schoolReference", "schoolId")


@dataclass(slots=True)
class Resource:
    """A resource (or descriptor) collection of the API."""

    path: str  # /ed-fi/students
    namespace: str  # ed-fi
    name: str  # students
    schema: str  # edFi_student
    shape: Shape
    is_descriptor: bool
    key: tuple[KeyField, ...]
    key_changes: bool = False  # the server exposes /keyChanges for it
    parents: tuple[str, ...] = ()  # paths of abstract bases it stands in for

    @property
    def full_name(self) -> str:
        """``namespace/name``, the form resource globs match against."""
        return f"{self.namespace}/{self.name}"

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.key)

    def key_values(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The natural key of a record, flat, as ODS/API ``keyValues`` shows it."""
        out: dict[str, Any] = {}
        for k in self.key:
            value: Any = record
            for part in k.source:
                # a parsed record is a dict: its check first (the ABC check is slow, and
                # this runs for every record validated or sent)
                if type(value) is not dict and not isinstance(value, Mapping):
                    value = None
                    break
                value = value.get(part)
            out[k.name] = value
        return out

    def set_key_values(self, record: dict[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of ``record`` with its natural key replaced (for key changes)."""
        new = dict(record)
        for k in self.key:
            if k.name not in values:
                continue
            if len(k.source) == 1:
                new[k.source[0]] = values[k.name]
            else:
                ref = dict(new.get(k.source[0]) or {})
                ref[k.source[1]] = values[k.name]
                new[k.source[0]] = ref
        return new


@dataclass
class ApiModel:
    """All resources of one API, with the graph their references form."""

    resources: dict[str, Resource]
    abstract: dict[str, tuple[str, ...]]  # abstract reference schema -> concrete resource paths
    schema_to_path: dict[str, str]

    # -- lookup -----------------------------------------------------------------
    def __getitem__(self, path: str) -> Resource:
        return self.resources[path]

    def __contains__(self, path: object) -> bool:
        return path in self.resources

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources.values())

    def __len__(self) -> int:
        return len(self.resources)

    def find(self, name: str) -> Resource:
        """A resource by path (``/ed-fi/students``), ``ed-fi/students`` or bare ``students``."""
        if name in self.resources:
            return self.resources[name]
        stripped = name.strip("/")
        if "/" in stripped:
            path = "/" + stripped
            if path in self.resources:
                return self.resources[path]
        matches = [r for r in self.resources.values() if r.name.lower() == stripped.lower()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            options = ", ".join(sorted(m.path for m in matches))
            raise KeyError(f"{name!r} is ambiguous; name one of: {options}")
        raise KeyError(f"{name!r} is not a resource of this API")

    def targets(self, ref: Reference) -> tuple[str, ...]:
        """Resource paths a reference can point at (several for an abstract base)."""
        base = ref.schema.removesuffix("Reference")
        if base in self.schema_to_path:
            return (self.schema_to_path[base],)
        return self.abstract.get(ref.schema, ())

    # -- graph ------------------------------------------------------------------
    @cached_property
    def dependencies(self) -> dict[str, frozenset[str]]:
        """For each resource, the resources it references (anywhere in its body)."""
        out: dict[str, frozenset[str]] = {}
        for r in self.resources.values():
            deps: set[str] = set()
            for ref in _all_references(r.shape):
                deps.update(self.targets(ref))
            deps.discard(r.path)
            out[r.path] = frozenset(deps)
        return out

    @cached_property
    def graph(self) -> DependencyGraph:
        """The dependency graph of the references (descriptor edges left out)."""
        return DependencyGraph.from_model(self)

    @property
    def dependents(self) -> dict[str, frozenset[str]]:
        """For each resource, the resources that reference it."""
        return self.graph.dependents

    @property
    def levels(self) -> dict[str, int]:
        """Load order level: 1 for resources with no dependencies, else 1 + max of theirs."""
        return self.graph.levels

    def load_order(self, paths: Iterable[str] | None = None) -> list[str]:
        """Resources sorted so that everything a resource references comes first."""
        return list(self.graph.order) if paths is None else self.graph.sort(paths)

    def ancestors(self, path: str) -> set[str]:
        """Everything ``path`` needs, transitively."""
        return self.graph.ancestors(path)

    def descendants(self, path: str) -> set[str]:
        """Everything that needs ``path``, transitively."""
        return self.graph.descendants(path)


SERVER_FIELDS = frozenset({"id", "_etag", "_lastModifiedDate"})


def publishable(record: Mapping[str, Any]) -> dict[str, Any]:
    """A served record as a client would POST it: server-assigned fields and links dropped."""
    return {k: _strip_links(v) for k, v in record.items() if k not in SERVER_FIELDS}


def _strip_links(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_links(v) for k, v in value.items() if k != "link"}
    if isinstance(value, list):
        return [_strip_links(v) for v in value]
    return value


def _all_references(shape: Shape) -> Iterator[Reference]:
    yield from shape.references.values()
    for sub in (*shape.collections.values(), *shape.objects.values()):
        yield from _all_references(sub)


# -- loading ----------------------------------------------------------------------


def load_model(*documents: Mapping[str, Any]) -> ApiModel:
    """Build the model from one or more OpenAPI 3 / Swagger 2 documents.

    A real server publishes resources and descriptors as separate documents
    (and sometimes one per extension); pass them all.
    """
    if not documents:
        raise ModelError("no OpenAPI document given")
    schemas: dict[str, dict[str, Any]] = {}
    collection_paths: dict[str, str] = {}  # path -> schema name
    identity_params: dict[str, list[tuple[str, str]]] = {}  # path -> [(name, kind)]
    key_change_paths: set[str] = set()
    for doc in documents:
        if not isinstance(doc, Mapping) or "paths" not in doc:
            raise ModelError("not an OpenAPI document: it has no 'paths'")
        doc_schemas = (doc.get("components") or {}).get("schemas") or doc.get("definitions")
        if not doc_schemas:
            raise ModelError("not an Ed-Fi resources document: it defines no schemas")
        schemas.update(doc_schemas)
        for path, ops in doc["paths"].items():
            if path.endswith("/keyChanges"):
                key_change_paths.add(path.removesuffix("/keyChanges"))
                continue
            if "{" in path or path.endswith(("/deletes", "/partitions")):
                continue
            schema = _post_schema(ops)
            if schema:
                collection_paths[path] = schema
                identity_params[path] = _identity_params(ops)
    if not collection_paths:
        raise ModelError("the OpenAPI documents define no resource collections")

    builder = _ShapeBuilder(schemas, collection_paths)
    resources: dict[str, Resource] = {}
    schema_to_path = {s: p for p, s in collection_paths.items()}
    for path, schema in sorted(collection_paths.items()):
        namespace, name = path.strip("/").split("/", 1)
        shape = builder.shape(schema)
        is_descriptor = name.endswith("Descriptors")
        key = (
            _descriptor_key()
            if is_descriptor
            else _natural_key(path, schema, shape, schemas, identity_params[path])
        )
        resources[path] = Resource(
            path=path,
            namespace=namespace,
            name=name,
            schema=schema,
            shape=shape,
            is_descriptor=is_descriptor,
            key=key,
            key_changes=path in key_change_paths,
        )
    abstract = _abstract_bases(resources, schemas, schema_to_path)
    for base, subs in abstract.items():
        for p in subs:
            resources[p].parents = (*resources[p].parents, base)
    return ApiModel(resources=resources, abstract=abstract, schema_to_path=schema_to_path)


def load_model_files(*paths: str) -> ApiModel:
    """Load a model from OpenAPI files on disk (JSON, optionally gzip, BOM tolerated)."""
    docs = []
    for p in paths:
        opener = gzip.open if p.endswith(".gz") else open
        try:
            with opener(p, "rt", encoding="utf-8-sig") as fh:
                docs.append(json.load(fh))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelError(f"{p} is not a JSON OpenAPI document: {exc}") from exc
    return load_model(*docs)


BUILTIN_DOCUMENTS = ("ds5-resources.json", "ds5-descriptors.json")
# the resources the sandbox's synthetic district fills, and every descriptor
COMPACT_DOCUMENTS = ("ds5-compact-resources.json", "ds5-descriptors.json")


def builtin_documents(compact: bool = False) -> list[dict[str, Any]]:
    """The DS 5 documents shipped for the sandbox (resources, descriptors).

    Every DS 5.0 resource and descriptor plus ``lmsx``, without documentation
    text; ``compact`` keeps only the resources the synthetic district fills.
    """
    base = importlib_resources.files("edfi") / "data"
    names = COMPACT_DOCUMENTS if compact else BUILTIN_DOCUMENTS
    return [json.loads((base / name).read_text("utf-8")) for name in names]


_builtin: dict[bool, ApiModel] = {}


def builtin_model(compact: bool = False) -> ApiModel:
    """The model of the built-in DS 5 documents (cached: they never change)."""
    if compact not in _builtin:
        _builtin[compact] = load_model(*builtin_documents(compact))
    return _builtin[compact]


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _post_schema(ops: Mapping[str, Any]) -> str | None:
    post = ops.get("post")
    if not post:
        return None
    body = post.get("requestBody")
    if body:
        for content in body.get("content", {}).values():
            ref = content.get("schema", {}).get("$ref")
            if ref:
                return _ref_name(ref)
    for param in post.get("parameters", []):  # Swagger 2
        if param.get("in") == "body" and "$ref" in param.get("schema", {}):
            return _ref_name(param["schema"]["$ref"])
    return None


def _identity_params(ops: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters of the collection GET flagged as identity: the flat natural key."""
    out = []
    for param in ops.get("get", {}).get("parameters", []):
        if param.get("x-Ed-Fi-isIdentity") and param.get("in") == "query":
            out.append((param["name"], _scalar_kind(param.get("schema", param))[0]))
    return out


def _scalar_kind(spec: Mapping[str, Any]) -> tuple[str, str | None]:
    typ = spec.get("type", "string")
    fmt = spec.get("format")
    if typ == "string" and fmt in ("date", "date-time", "time"):
        return fmt, fmt
    if typ in ("integer", "number", "boolean"):
        return typ, fmt
    return "string", fmt


class _ShapeBuilder:
    def __init__(self, schemas: Mapping[str, Any], collection_paths: Mapping[str, str]):
        self.schemas = schemas
        # descriptor resources by type name, e.g. "gradeleveldescriptor" -> [/ed-fi/...]
        self.descriptors: dict[str, list[str]] = {}
        for path, schema in collection_paths.items():
            if path.endswith("Descriptors"):
                self.descriptors.setdefault(schema.split("_", 1)[-1].lower(), []).append(path)
        self._cache: dict[str, Shape] = {}

    def descriptor_for(self, prop: str, schema: str) -> str | None:
        """The descriptor resource a ``...Descriptor`` property takes its values from.

        Role names prefix the type (``entryGradeLevelDescriptor``), so the longest
        descriptor type the property name ends with wins; when two namespaces
        define it (``ed-fi`` and ``lmsx`` submission statuses), the one of the
        schema's own namespace does.
        """
        if not prop.endswith("Descriptor"):
            return None
        low = prop.lower()
        best = None
        for typ in self.descriptors:
            if low.endswith(typ) and (best is None or len(typ) > len(best)):
                best = typ
        if best is None:
            return None
        paths = self.descriptors[best]
        own = schema.split("_", 1)[0].replace("-", "").lower()
        for path in paths:
            if path.split("/")[1].replace("-", "").lower() == own:
                return path
        return sorted(paths)[0]

    def scalar(self, name: str, spec: Mapping[str, Any], required: bool, schema: str) -> Scalar:
        kind, fmt = _scalar_kind(spec)
        desc = self.descriptor_for(name, schema) if kind == "string" else None
        return Scalar(
            name,
            kind,
            fmt,
            required,
            spec.get("maxLength"),
            desc,
            min_length=spec.get("minLength"),
            minimum=spec.get("minimum"),
            maximum=spec.get("maximum"),
            identity=bool(spec.get("x-Ed-Fi-isIdentity")),
        )

    def extensions(self, schema_name: str) -> dict[str, Shape]:
        """The shapes an ``_ext`` object holds, one per extension namespace."""
        spec = self.schemas.get(schema_name) or {}
        out: dict[str, Shape] = {}
        for ns, prop in (spec.get("properties") or {}).items():
            if "$ref" in prop:
                out[ns] = self.shape(_ref_name(prop["$ref"]))
        return out

    def shape(self, schema_name: str) -> Shape:
        if schema_name in self._cache:
            return self._cache[schema_name]
        spec = self.schemas.get(schema_name)
        if spec is None:
            raise ModelError(f"schema {schema_name!r} is referenced but not defined")
        required = tuple(spec.get("required", ()))
        shape = Shape(name=schema_name, required=required)
        self._cache[schema_name] = shape
        for name, prop in spec.get("properties", {}).items():
            if name in ("id", "_etag", "_lastModifiedDate", "link"):
                continue
            is_req = name in required
            if "$ref" in prop:
                target = _ref_name(prop["$ref"])
                if target.endswith("Reference"):
                    ref_spec = self.schemas.get(target, {})
                    ref_req = set(ref_spec.get("required", ()))
                    fields = tuple(
                        self.scalar(fname, fspec, fname in ref_req, schema_name)
                        for fname, fspec in ref_spec.get("properties", {}).items()
                        if fname != "link"
                    )
                    shape.references[name] = Reference(name, target, is_req, fields)
                elif name == "_ext":
                    shape.extensions.update(self.extensions(target))
                else:
                    shape.objects[name] = self.shape(target)
            elif prop.get("type") == "array":
                items = prop.get("items", {})
                if "$ref" in items:
                    shape.collections[name] = self.shape(_ref_name(items["$ref"]))
                    if is_req:
                        shape.required_collections |= {name}
            elif prop.get("type") != "object":
                shape.scalars[name] = self.scalar(name, prop, is_req, schema_name)
        return shape


def _descriptor_key() -> tuple[KeyField, ...]:
    return (
        KeyField("namespace", "string", ("namespace",)),
        KeyField("codeValue", "string", ("codeValue",)),
    )


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _natural_key(
    path: str,
    schema: str,
    shape: Shape,
    schemas: Mapping[str, Any],
    identity_params: list[tuple[str, str]],
) -> tuple[KeyField, ...]:
    """The flat natural key: the GET identity parameters, else the ``<schema>Reference`` fields."""
    key_kinds: dict[str, str] = dict(identity_params)
    if not key_kinds:
        ref_spec = schemas.get(schema + "Reference", {})
        key_kinds = {
            n: _scalar_kind(s)[0] for n, s in ref_spec.get("properties", {}).items() if n != "link"
        }
    if not key_kinds:
        key_kinds = {
            s.name: s.kind
            for s in shape.scalars.values()
            if _is_identity(schemas[schema]["properties"][s.name])
        }
    if not key_kinds:
        raise ModelError(f"{path}: cannot tell its natural key")
    key_names = list(key_kinds)
    claimed: set[tuple[str, str]] = set()
    located: dict[str, tuple[str, ...]] = {}
    # 1. identity scalars of the body
    for n in key_names:
        if n in shape.scalars:
            located[n] = (n,)
    # 2. role-named fields: gradingPeriodSchoolYear -> gradingPeriodReference.schoolYear
    exact = {f.name for ref in shape.references.values() for f in ref.fields}
    for n in key_names:
        if n in located or n in exact:
            continue
        for ref in shape.references.values():
            role = ref.name.removesuffix("Reference")
            for f in ref.fields:
                prefix = n[: -len(f.name)]
                if prefix and n.endswith(_cap(f.name)) and role.startswith(prefix):
                    located[n] = (ref.name, f.name)
                    claimed.add((ref.name, f.name))
                    break
            if n in located:
                break
    # 3. plain names, preferring required references (identity references are required)
    refs = sorted(shape.references.values(), key=lambda r: (not r.required, r.name))
    for n in key_names:
        if n in located:
            continue
        for ref in refs:
            if any(f.name == n for f in ref.fields) and (ref.name, n) not in claimed:
                located[n] = (ref.name, n)
                break
    missing = [n for n in key_names if n not in located]
    if missing:
        raise ModelError(f"{path}: natural key fields {missing} not found in its body")
    return tuple(KeyField(n, key_kinds[n], located[n]) for n in key_names)


def _is_identity(spec: Mapping[str, Any]) -> bool:
    return bool(spec.get("x-Ed-Fi-isIdentity"))


def _abstract_bases(
    resources: Mapping[str, Resource],
    schemas: Mapping[str, Any],
    schema_to_path: Mapping[str, str],
) -> dict[str, tuple[str, ...]]:
    """Reference schemas with no resource of their own (``educationOrganizationReference``).

    A concrete resource stands in for such a base when its key has the same
    fields, the base's ``<base>Id`` renamed to its own ``<name>Id``. A base is
    abstract when the document defines no schema for the entity itself.
    """
    out: dict[str, tuple[str, ...]] = {}
    for name, spec in schemas.items():
        if not name.endswith("Reference") or name.removesuffix("Reference") in schemas:
            continue  # not a reference, or one to a concrete entity (served or not)
        base = name.removesuffix("Reference").split("_", 1)[-1]
        fields = {
            n: _scalar_kind(s)[0] for n, s in spec.get("properties", {}).items() if n != "link"
        }
        subs = []
        for r in resources.values():
            if r.is_descriptor:
                continue
            own = r.schema.split("_", 1)[-1]
            renamed = {(base + "Id" if k.name == own + "Id" else k.name): k.kind for k in r.key}
            if renamed == fields:
                subs.append(r.path)
        if subs:
            out[name] = tuple(sorted(subs))
    return out


def abstract_field(resource: Resource, reference_schema: str, key_name: str) -> str:
    """The name a key field of ``resource`` has inside a reference of the given schema.

    The same as ``key_name`` except for a concrete resource behind an abstract
    base: ``schoolId`` is ``educationOrganizationId`` inside an
    ``educationOrganizationReference``.
    """
    base = reference_schema.removesuffix("Reference").split("_", 1)[-1]
    own = resource.schema.split("_", 1)[-1]
    if base != own and key_name == own + "Id":
        return base + "Id"
    return key_name
