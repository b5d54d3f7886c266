"""Where gradients stop: leaves that got no gradient, and the detach, no_grad or `torch.tensor(y.item())` that cut
the way from a tensor to a backward root, each with the line to change."""
from __future__ import annotations

import math

from .diagnostic import Diagnostic
from .reading import ancestors, describe, ops_in_order
from ..graph import tensor_nodes
from ..text import has_grad

__all__ = ["rebuilt_links", "roots_reach", "missing_gradients", "cuts"]

_EXIT_CALLS = {"item": ".item()", "tolist": ".tolist()", "numpy": ".numpy()", "float": "float()", "int": "int()",
               "bool": "bool()", "index": "int()", "__complex__": "complex()", "__array__": "numpy.asarray()"}


def rebuilt_links(graph) -> dict:
    """{creation op: exit op} where a tensor was built from a number a tensor handed out (`torch.tensor(y.item())`)."""
    links, recent = {}, {}
    for op in ops_in_order(graph):
        d = graph.nodes[op]
        if d["op_kind"] == "exit" and isinstance(d["result"], float):
            recent[d["result"]] = op
        elif recent and d["op_kind"] == "op" and not graph.in_degree(op):
            for const in _numbers_in(d["consts"]):  # constants are kept as text with 6 significant digits
                match = [r for r in recent if math.isclose(r, const, rel_tol=1e-5)]
                if match:
                    links[op] = recent[match[-1]]
    return links


def roots_reach(graph, rebuilt: dict) -> set:
    """Every node from which some backward root can be reached (through any edge, and through rebuilt values)."""
    linked = {*rebuilt, *rebuilt.values()}
    roots = {r for r in graph.graph.get("roots", []) if r in linked or (r in graph and graph.degree(r))}
    return _reaching(graph, roots, rebuilt)


def _reaching(graph, targets: set, rebuilt: dict) -> set:
    """The targets and every node with a path to one of them, a rebuilt value's exit op counting as a predecessor
    of its creation op: one walk back for all (linear, however many)."""
    seen, todo = set(targets), list(targets)
    while todo:
        node = todo.pop()
        befores = graph.predecessors(node) if node in graph else ()
        for before in (*befores, rebuilt[node]) if node in rebuilt else befores:
            if before not in seen:
                seen.add(before)
                todo.append(before)
    return seen


def _cut_reason(graph, edge, rebuilt: dict) -> str:
    """Why gradient cannot cross the tensor->op edge: `detach()` at line 3, `.item()` at line 5, ..."""
    tensor, op, _ = edge
    d, who = graph.nodes[op], describe(graph, tensor)
    if d["op_kind"] == "exit":
        call = _EXIT_CALLS.get(d["op"], d["op"])
        shown = f"{call[:-2]}({who})" if call in ("float()", "int()", "bool()", "complex()") else f"{who}{call}"
        reason = f"{shown} at line {d['line']} turns {who} into a plain Python number"
        for creation in (c for c, e in rebuilt.items() if e == op):
            c = graph.nodes[creation]
            reason += f", and `{c['label']}` at line {c['line']} builds a new tensor from it with no link back to {who}"
        return reason
    if d["op"] in ("detach", "detach_"):
        return f"{who}.detach() at line {d['line']} cuts it off the graph"
    if not d["grad_enabled"]:
        return f"`{_code(graph, d)}` (line {d['line']}) ran under torch.no_grad()"
    return f"`{_code(graph, d)}` (line {d['line']}) gives a result without gradient (`{d['label']}`: a comparison, " \
           "integer or index)"


def missing_gradients(graph, rebuilt: dict, reach: set) -> list:
    """Leaves that require grad but got none from any backward pass: unused, or the way was cut."""
    roots = graph.graph.get("roots", [])
    if not roots:
        return []
    found, carried = [], None
    for node in _leaves_without_gradient(graph, roots):
        cut = _first_cut(graph, node, reach)
        if cut is None:
            carried = _carried(graph, roots) if carried is None else carried
            if node in carried or graph.nodes[node].get("param") in carried:
                continue  # autograd's graph reaches it (or another version of the same parameter), so it got a
                # gradient the record does not hold: lean capture, a graph past the node budget, .grad reset inside
        found.append(_no_gradient(graph, node, describe(graph, roots[-1]), cut, rebuilt))
    return found


def _leaves_without_gradient(graph, roots: list) -> list:
    """Leaves made before the last backward root that require grad, neither they nor an earlier version with one."""
    last_root = max(int(r[1:]) for r in roots)
    return [node for node in tensor_nodes(graph) if graph.nodes[node]["is_leaf"]
            and graph.nodes[node]["requires_grad"] and int(node[1:]) <= last_root and not _chain_has_grad(graph, node)]


def _carried(graph, roots: list) -> set:
    """The tensors with a gradient-carrying path to a root, and the parameters they are versions of."""
    carried = ancestors(graph, roots)
    return carried | {graph.nodes[n]["param"] for n in carried if graph.nodes[n].get("param")}


