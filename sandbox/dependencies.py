"""The resource load order as a real ODS/API serves it (``/metadata/data/v3/dependencies``).

Clients send resources in the order of this document (lightbeam sorts the
``Create`` entries by ``order`` and sends one resource after another), so an
order that puts a resource beside the descriptors it names makes such a client
send records whose descriptors do not exist yet. The ODS/API builds the order
from a graph of its resources, and this module builds the same graph from the
served model:

1. an edge from every resource a resource references (the references in its
   body);
2. an edge from every descriptor a resource names: descriptors come first, at
   order 1, and everything that names one comes after them;
3. the ODS's person-authorization edges: a record that names a student can
   only be authorized once the student is enrolled (a
   ``StudentSchoolAssociation``), a contact once it is tied to a student, a
   staff member once employed or assigned. So every resource that references
   a student also waits for ``studentSchoolAssociations``, one that
   references a contact for ``studentContactAssociations``, one that
   references a staff member for the staff's two education-organization
   associations;
4. the person itself splits in two: ``Create`` early (it needs only the
   person and descriptors) and ``Update`` after its associations, because
   updating the person is authorized through them.

``order`` is then 1 for a node that needs nothing, else one more than the
highest order it needs: the ODS/API's numbering. Checked against the
ODS/API's own output for Data Standard 5.2 (``tests/test_sandbox_api.py``),
where every resource both models have gets the same order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from edfi.graph import DependencyGraph
from edfi.model import ApiModel

__all__ = ["PERSON_AUTHORIZATION", "OdsDependencies"]

# person resource -> the associations through which a record naming the person is authorized
PERSON_AUTHORIZATION: Mapping[str, tuple[str, ...]] = {
    "/ed-fi/students": ("/ed-fi/studentSchoolAssociations",),
    "/ed-fi/contacts": ("/ed-fi/studentContactAssociations",),
    "/ed-fi/staffs": (
        "/ed-fi/staffEducationOrganizationAssignmentAssociations",
        "/ed-fi/staffEducationOrganizationEmploymentAssociations",
    ),
}

CREATE, UPDATE = "#Create", "#Update"


@dataclass(frozen=True)
class OdsDependencies:
    """The ODS/API's dependency graph over a model, as JSON levels and as GraphML."""

    model: ApiModel

    @cached_property
    def split(self) -> dict[str, tuple[str, ...]]:
        """The persons of ``PERSON_AUTHORIZATION`` the model has, with the associations it has."""
        out: dict[str, tuple[str, ...]] = {}
        for person, associations in PERSON_AUTHORIZATION.items():
            present = tuple(a for a in associations if a in self.model)
            if person in self.model and present:
                out[person] = present
        return out

    def node(self, path: str) -> str:
        """The graph node a reference *to* ``path`` points at (a split person's ``Create`` half)."""
        return path + CREATE if path in self.split else path

    @cached_property
    def edges(self) -> dict[str, frozenset[str]]:
        """Node -> the nodes it waits for (steps 1 to 4 of the module's docstring)."""
        deps: dict[str, set[str]] = {}
        references = DependencyGraph.from_model(self.model, descriptors=True)  # steps 1 and 2
        for r in self.model:
            needs = set(references.dependencies[r.path])
            for person, associations in self.split.items():
                if person in needs and r.path not in associations:
                    needs |= set(associations)
            deps[self.node(r.path)] = {self.node(d) for d in needs}
        for person, associations in self.split.items():
            deps[person + UPDATE] = {person + CREATE, *associations}
        return {n: frozenset(d) for n, d in deps.items()}

    @cached_property
    def graph(self) -> DependencyGraph:
        """The levels over the nodes (a cycle would raise ``GraphError``)."""
        return DependencyGraph(self.edges)

    def as_json(self) -> list[dict[str, Any]]:
        """The JSON document: ``{resource, order, operations}`` sorted as the ODS/API sorts it.

        By order; within an order a person's ``Update`` entry first, then the
        resources case-insensitively (``studentContactAssociations`` before
        ``studentCTEProgramAssociations``), as in the ODS/API's own output.
        """
        entries = []
        for n, level in self.graph.levels.items():
            path, _, half = n.partition("#")
            ops = [half] if half else ["Create", "Update"]
            entries.append({"resource": path, "order": level, "operations": ops})
        return sorted(
            entries,
            key=lambda e: (e["order"], e["operations"] != ["Update"], e["resource"].lower()),
        )

    def as_graphml(self) -> str:
        """The GraphML document: an edge from every node to each node that waits for it."""
        order = [e["resource"] + _half(e["operations"]) for e in self.as_json()]
        lines = [
            '<?xml version="1.0" encoding="utf-8"?>',
            '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">',
            '  <graph id="EdFi Dependencies" edgedefault="directed">',
        ]
        lines += [f'    <node id="{n}" />' for n in order]
        for n in order:
            lines += [f'    <edge source="{d}" target="{n}" />' for d in sorted(self.edges[n])]
        lines += ["  </graph>", "</graphml>"]
        return "\n".join(lines) + "\n"


def _half(operations: list[str]) -> str:
    return "" if len(operations) == 2 else "#" + operations[0]
