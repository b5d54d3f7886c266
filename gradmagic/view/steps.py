"""Optimizer steps of the drawing: each `opt.step()` is one node that stands for its ops, the `.grad` tensors it
read and the parameters' post-step versions (their values stay in the graph); `zero_grad()` is no node of its own."""
from __future__ import annotations

import bisect

import networkx as nx

from .blocks import contract, record_number, view_edge
from .sketch import as_digraph

__all__ = ["fold_optimizer_calls", "link_backward", "STEP_KIND"]

#: The node kind of an optimizer step in a drawing view.
STEP_KIND = "optimizer"


def fold_optimizer_calls(view: nx.DiGraph) -> nx.DiGraph:
    """Each optimizer step() becomes one node; a zero_grad()'s ops join a step of its optimizer (see _step_of)."""
    calls = view.graph.get("optimizer_calls") or []
    if not calls:
        return view
    view = _with_lean_steps(as_digraph(view), calls)
    step_of, members = _steps_of(calls), {}
    for node, data in view.nodes(data=True):
        if data.get("kind") == "op" and data.get("optimizer") is not None:
            members.setdefault(step_of[data["optimizer"]], []).append(node)
    members.pop(None, None)  # a zero_grad() with no step after it: its ops stay drawn
    if not members:
        return view
    owner = {node: f"step:{index}" for index, nodes in members.items() for node in nodes}
    _add_step_tensors(view, owner)
    owned, roots = {}, _RootsBefore(view)
    for node, key in owner.items():
        owned.setdefault(key, []).append(node)
    attrs = {f"step:{index}": _step_attrs(view, calls, index, nodes, owned[f"step:{index}"], roots)
             for index, nodes in members.items()}
    return contract(view, owner, attrs)


def link_backward(view: nx.DiGraph) -> None:
    """An edge from the root of the backward pass before each step to the step, so the step is drawn after it; it
    replaces the gradient-less edges from the module boxes whose parameters the step updated (their count is said)."""
    for node, data in list(view.nodes(data=True)):
        root = data.get("after_root") if data.get("kind") == STEP_KIND else None
        if root not in view or root == node or view.has_edge(root, node) or nx.has_path(view, node, root):
            continue
        boxes = [u for u, _, d in view.in_edges(node, data=True)
                 if view.nodes[u].get("kind") == "cluster" and not d.get("differentiable")]
        view.remove_edges_from((u, node) for u in boxes)
        view.add_edge(root, node, **view_edge(1, backward=True))
        if boxes:
            data["caption"] += f" of {len(boxes)} module{'s' if len(boxes) != 1 else ''}"


def _steps_of(calls: list) -> list:
    """For each call, the step() call it belongs to: itself, or for a zero_grad() the next step() of the same
    optimizer (the one before when none follows; None when the optimizer never steps)."""
    steps, upcoming, last = [None] * len(calls), {}, {}
    for index in reversed(range(len(calls))):
        who = (calls[index]["name"], calls[index]["class"])
        if calls[index]["call"] == "step":
            upcoming[who] = index
            last.setdefault(who, index)
        steps[index] = index if calls[index]["call"] == "step" else upcoming.get(who)
    return [step if step is not None else last.get((c["name"], c["class"])) for step, c in zip(steps, calls)]


def _add_step_tensors(view: nx.DiGraph, owner: dict) -> None:
    """Give each step the tensors its ops made and those only its ops read that nothing drawn made (`.grad`)."""
    for op, key in list(owner.items()):
        for node in view.successors(op):
            if view.nodes[node].get("kind") == "tensor":
                owner.setdefault(node, key)
        for node in view.predecessors(op):
            if view.nodes[node].get("kind") == "tensor" and node not in owner and view.in_degree(node) == 0 \
                    and all(owner.get(s) == key for s in view.successors(node)):
                owner[node] = key


def _step_attrs(view: nx.DiGraph, calls: list, index: int, ops: list, owned: list, roots) -> dict:
    """`opt.step()  SGD(lr=0.1)` and `updated 4 parameters`, placed where the step() itself ran."""
    call, mine = calls[index], set(owned)
    updated = [n for n in call["updated"] if n in mine]
    count = len(updated) or len({n for n in owned if view.nodes[n].get("param")})
    anchor = next((op for op in ops if view.nodes[op].get("optimizer") == index), ops[0])
    who = f"{call['name']}.step()" if call["name"] else "step()"
    return {"kind": STEP_KIND, "label": f"{who}  {call['class']}({call['settings']})",
            "caption": f"updated {count} parameter{'s' if count != 1 else ''}", "optimizer": index,
            "line": call.get("line"), "ops": sum(1 for op in ops if view.nodes[op].get("kind") == "op"),
            "updated": updated, "after_root": roots.before(updated), "anchor": anchor, "members": ops}


class _RootsBefore:
    """The backward roots of a view in record order, to find the last one before a step's updates."""

    def __init__(self, view: nx.DiGraph):
        self.roots = sorted((r for roots in view.graph.get("pass_roots") or () for r in roots), key=record_number)
        self.numbers = [record_number(r) for r in self.roots]

    def before(self, updated: list):
        """The root of the last backward pass recorded before the first of `updated` (records are in time order)."""
        first = min((record_number(n) for n in updated), default=None)
        at = len(self.roots) if first is None else bisect.bisect_left(self.numbers, first)
        return self.roots[at - 1] if at else None


def _with_lean_steps(view: nx.DiGraph, calls: list) -> nx.DiGraph:
    """The lean capture records no step ops: one stand-in op per step, from the parameters before to after it,
    placed right after the op that made the root of the backward pass before it (op order is time order)."""
    have = {d.get("optimizer") for _, d in view.nodes(data=True) if d.get("kind") == "op"}
    missing = [i for i, call in enumerate(calls) if call["call"] == "step" and i not in have
               and any(n in view for n in call["updated"])]
    if not missing:
        return view
    after, roots = {}, _RootsBefore(view)
    for index in missing:
        root = roots.before([n for n in calls[index]["updated"] if n in view])
        made_by = next(iter(view.predecessors(root)), None) if root in view else None
        after.setdefault(made_by, []).append(index)
    out = nx.DiGraph(**view.graph)
    for node, data in view.nodes(data=True):
        out.add_node(node, **data)
        for index in after.pop(node, ()):
            _add_lean_step(out, calls, index)
    for index in [i for indices in after.values() for i in indices]:  # no pass before it: at the end
        _add_lean_step(out, calls, index)
    out.add_edges_from(view.edges(data=True))
    for index in missing:
        op = f"step_op:{index}"
        for node in (n for n in calls[index]["updated"] if n in view):
            before = view.nodes[node].get("previous")
            if before in view:
                out.add_edge(before, op, **view_edge(1))
            out.add_edge(op, node, **view_edge(1))
    return out


def _add_lean_step(view: nx.DiGraph, calls: list, index: int) -> None:
    view.add_node(f"step_op:{index}", kind="op", op="step", label="step", optimizer=index, module=None,
                  line=calls[index].get("line"), op_kind="op")
