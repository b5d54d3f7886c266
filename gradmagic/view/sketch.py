"""A drawing view before it is a networkx graph: plain dicts with the few reads the collapse stages make.

Folding a 10,000-step loop down to 20 drawn nodes never needs the 10,000-node DiGraph: the stages read a Sketch,
and the first that changes it (a loop contracted, a module boxed) builds a DiGraph of what is left.
"""
from __future__ import annotations

from functools import cached_property

import networkx as nx

__all__ = ["Sketch", "as_digraph"]


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

    def to_digraph(self) -> nx.DiGraph:
        """The nx.DiGraph these nodes and edges describe (attributes copied, as add_nodes_from copies them)."""
        view = nx.DiGraph(**self.graph)
        view.add_nodes_from(self._nodes.items())
        view.add_edges_from((u, v, data) for (u, v), data in self._edges.items())
        return view


def as_digraph(view) -> nx.DiGraph:
    """`view` itself when it is a networkx graph already, else the DiGraph of a Sketch."""
    return view.to_digraph() if isinstance(view, Sketch) else view
