"""Reading a lightbeam folder and a lightbeam.yaml: layout, origins, bad lines, settings."""

from __future__ import annotations

import gzip
import uuid
from pathlib import Path

import fsspec
import pytest

from edfi.jsonfiles import InputError, Origin, discover
from edfi.lightbeam_config import LightbeamConfigError, load_lightbeam_config
from edfi.model import builtin_model

MODEL = builtin_model()


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_layout_case_insensitive_folders_namespaces_and_ignored(tmp_path: Path) -> None:
    write(tmp_path / "Students.jsonl", '{"studentUniqueId": "1"}\n')
    write(tmp_path / "STUDENTSCHOOLASSOCIATIONS.ndjson", '{"a": 1}\n')
    write(tmp_path / "gradeLevelDescriptors" / "part-1.jsonl", '{"codeValue": "A"}\n')
    write(tmp_path / "gradeLevelDescriptors" / "part-0.json", '{"codeValue": "B"}\n')
    write(tmp_path / "gradeLevelDescriptors" / "notes.txt", "not data\n")
    write(tmp_path / "lmsx" / "assignments.jsonl", '{"assignmentIdentifier": "x"}\n')
    write(tmp_path / "schools.jsonl.gz", "")
    with gzip.open(tmp_path / "schools.jsonl.gz", "wt") as fh:
        fh.write('{"schoolId": 1}\n')
    write(tmp_path / "notAResource.jsonl", "{}\n")
    write(tmp_path / "README.md", "hello\n")

    found = discover(str(tmp_path), MODEL)

    assert found.resources() == [
        "/ed-fi/gradeLevelDescriptors",
        "/ed-fi/schools",
        "/ed-fi/studentSchoolAssociations",
        "/ed-fi/students",
        "/lmsx/assignments",
    ]
    assert [p.rsplit("/", 1)[-1] for p in found.files["/ed-fi/gradeLevelDescriptors"]] == [
        "part-0.json",
        "part-1.jsonl",
    ]
    assert [p.rsplit("/", 1)[-1] for p in found.ignored] == ["notAResource.jsonl"]
    schools = list(found.items("/ed-fi/schools"))
    assert [(i.record, i.origin.line) for i in schools] == [({"schoolId": 1}, 1)]
    assert [i.record for i in found.items("/lmsx/assignments")] == [{"assignmentIdentifier": "x"}]


def test_lines_keep_origin_and_bad_lines_are_reported_not_raised(tmp_path: Path) -> None:
    write(
        tmp_path / "students.jsonl",
        '{"studentUniqueId": "1"}\n'
        "\n"
        '{"studentUniqueId": "2", oops}\n'
        "[1, 2]\n"
        '{"studentUniqueId": "3"}\r\n',
    )
    found = discover(str(tmp_path), MODEL)
    items = list(found.items("/ed-fi/students"))
    file = str(tmp_path / "students.jsonl")
    assert [i.origin for i in items] == [
        Origin(file, 1),
        Origin(file, 3),
        Origin(file, 4),
        Origin(file, 5),
    ]
    assert [i.record for i in items] == [
        {"studentUniqueId": "1"},
        None,
        None,
        {"studentUniqueId": "3"},
    ]
    assert items[1].error is not None and items[1].error.startswith("invalid JSON")
    assert items[2].error == "a record must be a JSON object, not list"
    assert items[1].raw == b'{"studentUniqueId": "2", oops}'
    assert str(items[3].origin) == f"{file}:5"


def test_any_fsspec_storage() -> None:
    root = f"memory://send-input-{uuid.uuid4().hex}"
    fs = fsspec.filesystem("memory")
    with fs.open(f"{root}/ed-fi/Students/a.jsonl", "wb") as fh:
        fh.write(b'{"studentUniqueId": "9"}\n')
    found = discover(root, MODEL)
    items = list(found.items("/ed-fi/students"))
    assert [i.record for i in items] == [{"studentUniqueId": "9"}]
    assert items[0].origin.file.startswith("memory://") and items[0].origin.line == 1


def test_clear_errors_for_missing_or_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        discover(str(tmp_path / "nope"), MODEL)
    write(tmp_path / "other.csv", "a,b\n")
    with pytest.raises(InputError, match=r"students\.jsonl"):
        discover(str(tmp_path), MODEL)


def test_namespace_override_places_a_bare_name(tmp_path: Path) -> None:
    write(tmp_path / "assignments.jsonl", "{}\n")
    assert discover(str(tmp_path), MODEL).resources() == ["/lmsx/assignments"]
    found = discover(str(tmp_path), MODEL, namespace_overrides={"lmsx": ["assignments"]})
    assert found.resources() == ["/lmsx/assignments"]


