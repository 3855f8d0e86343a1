"""An exact mapping from interchange elements to API resources, derived from metadata.

The interchange schema (XSD) and the API model (OpenAPI) describe the same
Ed-Fi entities, generated from one MetaEd model with fixed naming rules. This
module applies those rules and nothing looser:

* an element ``EntryDate`` is the property ``entryDate``; a descriptor-valued
  element ``EntryGradeLevel`` is ``entryGradeLevelDescriptor``; a school-year
  element ``ClassOfSchoolYear`` is the property ``classOfSchoolYear`` or the
  reference ``classOfSchoolYearTypeReference``;
* ``StudentReference`` is the reference ``studentReference``; its
  ``StudentIdentity`` wrapper is dropped and the identity's leaves (nested
  references included) are the reference's flat fields, a field name that a
  nested reference's role prefixes (``gradingPeriodSchoolId``) tried after the
  plain one;
* a repeated element is the collection whose item schema is named after the
  element (``edFi_student`` + ``OtherName`` -> ``otherNames``);
* a single common-type element is the embedded object of that name, and
  where the resource has none, a wrapper group whose elements belong to the
  resource itself (``Name/FirstName`` -> ``firstName``);
* an element an extension's XSD declares (see :func:`~edfi.xml.xsd.extend_schema`)
  lands in its project's part of the object: the object itself when it is the
  project's own (``EXTENSION-FinancialAid`` -> ``tpdm_financialAid``), else the
  object's ``_ext.<project>`` (``EXTENSION-SchoolExtension``'s
  ``PostSecondaryInstitutionReference`` -> ``_ext.tpdm.postSecondaryInstitutionReference``),
  by the same rules.

A required property with no element, or an element of a resource with no
property, is listed by element and property; :func:`derive_mapping` raises
when anything required is missing, so a wrong mapping never loads data. An
extension's elements are held to more: every one of them must land somewhere,
since an extension and the API it was built for come from one MetaEd model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from ..model import ApiModel, Reference, Shape
from .xsd import Child, InterchangeSchema, local_type

Action = Literal[
    "scalar",  # a value of the resource (converted to the JSON kind)
    "school_year_ref",  # a school year given as a ``*SchoolYearTypeReference``
    "reference",  # an ``*Reference`` element: the identity's leaves, flat
    "object",  # an embedded object
    "flatten",  # a wrapper group: its elements belong to the enclosing object
    "collection",  # repeated element -> JSON array
    "ext",  # an extension's element: ``sub`` maps it inside ``_ext.<json>``
    "skip",  # no property of the API takes it (reported, never silently)
]


class MappingError(ValueError):
    """The schema and the model do not give an exact mapping; ``problems`` lists each gap."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n  ".join(problems[:40])
        more = f"\n  … and {len(problems) - 40} more" if len(problems) > 40 else ""
        super().__init__(f"{len(problems)} mapping problem(s):\n  {shown}{more}")


@dataclass(slots=True)
class Leaf:
    """An identity leaf inside a reference element: where it lands and how it converts."""

    field: str
    kind: str  # string | integer | number | boolean | date | … | school_year


@dataclass(slots=True)
class RefMap:
    """How one ``*Reference`` element becomes a JSON reference."""

    schema: str  # edFi_studentReference
    identity: str  # the wrapper tag (StudentIdentity), dropped
    tree: dict[str, Leaf | dict[str, object]]  # identity children: leaf or nested subtree
    fields: tuple[str, ...]  # the JSON reference's fields
    targets: tuple[str, ...]  # resource paths an ``id`` it names may belong to


@dataclass(slots=True)
class FieldMap:
    """How one child element lands in its JSON object."""

    tag: str
    action: Action
    json: str = ""
    kind: str = "string"
    sub: ObjectMap | None = None
    ref: RefMap | None = None
    wrap: bool = False  # collection items built from the repeated element itself
    reason: str = ""
    reason_where: str = ""


@dataclass(slots=True)
class ObjectMap:
    """How the children of one complex element land in one JSON object."""

    xml_type: str
    shape: str
    fields: dict[str, FieldMap] = field(default_factory=dict)


