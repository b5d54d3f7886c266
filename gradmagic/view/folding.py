"""The drawing view: the graph as it will be drawn, anonymous tensors folded into their ops and big graphs collapsed.

Each graph node not drawn itself has a stand-in, the drawn node that shows it (its op, its module box, its loop).
"""
from __future__ import annotations

import networkx as nx

from .blocks import view_edge
from .collapse import check_collapse_options, collapse_view
from .sketch import Sketch
from ..text import shown_grad, tensor_caption

__all__ = ["drawing_view", "view_node", "view_marks"]


def drawing_view(graph: nx.MultiDiGraph, *, show_all: bool = False, depth: int | None = None,
                 max_nodes: int | None = None) -> nx.DiGraph:
    """The DiGraph to draw: anonymous tensors folded, then modules and loops collapsed (show_all: everything).

    Each edge keeps `count` (graph edges it stands for), `differentiable`, `flows` (the gradients that arrived along
    its tensor->op graph edges in the last pass, unknown ones left out) and `grads` (the gradients of the tensors its
    op->tensor graph edges made); `graph["stand_in"]` maps each graph node not drawn itself to the node drawn for it.
    """
    check_collapse_options(depth, max_nodes)
    view = _folded_view(graph, show_all=show_all)
    if show_all:
        view = view.to_digraph()
        view.graph["hidden_note"] = None
    else:
        view = collapse_view(view, depth=depth, max_nodes=max_nodes, total=len(graph))
    _caption_folds(view, graph)  # only for the ops still drawn: captions cost more than folding
    _fill_flows(view, graph)  # only for the edges still drawn: the rest were merged into them or hidden
    return view


def view_node(view: nx.DiGraph, node):
    """The node of a drawing view that stands for graph node `node` (itself, its op, its box), or None if none does."""
    return node if node in view else view.graph.get("stand_in", {}).get(node)


def view_marks(view: nx.DiGraph, marks: dict | None) -> tuple:
    """(view nodes, view edges, view node -> note) standing for `marks` {"nodes", "edges", "notes"} of the graph."""
    marks = marks or {}
    nodes = {view_node(view, node) for node in [*marks.get("nodes", ()), *marks.get("notes", {})]}
    edges, notes = set(), {}
    for u, v, *_ in marks.get("edges", ()):
        a, b = view_node(view, u), view_node(view, v)
        if a is not None and a == b:  # an edge hidden inside a fold or a box marks the node drawn for both ends
            nodes.add(a)
        elif view.has_edge(a, b):
            edges.add((a, b))
    for node, text in marks.get("notes", {}).items():
        at = view_node(view, node)
        if at is not None and text:
            notes[at] = f"{notes[at]}; {text}" if at in notes else str(text)
    nodes.discard(None)
    return nodes, edges, notes


def _folded_view(graph: nx.MultiDiGraph, *, show_all: bool) -> Sketch:
    """Anonymous tensors folded into their ops, creation ops dropped (unless show_all); edges keep their `sources`."""
    nodes, outputs = dict(graph.nodes(data=True)), dict(graph.adjacency())  # the graph's own dicts, only read
    fed = {v for successors in outputs.values() for v in successors}
    unused = set() if show_all else _unused_creations(nodes, outputs, fed)
    stand_in = {} if show_all else {t: op for t, op in _folded_tensors(graph, nodes).items() if t not in unused}
    dropped = set() if show_all else _dropped_creation_ops(nodes, outputs, fed, stand_in) | unused
    drawn = {n: nodes[n] for n in nodes if n not in stand_in and n not in dropped}
    folded = {}
    for tensor, op in stand_in.items():
        folded.setdefault(op, []).append(tensor)
    for op, tensors in folded.items():
        drawn[op] = {**drawn[op], "folded_nodes": tensors}  # a copy: the graph's own attributes are only read
    made = {op: next((t for t in outputs[op] if t in drawn), None)
            for op in nodes if op in dropped and op not in unused}  # graph order: sets of str are hash-ordered
    edges = _folded_edges(nodes, outputs, stand_in, drawn)
    stand_in = {**stand_in, **{op: t for op, t in made.items() if t is not None}}
    return Sketch({**graph.graph, "show_all": show_all, "stand_in": stand_in}, drawn, edges)


