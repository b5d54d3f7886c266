"""Collapse stage of the drawing: nn.Module calls become boxes, repeated loop iterations fold (loops.py).

A module call is a run of consecutive ops under one module path cut at `depth` (so boxes never form a cycle);
its box hides the tensors it made and uses alone and the parameters only it uses.
"""
from __future__ import annotations

from collections import Counter

import networkx as nx

from .blocks import BLOCK_KINDS, OP_LIKE, contract, lines_text, module_caption, record_number
from .loops import fold_loops, fold_training_loops
from .sketch import as_digraph, without
from .steps import STEP_KIND, fold_optimizer_calls, link_backward

__all__ = ["collapse_view", "check_collapse_options", "group_modules", "DEFAULT_MAX_NODES"]

#: Automatic mode collapses a drawing until it has at most this many nodes.
DEFAULT_MAX_NODES = 100
_LABEL_CHARS = 44  # the picture cuts a block's label past this many characters


def collapse_view(view: nx.DiGraph, *, depth: int | None = None, max_nodes: int | None = None,
                  total: int | None = None) -> nx.DiGraph:
    """Optimizer steps as one node each, one box per module call (leaf modules, or `depth`), training loops folded
    (unless a `max_nodes` the unfolded view fits was given); shallower modules and any loop folded while over
    `max_nodes` (both checked by drawing_view). Says what it hid, and when the limit was missed."""
    limit = DEFAULT_MAX_NODES if max_nodes is None else max_nodes
    if view.graph.get("optimizer_calls") or _module_depth(view):  # steps or boxes to make: networkx from here on
        view = as_digraph(view)
    stepped = fold_optimizer_calls(_without_unused_copies(_without_loose_past_detail(view)))
    levels = [depth] if depth is not None else [None, *range(_module_depth(stepped) - 1, -1, -1)]
    for level in levels:
        shown = _grouped_and_folded(stepped, level, limit, always_fold_training=max_nodes is None)
        if len(shown) <= limit:
            break
    shown = as_digraph(shown)
    link_backward(shown)
    total = len(view) if total is None else total
    shown.graph["hidden_note"] = _hidden_note(shown, total, automatic=depth is None, limit=limit)
    return shown


def _without_loose_past_detail(view: nx.DiGraph) -> nx.DiGraph:
    """The view less the names' tensors made past the detail budget that nothing drawn connects (their ops were only
    counted): a row of loose boxes a whole-detail picture would not have; the table shows their values."""
    loose = [n for n in view.graph.get("past_detail", ()) if n in view and not view.in_degree(n)
             and not any(True for _ in view.successors(n))]
    if not loose:
        return view
    nodes = dict(view.nodes(data=True))
    kept = without(view, set(loose))
    kept.graph["past_detail_left_out"] = [nodes[n].get("label") or n for n in loose]
    return kept


def _without_unused_copies(view: nx.DiGraph) -> nx.DiGraph:
    """The view less what no gradient and no name depends on: unused results of ops that carry no gradient (the
    copies `copy.deepcopy` makes of a module's parameters) and the parameters of modules never called."""
    nodes = dict(view.nodes(data=True))
    dead, stack = set(), [n for n, successors in view.adjacency() if not successors]
    while stack:
        node = stack.pop()
        data = nodes[node]
        if node in dead or data.get("kind") != "op" or data.get("module") or data.get("optimizer") is not None \
                or any(s not in dead for s in view.successors(node)) \
                or any(d.get("differentiable", True) for _, _, d in view.in_edges(node, data=True)):
            continue
        dead.add(node)
        stack += [p for p in view.predecessors(node) if nodes[p].get("kind") == "op"]
    called = set(view.graph.get("module_classes") or ())
    unused = {n for n, d in nodes.items() if d.get("kind") == "tensor" and d.get("param")
              and d["param"].rpartition(".")[0] not in called and all(s in dead for s in view.successors(n))
              and not any(p not in dead for p in view.predecessors(n))}
    if not dead and not unused:
        return view
    kept = as_digraph(without(view, dead | unused))
    kept.graph["unused_parameters"] = len(unused)
    return kept


