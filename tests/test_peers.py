"""The real Ed-Fi clients work against the sandbox unchanged.

``edfi-api-client`` and ``lightbeam`` are what districts run today; if they
cannot read from or write to the sandbox, the sandbox is not an ODS/API. They
pin dependencies of their own, so they live in a separate virtualenv
(``.venv-peers``) and run in subprocesses; the drivers are in ``tests/peers/``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edfi.model import builtin_model
from sandbox.server import RunningSandbox, running_sandbox
from sandbox.store import Window

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / ".venv-peers"
PEERS_PYTHON = PEERS_VENV / "bin" / "python"
LIGHTBEAM = PEERS_VENV / "bin" / "lightbeam"
DRIVERS = Path(__file__).resolve().parent / "peers"
PACKAGES = ("edfi-api-client", "lightbeam")


def _peers_ready() -> bool:
    if not PEERS_PYTHON.exists() or not LIGHTBEAM.exists():
        return False
    probe = subprocess.run(
        [str(PEERS_PYTHON), "-c", "import edfi_api_client, lightbeam"], capture_output=True
    )
    return probe.returncode == 0


@pytest.fixture(scope="session")
def peers() -> Path:
    """The peers' virtualenv: made once, reused while both clients import."""
    if _peers_ready():
        return PEERS_PYTHON
    steps = [
        [sys.executable, "-m", "venv", str(PEERS_VENV)],
        [str(PEERS_PYTHON), "-m", "pip", "install", "--quiet", *PACKAGES],
    ]
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            pytest.skip(f"installing {', '.join(PACKAGES)} took over 10 minutes")
        if done.returncode != 0:
            pytest.skip(
                f"cannot install the peer clients ({' '.join(step[-2:])}): "
                f"{done.stderr.strip()[-400:]}"
            )
    if not _peers_ready():
        pytest.skip(f"{PEERS_VENV} was built but edfi_api_client or lightbeam does not import")
    return PEERS_PYTHON


def authorized(running: RunningSandbox) -> httpx.Client:
    r = httpx.post(
        f"{running.base_url}/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(running.client_id, running.client_secret),
    )
    r.raise_for_status()
    return httpx.Client(
        base_url=f"{running.base_url}/data/v3",
        headers={"Authorization": f"Bearer {r.json()['access_token']}"},
    )


def post(client: httpx.Client, path: str, body: dict[str, Any]) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 201, r.text


def fill(running: RunningSandbox, students: int) -> None:
    """Descriptors, a school, ``students`` students enrolled there."""
    with authorized(running) as c:
        post(
            c,
            "/ed-fi/gradeLevelDescriptors",
            {
                "namespace": "uri://ed-fi.org/GradeLevelDescriptor",
                "codeValue": "Ninth grade",
                "shortDescription": "Ninth grade",
            },
        )
        post(
            c,
            "/ed-fi/educationOrganizationCategoryDescriptors",
            {
                "namespace": "uri://ed-fi.org/EducationOrganizationCategoryDescriptor",
                "codeValue": "School",
                "shortDescription": "School",
            },
        )
        post(
            c,
            "/ed-fi/schools",
            {
                "schoolId": 255901001,
                "nameOfInstitution": "Grand Bend High School",
                "educationOrganizationCategories": [
                    {
                        "educationOrganizationCategoryDescriptor": "uri://ed-fi.org/EducationOrganizationCategoryDescriptor#School"
                    }
                ],
                "gradeLevels": [
                    {"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade"}
                ],
            },
        )
        for i in range(students):
            uid = f"P{i:04}"
            post(
                c,
                "/ed-fi/students",
                {
                    "studentUniqueId": uid,
                    "birthDate": "2010-01-01",
                    "firstName": "Pat",
                    "lastSurname": f"Number{i}",
                },
            )
            post(
                c,
                "/ed-fi/studentSchoolAssociations",
                {
                    "entryDate": "2024-08-20",
                    "schoolReference": {"schoolId": 255901001},
                    "studentReference": {"studentUniqueId": uid},
                    "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Ninth grade",
                },
            )


