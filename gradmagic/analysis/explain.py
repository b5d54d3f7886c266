"""Explain one gradient: the chain rule over named variables, and the paths whose contributions sum to it.

Scalar paths are composed from the recorded per-edge flows (the run's own numbers): the local derivative
∂v/∂u is the gradient that reached u along the edges leading to v, divided by the gradient of v. Paths
through tensors, or where the flows do not separate, are computed on a float64 re-run of the recorded
computation (`replay.replay`) in which every named tensor is cut into a fresh leaf, so each step
∂v/∂u is a vector-Jacobian product through ops and anonymous tensors only.
"""
from __future__ import annotations

import math

import networkx as nx
import torch

from .explanation import Explanation, Path, Term, gradient_text
from .hook_changes import hook_changes
from .replay import ReplayError, replay
from .reading import ancestors, describe, differentiable, pass_asked, pass_flow, pass_gradient
from .values import close, is_real, total
from ..graph import first_reached, tensor_nodes
from ..text import error_summary, norm

__all__ = ["explain", "Explanation", "Path", "Term"]

_PATH_LIMIT = 2000  # enumerate at most this many paths; beyond it only the chain-rule terms are shown


def explain(graph, name: str, *, root: str | None = None, pass_index: int | None = None, max_paths: int = 10,
            trace=None) -> Explanation:
    """The chain rule and the paths through named variables that make up d root/d name in one backward pass.

    The pass: `pass_index` (0 for the first, -1 for the last) if given, else the last pass started from `root`
    if given, else the last pass that reached `name`. The gradient explained is autograd's in that pass (the
    graph's `pass_grads`), never a leaf's accumulated `.grad`. `graph` may be a Result: its trace allows the
    float64 re-run that splits tensor gradients by path. A name, root or pass that does not exist is a
    ValueError; anything else that stops the explanation is a note in the Explanation, never an exception.
    """
    if hasattr(graph, "trace"):
        graph, trace = graph.graph, trace or graph.trace
    p, roots, node = _pass_roots_node(graph, name, root, pass_index)
    label = describe(graph, node, short=True)
    ex = Explanation(label, ", ".join(_names(graph, roots)), node, p, pass_gradient(graph, node, p))
    try:
        _explain_pass(ex, graph, trace, roots, max_paths)
    except Exception as error:  # an unexpected state of the record: one line, not a traceback
        ex.notes.append(f"gradmagic could not explain {label} further ({error_summary(error)})")
    return ex


def _explain_pass(ex: Explanation, graph, trace, roots: list, max_paths: int) -> None:
    """Fill in the paths, their total and the chain-rule terms of d root/d name in pass ex.pass_index."""
    ex.notes += _accumulated_note(ex, graph)
    stop = _nothing_to_split(ex, graph, roots)
    if stop:
        ex.notes.append(stop)
        return
    children = _named_children(graph, ex.node, roots)
    paths = _enumerate(children, ex.node, set(roots))
    if paths is None:
        ex.notes.append(f"more than {_PATH_LIMIT} paths: only the chain-rule terms are shown")
    found = sorted(_contributions(ex, graph, trace, children, paths or [], roots), key=lambda q: -q.magnitude)
    if found:
        ex.total, ex.paths = total([q.contribution for q in found]), found[:max_paths]
        ex.rest_count = len(found[max_paths:])
        ex.rest = total([q.contribution for q in found[max_paths:]]) if ex.rest_count else None
    if (found and not close(ex.total, ex.gradient)) or (paths == [] and (norm(ex.gradient) or 0) > 0):
        on_paths = None if paths is None else {ex.node, *(n for path in paths for n in path)}
        ex.notes += hook_changes(graph, ex.pass_index, on_paths) or [
            f"the recorded paths do not add up to what autograd gave {ex.name}: part of the computation was not "
            "recorded (a custom torch.autograd.Function, an attribute such as .T or .data, or a gradient hook the "
            "capture did not see: a module's backward hook, or one registered before the run)"]
    ex.terms = _terms(graph, ex.node, children, ex.pass_index, found)


def _accumulated_note(ex: Explanation, graph) -> list:
    """A note when the leaf's `.grad` holds more than this pass gave it (several passes, or a gradient from before)."""
    d = graph.nodes[ex.node]
    accumulated = _final_grad(graph, d)
    if not d.get("is_leaf") or not isinstance(accumulated, (float, list)) or ex.gradient is None \
            or close(accumulated, ex.gradient):
        return []
    passes = len(graph.graph.get("pass_roots", []))
    if graph.graph.get("coarse"):  # backward calls past the budget ran plain: .grad may come from one of them
        return [f"{ex.name}.grad is {gradient_text(accumulated)} at the end of the run: it accumulated over "
                f"backward passes, or later ones ran after the capture's detail budget and were only counted "
                f"(see the note on what was counted); this explains pass {ex.pass_index + 1}, the last of the "
                f"{passes} recorded"]
    return [f"{ex.name}.grad is {gradient_text(accumulated)} at the end of the run (accumulated over {passes} "
            f"backward pass(es) or from before); this explains pass {ex.pass_index + 1} alone"]


