"""Blocks of the drawing: one node that stands for many (a module call's box, a folded loop); collapse and loops use them."""
from __future__ import annotations

from collections import Counter

import networkx as nx

from ..text import norm, norm_mark, shape_text, shown_grad

__all__ = ["BLOCK_KINDS", "OP_LIKE", "contract", "view_edge", "op_count", "lines_text", "runs", "module_caption",
           "shapes_line", "record_number"]

#: Node kinds that stand for many ops: a module call ("cluster"), folded loop iterations ("loop") and an
#: optimizer step ("optimizer", steps.py).
BLOCK_KINDS = ("cluster", "loop", "optimizer")
#: Nodes that compute, in the order they ran.
OP_LIKE = ("op", *BLOCK_KINDS)


def contract(view: nx.DiGraph, owner: dict, attrs: dict) -> nx.DiGraph:
    """A new view with each block's members replaced by one node; edges between blocks merged (counts, flows, the
    graph edges they stand for).

    A block is placed where its first op was, or where its `anchor` node was (op order is kept)."""
    ids = {key: key if isinstance(key, str) else f"module:{key[0]}:{key[1]}" for key in attrs}
    out = nx.DiGraph()
    out.graph.update(view.graph)
    out.add_nodes_from(_contracted_nodes(view, owner, attrs, ids))
    stand_in = {node: ids[owner[at]] if at in owner else at for node, at in view.graph.get("stand_in", {}).items()}
    out.graph["stand_in"] = {**stand_in, **{node: ids[key] for node, key in owner.items()}}
    edges = {}
    for u, v, data in view.edges(data=True):
        a = ids[owner[u]] if u in owner else u
        b = ids[owner[v]] if v in owner else v
        if a != b:
            edge = edges.get((a, b))
            if edge is None:
                edge = edges[a, b] = view_edge(sources=[])
            edge["count"] += data.get("count", 1)
            edge["differentiable"] = edge["differentiable"] or data.get("differentiable", True)
            edge["flows"] += data.get("flows", ())  # empty until drawing_view's end fills them from the sources
            edge["grads"] += data.get("grads", ())
            edge["sources"] += data.get("sources", ())
    out.add_edges_from((a, b, data) for (a, b), data in edges.items())
    return out


def _contracted_nodes(view: nx.DiGraph, owner: dict, attrs: dict, ids: dict):
    """(node, attributes) of a contracted view in order: the nodes no block owns, and each block at its place."""
    placed = set()
    for node, data in view.nodes(data=True):
        key = owner.get(node)
        if key is None:
            yield node, data
        elif key not in placed and data.get("kind") in OP_LIKE and attrs[key].get("anchor", node) == node:
            placed.add(key)
            yield ids[key], attrs[key]


def view_edge(count: int = 0, **extra) -> dict:
    """The attributes of a drawing view's edge (see drawing_view), standing for `count` graph edges, no gradient."""
    return {"count": count, "differentiable": False, "flows": [], "grads": [], **extra}


def op_count(data: dict) -> int:
    """How many recorded ops a node of the view stands for."""
    return data.get("ops", 1) if data.get("kind") in BLOCK_KINDS else int(data.get("kind") == "op")


def record_number(node) -> int:
    """`t12` -> 12 (tensor records are numbered in the order the capture saw them); -1 for any other node."""
    return int(node[1:]) if isinstance(node, str) and node[1:].isdigit() else -1


def lines_text(first: int, last: int) -> str:
    """` (line 8)` or ` (lines 3–4)`."""
    return f" (line {first})" if first == last else f" (lines {first}–{last})"


def runs(items) -> list:
    """Consecutive equal items counted: `matmul, matmul, add` -> [["matmul", 2], ["add", 1]]."""
    counted = []
    for item in items:
        if counted and counted[-1][0] == item:
            counted[-1][1] += 1
        else:
            counted.append([item, 1])
    return counted


# ---- what a module box says ------------------------------------------------------------------------------

_PARAM_LINES = 4  # a box lists at most this many parameters, one per line


def module_caption(call: dict | None, params: list, prefix: str, ops: Counter) -> str:
    """`[16×4] → [16×8]`, then `weight [8×4] ∇‖0.436‖` per parameter, then the ops of a box of several ops."""
    lines = [shapes_line(call)] if call else []
    shown = params if len(params) <= _PARAM_LINES else params[:_PARAM_LINES - 1]
    lines += [_param_line(p, prefix) for p in shown]
    if len(shown) < len(params):
        lines.append(f"+ {len(params) - len(shown)} more parameters")
    count = sum(ops.values())
    if count > 1:
        common = ", ".join(f"{op} ×{k}" if k > 1 else op for op, k in ops.most_common(3))
        lines.append(f"{count:,} ops: {common}{', …' if len(ops) > 3 else ''}")
    return "\n".join(line for line in lines if line)


def shapes_line(call: dict) -> str:
    """`[16×4] → [16×8]`: a module call's input and output shapes."""
    def shapes(items):  # q, k, v of the same shape: `[4×6×16] ×3`
        return ", ".join((f"[{shape_text(s)}]" if s else "scalar") + (f" ×{k}" if k > 1 else "")
                         for s, k in runs(list(shape) for shape in items))
    return f"{shapes(call.get('inputs', ()))} → {shapes(call.get('outputs', ()))}" if call.get("outputs") else ""


def _param_line(param: dict, prefix: str) -> str:
    """`weight [8×4] ∇‖0.436‖`: a parameter by its name inside the module, its shape and its gradient's norm."""
    name = (param.get("param") or param.get("label") or "").removeprefix(prefix + ".")
    value, stats = shown_grad(param)
    size = norm(stats if isinstance(stats, dict) else value)
    return f"{name} [{shape_text(param.get('shape'))}]" + (f" ∇{norm_mark(size)}" if size is not None else "")