def read_with_edfi_api_client(
    peers: Path, running: RunningSandbox, mode: str, page_size: int, resources: list[str]
) -> dict[str, Any]:
    done = subprocess.run(
        [
            str(peers),
            str(DRIVERS / "edfi_api_client_read.py"),
            running.base_url,
            running.client_id,
            running.client_secret,
            mode,
            str(page_size),
            *resources,
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, Any] = json.loads(done.stdout)
    return out


def served_ids(running: RunningSandbox, path: str) -> list[str]:
    store = running.store()
    return sorted(r["id"] for r in store.iter_records(builtin_model()[path]))


@pytest.fixture(scope="module")
def filled() -> Iterator[RunningSandbox]:
    with running_sandbox(students=0, template=False) as sb:
        fill(sb, 130)
        yield sb


# -- edfi-api-client ---------------------------------------------------------------------


def test_edfi_api_client_reads_discovery_and_pages(peers: Path, filled: RunningSandbox) -> None:
    wanted = [
        "/ed-fi/students",
        "/ed-fi/studentSchoolAssociations",
        "/ed-fi/schools",
        "/ed-fi/gradeLevelDescriptors",
        "/ed-fi/sessions",
    ]
    out = read_with_edfi_api_client(peers, filled, "pages", 50, wanted)
    assert out["api_mode"] is None  # the sandbox's discovery has no apiMode
    assert out["ods_version"] == "7.3"
    assert out["data_model_version"] == "5.0.0"
    assert out["newest_change_version"] == filled.store().newest_change_version == 3 + 2 * 130
    expected = {
        "/ed-fi/students": 130,
        "/ed-fi/studentSchoolAssociations": 130,
        "/ed-fi/schools": 1,
        "/ed-fi/gradeLevelDescriptors": 1,
        "/ed-fi/sessions": 0,
    }
    for path, n in expected.items():
        got = out["resources"][path]
        assert (got["total_count"], got["rows"]) == (n, n), path
        assert got["ids"] == served_ids(filled, path), path


def test_edfi_api_client_get_rows_cursor_paging(peers: Path, filled: RunningSandbox) -> None:
    out = read_with_edfi_api_client(peers, filled, "rows", 50, ["/ed-fi/students"])
    got = out["resources"]["/ed-fi/students"]
    assert (got["total_count"], got["rows"]) == (130, 130)


def test_edfi_api_client_lists_resources_from_openapi(peers: Path, filled: RunningSandbox) -> None:
    out = read_with_edfi_api_client(peers, filled, "pages", 500, [])
    assert set(out["resources"]) == set(builtin_model().resources)


def test_edfi_api_client_reads_deletes(peers: Path) -> None:
    with running_sandbox(students=0, template=False) as sb:
        fill(sb, 3)
        with authorized(sb) as c:
            ssas = c.get("/ed-fi/studentSchoolAssociations").json()
            for record in ssas[:2]:
                assert (
                    c.delete(f"/ed-fi/studentSchoolAssociations/{record['id']}").status_code == 204
                )
        out = read_with_edfi_api_client(
            peers, sb, "deletes", 1, ["/ed-fi/studentSchoolAssociations"]
        )
        got = out["resources"]["/ed-fi/studentSchoolAssociations"]
        assert (got["total_count"], got["rows"]) == (2, 2)
        assert got["ids"] == sorted(r["id"] for r in ssas[:2])


@pytest.mark.skipif(
    not (ROOT / "sandbox" / "district").exists(),
    reason="the synthetic district generator (sandbox/district/) is not there",
)
def test_edfi_api_client_reads_the_whole_district(peers: Path, district: RunningSandbox) -> None:
    model = builtin_model()
    store = district.store()
    out = read_with_edfi_api_client(peers, district, "pages", 500, sorted(model.resources))
    wrong = {}
    for res in model:
        expected = store.count(res, Window())
        got = out["resources"][res.path]
        if (got["total_count"], got["rows"], len(got["ids"])) != (expected,) * 3:
            wrong[res.path] = (expected, got["total_count"], got["rows"])
    assert wrong == {}
    assert sum(store.count(r, Window()) for r in model) > 10_000


# -- lightbeam ---------------------------------------------------------------------------


LIGHTBEAM_DATA: dict[str, list[dict[str, Any]]] = {
    "gradeLevelDescriptors": [
        {
            "namespace": "uri://ed-fi.org/GradeLevelDescriptor",
            "codeValue": "Tenth grade",
            "shortDescription": "Tenth grade",
        }
    ],
    "educationOrganizationCategoryDescriptors": [
        {
            "namespace": "uri://ed-fi.org/EducationOrganizationCategoryDescriptor",
            "codeValue": "School",
            "shortDescription": "School",
        }
    ],
    "schools": [
        {
            "schoolId": 255901107,
            "nameOfInstitution": "Bend Elementary",
            "educationOrganizationCategories": [
                {
                    "educationOrganizationCategoryDescriptor": "uri://ed-fi.org/EducationOrganizationCategoryDescriptor#School"
                }
            ],
            "gradeLevels": [
                {"gradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Tenth grade"}
            ],
        }
    ],
    "students": [
        {
            "studentUniqueId": "L1",
            "birthDate": "2010-01-02",
            "firstName": "Lia",
            "lastSurname": "Moss",
        },
        {
            "studentUniqueId": "L2",
            "birthDate": "2010-03-04",
            "firstName": "Ravi",
            "lastSurname": "Kent",
            "middleName": "J",
        },
    ],
    "studentSchoolAssociations": [
        {
            "entryDate": "2024-08-21",
            "schoolReference": {"schoolId": 255901107},
            "studentReference": {"studentUniqueId": sid},
            "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Tenth grade",
        }
        for sid in ("L1", "L2")
    ],
}


def write_jsonl(folder: Path, data: dict[str, list[dict[str, Any]]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, records in data.items():
        lines = "".join(json.dumps(r) + "\n" for r in records)
        (folder / f"{name}.jsonl").write_text(lines)


def lightbeam_config(path: Path, running: RunningSandbox, data_dir: Path) -> Path:
    """A lightbeam.yaml as its README documents it."""
    path.write_text(
        f"state_dir: {path.parent / 'state'}\n"
        f"data_dir: {data_dir}/\n"
        "namespace: ed-fi\n"
        "edfi_api:\n"
        f"  base_url: {running.base_url}\n"
        "  mode: sandbox\n"
        f"  client_id: {running.client_id}\n"
        f"  client_secret: {running.client_secret}\n"
        "connection:\n"
        "  pool_size: 4\n"
        "  num_retries: 1\n"
        "  verify_ssl: true\n"
        "log_level: INFO\n"
    )
    return path


def lightbeam(peers: Path, *args: str) -> subprocess.CompletedProcess[str]:
    del peers  # the fixture guarantees the CLI is installed
    return subprocess.run([str(LIGHTBEAM), *args], capture_output=True, text=True, timeout=300)


def test_lightbeam_validates_sends_and_fetches(peers: Path, tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in", LIGHTBEAM_DATA)
    with running_sandbox(students=0, template=False) as sb:
        send_cfg = lightbeam_config(tmp_path / "send.yaml", sb, tmp_path / "in")
        validated = lightbeam(peers, "validate", "-c", str(send_cfg))
        assert validated.returncode == 0, validated.stderr
        assert validated.stderr.count("all lines validate ok!") == len(LIGHTBEAM_DATA)

        results = tmp_path / "send-results.json"
        sent = lightbeam(peers, "send", "-c", str(send_cfg), "--results-file", str(results))
        assert sent.returncode == 0, sent.stderr
        report = json.loads(results.read_text())
        assert {
            name: (info["records_processed"], info["records_failed"])
            for name, info in report["resources"].items()
        } == {name: (len(records), 0) for name, records in LIGHTBEAM_DATA.items()}
        assert report["total_records_processed"] == 7
        assert report["total_records_failed"] == 0
        assert "(final status counts: {201: 2})" in sent.stderr

        # the records landed, field for field
        with authorized(sb) as c:
            for name, records in LIGHTBEAM_DATA.items():
                served = c.get(f"/ed-fi/{name}", params={"totalCount": "true"})
                assert served.headers["Total-Count"] == str(len(records)), name
                # lightbeam sends in parallel: match by natural key, not by position
                resource = sb.sandbox.model.find(name)
                by_key = {str(resource.key_values(r)): r for r in served.json()}
                for want in records:
                    got = by_key[str(resource.key_values(want))]
                    assert {
                        k: v for k, v in got.items() if k in want and k[-9:] != "Reference"
                    } == {k: v for k, v in want.items() if k[-9:] != "Reference"}
                    for ref in (k for k in want if k.endswith("Reference")):
                        assert {k: got[ref][k] for k in want[ref]} == want[ref]
                        assert got[ref]["link"]["href"].startswith("/ed-fi/")

        fetch_cfg = lightbeam_config(tmp_path / "fetch.yaml", sb, tmp_path / "out")
        (tmp_path / "out").mkdir()
        fetched = lightbeam(
            peers, "fetch", "-c", str(fetch_cfg), "-s", "students,schools,studentSchoolAssociations"
        )
        assert fetched.returncode == 0, fetched.stderr
        with authorized(sb) as c:
            for name in ("students", "schools", "studentSchoolAssociations"):
                lines = (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()
                assert sorted(map(json.loads, lines), key=lambda r: r["id"]) == sorted(
                    c.get(f"/ed-fi/{name}").json(), key=lambda r: r["id"]
                )

        # sending again is an update of the same natural keys, not new records
        resent = lightbeam(peers, "send", "-c", str(send_cfg), "-s", "students", "--force")
        assert resent.returncode == 0, resent.stderr
        assert "(final status counts: {200: 2})" in resent.stderr


def test_lightbeam_reports_what_the_sandbox_refuses(peers: Path, tmp_path: Path) -> None:
    bad: dict[str, list[dict[str, Any]]] = {
        "students": [
            {
                "studentUniqueId": "B1",
                "birthDate": "2010-01-02",
                "firstName": "Bo",
                "lastSurname": "Nil",
            }
        ],
        "studentSchoolAssociations": [
            {
                "entryDate": "2024-08-21",
                "schoolReference": {"schoolId": 1},
                "studentReference": {"studentUniqueId": "B1"},
                "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Tenth grade",
            }
        ],
    }
    write_jsonl(tmp_path / "in", bad)
    with running_sandbox(students=0, template=False) as sb:
        with authorized(sb) as c:
            post(c, "/ed-fi/gradeLevelDescriptors", LIGHTBEAM_DATA["gradeLevelDescriptors"][0])
        cfg = lightbeam_config(tmp_path / "send.yaml", sb, tmp_path / "in")
        sent = lightbeam(peers, "send", "-c", str(cfg))
        assert "(final status counts: {201: 1})" in sent.stderr
        assert "(final status counts: {409: 1})" in sent.stderr
        assert "The referenced `School` item does not exist." in sent.stderr

        (tmp_path / "in" / "students.jsonl").write_text(
            json.dumps({"studentUniqueId": "B2", "firstName": "Bo", "lastSurname": "Nil"}) + "\n"
        )
        (tmp_path / "in" / "studentSchoolAssociations.jsonl").write_text(
            json.dumps(
                {
                    **bad["studentSchoolAssociations"][0],
                    "entryGradeLevelDescriptor": "uri://ed-fi.org/GradeLevelDescriptor#Nope",
                }
            )
            + "\n"
        )
        validated = lightbeam(peers, "validate", "-c", str(cfg))
        assert "'birthDate' is a required property" in validated.stderr
        assert "uri://ed-fi.org/GradeLevelDescriptor#Nope is not a valid descriptor value" in (
            validated.stderr
        )