def _grouped_and_folded(view: nx.DiGraph, depth: int | None, limit: int, *, always_fold_training: bool) -> nx.DiGraph:
    """Modules grouped at `depth` (None: leaf modules); training loops folded (by default always, else like any
    loop), other loops when over `limit`."""
    view = group_modules(view, depth)
    if always_fold_training or len(view) > limit:
        view = fold_training_loops(view)
    return fold_loops(view) if len(view) > limit else view


def group_modules(view: nx.DiGraph, depth: int | None) -> nx.DiGraph:
    """Each call of a module `depth` levels down (0: top level; None: each leaf module) becomes one box."""
    owner = _module_calls(view, depth)
    if not owner:
        return view
    view = as_digraph(view)
    _absorb_internals(view, owner)
    blocks = {}
    for node, key in owner.items():
        blocks.setdefault(key, []).append(node)
    calls = Counter(prefix for prefix, _ in blocks)
    made = _calls_by_module(view)
    attrs = {key: _cluster_attrs(view, key, members, calls[key[0]], made.get(key[0], []))
             for key, members in blocks.items()}
    grouped = contract(view, owner, attrs)
    grouped.graph["module_depth"] = depth
    return grouped


def check_collapse_options(depth, max_nodes) -> None:
    """ValueError unless depth is None or a whole number >= 0 and max_nodes None or >= 1.

    Checked where they enter: drawing_view (the view stage) and the front ends' options (before the code runs)."""
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


def _leaf_modules(view: nx.DiGraph) -> set:
    """Module paths of ops with no op under a path inside them: the modules that called no other module."""
    paths = {d["module"] for _, d in view.nodes(data=True) if d.get("kind") == "op" and isinstance(d.get("module"), str)
             and d["module"]}
    inner = {".".join(p.split(".")[:k]) for p in paths for k in range(1, p.count(".") + 1)}
    return paths - inner


def _module_calls(view: nx.DiGraph, depth: int | None) -> dict:
    """Op -> (module prefix, call number): consecutive ops under one prefix are one call of that module."""
    owner, current, calls = {}, None, Counter()
    leaves = _leaf_modules(view) if depth is None else set()
    for node, data in view.nodes(data=True):
        if data.get("kind") not in OP_LIKE:
            continue
        module = data.get("module") if data["kind"] == "op" else None
        prefix = (module if module in leaves else None) if depth is None else _module_prefix(module, depth)
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
    for node in reversed(_topological(view)):
        data = view.nodes[node]
        if node in owner or data.get("role") == "output":  # the roots of backward passes are outputs
            continue
        after = {owner.get(s) for s in view.successors(node) if view.nodes[s].get("kind") != STEP_KIND}
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


def _calls_by_module(view: nx.DiGraph) -> dict:
    """{module path: its recorded calls, in order}."""
    calls = {}
    for call in view.graph.get("module_calls") or ():
        calls.setdefault(call.get("module"), []).append(call)
    return calls