def _final_grad(graph, d: dict):
    """What the leaf's `.grad` holds at the end of the run; an earlier version of a leaf (before an optimizer step)
    is the same tensor as the version its name is bound to, which carries it."""
    bound = graph.graph.get("bindings", {}).get(d.get("name"))
    if d.get("grad") is None and bound is not None and graph.nodes[bound].get("is_leaf"):
        return graph.nodes[bound].get("grad")
    return d.get("grad")


def _nothing_to_split(ex: Explanation, graph, roots: list) -> str:
    """Why the gradient cannot be split into paths (the root itself, not real, none in the pass), or ''."""
    label, p = ex.name, ex.pass_index
    if ex.node in roots:
        return f"{label} is where backward() started"
    if ex.gradient is not None and not is_real(ex.gradient):  # complex (or no plain numbers): the gradient alone
        return (f"{label} is not a real tensor: its gradient is what .grad holds (for complex tensors torch's "
                "conjugate Wirtinger convention, dL/dz*); paths and chain-rule terms are shown for real tensors only")
    if ex.gradient is not None:
        return ""
    accumulated = graph.nodes[ex.node].get("grad")
    if isinstance(accumulated, (float, list, dict)) and len(graph.graph.get("pass_roots", [])) == 1:
        return (f"{label} got no gradient in backward pass {p + 1} that gradmagic saw, yet {label}.grad is "
                f"{gradient_text(accumulated)}: it came through code the capture does not record (a backward run "
                "inside another, as torch.utils.checkpoint with use_reentrant=True does)")
    return f"{label} got no gradient in backward pass {p + 1} (see gradmagic.analysis.diagnose)"


def _names(graph, nodes) -> list:
    """Tensor nodes as an explanation names them: `x`, `h₂`, `(add)` for an anonymous result."""
    return [describe(graph, n, short=True) for n in nodes]


def _pass_roots_node(graph, name: str, root: str | None, pass_index: int | None) -> tuple:
    """(pass index, its root nodes, the tensor node of `name`) for the pass asked for (see explain)."""
    passes = graph.graph.get("pass_roots", [])
    last = pass_asked(len(passes), -1 if pass_index is None else pass_index, "explain")
    if pass_index is not None:
        p = last
    elif root is not None:
        p, _ = _pass_and_roots(graph, root)
    else:
        node = _find(graph, name, prefer=[n for n in tensor_nodes(graph) if graph.nodes[n].get("pass_grads")])
        reached = graph.nodes[node].get("pass_grads") or {}
        p = max(reached) if reached else len(passes) - 1
    roots = list(passes[p]) if root is None else [_find(graph, root)]
    if not set(roots) <= set(passes[p]):
        raise ValueError(f"root={root!r} did not start backward pass {p + 1}; it started from: "
                         f"{', '.join(describe(graph, r, short=True) for r in passes[p])}")
    return p, roots, _find(graph, name, prefer=ancestors(graph, roots))


def _pass_and_roots(graph, root: str) -> tuple:
    """(pass index, root nodes): the last backward pass started from `root`."""
    passes = graph.graph.get("pass_roots", [])
    node = _find(graph, root)
    started = [i for i, roots in enumerate(passes) if node in roots]
    if not started:
        names = ", ".join(describe(graph, r, short=True) for roots in passes for r in roots)
        raise ValueError(f"root={root!r}: no backward pass started from it; the passes started from: {names}")
    return started[-1], [node]


def _find(graph, name: str, prefer=()) -> str:
    """The tensor node named `name` (the last such on the way to the root) or labelled `name` (h₂)."""
    found = tensor_nodes(graph, name) or [n for n in tensor_nodes(graph) if graph.nodes[n]["label"] == name]
    if not found:
        labels = list(dict.fromkeys(d["label"] for n, d in graph.nodes(data=True) if d.get("label")))
        raise ValueError(f"no tensor named {name!r}; the named tensors are: {', '.join(labels) or 'none'}")
    return ([n for n in found if n in prefer] or found)[-1]


def _named_children(graph, node: str, roots: list) -> dict:
    """{u: {v: edges}}: the named variables between `node` and the roots, each joined to those it feeds directly."""
    stops = {n for n in tensor_nodes(graph) if graph.nodes[n]["name"] is not None} | set(roots) | {node}
    between = stops & (nx.descendants(differentiable(graph), node) | {node}) & (ancestors(graph, roots) | set(roots))
    return {u: _first_named(graph, u, stops, between) for u in between - set(roots)}


def _first_named(graph, u: str, stops: set, between: set) -> dict:
    """{v: [(op, key, n)]}: for each gradient-carrying edge out of u, the named tensors it reaches first (n of them)."""
    out = {}
    for _, op, key, data in graph.out_edges(u, keys=True, data=True):
        if not data.get("differentiable"):
            continue
        firsts = first_reached(graph, [op], stops, lambda d: d.get("differentiable", True))
        for child in firsts & between:
            out.setdefault(child, []).append((op, key, len(firsts & between)))
    return out