@dataclass(slots=True)
class ElementMap:
    """An interchange element type and the resource it loads."""

    interchange: str
    element: str
    resource: str  # /ed-fi/students
    body: ObjectMap


@dataclass
class Mapping:
    """Every mappable interchange element, with what could not be mapped."""

    elements: dict[tuple[str, str], ElementMap]  # (interchange, element) -> map
    no_resource: dict[tuple[str, str], str]  # element types the API has no resource for
    problems: list[str]  # required properties with no element: fatal
    unmapped: list[str]  # elements no property takes (dropped, reported)
    coverage: dict[str, tuple[int, int]]  # resource -> (optional properties mapped, of)
    uncovered: list[str]  # optional properties no element gives

    def for_interchange(self, interchange: str) -> dict[str, ElementMap]:
        return {e: m for (i, e), m in self.elements.items() if i == interchange}


def _lower_first(name: str) -> str:
    """MetaEd's JSON spelling: ``EntryDate`` -> ``entryDate``, ``CTEProgram`` -> ``cteProgram``."""
    run = len(name) - len(name.lstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    if run == len(name):
        return name.lower()
    if run > 1:
        return name[: run - 1].lower() + name[run - 1 :]
    return name[:1].lower() + name[1:]


def _camel_suffixes(name: str) -> list[str]:
    """``edFi_stateEducationAgency`` -> StateEducationAgency, EducationAgency, Agency."""
    local = _cap(local_type(name.split("_", 1)[-1]))
    starts = [i for i, ch in enumerate(local) if ch.isupper()]
    return [local[i:] for i in starts]


def _cap(name: str) -> str:
    return name[:1].upper() + name[1:]


def _json_name(schema: InterchangeSchema, child: Child, role: str = "") -> str:
    name = _lower_first(role + child.name)
    if schema.is_simple(child.type) and schema.is_descriptor_value(child.type):
        return name if name.endswith("Descriptor") else name + "Descriptor"
    return name


def _prefixes(model: ApiModel) -> dict[str, str]:
    """Project (lower case, as an XSD file names it) -> its schema prefix: ``tpdm`` -> ``tpdm``,
    ``edfi`` -> ``edFi``, from the model's resource namespaces."""
    return {r.namespace.replace("-", "").lower(): r.schema.split("_", 1)[0] for r in model}


class _Deriver:
    def __init__(self, schema: InterchangeSchema, model: ApiModel):
        self.schema = schema
        self.model = model
        self.problems: list[str] = []
        self.unmapped: list[str] = []
        self.uncovered: list[str] = []
        self.mapped: dict[str, set[str]] = {}  # shape name -> properties given a source
        self.prefixes = _prefixes(model)
        # inside an extension's element: an element no property takes is a problem,
        # not a note (the extension and the API come from one model)
        self.strict = False

    # -- objects ------------------------------------------------------------------
    def object(self, xml_type: str, shape: Shape, where: str) -> ObjectMap:
        out = ObjectMap(xml_type, shape.name)
        self.fill(out, xml_type, shape, where)
        return out

    def fill(self, out: ObjectMap, xml_type: str, shape: Shape, where: str, role: str = "") -> None:
        for child, project in self.schema.owned_children(xml_type):
            here = f"{where}/{child.name}"
            if child.name in out.fields:
                self.problems.append(f"{here}: the element is declared twice in {xml_type}")
                continue
            strict = self.strict
            self.strict = strict or project is not None
            try:
                if project is None or self.owns(shape, project):
                    out.fields[child.name] = self.child(child, shape, here, xml_type, role)
                else:
                    out.fields[child.name] = self.extension(
                        child, project, shape, here, xml_type, role
                    )
            finally:
                self.strict = strict
        # a reference the model names with a role the schema lacks (DS 5.0
        # ``objectiveCompetencyObjectiveReference`` for DS 5.2
        # ``CompetencyObjectiveReference``) is taken by its type when only one
        # unclaimed reference of the object has that type
        for tag, fm in out.fields.items():
            if fm.action != "skip" or not fm.reason.startswith("no property"):
                continue
            child = next(c for c in self.schema.children(xml_type) if c.name == tag)
            if child.repeated or not self.schema.is_reference(child.type):
                continue
            # the reference schema is in the namespace of the type's project (a TPDM
            # entity refers to ``edFi_studentReference`` and ``tpdm_evaluationReference``)
            project = self.schema.projects.get(child.type)
            prefix = self.prefixes.get((project or "edfi").lower(), "edFi")
            wanted = prefix + "_" + _lower_first(local_type(child.type).removesuffix("Type"))
            claimed = self.mapped.get(shape.name, set())
            same = [
                r for r in shape.references.values() if r.schema == wanted and r.name not in claimed
            ]
            if len(same) == 1:
                # noted as unmapped, or (an extension's element) as a problem
                held = self.unmapped if fm.reason_where in self.unmapped else self.problems
                held.remove(fm.reason_where)
                self.mark(shape, same[0].name)
                out.fields[tag] = FieldMap(
                    tag,
                    "reference",
                    same[0].name,
                    ref=self.ref_map(child.type, same[0], f"{where}/{tag}"),
                )

    def owns(self, shape: Shape, project: str) -> bool:
        """Whether an object belongs to an extension project (``tpdm_financialAid`` to TPDM)."""
        return self.prefixes.get(project.lower()) == shape.name.split("_", 1)[0]

    def extension(
        self, child: Child, project: str, shape: Shape, where: str, owner: str, role: str
    ) -> FieldMap:
        """An extension's element of a core object: mapped inside ``_ext.<project>``."""
        key = project.lower()
        ns = next((n for n in shape.extensions if n.replace("-", "").lower() == key), None)
        if ns is None:
            self.problems.append(
                f"{where}: {shape.name} has no _ext.{project.lower()} in the API, so this "
                f"element of the {project} extension has no property"
            )
            return FieldMap(child.name, "skip", reason=f"no _ext.{project.lower()}")
        ext = shape.extensions[ns]
        inner = self.child(child, ext, where, owner, role)
        return FieldMap(child.name, "ext", ns, sub=ObjectMap(owner, ext.name, {child.name: inner}))

    def child(self, child: Child, shape: Shape, where: str, owner: str, role: str = "") -> FieldMap:
        schema = self.schema
        if child.name.endswith("Lookup") and not schema.is_simple(child.type):
            return FieldMap(child.name, "skip", reason="lookups are resolved by identity")
        if child.repeated:
            return self.collection(child, shape, where, owner, role)
        if schema.is_simple(child.type):
            return self.simple(child, shape, where, role=role)
        if schema.is_reference(child.type):
            return self.reference(child, shape, where, role)
        found = self.sub_shape(shape.objects, child.name, shape, owner)
        if found is not None:
            name, obj = found
            self.mark(shape, name)
            return FieldMap(child.name, "object", name, sub=self.object(child.type, obj, where))
        # a wrapper group: its elements belong to this object, prefixed with
        # its role when it has one (``MinimumAvailableCredits/Credits`` ->
        # ``minimumAvailableCredits``)
        inner = role + child.name.removesuffix(child.type) if child.name != child.type else role
        sub = ObjectMap(child.type, shape.name)
        self.fill(sub, child.type, shape, where, inner)
        return FieldMap(child.name, "flatten", sub=sub)

    def simple(
        self, child: Child, shape: Shape, where: str, alone: bool = False, role: str = ""
    ) -> FieldMap:
        schema = self.schema
        name = _json_name(schema, child, role)
        school_year = schema.is_school_year(child.type)
        if name not in shape.scalars and schema.is_descriptor_value(child.type) and alone:
            # a repeated descriptor's item names the descriptor, not the role
            by_type = _lower_first(local_type(child.type).removesuffix("ReferenceType"))
            if by_type in shape.scalars:
                name = by_type
        if name in shape.scalars:
            self.mark(shape, name)
            kind = "school_year" if school_year else shape.scalars[name].kind
            return FieldMap(child.name, "scalar", name, kind)
        if school_year and name + "TypeReference" in shape.references:
            ref = shape.references[name + "TypeReference"]
            if [f.name for f in ref.fields] == ["schoolYear"]:
                self.mark(shape, ref.name)
                return FieldMap(child.name, "school_year_ref", ref.name, "school_year")
        return self.skip(child, shape, where, name)

    def skip(self, child: Child, shape: Shape, where: str, name: str) -> FieldMap:
        note = f"{where}: no property {name!r} in {shape.name}"
        (self.problems if self.strict else self.unmapped).append(note)
        fm = FieldMap(child.name, "skip", reason=f"no property {name!r} in {shape.name}")
        fm.reason_where = note
        return fm

    def bases(self, xml_type: str) -> list[str]:
        """A complex type and the types it extends, nearest first (entity bases only)."""
        out = []
        name: str | None = xml_type
        while name and name in self.schema.complex and not name.endswith("ObjectType"):
            out.append(name)
            name = self.schema.complex[name].base
        return out

    def sub_shape(
        self, subs: dict[str, Shape], element: str, shape: Shape, owner: str
    ) -> tuple[str, Shape] | None:
        """The collection or embedded object whose schema MetaEd names after this element.

        The schema is the owner's (or the owner's base entity's) followed by the
        element name, where the element's leading words that repeat the end of
        the owner's name are dropped: ``edFi_assessment`` + ``AssessmentPeriod``
        -> ``edFi_assessmentPeriod``; ``edFi_educationOrganization`` +
        ``EducationOrganizationCategory`` -> ``edFi_educationOrganizationCategory``.
        """
        ns = shape.name.split("_", 1)[0] + "_"
        owners = [shape.name] + [ns + _lower_first(local_type(b)) for b in self.bases(owner)[1:]]
        owner_names = [_camel_suffixes(shape.name)] + [
            _camel_suffixes(ns + _lower_first(local_type(b))) for b in self.bases(owner)[1:]
        ]
        if owner and owner_names:
            owner_names[0] = [*owner_names[0], *_camel_suffixes("x_" + owner)]
        by_schema = {s.name: n for n, s in subs.items()}
        for prefix, drops in zip(owners, owner_names, strict=True):
            candidates = [prefix + element] + [
                prefix + element[len(d) :]
                for d in drops
                if element.startswith(d) and element[len(d) : len(d) + 1].isupper()
            ]
            for c in candidates:
                if c in by_schema:
                    return by_schema[c], subs[by_schema[c]]
        return None

    def collection(
        self, child: Child, shape: Shape, where: str, owner: str, role: str = ""
    ) -> FieldMap:
        stem = role + child.name
        if self.schema.is_reference(child.type):
            stem = stem.removesuffix("Reference")
        found = self.sub_shape(shape.collections, stem, shape, owner)
        if found is None:
            return self.skip(child, shape, where, f"collection of {shape.name}{stem}")
        name, item = found
        self.mark(shape, name)
        single = Child(child.name, child.type, 1, 1, child.in_choice)
        if self.schema.is_simple(child.type) or self.schema.is_reference(child.type):
            sub = ObjectMap(child.type, item.name)
            if self.schema.is_simple(child.type):
                sub.fields[child.name] = self.simple(single, item, where, alone=True, role=role)
            else:
                sub.fields[child.name] = self.reference(single, item, where, role)
            return FieldMap(child.name, "collection", name, sub=sub, wrap=True)
        return FieldMap(child.name, "collection", name, sub=self.object(child.type, item, where))

    # -- references ---------------------------------------------------------------
    def reference(self, child: Child, shape: Shape, where: str, role: str = "") -> FieldMap:
        name = _lower_first(role + child.name)
        candidates = [name]
        # a role that repeats the start of the entity's name is dropped:
        # ``FundFundDimensionReference`` -> ``fundDimensionReference``
        for i in range(1, len(child.name)):
            rest = child.name[i:]
            if rest[:1].isupper() and rest.startswith(child.name[:i]):
                candidates.append(_lower_first(rest))
        for cand in candidates:
            ref = shape.references.get(cand)
            if ref is not None:
                self.mark(shape, cand)
                return FieldMap(
                    child.name, "reference", cand, ref=self.ref_map(child.type, ref, where)
                )
        return self.skip(child, shape, where, name)

    def ref_map(self, ref_type: str, ref: Reference, where: str) -> RefMap:
        identity = [c for c in self.schema.children(ref_type) if c.name.endswith("Identity")]
        if len(identity) != 1:
            self.problems.append(f"{where}: {ref_type} has no single *Identity element")
            return RefMap(ref.schema, "", {}, (), ())
        fields = {f.name: f for f in ref.fields}
        taken: dict[str, tuple[str, ...]] = {}
        tree: dict[str, Leaf | dict[str, object]] = {}
        placed: list[tuple[tuple[str, ...], Child, str]] = []
        missed: list[tuple[tuple[str, ...], Child, str, list[str]]] = []
        for path, prefixes, child in self.leaves(identity[0].type, ()):
            base = _json_name(self.schema, child)
            # the most specific spelling first: a nested reference's role
            # (``gradingPeriodSchoolYear``) before the plain, unified name
            candidates = [_lower_first(p) + _cap(base) for p in prefixes] + [base]
            chosen = next(
                (c for c in candidates if c in fields and (c not in taken or c == base)), None
            )
            if chosen is None:
                missed.append((path, child, base, candidates))
                continue
            taken.setdefault(chosen, path)
            placed.append((path, child, chosen))
        for path, child, base, candidates in missed:
            # a role the model gives and the schema lacks: the one free field
            # that is the leaf's name behind a role (``objectiveEducationOrganizationId``)
            free = [f for f in fields if f not in taken and f.endswith(_cap(base))]
            if len(free) != 1:
                self.problems.append(
                    f"{where}/{'/'.join(path)}: no field of {ref.schema} among {candidates}"
                )
                continue
            taken[free[0]] = path
            placed.append((path, child, free[0]))
        for path, child, chosen in placed:
            kind = "school_year" if self.schema.is_school_year(child.type) else fields[chosen].kind
            node: dict[str, object] = tree  # type: ignore[assignment]
            for part in path[:-1]:
                node = node.setdefault(part, {})  # type: ignore[assignment]
            node[path[-1]] = Leaf(chosen, kind)
        for f in fields:
            if f not in taken:
                self.problems.append(
                    f"{where}: field {f!r} of {ref.schema} has no identity element"
                )
        return RefMap(
            ref.schema,
            identity[0].name,
            tree,
            tuple(fields),
            self.model.targets(ref),
        )

    def leaves(
        self, identity_type: str, path: tuple[str, ...], prefixes: tuple[str, ...] = ()
    ) -> Iterator[tuple[tuple[str, ...], tuple[str, ...], Child]]:
        """Every simple element under an identity, with the role prefixes of nested references."""
        for child in self.schema.children(identity_type):
            here = (*path, child.name)
            if self.schema.is_simple(child.type):
                yield here, prefixes, child
            elif self.schema.is_reference(child.type):
                inner = [c for c in self.schema.children(child.type) if c.name.endswith("Identity")]
                if inner:
                    role = child.name.removesuffix("Reference")
                    yield from self.leaves(inner[0].type, (*here, inner[0].name), (role, *prefixes))
            else:
                yield from self.leaves(child.type, here, prefixes)

    # -- coverage -----------------------------------------------------------------
    def mark(self, shape: Shape, prop: str) -> None:
        self.mapped.setdefault(shape.name, set()).add(prop)

    def check_required(self, shape: Shape, where: str, seen: set[str]) -> tuple[int, int]:
        """Required properties with no source become problems; returns optional (mapped, of)."""
        if shape.name in seen:
            return 0, 0
        seen.add(shape.name)
        mapped = self.mapped.get(shape.name, set())
        required = set(shape.required) | set(shape.required_collections)
        props = [*shape.scalars, *shape.references, *shape.collections, *shape.objects]
        got = total = 0
        server_id = shape.name.split("_", 1)[-1] + "Id"  # a descriptor's id, server-assigned
        for p in props:
            if p == server_id and shape.name.endswith("Descriptor"):
                continue
            if p in required:
                if p not in mapped:
                    self.problems.append(f"{where}: required property {p!r} has no element")
            else:
                total += 1
                got += p in mapped
                if p not in mapped:
                    self.uncovered.append(f"{where}: optional property {p!r} has no element")
        for name, sub in (*shape.collections.items(), *shape.objects.items()):
            if name in mapped:
                g, t = self.check_required(sub, f"{where}.{name}", seen)
                got += g
                total += t
        for ns, sub in shape.extensions.items():
            if sub.name in self.mapped:  # an extension the schema gives elements for
                g, t = self.check_required(sub, f"{where}._ext.{ns}", seen)
                got += g
                total += t
        return got, total


def _resource_schema(schema: InterchangeSchema, prefixes: dict[str, str], child: Child) -> str:
    """The API schema an interchange element loads: ``edFi_`` and the element's name, or the
    extension project's prefix for an entity an extension defines (``tpdm_financialAid``);
    an extended core entity (``School`` typed ``EXTENSION-SchoolExtension``) stays core."""
    project = schema.projects.get(child.type)
    if project is None or schema.extends_core(child.type, child.name):
        return "edFi_" + _lower_first(child.name)
    return prefixes.get(project.lower(), project.lower()) + "_" + _lower_first(child.name)


def derive_mapping(
    schema: InterchangeSchema, model: ApiModel, interchanges: Iterable[str] | None = None
) -> Mapping:
    """Derive the mapping of every interchange element whose resource the model has."""
    wanted = set(interchanges) if interchanges is not None else None
    d = _Deriver(schema, model)
    elements: dict[tuple[str, str], ElementMap] = {}
    no_resource: dict[tuple[str, str], str] = {}
    coverage: dict[str, tuple[int, int]] = {}
    bodies: dict[tuple[str, str], ObjectMap] = {}
    for interchange, kids in sorted(schema.interchanges.items()):
        if wanted is not None and interchange not in wanted:
            continue
        for kid in kids:
            key = (interchange, kid.name)
            name = _resource_schema(schema, d.prefixes, kid)
            path = model.schema_to_path.get(name)
            resource = model.resources.get(path) if path else None
            if resource is None:
                project = schema.projects.get(kid.type)
                if project is not None:  # an extension's entity: the API must have it
                    d.problems.append(
                        f"{interchange}/{kid.name}: the API has no resource {name!r} for "
                        f"this element of the {project} extension"
                    )
                no_resource[key] = f"the API has no resource for {kid.name}"
                continue
            body = bodies.get((resource.path, kid.type))
            if body is None:
                body = bodies[resource.path, kid.type] = d.object(
                    kid.type, resource.shape, kid.name
                )
                coverage[resource.path] = d.check_required(resource.shape, kid.name, set())
            elements[key] = ElementMap(interchange, kid.name, resource.path, body)
    return Mapping(elements, no_resource, d.problems, d.unmapped, coverage, d.uncovered)


def check_mapping(mapping: Mapping) -> Mapping:
    """The mapping itself, or :class:`MappingError` listing every required gap."""
    if mapping.problems:
        raise MappingError(mapping.problems)
    return mapping


_derived: dict[tuple[int, int], tuple[InterchangeSchema, ApiModel, Mapping]] = {}


def mapping_for(schema: InterchangeSchema, model: ApiModel) -> Mapping:
    """The full mapping of a schema onto a model, checked (kept while both live)."""
    key = (id(schema), id(model))
    hit = _derived.get(key)
    if hit is None or hit[0] is not schema or hit[1] is not model:
        hit = (schema, model, derive_mapping(schema, model))
        if len(_derived) >= 8:  # a long-lived worker loads a model per run: keep a few
            _derived.clear()
        _derived[key] = hit
    return check_mapping(hit[2])
