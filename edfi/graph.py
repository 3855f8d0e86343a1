"""The dependency graph: which resources must be written before which.

Every job that writes to an Ed-Fi API orders its work by this one graph: a
record can only be accepted once everything it references exists, so a
resource's records go after the records of every resource it depends on, and
deletes go the other way round. The graph comes from one of three places:

* the API model (``from_model``): the references in each resource's body,
  plus, optionally, the descriptor resources its values name;
* the server's GraphML (``from_graphml``, ``/metadata/data/v3/dependencies``
  with ``Accept: application/graphml``): the edges the ODS/API itself uses;
* the server's JSON dependencies (``from_levels``): only a load *order* per
  resource, so each resource waits for every resource of the level below.

A graph is immutable. ``dependencies[p]`` is what ``p`` needs, ``dependents[p]``
what needs ``p``; ``levels[p]`` is 1 for a resource that needs nothing, else one
more than the highest level it needs; ``order`` sorts by (level, path), so
everything a resource needs comes before it and the order is the same on
every run. A cycle raises ``GraphError`` naming the resources in it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from .errors import GraphError

if TYPE_CHECKING:
    from .model import ApiModel

__all__ = ["DependencyGraph", "closure", "parse_graphml"]


def closure(start: str, edges: Mapping[str, Iterable[str]]) -> set[str]:
    """Every node reachable from ``start`` along ``edges`` (``start`` itself excluded)."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        for n in edges.get(stack.pop(), ()):
            if n not in seen:
                seen.add(n)
                stack.append(n)
    seen.discard(start)
    return seen


