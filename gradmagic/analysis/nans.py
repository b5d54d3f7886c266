"""Where NaN and inf begin: the first op whose value, or whose backward, makes one from finite numbers."""
from __future__ import annotations

from .diagnostic import Diagnostic
from .reading import describe, ops_in_order, pass_gradient, value_words
from .values import nonfinite, nonfinite_kind

__all__ = ["first_nan_value", "first_nan_gradient"]


def first_nan_value(graph) -> list:
    """The first op (in record order) whose result holds NaN or inf although its inputs do not."""
    if not any(_nonfinite_value(d) for _, d in graph.nodes(data=True) if d["kind"] == "tensor"):
        return []  # one pass over the values; the walk in record order only when one of them is not finite
    for op in ops_in_order(graph):
        inputs, outputs = list(dict.fromkeys(graph.predecessors(op))), list(graph.successors(op))
        bad = [o for o in outputs if _nonfinite_value(graph.nodes[o])]
        if bad and not any(_nonfinite_value(graph.nodes[i]) for i in inputs):
            d, out = graph.nodes[op], graph.nodes[bad[0]]
            given = ", ".join(f"{describe(graph, i)} = {_value_of(graph.nodes[i])}" for i in inputs)
            made = f"{out['label']} = " if out["label"] else ""
            message = (f"the first {nonfinite_kind(out['value'], out['stats'])} value appears at line {d['line']}: "
                       f"`{d['label']}` made {made}{_value_of(out)} from {given or 'constants'}. "
                       f"Check its inputs (log or sqrt of a negative number, 0/0, overflow).")
            return [Diagnostic("nan_value", message, [*inputs, op, bad[0]], [], d["line"])]
    return []


def first_nan_gradient(graph) -> list:
    """The first op whose backward sent NaN or inf to an input while its values and output gradients are finite."""
    if not any(nonfinite(flow) for flow in _flows(graph)):
        return []
    for op in ops_in_order(graph):
        outputs = list(graph.successors(op))
        around = [graph.nodes[n] for n in (*graph.predecessors(op), *outputs)]
        if any(_nonfinite_value(n) for n in around) or any(nonfinite(pass_gradient(graph, o)) for o in outputs):
            continue  # a NaN value explains it, or the NaN came from further down
        for tensor, _, key, data in graph.in_edges(op, keys=True, data=True):
            if nonfinite(data.get("flow")):
                d = graph.nodes[op]
                message = (f"the first {nonfinite_kind(data['flow'])} gradient comes from `{d['label']}` at line "
                           f"{d['line']}: its backward sends {value_words(data['flow'], None)} to "
                           f"{describe(graph, tensor)} (= {_value_of(graph.nodes[tensor])}) although everything "
                           f"around it is finite. Keep its input away from where its derivative is infinite (sqrt or "
                           f"norm at 0, log at 0), e.g. add a small epsilon.")
                return [Diagnostic("nan_grad", message, [tensor, op], [(tensor, op, key)], d["line"])]
    return []


def _flows(graph):
    """The flow of every edge that has one, in edge order."""
    for _, successors in graph.adjacency():
        for keys in successors.values():
            yield from (data["flow"] for data in keys.values() if data.get("flow") is not None)


def _nonfinite_value(node: dict) -> bool:
    """Whether a tensor node's value holds NaN or inf."""
    return nonfinite(node["value"], node["stats"])


def _value_of(node: dict) -> str:
    """A tensor node's value in words."""
    return value_words(node["value"], node["stats"])