def _cluster_attrs(view: nx.DiGraph, key: tuple, members: list, boxes: int, calls: list) -> dict:
    """The box for one module call: `model.0 · Linear`, its shapes, parameters and (several) ops."""
    prefix, call = key
    ops = Counter()  # the module's own ops (set-up ops of its parameters are hidden, not counted)
    for node in members:
        data = view.nodes[node]
        if data["kind"] in BLOCK_KINDS:
            ops[data["label"]] += data.get("ops", 1)
        elif data["kind"] == "op" and _module_prefix(data.get("module"), prefix.count(".")) == prefix:
            ops[data.get("op") or "op"] += 1
    params, seen = [], set()
    for node in sorted(members, key=record_number):  # in the order the module made them: weight, then bias
        data = view.nodes[node]
        if data.get("kind") == "tensor" and data.get("param") and data["param"] not in seen:
            seen.add(data["param"])
            params.append(data)
    cls = (view.graph.get("module_classes") or {}).get(prefix)
    numbered = [f"call {call}"] if boxes > 1 else []
    label = " · ".join([prefix, *([cls] if cls else []), *numbered])
    caption = module_caption(calls[call - 1] if len(calls) == boxes else None, params, prefix, ops)
    if cls and len(label) > _LABEL_CHARS:  # a long path: the class leads the caption instead of being cut off
        label, caption = " · ".join([prefix, *numbered]), f"{cls} · {caption}" if caption else cls
    return {"kind": "cluster", "module": prefix, "call": call, "class": cls, "label": label, "caption": caption,
            "ops": sum(ops.values()), "params": len(params), "members": members}


# ---- shared ---------------------------------------------------------------------------------------------


def _topological(view: nx.DiGraph) -> list:
    """Nodes in topological order, or in view order when a cycle makes that impossible."""
    try:
        return list(nx.topological_sort(view))
    except nx.NetworkXUnfeasible:
        return list(view)


def _hidden_note(view: nx.DiGraph, total: int, *, automatic: bool, limit: int) -> str | None:
    """What the collapsed view hides and how to see it (None when it hides nothing); when it has more than `limit`
    nodes, that and why."""
    kinds = Counter(d.get("kind") for _, d in view.nodes(data=True))
    loops = [d for _, d in view.nodes(data=True) if d.get("kind") == "loop"]
    parts, hints = [], ["--all"]
    if loops:
        parts.append(_loops_phrase(loops))
    if kinds["cluster"]:
        depth = view.graph.get("module_depth")
        boxes = f"{kinds['cluster']} box{'es' if kinds['cluster'] > 1 else ''}"
        parts.append(f"one box per leaf module call ({boxes})" if depth is None
                     else f"modules grouped at depth {depth} into {boxes}")
        if depth is not None:
            hints.append(f"--depth {depth + 1}")
    if kinds[STEP_KIND]:
        parts.append(f"{_count(kinds[STEP_KIND], 'optimizer step')} drawn as one node each")
    if view.graph.get("unused_parameters"):
        parts.append(f"{_count(view.graph['unused_parameters'], 'parameter')} of modules never called left out")
    if view.graph.get("past_detail_left_out"):
        names = view.graph["past_detail_left_out"]
        parts.append(f"{_and(names[:8] + ([f'{len(names) - 8:,} more'] if len(names) > 8 else []))} left out: made "
                     f"past the detail budget (their values are in the table)")
    if (loops or automatic) and parts:
        hints.append("a higher --max-nodes")
    note = f"Showing {len(view):,} of {total:,} nodes: {'; '.join(parts)}; use {_and(hints, 'or')} to see more." \
        if parts else None
    if len(view) > limit:
        missed = _missed_limit(view, limit, kinds)
        note = f"{note} {missed}" if note else missed
    return note


def _missed_limit(view: nx.DiGraph, limit: int, kinds: Counter) -> str:
    """`Could not draw in 5 nodes: the smallest view has 12 …`, with what was already hidden and what cannot be."""
    depth = view.graph.get("module_depth")
    tried = [] if not kinds["cluster"] else ["each leaf module call is one box"] if depth is None else \
        ["modules are grouped at the top level"] if depth == 0 else [f"modules are grouped at depth {depth}"]
    tried += ["repeated loops are folded"] if kinds["loop"] else []
    tried += ["optimizer steps are one node each"] if kinds[STEP_KIND] else []
    why = _and(tried) if tried else "there is no module call to group and no repeated loop to fold"
    return (f"Could not draw in {limit:,} node{'s' if limit != 1 else ''}: the smallest view has {len(view):,} "
            f"({why}; every named tensor and every op outside a module is drawn).")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


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