LIGHTBEAM_YAML = """\
state_dir: ./state
data_dir: ./output/
namespace: ed-fi
edfi_api:
  base_url: ${EDFI_URL}/api
  version: 3
  mode: year_specific
  year: 2025
  client_id: ${EDFI_KEY}
  client_secret: $EDFI_SECRET
connection:
  pool_size: 4
  timeout: 30
  num_retries: 3
  backoff_factor: 2
  retry_statuses: [429, 500]
  verify_ssl: False
validate:
  methods: "*"
  references:
    remote: False
    max_failures: 50
log_level: DEBUG
"""


def test_lightbeam_yaml_runs_unchanged(tmp_path: Path) -> None:
    cfg_file = tmp_path / "lightbeam.yaml"
    write(cfg_file, LIGHTBEAM_YAML)
    cfg = load_lightbeam_config(
        cfg_file,
        environ={"EDFI_URL": "https://ods.example.org", "EDFI_KEY": "k", "EDFI_SECRET": "s3cret"},
    )
    assert cfg.base_url == "https://ods.example.org/api"
    assert cfg.client_id == "k"
    assert cfg.client_secret.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(cfg)
    assert cfg.data_dir == str((tmp_path / "output").resolve())
    assert cfg.state_dir == str((tmp_path / "state").resolve())
    assert cfg.school_year == 2025
    assert cfg.retry_statuses == (429, 500)
    assert cfg.validate_methods == ("schema", "descriptors", "uniqueness", "references")
    assert cfg.references_remote is False
    assert cfg.max_failures == 50
    conn = cfg.connection()
    assert (conn.max_concurrency, conn.timeout_seconds, conn.max_retries, conn.verify_tls) == (
        4,
        30.0,
        3,
        False,
    )


def test_lightbeam_yaml_defaults_and_params(tmp_path: Path) -> None:
    cfg_file = tmp_path / "lb.yml"
    write(
        cfg_file,
        "edfi_api:\n  base_url: http://localhost:8000/api\n  mode: shared_instance\n"
        "  client_id: ${ID}\n  client_secret: ${SECRET}\n",
    )
    cfg = load_lightbeam_config(cfg_file, params={"ID": "a", "SECRET": "b"}, environ={})
    assert cfg.data_dir == str(tmp_path.resolve())
    assert cfg.state_dir is None
    assert cfg.school_year is None
    assert cfg.pool_size is None
    assert cfg.validate_methods == ("schema", "descriptors", "uniqueness")
    assert cfg.connection().max_concurrency == 8  # the connection's own default


def test_lightbeam_yaml_errors_name_the_setting(tmp_path: Path) -> None:
    cfg_file = tmp_path / "lightbeam.yaml"
    write(
        cfg_file,
        "edfi_api:\n  base_url: http://x/api\n  client_id: ${MISSING}\n  client_secret: s\n",
    )
    with pytest.raises(LightbeamConfigError, match=r"edfi_api\.client_id .* not set"):
        load_lightbeam_config(cfg_file, environ={})
    write(cfg_file, "edfi_api: [1]\n")
    with pytest.raises(LightbeamConfigError, match="`edfi_api` must be a mapping"):
        load_lightbeam_config(cfg_file, environ={})
    write(cfg_file, "edfi_api:\n  base_url: ftp://x\n  client_id: a\n  client_secret: b\n")
    with pytest.raises(LightbeamConfigError, match="base_url"):
        load_lightbeam_config(cfg_file, environ={}).connection()
    with pytest.raises(LightbeamConfigError, match="Cannot read"):
        load_lightbeam_config(tmp_path / "missing.yaml")


def test_selector_and_exclude_globs_in_load_order() -> None:
    from edfi.errors import SendError
    from edfi.filesend import select

    available = [
        "/ed-fi/studentSchoolAssociations",
        "/ed-fi/students",
        "/ed-fi/schools",
        "/ed-fi/gradeLevelDescriptors",
        "/lmsx/assignments",
    ]
    assert select(MODEL, available) == MODEL.load_order(available)
    assert select(MODEL, available, "*Associations,Students") == [
        "/ed-fi/students",
        "/ed-fi/studentSchoolAssociations",
    ]
    assert select(MODEL, available, "ed-fi/*", exclude="*Descriptors") == MODEL.load_order(
        ["/ed-fi/schools", "/ed-fi/students", "/ed-fi/studentSchoolAssociations"]
    )
    assert select(MODEL, available, ["lmsx/*"]) == ["/lmsx/assignments"]
    with pytest.raises(SendError, match="the input holds: assignments, gradeLevelDescriptors"):
        select(MODEL, available, "staffs")
