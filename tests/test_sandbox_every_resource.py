"""Every resource of the served model answers GET, POST, PUT, DELETE, /deletes and /keyChanges.

One record per resource is built from the model alone, in dependency order: a
value depends only on the property's name and type (every ``schoolId`` is the
same number, every identifying string the same text), so each reference names
the record built for its target and key unification holds; descriptors take a
value the data set already has. Then each record is read back, replaced with PUT,
listed, and finally deleted in reverse order, which ``/deletes`` must show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edfi.model import ApiModel, Reference, Resource, Scalar, Shape, abstract_field
from sandbox.server import running_sandbox
from tests.test_sandbox_api import Api

YEAR = 2025


def scalar_value(s: Scalar) -> Any:
    if s.kind == "integer":
        low = s.minimum if s.minimum is not None else -(2**31)
        high = s.maximum if s.maximum is not None else 2**31
        return YEAR if low <= YEAR <= high else int(low)
    if s.kind == "number":
        return s.minimum if s.minimum is not None else 0
    if s.kind == "boolean":
        return True
    if s.kind == "date":
        return "2024-09-03"
    if s.kind == "date-time":
        return "2024-09-03T08:00:00Z"
    if s.kind == "time":
        return "08:00:00"
    text = "X1-sandbox"  # long enough for every minLength, short enough for most maxLengths
    if s.min_length and len(text) < s.min_length:
        text = text.ljust(s.min_length, "x")
    if s.max_length is not None:
        text = text[: s.max_length]
    return text


class Builder:
    def __init__(self, model: ApiModel, descriptors: dict[str, str]):
        self.model = model
        self.descriptors = descriptors  # descriptor resource path -> a value it holds

    def value(self, s: Scalar) -> Any:
        if s.descriptor:
            return self.descriptors[s.descriptor]
        return scalar_value(s)

    def body(self, shape: Shape) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in shape.scalars.values():
            if s.required:
                out[s.name] = self.value(s)
        for name, ref in shape.references.items():
            if ref.required:
                out[name] = self.reference(ref)
        for name, sub in shape.collections.items():
            if name in shape.required_collections:
                out[name] = [self.body(sub)]
        for name, sub in shape.objects.items():
            if name in shape.required:
                out[name] = self.body(sub)
        return out

    def reference(self, ref: Reference) -> dict[str, Any]:
        target = self.model[self.model.targets(ref)[0]]
        values = {f.name: self.value(f) for f in ref.fields}
        # a concrete target behind an abstract base: schoolId inside educationOrganizationReference
        for k in target.key:
            inner = abstract_field(target, ref.schema, k.name)
            if inner != k.name and inner in values:
                values[inner] = scalar_value(Scalar(k.name, k.kind, None, True))
        return values


def first_descriptors(api: Api, model: ApiModel) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in model:
        if not r.is_descriptor:
            continue
        page = api.get(r.path, limit=1).json()
        if page:
            out[r.path] = f"{page[0]['namespace']}#{page[0]['codeValue']}"
        else:
            type_ = r.schema.split("_", 1)[-1]
            type_ = type_[:1].upper() + type_[1:]
            body = {
                "namespace": f"uri://ed-fi.org/{type_}",
                "codeValue": "X1",
                "shortDescription": "X1",
            }
            assert api.post(r.path, body).status_code == 201, r.path
            out[r.path] = f"uri://ed-fi.org/{type_}#X1"
    return out


def test_every_resource_answers_every_method() -> None:
    """The built-in model, with the minimal template's descriptors."""
    walk(students=0)


def test_every_resource_of_the_official_ds5_documents(spec_dir: Path) -> None:
    """The full official DS 5.0 documents, served with ``--openapi``."""
    docs = spec_dir / "openapi"
    walk(
        students=0,
        template=False,
        openapi=[str(docs / "resources-ds-5.0.json"), str(docs / "descriptors-ds-5.0.json")],
    )


def walk(**sandbox: Any) -> None:
    with running_sandbox(**sandbox) as sb:
        api = Api(sb)
        model = sb.sandbox.model
        descriptors = first_descriptors(api, model)
        builder = Builder(model, descriptors)
        created: list[tuple[Resource, str, dict[str, Any]]] = []
        failures: list[str] = []
        for path in model.load_order():
            resource = model[path]
            if resource.is_descriptor:
                continue
            body = builder.body(resource.shape)
            r = api.post(path, body)
            if r.status_code not in (200, 201):
                failures.append(f"POST {path}: {r.status_code} {r.text[:600]}")
                continue
            id_ = r.headers["Location"].rsplit("/", 1)[-1]
            created.append((resource, id_, body))
        assert failures == [], "\n".join(failures)
        for resource, id_, body in created:
            path = resource.path
            got = api.http.get(f"/data/v3{path}/{id_}")
            assert got.status_code == 200, path
            etag = got.headers["ETag"]
            listed = api.get(path, totalCount="true")
            assert listed.status_code == 200 and int(listed.headers["Total-Count"]) >= 1, path
            put = api.put(f"{path}/{id_}", body)
            assert put.status_code == 204, (path, put.text[:300])
            assert put.headers["ETag"] != etag, path
            for tracked in ("deletes", "keyChanges"):
                r = api.get(f"{path}/{tracked}", totalCount="true")
                assert r.status_code == 200 and r.headers["Total-Count"] == "0", (path, tracked)
        newest = api.newest()
        for resource, id_, _ in reversed(created):
            r = api.delete(f"{resource.path}/{id_}")
            assert r.status_code == 204, (resource.path, r.text[:300])
        for resource, id_, _ in created:
            gone = api.get(f"{resource.path}/deletes", minChangeVersion=newest + 1).json()
            assert [d["id"] for d in gone] == [id_], resource.path
        assert len(created) == sum(1 for r in model if not r.is_descriptor)
