"""The ``bulk`` method's element state: digests with refs, what a rerun keeps, lines back."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from edfi.sendstate import SendState
from edfi.xml import elements
from edfi.xml.elements import ElementPlan, scan, state_path

NS = "http://ed-fi.org/5.2.0"
SCHEMA = "http://www.w3.org/2001/XMLSchema-instance"


def _file(path: Path, a: str = "1", b: str = "2", c: str = "3") -> str:
    path.write_text(
        f'<?xml version="1.0"?>\n<InterchangeX xmlns="{NS}" xmlns:xsi="{SCHEMA}"\n'
        '    xsi:schemaLocation="x.xsd">\n'
        f'  <A id="a1">\n    <V>{a}</V>\n  </A>\n'
        f'  <B>\n    <ARef ref="a1"/>\n    <V>{b}</V>\n  </B>\n'
        f"  <C><V>{c}</V></C>\n"
        "</InterchangeX>\n"
    )
    return str(path)


def _plan(path: str) -> ElementPlan:
    return ElementPlan([scan(path, "InterchangeX")])


def test_an_element_is_a_new_digest_when_what_it_refers_to_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # one entry per read: looking a ref's target up between reads must not lose the place
    monkeypatch.setattr(elements, "BLOCK", 1)
    base = _plan(_file(tmp_path / "x.xml"))
    changed_a = _plan(_file(tmp_path / "y.xml", a="9"))
    index = base.files[0]
    assert [index.line(i) for i in range(len(index))] == [4, 7, 11]
    assert [index.at_line(n) for n in (1, 4, 6, 7, 99)] == [None, 0, 0, 1, 2]
    assert list(index.has_refs) == [0, 1, 0]
    # ids and refs are looked up in the plan's database, not held per element
    assert base.target("a1") == (0, 0) and base.target("b1") is None
    assert (base.refs(0, 0), base.refs(0, 1)) == ((), ("a1",))
    old, new = list(base.digests(0)), list(changed_a.digests(0))
    assert old == [base.digest(0, i) for i in range(3)] and len(set(old)) == 3
    assert old[0] != new[0]  # A itself changed
    assert old[1] != new[1]  # B's text did not, but the A it names did
    assert old[2] == new[2]


def test_a_rerun_keeps_only_what_is_new_and_what_it_refers_to(tmp_path: Path) -> None:
    state = SendState(str(tmp_path / "lake"), "t")
    first = _plan(_file(tmp_path / "x.xml"))
    elements = state.load(state_path("InterchangeX"))
    assert first.accept(0, "Completed", [], elements) == 3
    assert elements.pending == 0  # written to a segment as recorded, not held to the end
    elements.compact()

    again = _plan(_file(tmp_path / "x.xml"))
    loaded = {"InterchangeX": state.load(state_path("InterchangeX"))}
    assert again.skip_accepted(loaded) == 3 and again.kept(0) == 0

    only_c = _plan(_file(tmp_path / "x.xml", c="7"))
    assert only_c.skip_accepted(loaded) == 2 and list(only_c.keep[0]) == [0, 0, 1]

    # B changed: A is accepted, but B's ref must resolve in the load, so A goes again
    only_b = _plan(_file(tmp_path / "x.xml", b="7"))
    assert only_b.skip_accepted(loaded) == 1 and list(only_b.keep[0]) == [1, 1, 0]


def test_a_filtered_copy_is_the_root_and_the_kept_elements_with_lines_back(
    tmp_path: Path,
) -> None:
    state = SendState(str(tmp_path / "lake"), "t")
    elements = state.load(state_path("InterchangeX"))
    _plan(_file(tmp_path / "x.xml")).accept(0, "Completed", [], elements)
    plan = _plan(_file(tmp_path / "x.xml", b="7"))
    plan.skip_accepted({"InterchangeX": state.load(state_path("InterchangeX"))})  # a rerun
    lines = plan.write_filtered(0, str(tmp_path / "copy.xml"))
    copy = etree.parse(str(tmp_path / "copy.xml")).getroot()
    assert copy.tag == f"{{{NS}}}InterchangeX"
    assert copy.get(f"{{{SCHEMA}}}schemaLocation") == "x.xsd"
    assert [etree.QName(e).localname for e in copy] == ["A", "B"]
    b = copy[1]
    assert b.findtext(f"{{{NS}}}V") == "7"
    # the server names B by its line in the copy: the original line comes back
    assert lines.original(b.sourceline) == 7
    assert lines.original(copy[0].sourceline) == 4


def test_what_the_server_refused_is_not_recorded(tmp_path: Path) -> None:
    state = SendState(str(tmp_path / "lake"), "t")
    path = _file(tmp_path / "x.xml")
    elements = state.load(state_path("InterchangeX"))
    refused = [{"element": "B", "lineNumber": 7, "resource": "/ed-fi/bs", "code": 409}]
    # an Error file: all but the element its exception names
    assert _plan(path).accept(0, "Error", refused, elements) == 2
    plan = _plan(path)
    plan.skip_accepted({"InterchangeX": state.load(state_path("InterchangeX"))})  # a rerun
    assert list(plan.keep[0]) == [1, 1, 0]  # B again, and the A it refers to
    # a file-level exception (XSD-invalid: nothing loaded) records nothing
    invalid = [{"element": None, "lineNumber": 5, "resource": None, "code": 400}]
    fresh = state.load(state_path("InterchangeY"))
    assert _plan(path).accept(0, "Error", invalid, fresh) == 0
    assert _plan(path).accept(0, "Expired", [], fresh) == 0