class DependencyGraph:
    """Resources and what each needs written first."""

    def __init__(self, dependencies: Mapping[str, Iterable[str]]):
        """``dependencies``: node -> the nodes it needs. Edges to unknown nodes are dropped."""
        nodes = set(dependencies)
        self.dependencies: dict[str, frozenset[str]] = {
            p: frozenset(d for d in deps if d in nodes and d != p)
            for p, deps in dependencies.items()
        }
        rev: dict[str, set[str]] = {p: set() for p in self.dependencies}
        for p, deps in self.dependencies.items():
            for d in deps:
                rev[d].add(p)
        self.dependents: dict[str, frozenset[str]] = {p: frozenset(v) for p, v in rev.items()}
        self.levels: dict[str, int] = self._levels()
        self.order: list[str] = sorted(self.dependencies, key=lambda p: (self.levels[p], p))

    # -- construction ------------------------------------------------------------------
    @classmethod
    def from_model(cls, model: ApiModel, *, descriptors: bool = False) -> DependencyGraph:
        """References between the model's resources; ``descriptors`` adds descriptor edges.

        Descriptor edges matter when descriptors are written in the same run as
        the resources that name them (a publish with ``include_descriptors``).
        """
        deps = {p: set(d) for p, d in model.dependencies.items()}
        if descriptors:
            _add_descriptor_edges(deps, model)
        return cls(deps)

    @classmethod
    def from_graphml(
        cls, text: str, model: ApiModel | None = None, *, descriptors: bool = False
    ) -> DependencyGraph:
        """A server's GraphML; with ``model``, limited to (and completed with) its resources."""
        deps = parse_graphml(text)
        if model is not None:
            deps = {p: d for p, d in deps.items() if p in model}
            for p in model.resources:
                deps.setdefault(p, set())
            if descriptors:
                _add_descriptor_edges(deps, model)
        return cls(deps)

    @classmethod
    def from_levels(cls, entries: Sequence[Mapping[str, Any]]) -> DependencyGraph:
        """A server's JSON dependencies (``[{"resource": ..., "order": n}, ...]``).

        They give a level per resource, not edges; a resource is made to wait for
        every resource one level below, which keeps the server's order exactly.
        A resource listed twice (real servers list students, staffs and contacts
        once for ``Create`` and again, later, for ``Update``) takes its ``Create``
        level: the update half is what the sender's 403 deferral covers.
        """
        level_of: dict[str, int] = {}
        for e in entries:
            try:
                path, level = str(e["resource"]), int(e["order"])
            except (KeyError, TypeError, ValueError):
                raise GraphError(
                    f"A dependencies entry has no resource and order: {dict(e)!r}."
                ) from None
            if "Create" not in e.get("operations", ["Create"]):
                continue
            level_of[path] = min(level, level_of.get(path, level))
        by_level: dict[int, set[str]] = {}
        for path, level in level_of.items():
            by_level.setdefault(level, set()).add(path)
        levels = sorted(by_level)
        deps: dict[str, set[str]] = {}
        for i, level in enumerate(levels):
            below = by_level[levels[i - 1]] if i else set()
            for p in by_level[level]:
                deps[p] = set(below)
        return cls(deps)

    def _levels(self) -> dict[str, int]:
        level: dict[str, int] = {}
        remaining = {p: len(d) for p, d in self.dependencies.items()}
        ready = [p for p, n in remaining.items() if n == 0]
        for p in ready:
            level[p] = 1
        while ready:
            nxt: list[str] = []
            for p in ready:
                for n in self.dependents[p]:
                    remaining[n] -= 1
                    if remaining[n] == 0:
                        level[n] = 1 + max(level[d] for d in self.dependencies[n])
                        nxt.append(n)
            ready = nxt
        if len(level) != len(self.dependencies):
            stuck = [p for p in sorted(self.dependencies) if p not in level]
            stuck = [
                p
                for p in stuck
                if any(p in closure(d, self.dependencies) or d == p for d in self.dependencies[p])
            ]
            raise GraphError(
                f"The dependencies have a cycle through {', '.join(stuck[:5])}"
                f"{' ...' if len(stuck) > 5 else ''}; they cannot be put in an order."
            )
        return level

    # -- questions ---------------------------------------------------------------------
    def __contains__(self, path: object) -> bool:
        return path in self.dependencies

    def __iter__(self) -> Iterator[str]:
        return iter(self.order)

    def __len__(self) -> int:
        return len(self.dependencies)

    def ancestors(self, path: str) -> set[str]:
        """Everything ``path`` needs, transitively."""
        return closure(path, self.dependencies)

    def descendants(self, path: str) -> set[str]:
        """Everything that needs ``path``, transitively."""
        return closure(path, self.dependents)

    def sort(self, paths: Iterable[str]) -> list[str]:
        """``paths`` in the graph's order (needs first)."""
        return sorted(set(paths), key=lambda p: (self.levels[p], p))

    def restricted(self, paths: Iterable[str]) -> DependencyGraph:
        """The graph over ``paths`` only, keeping orderings that ran through left-out nodes.

        If A needs B and B needs C, and B is left out, A still waits for C.
        """
        keep = set(paths)
        return DependencyGraph({p: self.ancestors(p) & keep for p in self.order if p in keep})

    @cached_property
    def reverse(self) -> DependencyGraph:
        """The graph with every edge turned round: the order for deletes."""
        return DependencyGraph(self.dependents)

    def as_levels(self) -> list[dict[str, Any]]:
        """The ``/metadata/data/v3/dependencies`` JSON document for this graph."""
        return [
            {"resource": p, "order": self.levels[p], "operations": ["Create", "Update"]}
            for p in self.order
        ]


def parse_graphml(text: str) -> dict[str, set[str]]:
    """Edges of the ODS/API dependency GraphML (``source`` must come before ``target``).

    Real servers split students, staffs and contacts into ``#Create`` and
    ``#Update`` nodes; the update half waits for associations, which the
    sender's 403 deferral covers, so edges into an update node are dropped and
    the halves merge into one resource.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise GraphError(f"The dependency GraphML is not XML ({exc}).") from None
    deps: dict[str, set[str]] = {}
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "node" and el.get("id"):
            deps.setdefault(el.get("id", "").split("#", 1)[0], set())
        elif tag == "edge":
            src, dst = el.get("source", ""), el.get("target", "")
            if not src or not dst or dst.endswith("#Update"):
                continue
            src_path, dst_path = src.split("#", 1)[0], dst.split("#", 1)[0]
            deps.setdefault(src_path, set())
            if src_path != dst_path:
                deps.setdefault(dst_path, set()).add(src_path)
    return deps


def _add_descriptor_edges(deps: dict[str, set[str]], model: ApiModel) -> None:
    for r in model:
        if r.path in deps:
            deps[r.path] |= {d for _, d in r.shape.descriptor_paths() if d != r.path and d in deps}
