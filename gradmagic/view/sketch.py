"""A drawing view before it is a networkx graph: plain dicts with the few reads the collapse stages make.

Folding a 10,000-step loop down to 20 drawn nodes never needs the 10,000-node DiGraph: the stages read a Sketch,
and the first that changes it (a loop contracted, a module boxed) builds a DiGraph of what is left.
"""
from __future__ import annotations

from functools import cached_property

import networkx as nx

__all__ = ["Sketch", "as_digraph", "without"]


class Sketch:
    """Nodes and edges as an nx.DiGraph built from them would hold them, in the same order; read only.

    `nodes` maps each node to its attributes (shared with the graph they came from: never written), `edges`
    maps (u, v) to the edge's attributes in the order they were added."""

    def __init__(self, graph: dict, nodes: dict, edges: dict):
        self.graph, self._nodes, self._edges = graph, nodes, edges

    @cached_property
    def _links(self) -> tuple:
        """(successors, predecessors) of each node, made on the first read that needs them."""
        succ, pred = {node: {} for node in self._nodes}, {node: {} for node in self._nodes}
        for (u, v), data in self._edges.items():
            succ[u][v] = data
            pred[v][u] = data
        return succ, pred

    def __len__(self) -> int:
        return len(self._nodes)

    def __iter__(self):
        return iter(self._nodes)

    def __contains__(self, node) -> bool:
        return node in self._nodes

    def nodes(self, data: bool = False):
        """(node, attributes) pairs with data=True, else the nodes, in order."""
        return self._nodes.items() if data else self._nodes.keys()

    def edges(self, data: bool = False):
        """(u, v, attributes) with data=True, else (u, v), in nx.DiGraph's order: by u, then as added."""
        return ((u, v, d) if data else (u, v) for u, successors in self._links[0].items() for v, d in successors.items())

    def in_edges(self, node, data: bool = False):
        """(u, node, attributes) with data=True, else (u, node), for each predecessor u."""
        return ((u, node, d) if data else (u, node) for u, d in self._links[1][node].items())

    def adjacency(self):
        return iter(self._links[0].items())

    def successors(self, node):
        return iter(self._links[0][node])

    def predecessors(self, node):
        return iter(self._links[1][node])

    def in_degree(self, node) -> int:
        return len(self._links[1][node])

    def without(self, dropped: set) -> Sketch:
        """A Sketch of these nodes less `dropped`, and of the edges between those left, in the same order."""
        nodes = {n: d for n, d in self._nodes.items() if n not in dropped}
        succ, pred = self._links
        if any(succ[n] or pred[n] for n in dropped if n in succ):
            return Sketch(dict(self.graph), nodes,
                          {(u, v): d for (u, v), d in self._edges.items() if u not in dropped and v not in dropped})
        kept = Sketch(dict(self.graph), nodes, self._edges)  # isolated nodes dropped: the same edges and links
        kept.__dict__["_links"] = tuple({n: links[n] for n in nodes} for links in (succ, pred))
        return kept

    def to_digraph(self) -> nx.DiGraph:
        """The nx.DiGraph these nodes and edges describe (attributes copied, as add_nodes_from copies them)."""
        view = nx.DiGraph(**self.graph)
        view.add_nodes_from(self._nodes.items())
        view.add_edges_from((u, v, data) for (u, v), data in self._edges.items())
        return view


def without(view, dropped: set):
    """The view (a Sketch or a DiGraph, as it came) less `dropped`, in its own order: networkx's subgraph lists a kept
    set less than half the graph in hash order, which changes from one process to the next (so would the picture)."""
    if isinstance(view, Sketch):
        return view.without(dropped)
    kept = nx.DiGraph(**view.graph)
    kept.add_nodes_from((n, d) for n, d in view.nodes(data=True) if n not in dropped)
    kept.add_edges_from((u, v, d) for u, v, d in view.edges(data=True) if u not in dropped and v not in dropped)
    return kept


def as_digraph(view) -> nx.DiGraph:
    """`view` itself when it is a networkx graph already, else the DiGraph of a Sketch."""
    return view.to_digraph() if isinstance(view, Sketch) else view