def _folded_edges(nodes: dict, outputs: dict, stand_in: dict, drawn: dict) -> dict:
    """(a, b) -> view edge for the graph edges between drawn nodes, their ends listed in `sources` as (u, v)."""
    edges = {}
    for u, successors in outputs.items():
        a = stand_in.get(u, u)
        if a not in drawn:
            continue
        for v, keyed in successors.items():
            b = stand_in.get(v, v)
            if a == b or b not in drawn:
                continue
            edge = edges.get((a, b))
            if edge is None:
                edge = edges[a, b] = view_edge(sources=[])
            edge["count"] += len(keyed)
            edge["sources"].append((u, v))
            if not edge["differentiable"]:
                for data in keyed.values():
                    if _edge_differentiable(nodes, u, v, data):
                        edge["differentiable"] = True
                        break
    return edges


def _fill_flows(view: nx.DiGraph, graph: nx.MultiDiGraph) -> None:
    """Each drawn edge's `flows` and `grads`, read from the graph edges it stands for (its `sources`, then dropped)."""
    nodes, adjacency = graph.nodes, graph.adj
    for _, _, edge in view.edges(data=True):
        for u, v, data in ((u, v, data) for u, v in edge.pop("sources", ()) for data in adjacency[u][v].values()):
            if data.get("flow") is not None:
                edge["flows"].append(data["flow"])
            elif nodes[u].get("kind") == "op" and not nodes[v].get("is_leaf") \
                    and _gradient(nodes[v]) is not None:  # a leaf keeps its gradient: none goes back to its op
                edge["grads"].append(_gradient(nodes[v]))


def _folded_tensors(graph: nx.MultiDiGraph, nodes: dict) -> dict:
    """Anonymous tensor (not a leaf, not an output) -> the op that made it, which will stand for it."""
    folded = {}
    for node, data in nodes.items():
        if data["kind"] != "tensor" or data.get("name") is not None or data.get("role") in ("leaf", "output"):
            continue
        producer = next((p for p in graph.predecessors(node) if nodes[p]["kind"] == "op"), None)
        if producer is not None:
            folded[node] = producer
    return folded


def _dropped_creation_ops(nodes: dict, outputs: dict, fed: set, stand_in: dict) -> set:
    """Ops with no tensor inputs whose every output is drawn on its own (`torch.tensor(5.0)` before `a`)."""
    return {node for node, data in nodes.items()
            if data["kind"] == "op" and node not in fed and not any(out in stand_in for out in outputs[node])}


def _unused_creations(nodes: dict, outputs: dict, fed: set) -> set:
    """Anonymous tensors made from nothing and never used (`torch.empty` inside `nn.Linear()`), with their ops."""
    unused = set()
    for node, data in nodes.items():
        if data["kind"] == "op" and node not in fed:
            made = list(outputs[node])
            if made and all(nodes[t]["name"] is None and not outputs[t] and nodes[t]["role"] != "output" for t in made):
                unused.update([node, *made])
    return unused


def _caption_folds(view: nx.DiGraph, graph: nx.MultiDiGraph) -> None:
    """Keep each folded tensor's caption and role on the op that now stands for it."""
    for _, op in view.nodes(data=True):
        if op.get("folded_nodes"):
            tensors = [graph.nodes[t] for t in op["folded_nodes"]]
            op["folded"] = "\n".join(tensor_caption(t) for t in tensors)
            op["folded_role"] = tensors[0].get("role")


def _gradient(tensor: dict):
    """A tensor's gradient as shown: the exact value, the stats of a large one (with its "norm"), or None."""
    value, stats = shown_grad(tensor)
    return value if value is not None else stats


def _edge_differentiable(nodes: dict, u, v, data: dict) -> bool:
    """Tensor->op edges say so themselves; op->tensor edges carry gradient when the output can take one."""
    if "differentiable" in data:
        return bool(data["differentiable"])
    op, out = nodes[u], nodes[v]
    return bool(op.get("grad_enabled", True) and op.get("op_kind") != "exit" and out.get("requires_grad", True))
