"""Ed-Fi extension XSDs (TPDM): elements into ``_ext.tpdm``, entities into ``tpdm/*``, exactly.

The extension XSDs under ``tests/data/xsd-tpdm`` are ours, written after the
Ed-Fi Extensions Framework's conventions: ``TPDM-EXTENSION-*.xsd`` files in the
core's namespace, ``EXTENSION-`` types extending core ones, extended
interchanges restating the core's.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from blocks import LakeStorage
from edfi.errors import SendError
from edfi.model import ApiModel, builtin_documents, builtin_model, load_model, publishable
from edfi.xml.build import check_extension
from edfi.xml.build import main as build_main
from edfi.xml.mapping import MappingError, derive_mapping, mapping_for
from edfi.xml.reader import XmlLoad, list_files
from edfi.xml.writer import build
from edfi.xml.xsd import SchemaError, builtin_schema, extend_schema, read_extension_files
from sandbox.server import running_sandbox
from tests.conftest import connection_block

DATA = Path(__file__).parent / "data"
XSD = DATA / "xsd-tpdm"
XML = DATA / "xml-tpdm"

SCHOOL_EXT = {
    "tpdm": {"postSecondaryInstitutionReference": {"postSecondaryInstitutionId": 6000203}}
}
CREDENTIAL_EXT = {
    "tpdm": {
        "boardCertificationIndicator": True,
        "certificationTitle": "Secondary Mathematics",
        "certificationRouteDescriptor": "uri://tpdm.ed-fi.org/CertificationRouteDescriptor#Alternative",
        "credentialStatusDescriptor": "uri://tpdm.ed-fi.org/CredentialStatusDescriptor#Active",
        "credentialStatusDate": "2024-06-15",
        "educatorRoleDescriptor": "uri://tpdm.ed-fi.org/EducatorRoleDescriptor#Teacher",
        "personReference": {
            "personId": "P-1001",
            "sourceSystemDescriptor": "uri://ed-fi.org/SourceSystemDescriptor#State",
        },
    }
}
FINANCIAL_AID = {
    "studentReference": {"studentUniqueId": "S-77001"},
    "aidTypeDescriptor": "uri://tpdm.ed-fi.org/AidTypeDescriptor#Pell Grant",
    "beginDate": "2025-08-20",
    "aidAmount": 3250.5,
    "pellGrantRecipient": True,
}


@pytest.fixture(scope="module")
def model() -> ApiModel:
    return builtin_model()


def tpdm(folder: Path = XSD) -> Any:
    return extend_schema(builtin_schema(), read_extension_files([str(folder)]))


def test_extension_elements_map_into_ext_and_entities_into_their_resources(
    model: ApiModel,
) -> None:
    schema = tpdm()
    assert schema.projects["EXTENSION-SchoolExtension"] == "TPDM"
    mapping = mapping_for(schema, model)  # checked: no problem
    school = mapping.elements["InterchangeEducationOrganization", "School"]
    assert school.resource == "/ed-fi/schools"
    ext = school.body.fields["PostSecondaryInstitutionReference"]
    assert (ext.action, ext.json) == ("ext", "tpdm")
    assert ext.sub is not None
    inner = ext.sub.fields["PostSecondaryInstitutionReference"]
    assert (inner.action, inner.json) == ("reference", "postSecondaryInstitutionReference")
    credential = mapping.elements["InterchangeStaffAssociation", "Credential"].body.fields
    records = credential["StudentAcademicRecordReference"]
    assert records.sub is not None
    collection = records.sub.fields["StudentAcademicRecordReference"]
    assert (collection.action, collection.json) == ("collection", "studentAcademicRecords")
    aid = mapping.elements["InterchangeCandidate", "FinancialAid"]
    assert aid.resource == "/tpdm/financialAids"
    assert (
        mapping.elements["InterchangeDescriptors", "AidTypeDescriptor"].resource
        == "/tpdm/aidTypeDescriptors"
    )
    # every property of the extensions the test XSD declares is given an element
    assert mapping.coverage["/tpdm/financialAids"] == (4, 4)
    assert not [u for u in mapping.uncovered if "_ext" in u]
    # the core's own notes are untouched; the extension's descriptors add the one every
    # descriptor has (DS 5.2's PriorDescriptor, which the DS 5.0 API lacks)
    core = derive_mapping(builtin_schema(), model).unmapped
    assert [u for u in mapping.unmapped if u not in core] == [
        f"{d}Descriptor/PriorDescriptor: no property 'priorDescriptor' in "
        f"tpdm_{d[0].lower()}{d[1:]}Descriptor"
        for d in ("AidType", "CertificationRoute", "CredentialStatus", "EducatorRole")
    ]
    assert set(core) <= set(mapping.unmapped)


def test_extension_files_convert_to_exact_records_and_back(model: ApiModel) -> None:
    schema = tpdm()
    load = XmlLoad(list_files(str(XML)), model, schema=schema)
    assert load.check().problems == []
    records = [r for r in load.records()]
    assert [r.problem for r in records if r.problem] == []
    bodies = {(r.resource, r.origin.line): r.body for r in records}
    by = {res: [b for (p, _), b in bodies.items() if p == res] for res, _ in bodies}
    assert [b.get("_ext") for b in by["/ed-fi/schools"]] == [SCHOOL_EXT, None]
    assert by["/ed-fi/credentials"][0]["_ext"] == CREDENTIAL_EXT
    assert by["/tpdm/financialAids"] == [FINANCIAL_AID]
    assert len(records) == 11
    # the writer runs the mapping backwards, ``_ext`` included, in the schema's order
    em = load.mapping.elements["InterchangeStaffAssociation", "Credential"]
    el = build("Credential", em.body, by["/ed-fi/credentials"][0], schema.namespace)
    tags = [c.tag.rpartition("}")[2] for c in el]
    assert tags[-7:] == [
        "BoardCertificationIndicator",
        "CertificationTitle",
        "CertificationRoute",
        "CredentialStatus",
        "CredentialStatusDate",
        "EducatorRole",
        "PersonReference",
    ]


def test_an_extension_element_the_api_lacks_is_a_build_error_naming_element_and_property(
    model: ApiModel, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "xsd"
    shutil.copytree(XSD, folder)
    core = folder / "TPDM-EXTENSION-Ed-Fi-Extended-Core.xsd"
    text = core.read_text()
    text = text.replace(
        'type="PostSecondaryInstitutionReferenceType" minOccurs="0"/>',
        'type="PostSecondaryInstitutionReferenceType" minOccurs="0"/>\n'
        '          <xs:element name="FavoriteColor" type="xs:string" minOccurs="0"/>',
    )
    text = text.replace(
        "</xs:schema>",
        '  <xs:complexType name="EXTENSION-Bus">\n    <xs:complexContent>\n'
        '      <xs:extension base="ComplexObjectType"/>\n    </xs:complexContent>\n'
        "  </xs:complexType>\n</xs:schema>",
    )
    core.write_text(text)
    candidate = folder / "TPDM-EXTENSION-Interchange-Candidate-Extension.xsd"
    candidate.write_text(
        candidate.read_text().replace(
            '<xs:element name="FinancialAid" type="EXTENSION-FinancialAid"/>',
            '<xs:element name="FinancialAid" type="EXTENSION-FinancialAid"/>\n'
            '        <xs:element name="Bus" type="EXTENSION-Bus"/>',
        )
    )
    with pytest.raises(MappingError) as err:
        mapping_for(tpdm(folder), model)
    assert err.value.problems == [
        "InterchangeCandidate/Bus: the API has no resource 'tpdm_bus' for this element of "
        "the TPDM extension",
        "School/FavoriteColor: no property 'favoriteColor' in tpdm_schoolExtension",
    ]
    # the build-time check lists the same, and fails
    assert check_extension([str(folder)]) == err.value.problems
    with pytest.raises(SystemExit) as exit_:
        build_main(["--check-extension", str(folder)])
    assert exit_.value.code == 1
    assert capsys.readouterr().out.splitlines() == err.value.problems
    # an extension the API does not have at all: each of its elements is listed
    sample = tmp_path / "sample"
    sample.mkdir()
    for f in XSD.glob("*.xsd"):
        (sample / f.name.replace("TPDM-", "Sample-")).write_bytes(f.read_bytes())
    with pytest.raises(MappingError) as err:
        mapping_for(tpdm(sample), model)
    assert (
        "School/PostSecondaryInstitutionReference: edFi_school has no _ext.sample in the API, "
        "so this element of the Sample extension has no property"
    ) in err.value.problems
    assert (
        "InterchangeCandidate/FinancialAid: the API has no resource 'sample_financialAid' for "
        "this element of the Sample extension"
    ) in err.value.problems


def test_extension_files_must_name_their_project_and_share_the_namespace(tmp_path: Path) -> None:
    shutil.copy(XSD / "TPDM-EXTENSION-Ed-Fi-Extended-Core.xsd", tmp_path / "EXTENSION-X.xsd")
    with pytest.raises(SchemaError, match=r"rename it <Project>-EXTENSION-X.xsd"):
        read_extension_files([str(tmp_path)])
    other = tmp_path / "o"
    other.mkdir()
    text = (XSD / "TPDM-EXTENSION-Ed-Fi-Extended-Core.xsd").read_text()
    (other / "TPDM-EXTENSION-Ed-Fi-Extended-Core.xsd").write_text(
        text.replace("http://ed-fi.org/5.2.0", "http://ed-fi.org/4.0.0")
    )
    with pytest.raises(SchemaError, match=r"is not the core schema's 'http://ed-fi\.org/5\.2\.0'"):
        tpdm(other)


def test_extension_files_load_over_http_and_get_returns_the_ext(
    tmp_path: Path, prefect_harness: None
) -> None:
    """The flow with ``extension_xsd`` loads the TPDM files into a fresh ODS; a GET returns
    exactly the ``_ext.tpdm`` each element gave (and none where it gave none)."""
    from flows.bulk_load import bulk_load

    with running_sandbox(students=0) as sb:
        summary = asyncio.run(
            bulk_load(
                connection_block(sb),
                LakeStorage(url=str(tmp_path / "lake")),  # type: ignore[arg-type]
                data=str(XML),
                extension_xsd=[str(XSD)],
            )
        )
        assert (summary["status"], summary["sent"], summary["failed"]) == ("completed", 11, 0)
        token = httpx.post(
            f"{sb.base_url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(sb.client_id, sb.client_secret),
        ).json()["access_token"]

        def get(path: str, **params: Any) -> list[dict[str, Any]]:
            resp = httpx.get(
                f"{sb.base_url}/data/v3/{path}",
                params=params,
                headers={"Authorization": f"Bearer {token}"},
            )
            resp.raise_for_status()
            return [publishable(r) for r in resp.json()]  # without ids, links, etags

        assert [s.get("_ext") for s in get("ed-fi/schools", schoolId=255901107)] == [SCHOOL_EXT]
        assert [s.get("_ext") for s in get("ed-fi/schools", schoolId=255901108)] == [None]
        assert [c["_ext"] for c in get("ed-fi/credentials")] == [CREDENTIAL_EXT]
        aid = get("tpdm/financialAids")
        assert aid == [FINANCIAL_AID]
        # without the extension's XSDs, the four files using it do not validate: skipped whole
        with pytest.raises(SendError, match=r": 4 failed \(4 files skipped, 0 invalid"):
            asyncio.run(
                bulk_load(
                    connection_block(sb),
                    LakeStorage(url=str(tmp_path / "lake2")),  # type: ignore[arg-type]
                    data=str(XML),
                )
            )


def test_a_common_type_an_extension_extends_maps_into_the_items_ext(tmp_path: Path) -> None:
    """The framework's override of a common type: a restriction drops ``School/Address``, the
    entity extension re-adds it typed ``EXTENSION-AddressExtension``; the address stays the
    school's ``addresses`` item, its new elements land in the item's ``_ext.sample``."""
    core = builtin_schema()
    ns = core.namespace

    def el(c: Any) -> str:
        hi = "unbounded" if c.max is None else str(c.max)
        return f'<xs:element name="{c.name}" type="{c.type}" minOccurs="{c.min}" maxOccurs="{hi}"/>'

    kept = "".join(el(c) for c in core.children("School") if c.name != "Address")
    (tmp_path / "Sample-EXTENSION-Ed-Fi-Extended-Core.xsd").write_text(
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{ns}" '
        f'targetNamespace="{ns}" elementFormDefault="qualified">'
        '<xs:complexType name="EXTENSION-SchoolRestriction"><xs:complexContent>'
        f'<xs:restriction base="School"><xs:sequence>{kept}</xs:sequence></xs:restriction>'
        "</xs:complexContent></xs:complexType>"
        '<xs:complexType name="EXTENSION-SchoolExtension"><xs:complexContent>'
        '<xs:extension base="EXTENSION-SchoolRestriction"><xs:sequence>'
        '<xs:element name="Address" type="EXTENSION-AddressExtension" minOccurs="0" '
        'maxOccurs="unbounded"/></xs:sequence></xs:extension></xs:complexContent></xs:complexType>'
        '<xs:complexType name="EXTENSION-AddressExtension"><xs:complexContent>'
        '<xs:extension base="Address"><xs:sequence>'
        '<xs:element name="OnBusRoute" type="xs:boolean" minOccurs="0"/>'
        "</xs:sequence></xs:extension></xs:complexContent></xs:complexType></xs:schema>"
    )
    kids = "".join(
        f'<xs:element name="{c.name}" type="'
        + ("EXTENSION-SchoolExtension" if c.name == "School" else c.type)
        + '"/>'
        for c in core.interchanges["InterchangeEducationOrganization"]
    )
    (tmp_path / "Sample-EXTENSION-Interchange-EducationOrganization-Extension.xsd").write_text(
        f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns="{ns}" '
        f'targetNamespace="{ns}" elementFormDefault="qualified">'
        '<xs:element name="InterchangeEducationOrganization"><xs:complexType>'
        f'<xs:choice maxOccurs="unbounded">{kids}</xs:choice></xs:complexType></xs:element>'
        "</xs:schema>"
    )
    schema = tpdm(tmp_path)
    docs = copy.deepcopy(builtin_documents())
    schemas = docs[0]["components"]["schemas"]
    item = schemas["edFi_educationOrganizationAddress"]["properties"]
    item["_ext"] = {"$ref": "#/components/schemas/educationOrganizationAddressExtensions"}
    schemas["educationOrganizationAddressExtensions"] = {
        "type": "object",
        "properties": {
            "sample": {"$ref": "#/components/schemas/sample_educationOrganizationAddressExtension"}
        },
    }
    schemas["sample_educationOrganizationAddressExtension"] = {
        "type": "object",
        "properties": {"onBusRoute": {"type": "boolean"}},
    }
    mapping = mapping_for(schema, load_model(*docs))
    school = mapping.elements["InterchangeEducationOrganization", "School"].body
    address = school.fields["Address"]
    assert (address.action, address.json) == ("collection", "addresses")
    assert address.sub is not None
    bus = address.sub.fields["OnBusRoute"]
    assert (bus.action, bus.json) == ("ext", "sample")
    assert list(school.fields)[-1] == "Address"  # re-added last, as the schema orders it
    xml = (
        f'<InterchangeEducationOrganization xmlns="{ns}"><School>'
        "<NameOfInstitution>Annex</NameOfInstitution>"
        "<EducationOrganizationCategory>uri://ed-fi.org/EducationOrganizationCategoryDescriptor"
        "#School</EducationOrganizationCategory><SchoolId>9</SchoolId>"
        "<GradeLevel>uri://ed-fi.org/GradeLevelDescriptor#Ninth grade</GradeLevel>"
        "<Address><StreetNumberName>1 Main St</StreetNumberName><City>Bend</City>"
        "<StateAbbreviation>uri://ed-fi.org/StateAbbreviationDescriptor#TX</StateAbbreviation>"
        "<PostalCode>78704</PostalCode>"
        "<AddressType>uri://ed-fi.org/AddressTypeDescriptor#Physical</AddressType>"
        "<OnBusRoute>true</OnBusRoute></Address>"
        "</School></InterchangeEducationOrganization>"
    )
    (tmp_path / "EdOrg.xml").write_text(xml)
    load = XmlLoad([str(tmp_path / "EdOrg.xml")], load_model(*docs), schema=schema)
    assert load.check().problems == []
    (record,) = list(load.records())
    assert record.body is not None
    assert record.body["addresses"] == [
        {
            "streetNumberName": "1 Main St",
            "city": "Bend",
            "stateAbbreviationDescriptor": "uri://ed-fi.org/StateAbbreviationDescriptor#TX",
            "postalCode": "78704",
            "addressTypeDescriptor": "uri://ed-fi.org/AddressTypeDescriptor#Physical",
            "_ext": {"sample": {"onBusRoute": True}},
        }
    ]


def test_an_extension_entity_takes_a_role_less_reference_by_its_type_as_the_core_does(
    model: ApiModel, tmp_path: Path
) -> None:
    """The core's one looser rule holds for an extension's entities too, and only it: a
    reference element no property is named after is the object's one unclaimed reference of
    its type (``AwardeeReference`` typed ``StudentReferenceType`` -> ``studentReference``)."""
    folder = tmp_path / "xsd"
    shutil.copytree(XSD, folder)
    core = folder / "TPDM-EXTENSION-Ed-Fi-Extended-Core.xsd"
    core.write_text(
        core.read_text().replace(
            '<xs:element name="StudentReference" type="StudentReferenceType"/>',
            '<xs:element name="AwardeeReference" type="StudentReferenceType"/>',
        )
    )
    mapping = mapping_for(tpdm(folder), model)
    fm = mapping.elements["InterchangeCandidate", "FinancialAid"].body.fields["AwardeeReference"]
    assert (fm.action, fm.json) == ("reference", "studentReference")
