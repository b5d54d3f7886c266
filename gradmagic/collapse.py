"""Collapse stage of the drawing: nn.Module calls become boxes, repeated loop iterations fold into one block.

A module call is a run of consecutive ops under one module path cut at `depth` (so boxes never form a cycle);
its box hides the tensors it made and uses alone and the parameters only it uses. A loop is found where one name
is rebound from one line (`h₁ h₂ … h₁₀₀₀`) and the ops between rebindings repeat at least MIN_REPEATS times: the
first iteration stays drawn, one block `loop ×999 more` stands for the rest, and the last binding follows it.
"""
from __future__ import annotations

from collections import Counter

import networkx as nx

__all__ = ["collapse_view", "check_options", "group_modules", "fold_loops",
           "DEFAULT_MAX_NODES", "MIN_REPEATS", "BLOCK_KINDS"]

#: Automatic mode collapses a drawing until it has at most this many nodes.
DEFAULT_MAX_NODES = 100
#: A loop folds when at least this many consecutive iterations have the same ops.
MIN_REPEATS = 3
#: Node kinds that stand for many ops: a module call ("cluster") and folded loop iterations ("loop").
BLOCK_KINDS = ("cluster", "loop")

_OP_LIKE = ("op", *BLOCK_KINDS)  # nodes that compute, in the order they ran
_LOOP_PASSES = 4  # each pass can fold one more level of nested loops


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
    grouped = _contract(view, owner, attrs)
    grouped.graph["module_depth"] = depth
    return grouped


def fold_loops(view: nx.DiGraph, *, min_repeats: int = MIN_REPEATS) -> nx.DiGraph:
    """Runs of identical iterations (between rebindings of one name) become the first iteration plus one block."""
    if min_repeats < 2:
        raise ValueError(f"min_repeats={min_repeats!r}: a loop needs at least 2 equal iterations to fold")
    for _ in range(_LOOP_PASSES):
        owner, attrs = _loop_blocks(view, min_repeats)
        if not owner:
            break
        view = _contract(view, owner, attrs)
    return view


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
        if data.get("kind") not in _OP_LIKE:
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


# ---- loops ----------------------------------------------------------------------------------------------


def _loop_blocks(view: nx.DiGraph, min_repeats: int) -> tuple:
    """(node -> block key, block key -> attributes) for every run of repeated iterations found in one pass."""
    ops = [n for n, d in view.nodes(data=True) if d.get("kind") in _OP_LIKE]
    index = {node: i for i, node in enumerate(ops)}
    signs = [_signature(view.nodes[n]) for n in ops]
    claimed = [False] * len(ops)
    candidates = _binding_cuts(view, index, min_repeats)
    # the name whose rebinding folds the most ops marks the iterations best (`h` after `c` in an LSTM step)
    folded = [sum(r[-1][1] - r[1][0] for r in _repeated_chunks(c, signs, claimed, min_repeats)) for c in candidates]
    owner, attrs = {}, {}
    for _, cuts in sorted(zip(folded, candidates), key=lambda item: -item[0]):
        for run in _repeated_chunks(cuts, signs, claimed, min_repeats):
            for i in range(run[0][0], run[-1][1]):
                claimed[i] = True
            key = f"loop:{ops[run[1][0]]}"
            hidden = ops[run[1][0]:run[-1][1]]
            attrs[key] = _loop_attrs(view, hidden, signs[run[0][0]:run[0][1]], len(run))
            owner.update((node, key) for node in hidden + _hidden_tensors(view, hidden))
    return owner, attrs


def _signature(data: dict) -> tuple:
    """What must match for two steps to be the same iteration (the op, not its constants: `add +i` still repeats)."""
    if data["kind"] == "op":
        return ("op", data.get("op"), data.get("line"), data.get("module"))
    if data["kind"] == "cluster":
        return ("cluster", data.get("module"), data.get("ops"))
    return ("loop", data.get("iterations"), data.get("signature"))


def _binding_cuts(view: nx.DiGraph, index: dict, min_repeats: int) -> list:
    """For each name rebound from one line (`h = ...` in a loop body): -1 and the positions of the ops binding it."""
    cuts = {}
    for node, data in view.nodes(data=True):
        if data.get("kind") == "tensor" and data.get("name") is not None:
            made = max(((index[p], p) for p in view.predecessors(node) if p in index), default=None)
            if made is not None:  # the line tells a loop's own rebinding from one around it (nested loops)
                cuts.setdefault((data["name"], view.nodes[made[1]].get("line")), set()).add(made[0])
    return [[-1, *sorted(c)] for c in cuts.values() if len(c) >= min_repeats]


