"""Build the compact DS 5 OpenAPI documents shipped in ``edfi/data``.

A development tool, not run by the project: it cuts the resources the sandbox
serves (and every descriptor of the Data Standard) out of the official Ed-Fi
DS 5.0 documents, adds the ``/deletes`` and ``/keyChanges`` paths an ODS/API 7.x
server publishes, and adds the ``lmsx`` extension described in
``edfi-spec/lmsx.md``. Run it from the project root:

    python -m sandbox.build_openapi ../shared/edfi-spec/openapi
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# The compact subset (``--openapi compact``): the resources the synthetic district fills.
RESOURCES = [
    "stateEducationAgencies",
    "localEducationAgencies",
    "schools",
    "schoolYearTypes",
    "calendars",
    "calendarDates",
    "sessions",
    "gradingPeriods",
    "classPeriods",
    "bellSchedules",
    "locations",
    "courses",
    "courseOfferings",
    "sections",
    "programs",
    "students",
    "staffs",
    "contacts",
    "studentSchoolAssociations",
    "studentEducationOrganizationAssociations",
    "studentSectionAssociations",
    "staffSectionAssociations",
    "staffSchoolAssociations",
    "staffEducationOrganizationAssignmentAssociations",
    "staffEducationOrganizationEmploymentAssociations",
    "studentContactAssociations",
    "studentSchoolAttendanceEvents",
    "studentSectionAttendanceEvents",
    "grades",
    "gradebookEntries",
    "studentGradebookEntries",
    "studentAcademicRecords",
    "courseTranscripts",
    "assessments",
    "objectiveAssessments",
    "studentAssessments",
    "studentProgramAssociations",
    "studentSpecialEducationProgramAssociations",
    "studentSchoolFoodServiceProgramAssociations",
    "cohorts",
    "studentCohortAssociations",
    "disciplineIncidents",
    "disciplineActions",
    "studentDisciplineIncidentBehaviorAssociations",
    "graduationPlans",
    "educationServiceCenters",
]

# Resources whose natural key the ODS/API lets a client change (PUT with new key values),
# and for which it publishes /keyChanges.
KEY_CHANGES = {
    "classPeriods",
    "grades",
    "gradebookEntries",
    "locations",
    "sections",
    "sessions",
    "studentSchoolAssociations",
    "studentSectionAssociations",
}

LMSX_DESCRIPTORS = [
    "assignmentCategoryDescriptor",
    "lmsSourceSystemDescriptor",
    "submissionStatusDescriptor",
    "submissionTypeDescriptor",
]


def _string(
    max_length: int | None = None,
    fmt: str | None = None,
    identity: bool = False,
    description: str = "",
) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "string", "description": description}
    if max_length:
        out["maxLength"] = max_length
    if fmt:
        out["format"] = fmt
    if identity:
        out["x-Ed-Fi-isIdentity"] = True
    return out


def _lmsx_schemas(descriptor_template: dict[str, Any]) -> dict[str, Any]:
    ref = "#/components/schemas/"
    schemas: dict[str, Any] = {
        "lmsx_assignmentReference": {
            "type": "object",
            "required": ["assignmentIdentifier", "namespace"],
            "properties": {
                "assignmentIdentifier": _string(255, identity=True),
                "namespace": _string(255, identity=True),
                "link": {"$ref": ref + "link"},
            },
        },
        "lmsx_assignmentSubmissionReference": {
            "type": "object",
            "required": ["assignmentSubmissionIdentifier", "namespace", "studentUniqueId"],
            "properties": {
                "assignmentSubmissionIdentifier": _string(255, identity=True),
                "namespace": _string(255, identity=True),
                "studentUniqueId": _string(32, identity=True),
                "link": {"$ref": ref + "link"},
            },
        },
        "lmsx_assignmentSubmissionType": {
            "type": "object",
            "required": ["submissionTypeDescriptor"],
            "properties": {"submissionTypeDescriptor": _string(306, identity=True)},
        },
        "lmsx_assignment": {
            "type": "object",
            "required": [
                "assignmentIdentifier",
                "namespace",
                "lmsSourceSystemDescriptor",
                "title",
                "assignmentCategoryDescriptor",
                "sectionReference",
            ],
            "properties": {
                "id": _string(),
                "assignmentIdentifier": _string(
                    255, identity=True, description="Unique identifier in the LMS."
                ),
                "namespace": _string(255, identity=True),
                "lmsSourceSystemDescriptor": _string(306),
                "title": _string(255),
                "assignmentCategoryDescriptor": _string(306),
                "assignmentDescription": _string(1024),
                "startDateTime": _string(fmt="date-time"),
                "endDateTime": _string(fmt="date-time"),
                "dueDateTime": _string(fmt="date-time"),
                "maxPoints": {"type": "integer", "format": "int32"},
                "sectionReference": {"$ref": ref + "edFi_sectionReference"},
                "submissionTypes": {
                    "type": "array",
                    "items": {"$ref": ref + "lmsx_assignmentSubmissionType"},
                },
                "_etag": _string(),
                "_lastModifiedDate": _string(fmt="date-time"),
            },
        },
        "lmsx_assignmentSubmission": {
            "type": "object",
            "required": [
                "assignmentSubmissionIdentifier",
                "namespace",
                "submissionStatusDescriptor",
                "assignmentReference",
                "studentReference",
            ],
            "properties": {
                "id": _string(),
                "assignmentSubmissionIdentifier": _string(255, identity=True),
                "namespace": _string(255, identity=True),
                "assignmentReference": {"$ref": ref + "lmsx_assignmentReference"},
                "studentReference": {"$ref": ref + "edFi_studentReference"},
                "submissionStatusDescriptor": _string(306),
                "submissionDateTime": _string(fmt="date-time"),
                "earnedPoints": {"type": "integer", "format": "int32"},
                "grade": _string(20),
                "_etag": _string(),
                "_lastModifiedDate": _string(fmt="date-time"),
            },
        },
    }
    for d in LMSX_DESCRIPTORS:
        spec = json.loads(json.dumps(descriptor_template))
        props = spec["properties"]
        old_id = next(k for k in props if k.endswith("DescriptorId"))
        props[d + "Id"] = props.pop(old_id)
        schemas["lmsx_" + d] = spec
    return schemas


def _paths_for(
    ns: str,
    name: str,
    schema: str,
    template_ops: dict[str, Any],
    template_item: dict[str, Any],
    key_changes: bool,
) -> dict[str, Any]:
    ref = "#/components/schemas/" + schema
    ops = json.loads(
        json.dumps(template_ops).replace('#/components/schemas/edFi_student"', ref + '"')
    )
    shape = _lmsx_shape_params(schema)
    for op in ops.values():
        op["tags"] = [name]
        op["parameters"] = [p for p in op.get("parameters", []) if "$ref" in p]
    ops["get"]["parameters"] += shape
    item = json.loads(
        json.dumps(template_item).replace('#/components/schemas/edFi_student"', ref + '"')
    )
    for op in item.values():
        op["tags"] = [name]
    out = {f"/{ns}/{name}": ops, f"/{ns}/{name}/{{id}}": item}
    out[f"/{ns}/{name}/deletes"] = _change_path(name, "deletes")
    if key_changes:
        out[f"/{ns}/{name}/keyChanges"] = _change_path(name, "keyChanges")
    return out


def _lmsx_shape_params(schema: str) -> list[dict[str, Any]]:
    """GET-by-example parameters of an lmsx resource, identity flagged as the ODS/API does."""
    ident = {
        "lmsx_assignment": ["assignmentIdentifier", "namespace"],
        "lmsx_assignmentSubmission": [
            "assignmentSubmissionIdentifier",
            "namespace",
            "studentUniqueId",
        ],
    }[schema]
    return [
        {"name": n, "in": "query", "schema": {"type": "string"}, "x-Ed-Fi-isIdentity": True}
        for n in ident
    ]


def _change_path(name: str, kind: str) -> dict[str, Any]:
    return {
        "get": {
            "tags": [name],
            "summary": f"Retrieves {kind} of {name} within a change version window.",
            "parameters": [
                {"$ref": "#/components/parameters/" + p}
                for p in ("offset", "limit", "MinChangeVersion", "MaxChangeVersion", "totalCount")
            ],
            "responses": {"200": {"description": "OK"}},
        }
    }


def _prune_all(
    schemas: dict[str, Any], all_schemas: dict[str, Any], subset: set[str]
) -> dict[str, Any]:
    """Drop references to concrete resources the sandbox does not serve.

    A collection item or embedded object that *requires* such a reference is
    dropped whole, together with the properties that hold it.
    """
    out = json.loads(json.dumps(schemas))
    dropped: set[str] = set()

    def outside(ref: str) -> bool:
        base = ref.removesuffix("Reference")
        return ref.endswith("Reference") and base in all_schemas and base not in subset

    changed = True
    while changed:
        changed = False
        for name, spec in out.items():
            if name in dropped:
                continue
            props = spec.get("properties", {})
            for pname, prop in list(props.items()):
                ref = prop.get("$ref") or prop.get("items", {}).get("$ref") or ""
                ref = ref.rsplit("/", 1)[-1]
                if outside(ref) or ref in dropped:
                    if pname in spec.get("required", []) and prop.get("type") != "array":
                        dropped.add(name)
                    else:
                        del props[pname]
                        if pname in spec.get("required", []):
                            spec["required"].remove(pname)
                    changed = True
                    if name in dropped:
                        break
    return {k: v for k, v in out.items() if k not in dropped}


def _tags(paths: dict[str, Any]) -> list[dict[str, str]]:
    """The top-level tag list (clients such as edfi-api-client list resources from it)."""
    names = sorted(
        {
            p.strip("/").split("/")[1]
            for p in paths
            if "{" not in p and not p.endswith(("/deletes", "/keyChanges"))
        }
    )
    return [{"name": n, "description": n} for n in names]


def _closure(schemas: dict[str, Any], roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        text = json.dumps(schemas[name])
        for part in text.split('"#/components/schemas/')[1:]:
            stack.append(part.split('"', 1)[0])
    return seen


def _post_schema_name(ops: dict[str, Any]) -> str:
    ref: str = ops["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


# Keys that only document (prose, generated operation names): the model, the validator
# and the clients that read the served documents never use them.
_PROSE = ("description", "summary", "operationId")


def _slim(value: Any, in_properties: bool = False) -> Any:
    """``value`` without prose; a ``properties`` mapping keeps its keys (property names)."""
    if isinstance(value, dict):
        return {
            k: _slim(v, k == "properties" and not in_properties)
            for k, v in value.items()
            if in_properties or not (k in _PROSE and isinstance(v, str))
        }
    if isinstance(value, list):
        return [_slim(v) for v in value]
    return value


def _slim_paths(paths: dict[str, Any]) -> dict[str, Any]:
    """Operations without prose, answering with their success responses only.

    The error responses are the same shared set on every operation; a success
    response keeps its description (OpenAPI requires one).
    """
    out: dict[str, Any] = {}
    for path, ops in paths.items():
        out[path] = {}
        for method, op in ops.items():
            slim = {k: _slim(v) for k, v in op.items() if k not in _PROSE and k != "responses"}
            slim["responses"] = {
                code: spec for code, spec in op["responses"].items() if code.startswith("2")
            }
            out[path][method] = slim
    return out


def build(
    spec_dir: Path, resources: list[str] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The resources and descriptors documents: every DS 5.0 resource, or ``resources``."""
    res = json.loads((spec_dir / "resources-ds-5.0.json").read_text("utf-8-sig"))
    desc = json.loads((spec_dir / "descriptors-ds-5.0.json").read_text("utf-8-sig"))
    rs, ds = res["components"]["schemas"], desc["components"]["schemas"]
    template_ops = res["paths"]["/ed-fi/students"]
    template_item = res["paths"]["/ed-fi/students/{id}"]

    if resources is None:
        selected = sorted(p for p in res["paths"] if p.count("/") == 2)
    else:
        selected = [f"/ed-fi/{name}" for name in resources]
    paths: dict[str, Any] = {}
    roots: list[str] = ["link"]
    for path in selected:
        name = path.rsplit("/", 1)[-1]
        schema = _post_schema_name(res["paths"][path])
        roots += [schema, schema + "Reference"]
        paths[path] = res["paths"][path]
        paths[path + "/{id}"] = res["paths"][path + "/{id}"]
        paths[path + "/deletes"] = _change_path(name, "deletes")
        if name in KEY_CHANGES and path.startswith("/ed-fi/"):
            paths[path + "/keyChanges"] = _change_path(name, "keyChanges")
    # the abstract education organization reference
    roots.append("edFi_educationOrganizationReference")
    subset = {r.removesuffix("Reference") for r in roots} | {"edFi_educationOrganization"}
    keep = _closure(rs, [r for r in roots if r in rs])
    schemas = _prune_all({k: rs[k] for k in sorted(keep)}, rs, subset)
    keep = _closure(schemas, [r for r in roots if r in schemas])
    schemas = {k: schemas[k] for k in sorted(keep)}
    schemas |= _lmsx_schemas(ds["edFi_gradeLevelDescriptor"])
    for name, schema in (
        ("assignments", "lmsx_assignment"),
        ("assignmentSubmissions", "lmsx_assignmentSubmission"),
    ):
        paths |= _paths_for("lmsx", name, schema, template_ops, template_item, False)
    components = {k: v for k, v in res["components"].items() if k != "schemas"}
    scope = "DS 5.0" if resources is None else "DS 5.0 subset"
    resources_doc: dict[str, Any] = {
        "openapi": "3.0.1",
        "tags": _tags(paths),
        "info": {
            "title": f"Ed-Fi Resources API (sandbox, {scope} + lmsx)",
            "version": "5.0",
            "description": f"The Ed-Fi {scope} Resources API served by the edfi-flows "
            "sandbox, without the documentation text.",
        },
        "paths": paths,
        "components": {"schemas": schemas, **components},
    }

    # descriptors: every one of the DS 5.0 descriptors document (a fresh ODS/API serves
    # them all, holding the Data Standard's default values)
    dpaths: dict[str, Any] = {}
    dschemas: dict[str, Any] = {"link": rs["link"]}
    dtemplate_ops = desc["paths"]["/ed-fi/gradeLevelDescriptors"]
    dtemplate_item = desc["paths"]["/ed-fi/gradeLevelDescriptors/{id}"]
    for path in sorted(p for p in desc["paths"] if p.count("/") == 2):
        name = path.rsplit("/", 1)[-1]
        schema = _post_schema_name(desc["paths"][path])
        dschemas[schema] = ds[schema]
        ops = json.loads(
            json.dumps(dtemplate_ops).replace('edFi_gradeLevelDescriptor"', schema + '"')
        )
        item = json.loads(
            json.dumps(dtemplate_item).replace('edFi_gradeLevelDescriptor"', schema + '"')
        )
        for op in (*ops.values(), *item.values()):
            op["tags"] = [name]
            if "parameters" in op:
                op["parameters"] = [p for p in op["parameters"] if "$ref" in p]
        dpaths[path] = ops
        dpaths[path + "/{id}"] = item
        dpaths[path + "/deletes"] = _change_path(name, "deletes")
    for d in LMSX_DESCRIPTORS:
        name = d + "s"
        schema = "lmsx_" + d
        dschemas[schema] = resources_doc["components"]["schemas"].pop(schema)
        old_ref = '"#/components/schemas/edFi_gradeLevelDescriptor"'
        new_ref = f'"#/components/schemas/{schema}"'
        ops = json.loads(json.dumps(dtemplate_ops).replace(old_ref, new_ref))
        item = json.loads(json.dumps(dtemplate_item).replace(old_ref, new_ref))
        for op in (*ops.values(), *item.values()):
            op["tags"] = [name]
            if "parameters" in op:
                op["parameters"] = [p for p in op["parameters"] if "$ref" in p]
        dpaths[f"/lmsx/{name}"] = ops
        dpaths[f"/lmsx/{name}/{{id}}"] = item
        dpaths[f"/lmsx/{name}/deletes"] = _change_path(name, "deletes")
    descriptors_doc: dict[str, Any] = {
        "openapi": "3.0.1",
        "tags": _tags(dpaths),
        "info": {
            "title": "Ed-Fi Descriptors API (sandbox, DS 5.0 + lmsx)",
            "version": "5.0",
            "description": "Every DS 5.0 descriptor and the lmsx ones.",
        },
        "paths": dpaths,
        "components": {"schemas": dschemas, **components},
    }
    for doc in (resources_doc, descriptors_doc):
        doc["paths"] = _slim_paths(doc["paths"])
        doc["components"]["schemas"] = _slim(doc["components"]["schemas"])
    return resources_doc, descriptors_doc


def main() -> None:
    spec_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/edfi-spec/openapi")
    out = Path(__file__).resolve().parent.parent / "edfi" / "data"
    out.mkdir(exist_ok=True)
    r, d = build(spec_dir)
    (out / "ds5-resources.json").write_text(json.dumps(r, separators=(",", ":")))
    (out / "ds5-descriptors.json").write_text(json.dumps(d, separators=(",", ":")))
    compact, _ = build(spec_dir, RESOURCES)
    (out / "ds5-compact-resources.json").write_text(json.dumps(compact, separators=(",", ":")))
    print(
        f"{len(r['paths'])} resource paths ({len(compact['paths'])} compact), "
        f"{len(d['paths'])} descriptor paths -> {out}"
    )


if __name__ == "__main__":
    main()
