"""Diagnose a captured graph: the usual reasons a gradient is missing, wrong or NaN, each with its fix."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx
import torch

from .. import text
from ..graph import tensor_nodes

__all__ = ["diagnose", "Diagnostic", "KINDS", "hook_changes", "pass_gradient"]

#: Every kind of diagnostic, in the order `diagnose` reports them.
KINDS = ("no_gradient", "cut", "rebuilt", "accumulated", "nonleaf_grad", "nan_value", "nan_grad", "incomplete")

_EXIT_CALLS = {"item": ".item()", "tolist": ".tolist()", "numpy": ".numpy()", "float": "float()", "int": "int()",
               "bool": "bool()", "index": "int()", "__complex__": "complex()", "__array__": "numpy.asarray()"}


@dataclass
class Diagnostic:
    """One finding: what went wrong, in words a learner understands, and what to mark on the picture."""

    kind: str
    message: str
    nodes: list = field(default_factory=list)
    edges: list = field(default_factory=list)  # (u, v, key)
    line: int | None = None

    def __str__(self) -> str:
        return self.message


def diagnose(graph: nx.MultiDiGraph) -> list:
    """Every problem found in the graph, most fundamental first (empty for a clean program).

    Never raises: a check that meets a state of the record it does not expect becomes one `incomplete` line."""
    found = []

    def run(check, *args):
        try:
            found.extend(check(graph, *args))
        except Exception as error:  # gradmagic's own bug or an unforeseen record: say so, keep the other checks
            first = (str(error).strip().splitlines() or [""])[0]
            found.append(Diagnostic("incomplete", f"gradmagic could not finish one of its checks "
                                                  f"({check.__name__.strip('_')}: {type(error).__name__}: {first})"))

    rebuilt, reach = {}, set()
    try:
        rebuilt = _rebuilt_links(graph)
        reach = _roots_reach(graph, rebuilt)
    except Exception as error:
        found.append(Diagnostic("incomplete", f"gradmagic could not trace the paths to the backward roots "
                                              f"({type(error).__name__}: {error})"))
    for check, args in ((_missing_gradients, (rebuilt, reach)), (_cuts, (rebuilt, reach)), (_accumulated, ()),
                        (_nonleaf_grad_reads, ()), (_first_nan_value, ()), (_first_nan_gradient, ())):
        run(check, *args)
    explained = {e for d in found if d.kind == "no_gradient" for e in d.edges}
    return [d for d in found if d.kind not in ("cut", "rebuilt") or not explained.issuperset(d.edges)]


# ---- where gradients stop ----------------------------------------------------------------------


def _rebuilt_links(graph) -> dict:
    """{creation op: exit op} where a tensor was built from a number a tensor handed out (`torch.tensor(y.item())`)."""
    links, recent = {}, {}
    for op in _ops(graph):
        d = graph.nodes[op]
        if d["op_kind"] == "exit" and isinstance(d["result"], float):
            recent[d["result"]] = op
        elif d["op_kind"] == "op" and not graph.in_edges(op) and recent:
            for const in _numbers_in(d["consts"]):  # constants are kept as text with 6 significant digits
                match = [r for r in recent if math.isclose(r, const, rel_tol=1e-5)]
                if match:
                    links[op] = recent[match[-1]]
    return links


def _roots_reach(graph, rebuilt: dict) -> set:
    """Every node from which some backward root can be reached (through any edge, and through rebuilt values)."""
    flow = nx.DiGraph(graph.edges())
    flow.add_edges_from((exit_op, creation) for creation, exit_op in rebuilt.items())
    roots = set(graph.graph.get("roots", [])) & set(flow)
    return reaching(flow, roots)


def reaching(graph: nx.DiGraph, targets: set) -> set:
    """The targets and every node with a path to one of them: one walk back for all (linear, however many)."""
    seen, todo = set(targets), list(targets)
    while todo:
        for before in graph.predecessors(todo.pop()):
            if before not in seen:
                seen.add(before)
                todo.append(before)
    return seen


def _cut_reason(graph, edge, rebuilt: dict) -> str:
    """Why gradient cannot cross the tensor->op edge: `detach()` at line 3, `.item()` at line 5, ..."""
    tensor, op, _ = edge
    d, who = graph.nodes[op], _describe(graph, tensor)
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


def _missing_gradients(graph, rebuilt: dict, reach: set) -> list:
    """Leaves that require grad but got none from any backward pass: unused, or the way was cut."""
    roots = graph.graph.get("roots", [])
    if not roots:
        return []
    last_root, found, carried = max(int(r[1:]) for r in roots), [], None
    for node in tensor_nodes(graph):
        d = graph.nodes[node]
        if not (d["is_leaf"] and d["requires_grad"]) or int(node[1:]) > last_root or _chain_has_grad(graph, node):
            continue
        root = _describe(graph, roots[-1])
        who = f"{_describe(graph, node)}" + (f" (line {d['line']})" if d["line"] else "")
        cut = _first_cut(graph, node, reach)
        if cut is None and carried is None:
            carried = _carried(graph, roots)
            carried |= {graph.nodes[n]["param"] for n in carried if graph.nodes[n].get("param")}
        if cut is None and (node in carried or d.get("param") in carried):
            continue  # autograd's graph reaches it (or another version of the same parameter), so it got a gradient
            # the record does not hold: lean capture, a graph past the node budget, .grad reset inside backward
        if cut is None:
            message = (f"{who} requires grad but got no gradient: it is not used in computing {root}, the value "
                       f"backward() started from. Use it in the computation of {root}, or drop requires_grad.")
            found.append(Diagnostic("no_gradient", message, [node], [], d["line"]))
        else:
            message = (f"{who} requires grad but got no gradient: {_cut_reason(graph, cut, rebuilt)}, so the "
                       f"gradient of {root} cannot reach it. {_fix(graph, cut)}")
            found.append(Diagnostic("no_gradient", message, [node, cut[1]], [cut], graph.nodes[cut[1]]["line"]))
    return found


def _carried(graph, roots) -> set:
    """The tensors with a gradient-carrying path to a root."""
    view = nx.subgraph_view(graph, filter_edge=lambda u, v, k: graph.edges[u, v, k].get("differentiable", True))
    return set().union(*(nx.ancestors(view, r) for r in roots if r in graph))


def _chain_has_grad(graph, node: str) -> bool:
    """True when this tensor, or an earlier version of it (before an in-place update), got a gradient."""
    while node is not None:
        d = graph.nodes[node]
        if d["grad"] is not None or d["grad_stats"] is not None or d["pass_grads"]:
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
    d, who = graph.nodes[op], _describe(graph, tensor)
    if d["op_kind"] == "exit":
        return f"Keep {who} a tensor: use {who} itself instead of a number made from it."
    if d["op"] in ("detach", "detach_"):
        return f"Use {who} instead of {who}.detach() where the gradient should flow."
    if not d["grad_enabled"]:
        return "Compute it outside `with torch.no_grad():` if the gradient should flow."
    return "Use a differentiable operation on the way to the result."


def _cuts(graph, rebuilt: dict, reach: set) -> list:
    """detach, no_grad and `torch.tensor(y.item())` that stop a gradient on its way to a backward root."""
    found = []
    for tensor, op, key, data in graph.edges(keys=True, data=True):
        if graph.nodes[tensor]["kind"] == "tensor" and not data["differentiable"] \
                and _stops_gradient(graph, tensor, op) and any(o in reach for o in graph.successors(op)):
            outputs, edge = list(graph.successors(op)), (tensor, op, key)
            made = ", ".join(_describe(graph, o) for o in outputs)
            message = (f"{_cut_reason(graph, edge, rebuilt)}: {made} carries no gradient back to "
                       f"{_describe(graph, tensor)}. {_fix(graph, edge)}")
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


def _stops_gradient(graph, tensor: str, op: str) -> bool:
    """detach() or an op under no_grad on a tensor that requires grad, giving floating results without gradient
    (in-place updates of parameters under no_grad keep requires_grad: those are optimizer steps, not cuts)."""
    d, outputs = graph.nodes[op], [graph.nodes[o] for o in graph.successors(op)]
    return (d["op_kind"] == "op" and graph.nodes[tensor]["requires_grad"] and (d["op"] in ("detach", "detach_")
                                                                            or not d["grad_enabled"])
            and any(o["dtype"].startswith(("float", "bfloat")) for o in outputs)
            and not any(o["requires_grad"] for o in outputs))


# ---- gradients that are there but surprising ---------------------------------------------------


def _accumulated(graph) -> list:
    """Leaves whose .grad already held a gradient when the run started: backward() added to it."""
    found = []
    for node in tensor_nodes(graph):
        d = graph.nodes[node]
        if d["grad_before"] is None or not _nonzero(d["grad_before"]):
            continue  # none, or zeroed with x.grad.zero_(): nothing was added to
        who = _describe(graph, node)
        has_grad = d["grad"] is not None or d["grad_stats"] is not None
        now = f", and it is now {_value(d['grad'], d['grad_stats'])}" if has_grad else ""
        message = (f"{who}.grad already held {_value(d['grad_before'], None)} before this run, so backward() added "
                   f"this run's gradient to it{now}. Reset it before backward(): `{who}.grad = None` "
                   f"(or optimizer.zero_grad()).")
        found.append(Diagnostic("accumulated", message, [node], [], d["line"]))
    return found


def _nonleaf_grad_reads(graph) -> list:
    """`.grad` read on a tensor that is not a leaf: it is always None there."""
    found = []
    for node, line in graph.graph.get("grad_reads", []):
        d, who = graph.nodes[node], _describe(graph, node)
        seen = pass_gradient(graph, node)  # .grad stays None on a non-leaf; the gradient of its last pass
        shown = f" (gradmagic saw its gradient: {_value(seen, None)})" if seen is not None else ""
        message = (f"line {line} reads {who}.grad, which is None: {who} is computed from other tensors (not a leaf), "
                   f"and autograd keeps .grad only on leaves{shown}. Call {who}.retain_grad() before backward() "
                   f"to keep it.")
        found.append(Diagnostic("nonleaf_grad", message, [node], [], line))
    return found


def _first_nan_value(graph) -> list:
    """The first op (in record order) whose result holds NaN or inf although its inputs do not."""
    for op in _ops(graph):
        inputs, outputs = list(dict.fromkeys(graph.predecessors(op))), list(graph.successors(op))
        bad = [o for o in outputs if _nonfinite_value(graph.nodes[o])]
        if bad and not any(_nonfinite_value(graph.nodes[i]) for i in inputs):
            d, out = graph.nodes[op], graph.nodes[bad[0]]
            given = ", ".join(f"{_describe(graph, i)} = {_value(graph.nodes[i]['value'], graph.nodes[i]['stats'])}"
                              for i in inputs)
            made = f"{out['label']} = " if out["label"] else ""
            message = (f"the first {_kind_of(out['value'], out['stats'])} value appears at line {d['line']}: "
                       f"`{d['label']}` made {made}{_value(out['value'], out['stats'])} from {given or 'constants'}. "
                       f"Check its inputs (log or sqrt of a negative number, 0/0, overflow).")
            return [Diagnostic("nan_value", message, [*inputs, op, bad[0]], [], d["line"])]
    return []


def _first_nan_gradient(graph) -> list:
    """The first op whose backward sent NaN or inf to an input while its values and output gradients are finite."""
    for op in _ops(graph):
        outputs = list(graph.successors(op))
        around = [graph.nodes[n] for n in (*graph.predecessors(op), *outputs)]
        if any(_nonfinite_value(n) for n in around) or any(_nonfinite(pass_gradient(graph, o)) for o in outputs):
            continue  # a NaN value explains it, or the NaN came from further down
        for tensor, _, key, data in graph.in_edges(op, keys=True, data=True):
            if _nonfinite(data.get("flow")):
                d, t = graph.nodes[op], graph.nodes[tensor]
                message = (f"the first {_kind_of(data['flow'])} gradient comes from `{d['label']}` at line "
                           f"{d['line']}: its backward sends {_value(data['flow'], None)} to "
                           f"{_describe(graph, tensor)} "
                           f"(= {_value(t['value'], t['stats'])}) although everything around it is finite. Keep its "
                           f"input away from where its derivative is infinite (sqrt or norm at 0, log at 0), e.g. add "
                           f"a small epsilon.")
                return [Diagnostic("nan_grad", message, [tensor, op], [(tensor, op, key)], d["line"])]
    return []


# ---- gradient hooks ------------------------------------------------------------------------------


def pass_gradient(graph, node: str, p: int | None = None):
    """The gradient that reached a tensor in backward pass p (the last pass that reached it if None): a value,
    a stats dict, or None. Not `.grad`, which is what a leaf accumulated."""
    grads = graph.nodes[node].get("pass_grads") or {}
    if p is None:
        return grads[max(grads)] if grads else None
    return grads.get(p)


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
        if given is None or arriving is None or _same(given, arriving):
            continue
        who = graph.nodes[node].get("label") or _describe(graph, node)
        where = f"line {line}" if line else "registered before the run"
        found.append(f"{who} has a gradient hook ({where}) that changed its gradient: autograd's "
                     f"{_value(given, None)} vs chain rule {_value(arriving, None)}")
    return found


def _arriving(graph, node: str, p: int):
    """Σ of the gradients that flowed into `node` along its edges in pass p (before any hook on it), or None."""
    flows = [(d.get("pass_flows") or {}).get(p) for _, _, d in graph.out_edges(node, data=True)
             if d.get("differentiable")]
    flows = [f for f in flows if f is not None]
    if not flows:
        return None
    if len(flows) == 1:
        return flows[0]
    if any(isinstance(f, dict) for f in flows):
        return None
    return torch.tensor(flows, dtype=torch.float64).sum(0).tolist()


def _same(a, b) -> bool:
    """Equal within float32 rounding; for large tensors (stats dicts), equal norms."""
    if isinstance(a, dict) or isinstance(b, dict):
        na, nb = (v.get("norm") if isinstance(v, dict) else None for v in (a, b))
        return na is None or nb is None or math.isclose(na, nb, rel_tol=1e-4, abs_tol=1e-12)
    fa, fb = text.flatten(a), text.flatten(b)
    if len(fa) != len(fb):
        return False
    scale = max([abs(v) for v in (*fa, *fb)] + [0.0])
    return all(abs(x - y) <= 1e-4 * scale + 1e-12 for x, y in zip(fa, fb))


# ---- small helpers -----------------------------------------------------------------------------


def _ops(graph) -> list:
    """Op nodes in record order."""
    return sorted((n for n, d in graph.nodes(data=True) if d["kind"] == "op"), key=lambda n: int(n[2:]))


def _describe(graph, node: str) -> str:
    """`x`, or `the result of add (line 3)` for an anonymous tensor."""
    d = graph.nodes[node]
    if d.get("label"):
        return d["label"]
    ops = list(graph.predecessors(node))
    if ops:
        op = graph.nodes[ops[0]]
        return f"the result of `{op['label']}` (line {op['line']})"
    return f"a tensor from outside ({text.shape_text(d['shape'])})"


def _code(graph, op: dict) -> str:
    """The source line an op ran on (its label when the line is unknown)."""
    lines = (graph.graph.get("source") or "").splitlines()
    line = op.get("line")
    return lines[line - 1].strip() if line and line <= len(lines) else op["label"]


def _value(value, stats) -> str:
    return text.value_text(value, stats) or "?"


def _numbers_in(consts: str) -> list:
    """The float constants in an op's constant text (`6.0`, `[6.0, 2.0], requires_grad=True`)."""
    out = []
    for token in consts.replace("[", " ").replace("]", " ").replace(",", " ").split():
        try:
            out.append(float(token.split("=")[-1]))
        except ValueError:
            pass
    return out


def _nonzero(value) -> bool:
    """True when a value or stats dict has an element other than 0."""
    if isinstance(value, dict):
        return bool(value.get("min") or value.get("max"))
    return any(v != 0 for v in text.flatten(value))


def _nonfinite(value, stats=None) -> bool:
    """True when a value (number or nested list) or a stats dict holds NaN or inf."""
    if isinstance(stats, dict) or isinstance(value, dict):
        s = stats if isinstance(stats, dict) else value
        return bool(s.get("nan") or s.get("inf"))
    return any(isinstance(v, float) and not math.isfinite(v) for v in text.flatten(value))


def _nonfinite_value(node: dict) -> bool:
    return _nonfinite(node["value"], node["stats"])


def _kind_of(value, stats=None) -> str:
    s = stats if isinstance(stats, dict) else value if isinstance(value, dict) else None
    if s is not None:
        return "NaN" if s.get("nan") else "inf"
    return "NaN" if any(isinstance(v, float) and math.isnan(v) for v in text.flatten(value)) else "inf"
