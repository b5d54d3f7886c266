"""Gradient hooks (`register_hook`) that changed a gradient: what autograd gave a tensor against what the chain rule
sent it. Explain, diagnose's neighbours and the gradient check all name them when numbers do not add up."""
from __future__ import annotations

from .reading import describe, pass_flow, pass_gradient, value_words
from .values import same, total

__all__ = ["hook_changes"]


def hook_changes(graph, p: int, nodes=None) -> list:
    """One sentence per gradient hook the code registered (`register_hook`) that changed the gradient of its
    tensor in pass p: what autograd gave the tensor against the sum of the flows that reached it (the chain rule).

    Among `nodes` only, if given. A hook whose tensor got no gradient in the pass, or whose change cannot be told
    from what was kept (large tensors keep norms), is left out unless nothing else can be said."""
    found = []
    for node, line, method in graph.graph.get("grad_hooks", []):
        if method != "register_hook" or node not in graph or (nodes is not None and node not in nodes):
            continue
        given, arriving = pass_gradient(graph, node, p), _arriving(graph, node, p)
        if given is None or arriving is None or same(given, arriving):
            continue
        who = describe(graph, node)
        where = f"line {line}" if line else "registered before the run"
        found.append(f"{who} has a gradient hook ({where}) that changed its gradient: autograd's "
                     f"{value_words(given, None)} vs chain rule {value_words(arriving, None)}")
    return found


def _arriving(graph, node: str, p: int):
    """Σ of the gradients that flowed into `node` along its edges in pass p (before any hook on it), or None."""
    flows = [pass_flow(d, p) for _, _, d in graph.out_edges(node, data=True)
             if d.get("differentiable")]
    flows = [f for f in flows if f is not None]
    if not flows:
        return None
    if len(flows) == 1:
        return flows[0]
    if any(isinstance(f, dict) for f in flows):
        return None
    return total(flows)
