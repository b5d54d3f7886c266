"""What analysis reads off the graph: a tensor in words, the backward pass asked for and the gradient a tensor got
in it, the ops in record order, and the part of the graph that carries gradient."""
from __future__ import annotations

import networkx as nx

from .. import text

__all__ = ["describe", "value_words", "pass_asked", "pass_gradient", "pass_flow", "ops_in_order", "differentiable", "ancestors"]


def describe(graph, node: str, *, short: bool = False) -> str:
    """`x`; an anonymous tensor as `the result of `add` (line 3)` (`short`: `(add)`), else `a tensor from outside
    (3×4)` (`short`: its node id)."""
    d = graph.nodes[node]
    if d.get("label"):
        return d["label"]
    ops = list(graph.predecessors(node))
    if ops:
        op = graph.nodes[ops[0]]
        return f"({op['label']})" if short else f"the result of `{op['label']}` (line {op['line']})"
    return node if short else f"a tensor from outside ({text.shape_text(d['shape'])})"


def value_words(value, stats) -> str:
    """A value or gradient as text for a sentence (`?` when unknown)."""
    return text.value_text(value, stats) or "?"


def pass_asked(count: int, pass_index: int, what: str) -> int:
    """The index of pass `pass_index` (0 the first, -1 the last) of `count`; a ValueError saying what to do if none."""
    if not count:
        raise ValueError(f"no backward pass ran, so there is no gradient to {what}; call .backward() on a result")
    if not -count <= pass_index < count:
        raise ValueError(f"pass_index={pass_index}: the run had {count} backward pass(es); use 0 to {count - 1}, "
                         "or -1 for the last")
    return range(count)[pass_index]


def pass_gradient(graph, node: str, p: int | None = None):
    """The gradient that reached a tensor in backward pass p (the last pass that reached it if None): a value,
    a stats dict, or None. Not `.grad`, which is what a leaf accumulated."""
    grads = graph.nodes[node].get("pass_grads") or {}
    if p is None:
        return grads[max(grads)] if grads else None
    return grads.get(p)


def pass_flow(edge: dict, p: int):
    """The gradient that flowed back along a tensor->op edge (its data) in pass p: a value, stats dict or None."""
    return (edge.get("pass_flows") or {}).get(p)


def ops_in_order(graph) -> list:
    """Op nodes in record order."""
    return sorted((n for n, d in graph.nodes(data=True) if d["kind"] == "op"), key=lambda n: int(n[2:]))


def differentiable(graph) -> nx.MultiDiGraph:
    """The graph without edges that carry no gradient."""
    return nx.subgraph_view(graph, filter_edge=lambda u, v, k: graph.edges[u, v, k].get("differentiable", True))


def ancestors(graph, roots) -> set:
    """The tensors and ops with a gradient-carrying path to one of the roots."""
    view = differentiable(graph)
    return set().union(*(nx.ancestors(view, r) for r in roots if r in graph))
