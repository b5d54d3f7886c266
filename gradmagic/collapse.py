"""Collapse stage of the drawing: nn.Module calls become boxes, repeated loop iterations fold (loops.py).

A module call is a run of consecutive ops under one module path cut at `depth` (so boxes never form a cycle);
its box hides the tensors it made and uses alone and the parameters only it uses.
"""
from __future__ import annotations

from collections import Counter

import networkx as nx

from .blocks import BLOCK_KINDS, OP_LIKE, contract, lines_text
from .loops import fold_loops

__all__ = ["collapse_view", "check_options", "group_modules", "DEFAULT_MAX_NODES"]

#: Automatic mode collapses a drawing until it has at most this many nodes.
DEFAULT_MAX_NODES = 100


def collapse_view(view: nx.DiGraph, *, depth: int | None = None, max_nodes: int | None = None,
                  total: int | None = None) -> nx.DiGraph:
    """Modules grouped at `depth` (None: as deep as fits), loops folded while over `max_nodes`; says what it hid."""
    check_options(depth, max_nodes)
    limit = DEFAULT_MAX_NODES if max_nodes is None else max_nodes
    if depth is not None:
        view = group_modules(view, depth)
    if len(view) > limit:
        view = fold_loops(view)
    if depth is None:
        base = view
        for level in range(_module_depth(base) - 1, -1, -1):
            if len(view) <= limit:
                break
            view = group_modules(base, level)
    view.graph["hidden_note"] = _hidden_note(view, len(view) if total is None else total, automatic=depth is None)
    return view


def group_modules(view: nx.DiGraph, depth: int) -> nx.DiGraph:
    """Each call of a module `depth` levels down (0: top level) becomes one box, its inner tensors hidden."""
    owner = _module_calls(view, depth)
    if not owner:
        return view
    _absorb_internals(view, owner)
    blocks = {}
    for node, key in owner.items():
        blocks.setdefault(key, []).append(node)
    calls = Counter(prefix for prefix, _ in blocks)
    attrs = {key: _cluster_attrs(view, key, members, calls[key[0]] > 1) for key, members in blocks.items()}
    grouped = contract(view, owner, attrs)
    grouped.graph["module_depth"] = depth
    return grouped


def check_options(depth, max_nodes) -> None:
    """ValueError unless depth is None or a whole number >= 0 and max_nodes None or >= 1."""
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise ValueError(f"depth={depth!r}: use 0 (one box per top-level module), a larger whole number "
                         "to open more levels, or None to choose automatically")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int) or max_nodes < 1):
        raise ValueError(f"max_nodes={max_nodes!r}: use a whole number of at least 1, or None for "
                         f"{DEFAULT_MAX_NODES}; show_all=True draws everything")


# ---- modules --------------------------------------------------------------------------------------------


def _module_prefix(module, depth: int) -> str | None:
    """The first depth + 1 parts of a module path, or None when the op sits no deeper than `depth`."""
    if not isinstance(module, str) or not module:
        return None
    parts = module.split(".")
    return ".".join(parts[:depth + 1]) if len(parts) > depth else None


def _module_depth(view: nx.DiGraph) -> int:
    """How many levels deep the deepest module path of an op goes."""
    return max((len(d["module"].split(".")) for _, d in view.nodes(data=True)
                if d.get("kind") == "op" and isinstance(d.get("module"), str) and d["module"]), default=0)


def _module_calls(view: nx.DiGraph, depth: int) -> dict:
    """Op -> (module prefix, call number): consecutive ops under one prefix are one call of that module."""
    owner, current, calls = {}, None, Counter()
    for node, data in view.nodes(data=True):
        if data.get("kind") not in OP_LIKE:
            continue
        prefix = _module_prefix(data.get("module"), depth) if data["kind"] == "op" else None
        if prefix is None:
            current = None  # a call is contiguous, so boxes never form a cycle
            continue
        if current is None or current[0] != prefix:
            calls[prefix] += 1
            current = (prefix, calls[prefix])
        owner[node] = current
    return owner


def _absorb_internals(view: nx.DiGraph, owner: dict) -> None:
    """Add to each call the tensors it made and uses alone, and the parameters (and their set-up ops) it alone uses."""
    kept = set(view.graph.get("roots") or ())
    for node in reversed(_topological(view)):
        data = view.nodes[node]
        if node in owner or node in kept or data.get("role") == "output":
            continue
        after = {owner.get(s) for s in view.successors(node)}
        if None in after or len(after) > 1:
            continue
        before = [owner.get(p) for p in view.predecessors(node)]
        key = next(iter(after)) if after else (before[0] if before else None)
        if key is None:
            continue
        made_inside = bool(before) and all(k == key for k in before)
        if made_inside or (after and _owns(view, node, key[0])):
            owner[node] = key


