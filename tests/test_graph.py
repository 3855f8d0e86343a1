"""The one dependency graph: from the model, a server's GraphML and its JSON levels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edfi.errors import GraphError, ModelError
from edfi.graph import DependencyGraph, parse_graphml
from edfi.model import builtin_model


def test_levels_order_closures_and_reverse() -> None:
    g = DependencyGraph({"a": [], "b": ["a"], "c": ["b"], "d": ["a"], "e": ["c", "d", "zz"]})
    assert g.levels == {"a": 1, "b": 2, "d": 2, "c": 3, "e": 4}
    assert g.order == ["a", "b", "d", "c", "e"]
    assert g.dependencies["e"] == {"c", "d"}  # the unknown "zz" is dropped
    assert g.ancestors("e") == {"a", "b", "c", "d"}
    assert g.descendants("b") == {"c", "e"}
    assert g.ancestors("a") == set() and g.descendants("e") == set()
    assert g.sort(["e", "a", "c"]) == ["a", "c", "e"]
    assert g.reverse.order == ["e", "c", "d", "b", "a"]
    # leaving b out keeps c waiting for a
    sub = g.restricted(["a", "c", "e"])
    assert sub.dependencies == {"a": frozenset(), "c": {"a"}, "e": {"a", "c"}}
    assert g.as_levels()[-1] == {"resource": "e", "order": 4, "operations": ["Create", "Update"]}


def test_a_cycle_names_its_members() -> None:
    with pytest.raises(GraphError, match=r"cycle through b, c; they cannot be put in an order"):
        DependencyGraph({"a": [], "b": ["a", "c"], "c": ["b"], "d": ["c"]})
    assert issubclass(GraphError, ModelError)  # the model's callers keep catching ModelError
    with pytest.raises(GraphError, match="not XML"):
        parse_graphml("<graphml")


def test_the_model_and_its_graphml_give_the_same_graph() -> None:
    model = builtin_model()
    from_model = DependencyGraph.from_model(model)
    edges = "".join(
        f'<edge source="{d}" target="{p}"/>' for p, ds in model.dependencies.items() for d in ds
    )
    nodes = "".join(f'<node id="{p}"/>' for p in model.resources)
    graphml = f'<graphml xmlns="http://graphml.graphdrawing.org/xmlns"><graph>{nodes}{edges}'
    from_graphml = DependencyGraph.from_graphml(graphml + "</graph></graphml>", model)
    assert from_graphml.dependencies == from_model.dependencies
    assert from_graphml.order == from_model.order == model.load_order()
    assert from_model.levels == model.levels
    # from the JSON levels: same order, each level waiting for the one below
    from_levels = DependencyGraph.from_levels(model.graph.as_levels())
    assert from_levels.order == from_model.order
    ssa = "/ed-fi/studentSchoolAssociations"
    assert from_levels.ancestors(ssa) >= from_model.ancestors(ssa)


def test_descriptor_edges_put_descriptors_first() -> None:
    model = builtin_model()
    g = DependencyGraph.from_model(model, descriptors=True)
    ssa = "/ed-fi/studentSchoolAssociations"
    assert "/ed-fi/gradeLevelDescriptors" in g.dependencies[ssa]
    assert "/ed-fi/gradeLevelDescriptors" not in model.dependencies[ssa]
    assert g.levels[ssa] > g.levels["/ed-fi/gradeLevelDescriptors"]


def test_a_real_servers_json_levels_keep_its_create_order(spec_dir: Path) -> None:
    raw = json.loads((spec_dir / "dependencies" / "deps_5.2.0.json").read_text("utf-8-sig"))
    g = DependencyGraph.from_levels(raw)
    create = {e["resource"]: e["order"] for e in raw if "Create" in e["operations"]}
    assert len(g) == len(create) == 348
    # students are listed twice (Create at 3, Update at 14): the Create level wins
    assert create["/ed-fi/students"] == 3
    assert g.levels["/ed-fi/students"] < g.levels["/ed-fi/studentSchoolAssociations"]
    ranks = sorted(set(create.values()))
    assert all(g.levels[p] == ranks.index(create[p]) + 1 for p in create)
    with pytest.raises(GraphError, match="no resource and order"):
        DependencyGraph.from_levels([{"resource": "/ed-fi/x"}])