def _enumerate(children: dict, node: str, roots: set) -> list | None:
    """Every path node → … → root in the contracted DAG (None past the limit)."""
    paths, stack = [], [[node]]
    while stack:
        path = stack.pop()
        if path[-1] in roots:
            paths.append(path)
            if len(paths) > _PATH_LIMIT:
                return None
            continue
        stack.extend(path + [c] for c in reversed(list(children.get(path[-1], {}))))
    return paths


def _contributions(ex: Explanation, graph, trace, children, paths, roots) -> list:
    """Each path's contribution: from the flows for scalar paths, else from the float64 re-run."""
    if not paths:
        return []
    factors = _flow_factors(graph, children, ex.pass_index)
    if factors is not None:
        ex.method = "the run's recorded flows"
        steps = [[factors[a, b] for a, b in zip(path, path[1:])] for path in paths]
        found = [Path(_names(graph, path), path, math.prod(f) * pass_gradient(graph, path[-1], ex.pass_index), f)
                 for path, f in zip(paths, steps)]
    elif trace is None:
        ex.notes.append("the recorded flows do not separate these paths; the float64 re-run does: pass the Result "
                        "(or trace=)")
        return []
    else:
        try:
            found = _replayed_paths(graph, trace, paths, roots, ex.pass_index)
        except (ReplayError, RuntimeError, NotImplementedError, TypeError) as error:  # ops the re-run cannot redo
            ex.notes.append(str(error).splitlines()[0])
            return []
        ex.method = "float64 re-run, each named variable cut into a leaf"
    return found


def _flow_factors(graph, children, p: int) -> dict | None:
    """{(u, v): ∂v/∂u} from the recorded flows, or None where they do not give it (tensors, shared edges, zeros)."""
    factors = {}
    for u, kids in children.items():
        for v, edges in kids.items():
            flows = [_flow(graph, u, op, key, p) for op, key, _ in edges]
            upstream = pass_gradient(graph, v, p)
            if any(shared > 1 or not isinstance(f, float) for (_, _, shared), f in zip(edges, flows)) \
                    or not isinstance(upstream, float) or upstream == 0:
                return None
            factors[u, v] = math.fsum(flows) / upstream
    return factors


def _flow(graph, u: str, op: str, key, p: int):
    """The flow along one edge in pass p, a number as a float."""
    value = pass_flow(graph.edges[u, op, key], p)
    return float(value) if isinstance(value, (int, float)) else value


def _replayed_paths(graph, trace, paths: list, roots: list, p: int) -> list:
    """Per-path contributions by chaining vector-Jacobian products on a float64 re-run with named tensors cut."""
    rec = {n: int(n[1:]) for path in paths for n in path}
    run = replay(trace, [rec[r] for r in roots], cut=set(rec.values()))
    cache = {}

    def gradient_at(suffix: tuple) -> torch.Tensor:
        """d root/d suffix[0] along exactly this suffix of named variables."""
        if suffix not in cache:
            if len(suffix) == 1:
                seed = pass_gradient(graph, suffix[0], p)
                if not isinstance(seed, (float, list)):
                    raise ReplayError(f"the gradient backward() started from at {_names(graph, suffix[:1])[0]} was "
                                      "not recorded exactly")
                cache[suffix] = torch.tensor(seed, dtype=torch.float64)
            else:
                after = gradient_at(suffix[1:])
                if rec[suffix[0]] not in run.inputs:
                    raise ReplayError(f"the re-run does not reach {describe(graph, suffix[0], short=True)}")
                out, leaf = run.values[rec[suffix[1]]], run.inputs[rec[suffix[0]]]
                g, = torch.autograd.grad(out, leaf, after, retain_graph=True, allow_unused=True)
                cache[suffix] = torch.zeros_like(leaf) if g is None else g.detach()
        return cache[suffix]

    def factor(u: str, v: str) -> float:
        """∂v/∂u through ops and anonymous tensors, for scalars."""
        g, = torch.autograd.grad(run.values[rec[v]], run.inputs[rec[u]], retain_graph=True, allow_unused=True)
        return 0.0 if g is None else g.item()

    scalar = all(run.values[r].dim() == 0 for r in rec.values())
    return [Path(_names(graph, path), path, gradient_at(tuple(path)).tolist(),
                 [factor(u, v) for u, v in zip(path, path[1:])] if scalar else None) for path in paths]


def _terms(graph, node: str, children: dict, p: int, paths: list) -> list:
    """The chain-rule terms, one per named child: the recorded flows out of `node` towards it, or else the sum
    of the paths through it (where one edge feeds several children, or a large flow was kept as stats only)."""
    terms = []
    for child, edges in children.get(node, {}).items():
        flows = [_flow(graph, node, op, key, p) for op, key, _ in edges]
        if any(shared > 1 or f is None or isinstance(f, dict) for (_, _, shared), f in zip(edges, flows)):
            through = [path.contribution for path in paths if path.nodes[1] == child]
            if not through:
                continue
            flows = through
        upstream = pass_gradient(graph, child, p)
        contribution = total(flows)
        local = contribution / upstream if isinstance(contribution, float) and isinstance(upstream, float) \
            and upstream else None
        terms.append(Term(describe(graph, child, short=True), child, contribution, upstream, local))
    return terms


