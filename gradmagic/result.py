"""The object a user holds: the graph, its picture and table, and `save()`."""
from __future__ import annotations

from pathlib import Path

import networkx as nx

from . import export
from .graph import build_graph, named_graph, tensor_nodes
from .recorder import Trace

__all__ = ["Result"]


class Result:
    """What one captured run did to tensors: `.graph` (networkx), `.figure`, `.table`, `.save(path)`."""

    def __init__(self, trace: Trace, *, error: BaseException | None = None):
        self.trace = trace
        self.error = error
        self._graph: nx.MultiDiGraph | None = None

    @property
    def graph(self) -> nx.MultiDiGraph:
        """The networkx.MultiDiGraph of DESIGN.md, built on first use (capture itself stays lean)."""
        if self._graph is None:
            self._graph = build_graph(self.trace)
        return self._graph

    def __repr__(self) -> str:
        tensors = len(tensor_nodes(self.graph))
        return f"<gradmagic.Result: {tensors} tensors, {self.graph.number_of_nodes() - tensors} ops, " \
               f"{self.graph.graph['passes']} backward pass(es)>"

    def tensor(self, name: str) -> dict:
        """The attributes of the last tensor bound to `name` (KeyError if none)."""
        nodes = tensor_nodes(self.graph, name)
        if not nodes:
            raise KeyError(f"no tensor named {name!r}; named: {', '.join(self.names()) or 'none'}")
        return self.graph.nodes[nodes[-1]]

    def names(self) -> list:
        """The names of the named tensors, in the order they were bound."""
        return list(dict.fromkeys(d["name"] for _, d in self.graph.nodes(data=True)
                                  if d["kind"] == "tensor" and d["name"]))

    def named_graph(self) -> nx.DiGraph:
        """Named tensors joined wherever a path of ops and anonymous tensors connects them."""
        return named_graph(self.graph)

    def save(self, path) -> Path:
        """Write the graph (.graphml .json .dot) or its picture (.png .svg .pdf), chosen by suffix."""
        path = export.check_save_path(path)
        suffix = path.suffix.lower()
        if suffix in export.GRAPH_SUFFIXES:
            path.write_bytes(export.graph_bytes(self.graph, suffix))
        else:
            path.write_bytes(export.figure_bytes(self.figure, suffix))
        return path
