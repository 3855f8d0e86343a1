"""The OpenAPI model: the built-in DS 5 documents, agreement with the official documents, loaders.

The model is the project's single source of truth about resources, so these
tests pin it against the official Ed-Fi specifications (natural keys,
references, dependency order) rather than against the project's own output.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edfi.model import ApiModel, ModelError, builtin_model, load_model, load_model_files

BUILTIN_RESOURCES = {
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
}


@pytest.fixture(scope="module")
def model() -> ApiModel:
    return builtin_model()


@pytest.fixture(scope="module")
def official(spec_dir: Path) -> ApiModel:
    """The official DS 5.0 resources and descriptors documents as one model."""
    return load_model_files(
        str(spec_dir / "openapi" / "resources-ds-5.0.json"),
        str(spec_dir / "openapi" / "descriptors-ds-5.0.json"),
    )


@pytest.fixture(scope="module")
def create_order(spec_dir: Path) -> dict[str, int]:
    """The real ODS/API 5.2 dependency order, for the Create operation."""
    raw = json.loads((spec_dir / "dependencies" / "deps_5.2.0.json").read_text("utf-8-sig"))
    return {e["resource"]: e["order"] for e in raw if "Create" in e["operations"]}


# -- the built-in model ----------------------------------------------------------------


def test_builtin_covers_the_district_resources(model: ApiModel) -> None:
    ed_fi = {r.name for r in model if r.namespace == "ed-fi" and not r.is_descriptor}
    assert ed_fi >= BUILTIN_RESOURCES
    assert "/lmsx/assignments" in model
    assert "/lmsx/assignmentSubmissions" in model
    assert not model["/lmsx/assignments"].is_descriptor


def test_every_referenced_descriptor_is_served(model: ApiModel) -> None:
    referenced = {d for r in model for _, d in r.shape.descriptor_paths()}
    assert referenced, "the model should know descriptor-valued properties"
    missing = sorted(d for d in referenced if d not in model)
    assert missing == []
    assert all(model[d].is_descriptor for d in referenced)


def test_descriptor_paths_resolve_role_names(model: ApiModel) -> None:
    ssa = dict(model["/ed-fi/studentSchoolAssociations"].shape.descriptor_paths())
    assert ssa[("entryGradeLevelDescriptor",)] == "/ed-fi/gradeLevelDescriptors"
    grades = dict(model["/ed-fi/grades"].shape.descriptor_paths())
    assert grades[("gradingPeriodReference", "gradingPeriodDescriptor")] == (
        "/ed-fi/gradingPeriodDescriptors"
    )


def test_descriptor_key_is_namespace_and_code_value(model: ApiModel) -> None:
    res = model["/ed-fi/gradeLevelDescriptors"]
    assert res.key_names == ("namespace", "codeValue")
    assert res.key_values(
        {"namespace": "uri://ed-fi.org/GradeLevelDescriptor", "codeValue": "Ninth grade"}
    ) == {
        "namespace": "uri://ed-fi.org/GradeLevelDescriptor",
        "codeValue": "Ninth grade",
    }


def test_key_values_and_set_key_values(model: ApiModel) -> None:
    ssa = model["/ed-fi/studentSchoolAssociations"]
    record: dict[str, Any] = {
        "entryDate": "2024-08-20",
        "schoolReference": {"schoolId": 255901001},
        "studentReference": {"studentUniqueId": "604822"},
        "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade",
    }
    assert ssa.key_values(record) == {
        "entryDate": "2024-08-20",
        "schoolId": 255901001,
        "studentUniqueId": "604822",
    }
    moved = ssa.set_key_values(record, {"schoolId": 255901107, "entryDate": "2024-09-01"})
    assert moved["schoolReference"] == {"schoolId": 255901107}
    assert moved["entryDate"] == "2024-09-01"
    assert record["schoolReference"] == {"schoolId": 255901001}, "the original is untouched"


def test_find_accepts_path_namespaced_and_bare_names(model: ApiModel) -> None:
    assert model.find("/ed-fi/students").path == "/ed-fi/students"
    assert model.find("ed-fi/students").path == "/ed-fi/students"
    assert model.find("Students").path == "/ed-fi/students"
    assert model.find("assignments").path == "/lmsx/assignments"
    with pytest.raises(KeyError, match="not a resource"):
        model.find("widgets")


def test_key_changes_flags(model: ApiModel) -> None:
    assert model["/ed-fi/sessions"].key_changes
    assert model["/ed-fi/studentSchoolAssociations"].key_changes
    assert not model["/ed-fi/students"].key_changes
    assert not model["/ed-fi/schools"].key_changes


# -- agreement with the official DS 5.0 document ------------------------------------------


def test_builtin_keys_match_official(model: ApiModel, official: ApiModel) -> None:
    checked = 0
    for res in model:
        if res.namespace != "ed-fi":
            continue
        assert res.path in official, f"{res.path} is not an official DS 5.0 resource"
        assert res.key == official[res.path].key, res.path
        checked += 1
    assert checked >= len(BUILTIN_RESOURCES)


def test_builtin_references_are_a_subset_of_official(model: ApiModel, official: ApiModel) -> None:
    for res in model:
        if res.namespace != "ed-fi":
            continue
        theirs = official[res.path].shape.references
        for name, ref in res.shape.references.items():
            assert name in theirs, f"{res.path}.{name} is not an official reference"
            ours_targets = set(model.targets(ref))
            assert ours_targets, f"{res.path}.{name} points at nothing"
            assert ours_targets <= set(official.targets(theirs[name])), f"{res.path}.{name}"
        lost = [n for n, r in theirs.items() if r.required and n not in res.shape.references]
        assert lost == [], f"{res.path} lacks required references {lost}"


def test_builtin_edges_follow_official_dependency_order(
    model: ApiModel, create_order: dict[str, int]
) -> None:
    edges = [(a, b) for a, deps in model.dependencies.items() for b in deps]
    checked = [(a, b) for a, b in edges if a in create_order and b in create_order]
    assert len(checked) > 100
    wrong = [(a, b) for a, b in checked if create_order[a] <= create_order[b]]
    assert wrong == []


def test_official_edges_follow_official_dependency_order(
    official: ApiModel, create_order: dict[str, int]
) -> None:
    edges = [(a, b) for a, deps in official.dependencies.items() for b in deps]
    checked = [(a, b) for a, b in edges if a in create_order and b in create_order]
    assert len(checked) > 500
    wrong = [(a, b) for a, b in checked if create_order[a] <= create_order[b]]
    assert wrong == []


def test_builtin_levels_agree_with_its_own_edges(model: ApiModel) -> None:
    for a, deps in model.dependencies.items():
        for b in deps:
            assert model.levels[a] > model.levels[b], (a, b)
    order = model.load_order()
    position = {p: i for i, p in enumerate(order)}
    assert all(position[a] > position[b] for a, deps in model.dependencies.items() for b in deps)


# -- loaders ---------------------------------------------------------------------------------


def test_loads_official_ds4(spec_dir: Path) -> None:
    ds4 = load_model_files(str(spec_dir / "openapi" / "resources-ds-4.0.json"))
    assert ds4["/ed-fi/parents"].key_names == ("parentUniqueId",)
    assert ds4["/ed-fi/parents"].key[0].source == ("parentUniqueId",)
    spa = ds4["/ed-fi/studentParentAssociations"]
    assert spa.key_names == ("parentUniqueId", "studentUniqueId")
    assert [k.source for k in spa.key] == [
        ("parentReference", "parentUniqueId"),
        ("studentReference", "studentUniqueId"),
    ]
    assert ds4.dependencies["/ed-fi/studentParentAssociations"] == {
        "/ed-fi/parents",
        "/ed-fi/students",
    }
    assert "/ed-fi/contacts" not in ds4


def test_load_model_files_tolerates_bom(tmp_path: Path) -> None:
    path = tmp_path / "swagger.json"
    path.write_text(json.dumps(swagger2_document()), encoding="utf-8-sig")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    assert set(load_model_files(str(path)).resources) == {
        "/ed-fi/gradeLevelDescriptors",
        "/ed-fi/schools",
        "/ed-fi/studentSchoolAssociations",
        "/ed-fi/students",
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/definitions/{name}"}


def _collection(schema: str, identity: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "get": {
            "parameters": [
                {"name": "offset", "in": "query", "type": "integer"},
                *(
                    {"name": n, "in": "query", "type": t, "x-Ed-Fi-isIdentity": True}
                    for n, t in identity
                ),
            ]
        },
        "post": {
            "parameters": [{"name": "body", "in": "body", "required": True, "schema": _ref(schema)}]
        },
    }


def swagger2_document() -> dict[str, Any]:
    """A tiny Swagger 2 Ed-Fi document: the shape ODS/API 3.x and 5.x published."""
    link = {"type": "object", "properties": {"rel": {"type": "string"}, "href": {"type": "string"}}}
    return {
        "swagger": "2.0",
        "info": {"title": "Ed-Fi ODS API", "version": "3"},
        "basePath": "/data/v3",
        "paths": {
            "/ed-fi/schools": _collection("edFi_school", [("schoolId", "integer")]),
            "/ed-fi/schools/{id}": {"get": {}, "put": {}, "delete": {}},
            "/ed-fi/students": _collection("edFi_student", []),
            "/ed-fi/studentSchoolAssociations": _collection("edFi_studentSchoolAssociation", []),
            "/ed-fi/studentSchoolAssociations/keyChanges": {"get": {}},
            "/ed-fi/studentSchoolAssociations/deletes": {"get": {}},
            "/ed-fi/gradeLevelDescriptors": _collection("edFi_gradeLevelDescriptor", []),
        },
        "definitions": {
            "link": link,
            "edFi_school": {
                "required": ["schoolId", "nameOfInstitution", "gradeLevels"],
                "properties": {
                    "id": {"type": "string"},
                    "schoolId": {"type": "integer", "format": "int32"},
                    "nameOfInstitution": {"type": "string", "maxLength": 75},
                    "gradeLevels": {"type": "array", "items": _ref("edFi_schoolGradeLevel")},
                    "_etag": {"type": "string"},
                },
            },
            "edFi_schoolGradeLevel": {
                "required": ["gradeLevelDescriptor"],
                "properties": {"gradeLevelDescriptor": {"type": "string", "maxLength": 306}},
            },
            "edFi_schoolReference": {
                "required": ["schoolId"],
                "properties": {"schoolId": {"type": "integer"}, "link": _ref("link")},
            },
            "edFi_student": {
                "required": ["studentUniqueId", "birthDate"],
                "properties": {
                    "studentUniqueId": {
                        "type": "string",
                        "maxLength": 32,
                        "x-Ed-Fi-isIdentity": True,
                    },
                    "birthDate": {"type": "string", "format": "date"},
                },
            },
            "edFi_studentReference": {
                "required": ["studentUniqueId"],
                "properties": {"studentUniqueId": {"type": "string"}, "link": _ref("link")},
            },
            "edFi_studentSchoolAssociation": {
                "required": ["entryDate", "schoolReference", "studentReference"],
                "properties": {
                    "entryDate": {"type": "string", "format": "date"},
                    "schoolReference": _ref("edFi_schoolReference"),
                    "studentReference": _ref("edFi_studentReference"),
                    "entryGradeLevelDescriptor": {"type": "string", "maxLength": 306},
                },
            },
            "edFi_studentSchoolAssociationReference": {
                "required": ["entryDate", "schoolId", "studentUniqueId"],
                "properties": {
                    "entryDate": {"type": "string", "format": "date"},
                    "schoolId": {"type": "integer"},
                    "studentUniqueId": {"type": "string"},
                },
            },
            "edFi_gradeLevelDescriptor": {
                "required": ["codeValue", "namespace", "shortDescription"],
                "properties": {
                    "codeValue": {"type": "string", "maxLength": 50},
                    "namespace": {"type": "string", "maxLength": 255},
                    "shortDescription": {"type": "string", "maxLength": 75},
                },
            },
        },
    }


def test_loads_swagger2() -> None:
    m = load_model(swagger2_document())
    assert set(m.resources) == {
        "/ed-fi/gradeLevelDescriptors",
        "/ed-fi/schools",
        "/ed-fi/studentSchoolAssociations",
        "/ed-fi/students",
    }
    school = m["/ed-fi/schools"]
    assert school.key_names == ("schoolId",)
    assert school.key[0].kind == "integer"
    assert school.shape.scalars["nameOfInstitution"].max_length == 75
    assert school.shape.required_collections == {"gradeLevels"}
    grade_level = school.shape.collections["gradeLevels"].scalars["gradeLevelDescriptor"]
    assert grade_level.descriptor == "/ed-fi/gradeLevelDescriptors"
    # the key from the identity flag (students) and from the Reference schema (SSA)
    assert m["/ed-fi/students"].key_names == ("studentUniqueId",)
    ssa = m["/ed-fi/studentSchoolAssociations"]
    assert [(k.name, k.kind, k.source) for k in ssa.key] == [
        ("entryDate", "date", ("entryDate",)),
        ("schoolId", "integer", ("schoolReference", "schoolId")),
        ("studentUniqueId", "string", ("studentReference", "studentUniqueId")),
    ]
    assert ssa.key_changes
    assert not school.key_changes
    assert ssa.shape.scalars["entryGradeLevelDescriptor"].descriptor == (
        "/ed-fi/gradeLevelDescriptors"
    )
    assert m.dependencies[ssa.path] == {"/ed-fi/schools", "/ed-fi/students"}
    assert m.load_order() == [
        "/ed-fi/gradeLevelDescriptors",
        "/ed-fi/schools",
        "/ed-fi/students",
        "/ed-fi/studentSchoolAssociations",
    ]
    assert m.graph.as_levels()[-1] == {
        "resource": "/ed-fi/studentSchoolAssociations",
        "order": 2,
        "operations": ["Create", "Update"],
    }


def test_model_errors_for_non_openapi_documents(spec_dir: Path) -> None:
    with pytest.raises(ModelError, match="no OpenAPI document given"):
        load_model()
    with pytest.raises(ModelError, match="not an OpenAPI document: it has no 'paths'"):
        load_model({"name": "not openapi"})
    with pytest.raises(ModelError, match="not an OpenAPI document"):
        load_model(["a", "list"])  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="defines no schemas"):
        load_model({"openapi": "3.0.1", "paths": {}})
    with pytest.raises(ModelError, match="define no resource collections"):
        load_model_files(str(spec_dir / "openapi" / "discovery-api-1.0.json"))


def test_model_errors_for_broken_ed_fi_documents() -> None:
    doc = swagger2_document()
    del doc["definitions"]["edFi_schoolGradeLevel"]
    with pytest.raises(ModelError, match="'edFi_schoolGradeLevel' is referenced but not defined"):
        load_model(doc)
    doc = swagger2_document()
    doc["definitions"]["edFi_studentSchoolAssociationReference"]["properties"]["sessionName"] = {
        "type": "string"
    }
    with pytest.raises(ModelError, match=r"natural key fields \['sessionName'\] not found"):
        load_model(doc)


def test_non_json_file_is_a_model_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "resources.yaml"
    path.write_text("openapi: 3.0.1\npaths: {}\n")
    with pytest.raises(ModelError, match=r"resources\.yaml"):
        load_model_files(str(path))


# -- graph -----------------------------------------------------------------------------------


def test_abstract_education_organization_reference(model: ApiModel) -> None:
    every = (
        "/ed-fi/communityOrganizations",
        "/ed-fi/communityProviders",
        "/ed-fi/educationOrganizationNetworks",
        "/ed-fi/educationServiceCenters",
        "/ed-fi/localEducationAgencies",
        "/ed-fi/organizationDepartments",
        "/ed-fi/postSecondaryInstitutions",
        "/ed-fi/schools",
        "/ed-fi/stateEducationAgencies",
    )
    assert model.abstract["edFi_educationOrganizationReference"] == every
    seoa = model["/ed-fi/studentEducationOrganizationAssociations"]
    ref = seoa.shape.references["educationOrganizationReference"]
    assert set(model.targets(ref)) == set(every)
    compact = builtin_model(compact=True)
    assert compact.abstract["edFi_educationOrganizationReference"] == (
        "/ed-fi/educationServiceCenters",
        "/ed-fi/localEducationAgencies",
        "/ed-fi/schools",
        "/ed-fi/stateEducationAgencies",
    )
    assert "edFi_educationOrganizationReference" in model["/ed-fi/schools"].parents
    assert seoa.key_names == ("educationOrganizationId", "studentUniqueId")


def test_levels_put_descriptors_and_school_years_first(model: ApiModel) -> None:
    firsts = {p for p, level in model.levels.items() if level == 1}
    assert {r.path for r in model if r.is_descriptor} <= firsts
    assert "/ed-fi/schoolYearTypes" in firsts
    assert firsts - {r.path for r in model if r.is_descriptor} == {
        "/ed-fi/balanceSheetDimensions",
        "/ed-fi/communityOrganizations",
        "/ed-fi/credentials",
        "/ed-fi/descriptorMappings",
        "/ed-fi/educationOrganizationNetworks",
        "/ed-fi/functionDimensions",
        "/ed-fi/fundDimensions",
        "/ed-fi/objectDimensions",
        "/ed-fi/operationalUnitDimensions",
        "/ed-fi/people",
        "/ed-fi/postSecondaryInstitutions",
        "/ed-fi/programDimensions",
        "/ed-fi/projectDimensions",
        "/ed-fi/schoolYearTypes",
        "/ed-fi/sourceDimensions",
    }
    # students, staffs and contacts may name the person they are (ed-fi/people)
    assert {model.levels[p] for p in ("/ed-fi/students", "/ed-fi/staffs", "/ed-fi/contacts")} == {2}
    order = model.load_order()
    assert order.index("/ed-fi/schools") < order.index("/ed-fi/sessions")
    assert order.index("/ed-fi/sessions") < order.index("/ed-fi/sections")
    assert order.index("/ed-fi/sections") < order.index("/ed-fi/studentSectionAssociations")
    assert order.index("/ed-fi/studentSectionAssociations") < order.index("/ed-fi/grades")
    assert model.load_order(["/ed-fi/grades", "/ed-fi/schools", "/ed-fi/students"]) == [
        "/ed-fi/students",
        "/ed-fi/schools",
        "/ed-fi/grades",
    ]


def test_closures(model: ApiModel) -> None:
    below_sections = model.descendants("/ed-fi/sections")
    assert {
        "/ed-fi/studentSectionAssociations",
        "/ed-fi/studentSectionAttendanceEvents",
        "/ed-fi/grades",
        "/ed-fi/staffSectionAssociations",
        "/ed-fi/gradebookEntries",
        "/ed-fi/studentGradebookEntries",
        "/lmsx/assignments",
        "/lmsx/assignmentSubmissions",
    } <= below_sections
    assert "/ed-fi/schools" not in below_sections
    assert "/ed-fi/students" not in below_sections
    above = model.ancestors("/ed-fi/studentSchoolAttendanceEvents")
    assert {
        "/ed-fi/sessions",
        "/ed-fi/schools",
        "/ed-fi/students",
        "/ed-fi/schoolYearTypes",
    } <= above
    assert "/ed-fi/sections" not in above
    assert model.ancestors("/ed-fi/students") == {"/ed-fi/people"}
    assert model.descendants("/ed-fi/studentSectionAttendanceEvents") == set()
    assert model.dependents["/ed-fi/students"] >= {
        "/ed-fi/studentSchoolAssociations",
        "/ed-fi/studentSectionAssociations",
    }
