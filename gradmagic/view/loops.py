"""Loop folding for the drawing: repeated iterations become the first one plus one block `loop ×999 more`.

A loop is found where one name is rebound from one line (`h₁ h₂ … h₁₀₀₀`) and the ops between rebindings repeat
at least MIN_REPEATS times: the first iteration stays drawn, one block stands for the rest, and the last binding
follows it. Each pass folds one more level of nested loops.
"""
from __future__ import annotations

import bisect

import networkx as nx

from .blocks import OP_LIKE, contract, lines_text, op_count, record_number, runs

__all__ = ["fold_loops", "fold_training_loops", "MIN_REPEATS"]

#: A loop folds when at least this many consecutive iterations have the same ops.
MIN_REPEATS = 3
_LOOP_PASSES = 4  # each pass can fold one more level of nested loops


def fold_loops(view: nx.DiGraph, *, min_repeats: int = MIN_REPEATS) -> nx.DiGraph:
    """Runs of identical iterations (between rebindings of one name) become the first iteration plus one block."""
    if min_repeats < 2:
        raise ValueError(f"min_repeats={min_repeats!r}: a loop needs at least 2 equal iterations to fold")
    for _ in range(_LOOP_PASSES):
        owner, attrs = _loop_blocks(view, min_repeats)
        if not owner:
            break
        view = contract(view, owner, attrs)
    return view


def fold_training_loops(view: nx.DiGraph, *, min_repeats: int = MIN_REPEATS) -> nx.DiGraph:
    """Runs of identical training steps, each ending in the same optimizer step() node, become step 1 plus one block."""
    if not any(d.get("kind") == "optimizer" for _, d in view.nodes(data=True)):
        return view
    owner, attrs = _loop_blocks(view, min_repeats, _step_cuts)
    return contract(view, owner, attrs) if owner else view


def _loop_blocks(view: nx.DiGraph, min_repeats: int, find_cuts=None) -> tuple:
    """(node -> block key, block key -> attributes) for every run of repeated iterations found in one pass."""
    nodes = dict(view.nodes(data=True))  # read only, and faster to look up than view.nodes
    ops = [n for n, d in nodes.items() if d.get("kind") in OP_LIKE]
    index = {node: i for i, node in enumerate(ops)}
    signs = [_signature(nodes[n]) for n in ops]
    claimed = [False] * len(ops)
    alone = _isolated_tensors(view, nodes)
    candidates = (find_cuts or _binding_cuts)(view, index, min_repeats)
    # the name whose rebinding folds the most ops marks the iterations best (`h` after `c` in an LSTM step)
    folded = [sum(r[-1][1] - r[1][0] for r in _repeated_chunks(c, signs, claimed, min_repeats)) for c in candidates]
    owner, attrs = {}, {}
    for _, cuts in sorted(zip(folded, candidates), key=lambda item: -item[0]):
        for run in _repeated_chunks(cuts, signs, claimed, min_repeats):
            for i in range(run[0][0], run[-1][1]):
                claimed[i] = True
            key = f"loop:{ops[run[1][0]]}"
            hidden = ops[run[1][0]:run[-1][1]]
            attrs[key] = _loop_attrs(nodes, hidden, signs[run[0][0]:run[0][1]], len(run))
            owner.update((node, key) for node in hidden + _hidden_tensors(view, nodes, hidden, alone))
    return owner, attrs


def _signature(data: dict) -> tuple:
    """What must match for two steps to be the same iteration (the op, not its constants: `add +i` still repeats)."""
    if data["kind"] == "op":
        return ("op", data.get("op"), data.get("line"), data.get("module"))
    if data["kind"] == "cluster":
        return ("cluster", data.get("module"), data.get("ops"))
    if data["kind"] == "optimizer":
        return ("optimizer", data.get("label"), data.get("line"))
    return ("loop", data.get("iterations"), data.get("signature"))


