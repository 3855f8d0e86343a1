"""Write a sandbox data set as Ed-Fi interchange XML: test data the project makes itself.

One file per interchange (``Interchange-Student.xml``, …) holding every record
of the resources it carries, elements in the schema's order. Inside a file,
an element that another element of the same file references gets an ``id``,
and the reference is written as ``ref="…"`` (``xs:IDREF`` resolves within a
document, so cross-file references keep their identity). A resource that two
interchanges carry is written once, in the first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import fsspec

from edfi.model import ApiModel, Resource, publishable
from edfi.xml.mapping import ElementMap, ObjectMap, RefMap, mapping_for
from edfi.xml.writer import build, element_id, ref_target_id, write_interchange
from edfi.xml.xsd import InterchangeSchema, builtin_schema

Records = Callable[[Resource], Iterable[dict[str, Any]]]


def _ref_targets(obj: ObjectMap) -> Iterator[str]:
    for fm in obj.fields.values():
        if fm.ref is not None and len(fm.ref.targets) == 1:
            yield fm.ref.targets[0]
        if fm.sub is not None:
            yield from _ref_targets(fm.sub)


def plan(model: ApiModel, schema: InterchangeSchema) -> dict[str, list[ElementMap]]:
    """Interchange -> the element maps to write there (each resource once, schema order)."""
    mapping = mapping_for(schema, model)
    done: set[str] = set()
    out: dict[str, list[ElementMap]] = {}
    for interchange, kids in sorted(schema.interchanges.items()):
        chosen = []
        for kid in kids:
            em = mapping.elements.get((interchange, kid.name))
            if em is None or em.resource in done:
                continue
            done.add(em.resource)
            chosen.append(em)
        if chosen:
            out[interchange] = chosen
    return out


def export_xml(
    model: ApiModel,
    records: Records,
    out_url: str,
    *,
    schema: InterchangeSchema | None = None,
    compress: bool = False,
    use_refs: bool = True,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, int]:
    """Write every interchange that has records; returns elements written per file name."""
    schema = schema or builtin_schema()
    fs, root = fsspec.core.url_to_fs(out_url, **(storage_options or {}))
    fs.makedirs(root, exist_ok=True)
    written: dict[str, int] = {}
    for interchange, elements in plan(model, schema).items():
        paths = {em.resource for em in elements}
        with_ids = (
            {t for em in elements for t in _ref_targets(em.body) if t in paths}
            if use_refs
            else set()
        )

        def ref_id(ref: RefMap, values: Mapping[str, Any], ids: set[str] = with_ids) -> str | None:
            if ref.targets and ref.targets[0] in ids:
                return ref_target_id(model, ref, values)
            return None

        def items(elements: list[ElementMap] = elements, ids: set[str] = with_ids) -> Iterator[Any]:
            for em in elements:
                resource = model[em.resource]
                for served in records(resource):
                    record = publishable(served)
                    ident = (
                        element_id(resource.path, resource.key_values(record))
                        if resource.path in ids
                        else None
                    )
                    yield build(
                        em.element, em.body, record, schema.namespace, ident=ident, ref_id=ref_id
                    )

        name = interchange.replace("Interchange", "Interchange-", 1) + ".xml"
        if compress:
            name += ".gz"
        path = f"{root.rstrip('/')}/{name}"
        with fs.open(path, "wb", compression="gzip" if compress else None) as fh:
            count = write_interchange(fh, interchange, schema.namespace, items())
        if count:
            written[name] = count
        else:
            fs.rm(path)
    return written
