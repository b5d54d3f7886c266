"""Blocks of the drawing: one node that stands for many (a module call's box, a folded loop); collapse and loops use them."""
from __future__ import annotations

import networkx as nx

__all__ = ["BLOCK_KINDS", "OP_LIKE", "contract", "op_count", "lines_text"]

#: Node kinds that stand for many ops: a module call ("cluster") and folded loop iterations ("loop").
BLOCK_KINDS = ("cluster", "loop")
#: Nodes that compute, in the order they ran.
OP_LIKE = ("op", *BLOCK_KINDS)


def contract(view: nx.DiGraph, owner: dict, attrs: dict) -> nx.DiGraph:
    """A new view with each block's members replaced by one node; edges between blocks merged (counts, flows)."""
    ids = {key: key if isinstance(key, str) else f"module:{key[0]}:{key[1]}" for key in attrs}
    out = nx.DiGraph()
    out.graph.update(view.graph)
    placed = set()
    for node, data in view.nodes(data=True):
        key = owner.get(node)
        if key is None:
            out.add_node(node, **data)
        elif key not in placed and data.get("kind") in OP_LIKE:  # where its first op was: op order is kept
            placed.add(key)
            out.add_node(ids[key], **attrs[key])
    stand_in = {node: ids[owner[at]] if at in owner else at for node, at in view.graph.get("stand_in", {}).items()}
    out.graph["stand_in"] = {**stand_in, **{node: ids[key] for node, key in owner.items()}}
    edges = {}
    for u, v, data in view.edges(data=True):
        a = ids[owner[u]] if u in owner else u
        b = ids[owner[v]] if v in owner else v
        if a != b:
            edge = edges.setdefault((a, b), {"count": 0, "differentiable": False, "flows": [], "grads": []})
            edge["count"] += data.get("count", 1)
            edge["differentiable"] = edge["differentiable"] or data.get("differentiable", True)
            edge["flows"] += data.get("flows", ())
            edge["grads"] += data.get("grads", ())
    out.add_edges_from((a, b, data) for (a, b), data in edges.items())
    return out


def op_count(data: dict) -> int:
    """How many recorded ops a node of the view stands for."""
    return data.get("ops", 1) if data.get("kind") in BLOCK_KINDS else int(data.get("kind") == "op")


def lines_text(first: int, last: int) -> str:
    """` (line 8)` or ` (lines 3–4)`."""
    return f" (line {first})" if first == last else f" (lines {first}–{last})"