def _no_gradient(graph, node: str, root: str, cut, rebuilt: dict) -> Diagnostic:
    """The finding for a leaf that got no gradient: unused in computing `root`, or `cut` on its way there."""
    line = graph.nodes[node]["line"]
    who = describe(graph, node) + (f" (line {line})" if line else "")
    if cut is None:
        message = (f"{who} requires grad but got no gradient: it is not used in computing {root}, the value "
                   f"backward() started from. Use it in the computation of {root}, or drop requires_grad.")
        return Diagnostic("no_gradient", message, [node], [], line)
    message = (f"{who} requires grad but got no gradient: {_cut_reason(graph, cut, rebuilt)}, so the "
               f"gradient of {root} cannot reach it. {_fix(graph, cut)}")
    return Diagnostic("no_gradient", message, [node, cut[1]], [cut], graph.nodes[cut[1]]["line"])


def _chain_has_grad(graph, node: str) -> bool:
    """True when this tensor, or an earlier version of it (before an in-place update), got a gradient."""
    while node is not None:
        d = graph.nodes[node]
        if has_grad(d) or d["pass_grads"]:
            return True
        node = d["previous"]
    return False


def _first_cut(graph, node: str, reach: set):
    """The first edge without gradient on the way from `node` to a root (None if there is no way at all)."""
    queue, seen = [node] if node in reach else [], {node}
    while queue:
        current = queue.pop(0)
        for _, nxt, key, data in graph.out_edges(current, keys=True, data=True):
            if nxt in reach and graph.nodes[current]["kind"] == "tensor" and not data["differentiable"]:
                return current, nxt, key
            if nxt in reach and nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    return None


def _fix(graph, edge) -> str:
    """What to write instead of the cut."""
    tensor, op, _ = edge
    d, who = graph.nodes[op], describe(graph, tensor)
    if d["op_kind"] == "exit":
        return f"Keep {who} a tensor: use {who} itself instead of a number made from it."
    if d["op"] in ("detach", "detach_"):
        return f"Use {who} instead of {who}.detach() where the gradient should flow."
    if not d["grad_enabled"]:
        return "Compute it outside `with torch.no_grad():` if the gradient should flow."
    return "Use a differentiable operation on the way to the result."


def cuts(graph, rebuilt: dict, reach: set) -> list:
    """detach, no_grad and `torch.tensor(y.item())` that stop a gradient on its way to a backward root."""
    found = []
    for tensor, op, key in _stopping_edges(graph):
        if any(o in reach for o in graph.successors(op)):
            outputs, edge = list(graph.successors(op)), (tensor, op, key)
            made = ", ".join(describe(graph, o) for o in outputs)
            message = (f"{_cut_reason(graph, edge, rebuilt)}: {made} carries no gradient back to "
                       f"{describe(graph, tensor)}. {_fix(graph, edge)}")
            found.append(Diagnostic("cut", message, [tensor, op, *outputs], [edge], graph.nodes[op]["line"]))
    for creation, exit_op in rebuilt.items():
        new = list(graph.successors(creation))
        tensor, _, key = next(iter(graph.in_edges(exit_op, keys=True)))
        if graph.nodes[tensor]["requires_grad"] and any(n in reach for n in new):
            edge = (tensor, exit_op, key)
            message = f"{_cut_reason(graph, edge, {creation: exit_op})}: the gradient stops there. {_fix(graph, edge)}"
            found.append(Diagnostic("rebuilt", message, [tensor, exit_op, creation, *new], [edge],
                                    graph.nodes[creation]["line"]))
    return found


def _stopping_edges(graph):
    """The tensor->op edges (u, v, key), in edge order, where detach() or no_grad stops a gradient."""
    nodes = graph.nodes
    for tensor, successors in graph.adjacency():
        if nodes[tensor]["kind"] == "tensor":
            yield from ((tensor, op, key) for op, keys in successors.items() for key, data in keys.items()
                        if not data["differentiable"] and _stops_gradient(graph, tensor, op))


def _stops_gradient(graph, tensor: str, op: str) -> bool:
    """detach() or an op under no_grad on a tensor that requires grad, giving floating results without gradient
    (in-place updates of parameters under no_grad keep requires_grad: those are optimizer steps, not cuts)."""
    d, outputs = graph.nodes[op], [graph.nodes[o] for o in graph.successors(op)]
    return (d["op_kind"] == "op" and graph.nodes[tensor]["requires_grad"] and (d["op"] in ("detach", "detach_")
                                                                            or not d["grad_enabled"])
            and any(o["dtype"].startswith(("float", "bfloat")) for o in outputs)
            and not any(o["requires_grad"] for o in outputs))


def _code(graph, op: dict) -> str:
    """The source line an op ran on (its label when the line is unknown)."""
    lines = (graph.graph.get("source") or "").splitlines()
    line = op.get("line")
    return lines[line - 1].strip() if line and line <= len(lines) else op["label"]


def _numbers_in(consts: str) -> list:
    """The float constants in an op's constant text (`6.0`, `[6.0, 2.0], requires_grad=True`)."""
    out = []
    for token in consts.replace("[", " ").replace("]", " ").replace(",", " ").split():
        try:
            out.append(float(token.split("=")[-1]))
        except ValueError:
            pass
    return out
