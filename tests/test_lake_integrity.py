"""Lake integrity over real HTTP and real processes: names from a server, a moved lake.

Each test reproduces a way a server or the user's storage once broke the lake
(issue 9), with the real sandbox and the real extract flow.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_extract
from lakecheck import differences

from edfi import amt
from edfi.lake import Lake, LakeError
from edfi.model import builtin_documents
from sandbox.changes import apply_changes
from sandbox.server import RunningSandbox, running_sandbox

pytestmark = pytest.mark.usefixtures("prefect_harness")

EVIL = "/ed-fi/../../../../escaped-by-name/schools"


@pytest.fixture
def evil_sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A sandbox whose OpenAPI document names a resource with a path that climbs out."""
    resources, descriptors = builtin_documents()
    # its own schema, so the district's school references still mean /ed-fi/schools
    ops = json.dumps(resources["paths"]["/ed-fi/schools"])
    resources["paths"][EVIL] = json.loads(ops.replace('edFi_school"', 'edFi_escapedSchool"'))
    schemas = resources["components"]["schemas"]
    schemas["edFi_escapedSchool"] = schemas["edFi_school"]
    files = []
    for i, doc in enumerate((resources, descriptors)):
        f = tmp_path / f"doc-{i}.json"
        f.write_text(json.dumps(doc))
        files.append(str(f))
    with running_sandbox(students=20, seed=3, openapi=files) as sb:
        yield sb


def test_a_resource_name_that_climbs_out_of_the_lake_is_refused_before_any_write(
    evil_sandbox: RunningSandbox, tmp_path: Path
) -> None:
    root = tmp_path / "a" / "b" / "c" / "d" / "lake"
    root.mkdir(parents=True)
    bystander = tmp_path / "a" / "escaped-by-name" / "schools" / "keep.txt"
    bystander.parent.mkdir(parents=True)
    bystander.write_text("not the lake's")
    before = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    with pytest.raises(LakeError) as err:
        run_extract(evil_sandbox, str(root))
    message = str(err.value)
    assert EVIL in message and "not an Ed-Fi name" in message
    after = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    # nothing written anywhere, inside the lake or out of it (the writability probe, made
    # before the API is asked, leaves only the empty runs folder)
    assert sorted(set(after) - set(before)) == ["a/b/c/d/lake/runs"]
    assert not list((root / "runs").iterdir())
    assert bystander.read_text() == "not the lake's"
    # leaving the resource out is the way past it
    summary = run_extract(evil_sandbox, str(root), exclude=["*escaped-by-name*"])
    assert summary["status"] == "completed"
    assert bystander.read_text() == "not the lake's"
    assert not (tmp_path / "a" / "escaped-by-name" / "schools" / "school_year=0").exists()
    assert not any("escaped" in str(p) for p in root.rglob("*"))


def test_every_lake_path_stays_under_the_root(tmp_path: Path) -> None:
    lake = Lake(str(tmp_path / "lake"))
    assert lake.path("state", "ed-fi/schools", "school_year=0.json") == (
        f"{tmp_path}/lake/state/ed-fi/schools/school_year=0.json"
    )
    for bad in ("../x", "a/../../x", "a//b", "./x", "a\\..\\b", "/etc/passwd", ""):
        with pytest.raises(LakeError):
            lake.path("state", bad)
    with pytest.raises(LakeError):
        lake.within(str(tmp_path / "elsewhere"), "x")


# -- a moved lake ------------------------------------------------------------------------


def _absolute_manifests(lake_dir: Path) -> int:
    """Rewrite the state manifests as they were written before names became relative."""
    n = 0
    for f in (lake_dir / "state").rglob("*.json"):
        state = json.loads(f.read_text())
        state["files"] = [f"{lake_dir}/{name}" for name in state["files"]]
        f.write_text(json.dumps(state))
        n += 1
    return n


@pytest.mark.parametrize("legacy", [False, True], ids=["relative", "legacy-absolute"])
def test_a_moved_lake_reads_only_its_new_place(
    small_district: RunningSandbox, tmp_path: Path, legacy: bool
) -> None:
    old = tmp_path / "old" / "lake"
    assert run_extract(small_district, str(old))["status"] == "completed"
    lake = Lake(str(old))
    schools = small_district.sandbox.model.find("schools")
    state = lake.state(schools, 0)
    assert state and state["files"]
    assert all(name.startswith("current/ed-fi/schools/school_year=0/v") for name in state["files"])
    amt.build_gold(lake, views=["StudentSchoolDim"])
    gold_files = amt.gold_manifest(lake)["views"]["StudentSchoolDim"]["files"]
    assert gold_files and all(f.startswith("gold/v") for f in gold_files)
    want = view_rows(lake, "StudentSchoolDim")
    if legacy:
        assert _absolute_manifests(old) > 100

    new = tmp_path / "new" / "lake"
    new.parent.mkdir()
    shutil.move(old, new)
    assert not old.exists()  # nothing can be read from the old place
    moved = Lake(str(new))
    assert view_rows(moved, "StudentSchoolDim") == want  # the gold manifest resolves here
    amt.build_gold(moved, views=["StudentSchoolDim"])
    assert view_rows(moved, "StudentSchoolDim") == want
    # an incremental run merges the moved tables with the changes
    store = small_district.sandbox.store()
    apply_changes(store, updates=2, inserts=1, deletes=2, key_changes=1, seed=4)
    summary = run_extract(small_district, str(new))
    assert summary["status"] == "completed"
    assert {r["status"] for r in summary["resources"]} <= {"pulled", "unchanged"}
    assert differences(moved, store, 0) == {}
    assert not old.exists()
    for f in (new / "state").rglob("*.json"):  # every manifest written now is relative
        names = json.loads(f.read_text())["files"]
        assert legacy or all(not n.startswith("/") for n in names), f


def view_rows(lake: Lake, view: str) -> list[dict[str, Any]]:
    return sorted(amt.read_view(lake, view).to_pylist(), key=lambda r: json.dumps(r, default=str))