def _repeated_chunks(cuts: list, signs: list, claimed: list, min_repeats: int) -> list:
    """Runs of consecutive equal chunks between cuts, each a list of (start, end) op ranges, one per iteration."""
    def key(start: int, end: int):
        """The signature of ops start..end, None when another loop already took one of them."""
        return None if any(claimed[start:end]) else tuple(signs[start:end])

    chunks = [(a + 1, b + 1) for a, b in zip(cuts, cuts[1:])]
    width = [end - start for start, end in chunks]
    # the first chunk runs from the very first op: compared whole only when it is as long as the next
    keys = [key(*c) if i or len(chunks) < 2 or width[0] == width[1] else None for i, c in enumerate(chunks)]
    runs, i = [], 0
    while i < len(chunks):
        j = i
        while keys[i] is not None and j + 1 < len(chunks) and keys[j + 1] == keys[i]:
            j += 1
        run = chunks[i:j + 1]
        end = chunks[i - 1][1] if i else 0
        if keys[i] is not None and i and width[i - 1] > width[i] and key(end - width[i], end) == keys[i]:
            run.insert(0, (end - width[i], end))  # the loop's first step shares its chunk with the code before
        if keys[i] is not None and len(run) >= min_repeats:
            runs.append(run)
        i = j + 1
    return runs


def _hidden_tensors(view: nx.DiGraph, hidden_ops: list) -> list:
    """Tensors a folded run made or alone used; of those made, the last of each name stays drawn if used only after."""
    ops = set(hidden_ops)
    made = [n for op in hidden_ops for n in view.successors(op) if view.nodes[n].get("kind") == "tensor"]
    last = {view.nodes[n].get("name"): n for n in made}  # the root and `h₁₀₀₀` of the loop that made them
    shown = {n for n in last.values() if not any(s in ops for s in view.successors(n))}  # else a cycle
    hidden = [n for n in made if n not in shown]
    inside = ops.union(hidden)
    for op in hidden_ops:  # values made for one step only (`noise = torch.randn(3)` in the loop body)
        for node in view.predecessors(op):
            if node not in inside and view.in_degree(node) == 0 and all(s in inside for s in view.successors(node)):
                hidden.append(node)
                inside.add(node)
    return hidden


def _loop_attrs(view: nx.DiGraph, hidden: list, body: list, iterations: int) -> dict:
    """The block for a folded loop: `loop ×999 more (line 8)` and the ops of one iteration."""
    lines = sorted({s[2] for s in body if s[0] == "op" and isinstance(s[2], int)})
    where = _lines_text(lines[0], lines[-1]) if lines else ""
    steps = " → ".join(f"{name} ×{k}" if k > 1 else name for name, k in _runs(
        str(s[1]) if s[0] != "loop" else f"loop ×{s[1]}" for s in body))
    count = sum(_op_count(view.nodes[n]) for n in hidden)
    return {"kind": "loop", "label": f"loop ×{iterations - 1:,} more{where}", "caption": f"each: {steps}",
            "iterations": iterations, "ops": count, "lines": (lines[0], lines[-1]) if lines else None,
            "signature": tuple(body), "members": hidden}


def _runs(names) -> list:
    """Consecutive equal names counted: `matmul, matmul, add` -> [("matmul", 2), ("add", 1)]."""
    runs = []
    for name in names:
        if runs and runs[-1][0] == name:
            runs[-1][1] += 1
        else:
            runs.append([name, 1])
    return runs


def _op_count(data: dict) -> int:
    """How many recorded ops a node of the view stands for."""
    return data.get("ops", 1) if data.get("kind") in BLOCK_KINDS else int(data.get("kind") == "op")


# ---- shared ---------------------------------------------------------------------------------------------


def _contract(view: nx.DiGraph, owner: dict, attrs: dict) -> nx.DiGraph:
    """A new view with each block's members replaced by one node; edges between blocks merged (counts, flows)."""
    ids = {key: key if isinstance(key, str) else f"module:{key[0]}:{key[1]}" for key in attrs}
    out = nx.DiGraph()
    out.graph.update(view.graph)
    placed = set()
    for node, data in view.nodes(data=True):
        key = owner.get(node)
        if key is None:
            out.add_node(node, **data)
        elif key not in placed and data.get("kind") in _OP_LIKE:  # where its first op was: op order is kept
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
    where = _lines_text(min(a for a, _ in spans), max(b for _, b in spans)) if spans else ""
    counts = [f"{c:,}" for c in sorted((d["iterations"] for d in loops), reverse=True)]
    if len(loops) == 1:
        return f"a loop of {counts[0]} iterations folded{where}"
    return f"{len(loops)} loops of {_and(counts)} iterations folded{where}"


def _lines_text(first: int, last: int) -> str:
    """` (line 8)` or ` (lines 3–4)`."""
    return f" (line {first})" if first == last else f" (lines {first}–{last})"


def _and(items, word: str = "and") -> str:
    """`a, b and c`."""
    items = list(items)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"