def _owns(view: nx.DiGraph, node, prefix: str) -> bool:
    """A parameter of the module at `prefix`, or an op that only sets up such parameters (`fill_` in `__init__`)."""
    data = view.nodes[node]
    if data.get("kind") == "tensor":  # an unnamed leaf used by one call only is a parameter of an unnamed module
        return _param_of(data, prefix) or (data.get("name") is None and view.in_degree(node) == 0)
    inputs = [view.nodes[p] for p in view.predecessors(node)]
    return data.get("kind") == "op" and bool(inputs) and all(_param_of(d, prefix) for d in inputs)


def _param_of(data: dict, prefix: str) -> bool:
    """True for a tensor named under the module path `prefix` (`model.0.weight` under `model.0`)."""
    name = data.get("param") or data.get("name") or ""
    return data.get("kind") == "tensor" and isinstance(name, str) and name.startswith(prefix + ".")


def _cluster_attrs(view: nx.DiGraph, key: tuple, members: list, numbered: bool) -> dict:
    """The box for one module call: `model.0  (23 ops)` and its most frequent ops."""
    prefix, call = key
    ops = Counter()  # the module's own ops (set-up ops of its parameters are hidden, not counted)
    for node in members:
        data = view.nodes[node]
        if data["kind"] in BLOCK_KINDS:
            ops[data["label"]] += data.get("ops", 1)
        elif data["kind"] == "op" and _module_prefix(data.get("module"), prefix.count(".")) == prefix:
            ops[data.get("op") or "op"] += 1
    params = len({view.nodes[n].get("param") for n in members if view.nodes[n].get("param")})
    count = sum(ops.values())
    name = f"{prefix} · call {call}" if numbered else prefix
    label = f"{name}  ({count:,} op{'s' if count != 1 else ''})"
    common = ", ".join(f"{op} ×{k}" if k > 1 else op for op, k in ops.most_common(3))
    caption = common + (", …" if len(ops) > 3 else "") + (f" · {params} params" if params else "")
    return {"kind": "cluster", "module": prefix, "call": call, "label": label,
            "caption": caption, "ops": count, "params": params, "members": members}


# ---- shared ---------------------------------------------------------------------------------------------


def _topological(view: nx.DiGraph) -> list:
    """Nodes in topological order, or in view order when a cycle makes that impossible."""
    try:
        return list(nx.topological_sort(view))
    except nx.NetworkXUnfeasible:
        return list(view)


def _hidden_note(view: nx.DiGraph, total: int, *, automatic: bool) -> str | None:
    """One sentence on what the collapsed view hides and how to see it, or None when it hides nothing."""
    loops = [d for _, d in view.nodes(data=True) if d.get("kind") == "loop"]
    boxes = sum(1 for _, d in view.nodes(data=True) if d.get("kind") == "cluster")
    if not loops and not boxes:
        return None
    parts, hints = [], ["--all"]
    if loops:
        parts.append(_loops_phrase(loops))
    if boxes:
        depth = view.graph.get("module_depth", 0)
        parts.append(f"modules grouped at depth {depth} into {boxes} box{'es' if boxes > 1 else ''}")
        hints.append(f"--depth {depth + 1}")
    if loops or automatic:
        hints.append("a higher --max-nodes")
    return f"Showing {len(view):,} of {total:,} nodes: {'; '.join(parts)}; use {_and(hints, 'or')} to see more."


def _loops_phrase(loops: list) -> str:
    """`a loop of 1,000 iterations folded (line 8)`, or `2 loops of 1,000 and 50 iterations folded (lines 3–8)`."""
    spans = [d["lines"] for d in loops if d.get("lines")]
    where = lines_text(min(a for a, _ in spans), max(b for _, b in spans)) if spans else ""
    counts = [f"{c:,}" for c in sorted((d["iterations"] for d in loops), reverse=True)]
    if len(loops) == 1:
        return f"a loop of {counts[0]} iterations folded{where}"
    return f"{len(loops)} loops of {_and(counts)} iterations folded{where}"


def _and(items, word: str = "and") -> str:
    """`a, b and c`."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"