def _binding_cuts(view: nx.DiGraph, index: dict, min_repeats: int) -> list:
    """For each name rebound from one line (`h = ...` in a loop body): -1 and the positions of the ops binding it."""
    cuts, nodes = {}, dict(view.nodes(data=True))
    for node, data in nodes.items():
        if data.get("kind") == "tensor" and data.get("name") is not None:
            made = max(((index[p], p) for p in view.predecessors(node) if p in index), default=None)
            if made is not None:  # the line tells a loop's own rebinding from one around it (nested loops)
                cuts.setdefault((data["name"], nodes[made[1]].get("line")), set()).add(made[0])
    return [[-1, *sorted(c)] for c in cuts.values() if len(c) >= min_repeats]


def _step_cuts(view: nx.DiGraph, index: dict, min_repeats: int) -> list:
    """For each optimizer step() called from one line: -1 and the positions of its step nodes (a step ends one
    training iteration)."""
    cuts = {}
    for node, data in view.nodes(data=True):
        if data.get("kind") == "optimizer" and node in index:
            cuts.setdefault((data.get("label"), data.get("line")), []).append(index[node])
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


def _isolated_tensors(view: nx.DiGraph, nodes: dict) -> tuple:
    """(record numbers, nodes) of the tensors no edge touches, in record order (the lean capture's `x =
    torch.randn(...)` in a loop body: it is off the autograd graph)."""
    touched = {n for u, successors in view.adjacency() if successors for n in (u, *successors)}
    alone = sorted((record_number(n), n) for n, d in nodes.items()
                   if d.get("kind") == "tensor" and n not in touched and record_number(n) >= 0)
    return [number for number, _ in alone], [node for _, node in alone]


def _hidden_tensors(view: nx.DiGraph, nodes: dict, hidden_ops: list, alone: tuple = ((), ())) -> list:
    """Tensors a folded run made or alone used, and the untouched ones recorded among them; of those made, the
    last of each name stays drawn if used only after."""
    ops = set(hidden_ops)
    made = [n for op in hidden_ops for n in view.successors(op) if nodes[n].get("kind") == "tensor"]
    last = {nodes[n].get("name"): n for n in made}  # the root and `h₁₀₀₀` of the loop that made them
    shown = {n for n in last.values() if not any(s in ops for s in view.successors(n))}  # else a cycle
    hidden = [n for n in made if n not in shown]
    inside = ops.union(hidden)
    for op in hidden_ops:  # values made for one step only (`noise = torch.randn(3)` in the loop body)
        for node in view.predecessors(op):
            if node not in inside and view.in_degree(node) == 0 and nodes[node].get("kind") == "tensor" \
                    and all(s in inside for s in view.successors(node)):
                hidden.append(node)
                inside.add(node)
    numbers = [record_number(n) for n in made]
    if numbers and alone[0]:
        first, last = bisect.bisect_left(alone[0], min(numbers)), bisect.bisect_right(alone[0], max(numbers))
        hidden += alone[1][first:last]
    return hidden


def _loop_attrs(nodes: dict, hidden: list, body: list, iterations: int) -> dict:
    """The block for a folded loop: `loop ×999 more (line 8)` and the ops of one iteration."""
    lines = sorted({s[2] for s in body if s[0] == "op" and isinstance(s[2], int)})
    where = lines_text(lines[0], lines[-1]) if lines else ""
    steps = " → ".join(f"{name} ×{k}" if k > 1 else name for name, k in runs(
        str(s[1]) if s[0] != "loop" else f"loop ×{s[1]}" for s in body))
    count = sum(op_count(nodes[n]) for n in hidden)
    return {"kind": "loop", "label": f"loop ×{iterations - 1:,} more{where}", "caption": f"each: {steps}",
            "iterations": iterations, "ops": count, "lines": (lines[0], lines[-1]) if lines else None,
            "signature": tuple(body), "members": hidden}

