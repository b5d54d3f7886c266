"""Explain one gradient: the chain rule over named variables, and the paths whose contributions sum to it.

Scalar paths are composed from the recorded per-edge flows (the run's own numbers): the local derivative
∂v/∂u is the gradient that reached u along the edges leading to v, divided by the gradient of v. Paths
through tensors, or where the flows do not separate, are computed on a float64 re-run of the recorded
computation (`replay.replay`) in which every named tensor is cut into a fresh leaf, so each step
∂v/∂u is a vector-Jacobian product through ops and anonymous tensors only.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass, field

import networkx as nx
import torch

from .. import text
from .diagnose import hook_changes
from .replay import ReplayError, replay
from ..graph import first_reached, tensor_nodes

__all__ = ["explain", "Explanation", "Path", "Term"]

_PATH_LIMIT = 2000  # enumerate at most this many paths; beyond it only the chain-rule terms are shown


@dataclass
class Term:
    """One chain-rule term: d root/d child · ∂child/∂name, as the run's flows give it."""

    child: str
    node: str
    contribution: object  # number or nested list
    upstream: object  # d root/d child, the child's gradient in the pass
    local: float | None  # ∂child/∂name (scalars, where d root/d child ≠ 0)


@dataclass
class Path:
    """One path from the tensor to the root through named variables, and its share of the gradient."""

    names: list
    nodes: list
    contribution: object  # number or nested list
    factors: list | None = None  # ∂next/∂this at each step, for scalar paths

    @property
    def magnitude(self) -> float:
        """|contribution|, or its norm for a tensor."""
        return text.norm(self.contribution)


@dataclass
class Explanation:
    """Why `name` got its gradient: the chain-rule terms and the paths that sum to it."""

    name: str
    root: str
    node: str
    pass_index: int
    gradient: object  # what autograd computed in that pass
    terms: list = field(default_factory=list)
    paths: list = field(default_factory=list)  # the largest `max_paths` paths, largest first
    rest_count: int = 0  # how many smaller paths were left out of `paths`
    rest: object = None  # their contributions together
    total: object = None  # the sum over all paths
    method: str = ""  # how the path contributions were computed
    notes: list = field(default_factory=list)

    def lines(self) -> list:
        """The explanation as plain-text lines."""
        out = [f"{self._d(self.name)} = {_text(self.gradient)} "
               f"(autograd, backward pass {self.pass_index + 1} from {self.root})"]
        if self.paths:
            out.append(f"= the sum over {len(self.paths) + self.rest_count} path(s) through named variables "
                       f"({self.method}):")
            width = max(len(" → ".join(p.names)) for p in self.paths)
            out.extend(f"  {' → '.join(p.names):<{width}}  {_path_formula(p)}" for p in self.paths)
            if self.rest_count:
                out.append(f"  … {self.rest_count} more path(s) together: {_text(self.rest)}")
            agrees = "✓ matches autograd" if _close(self.total, self.gradient) else "✗ differs from autograd"
            out.append(f"  {'total':<{width}}  = {_text(self.total)}  {agrees}")
        if self.terms:
            symbols, numbers = self._chain_rule()
            out += [f"chain rule over the named variables {self.name} feeds:",
                    f"  {self._d(self.name)} = {symbols}", f"  {' ' * len(self._d(self.name))} = {numbers}"]
        return out + [f"note: {n}" for n in self.notes]

    def _d(self, wrt: str) -> str:
        return f"d{self.root}/d{wrt}"

    def _chain_rule(self) -> tuple:
        """(`dz/dy·∂y/∂x + dz/db·∂b/∂x`, `430·40 + (-5.17e-08)·30`)."""
        return (" + ".join(f"{self._d(t.child)}·∂{t.child}/∂{self.name}" for t in self.terms),
                " + ".join(_term_text(t) for t in self.terms))

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))

    def _repr_html_(self) -> str:
        esc = html.escape
        rows = [(" → ".join(p.names), _path_formula(p)) for p in self.paths]
        rows += [(f"… {self.rest_count} more", f"= {_text(self.rest)}")] if self.rest_count else []
        rows += [("total", f"= {_text(self.total)}")] if self.paths else []
        table = "".join(f"<tr><td>{esc(a)}</td><td>{esc(b)}</td></tr>" for a, b in rows)
        chain = "<p>chain rule: {} = {} = {}</p>".format(esc(self._d(self.name)), *map(esc, self._chain_rule())) \
            if self.terms else ""
        notes = "".join(f"<p><i>note: {esc(n)}</i></p>" for n in self.notes)
        return f"<div class='gradmagic-explain'><p><b>{esc(self.lines()[0])}</b></p><table>{table}</table>" \
               f"{chain}{notes}</div>"


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
    label = _label(graph, node)
    ex = Explanation(label, ", ".join(_label(graph, r) for r in roots), node, p, _grad(graph, node, p))
    try:
        _explain_pass(ex, graph, trace, roots, max_paths)
    except Exception as error:  # an unexpected state of the record: one line, not a traceback
        first = (str(error).strip().splitlines() or [""])[0]
        ex.notes.append(f"gradmagic could not explain {label} further ({type(error).__name__}: {first})")
    return ex


def _explain_pass(ex: Explanation, graph, trace, roots: list, max_paths: int) -> None:
    """Fill in the paths, their total and the chain-rule terms of d root/d name in pass ex.pass_index."""
    node, label, p = ex.node, ex.name, ex.pass_index
    passes = len(graph.graph.get("pass_roots", []))
    accumulated = graph.nodes[node].get("grad")  # .grad: what the leaf holds at the end of the run
    if graph.nodes[node].get("is_leaf") and isinstance(accumulated, (float, list)) and ex.gradient is not None \
            and not _close(accumulated, ex.gradient):
        ex.notes.append(f"{label}.grad is {_text(accumulated)} at the end of the run (accumulated over "
                        f"{passes} backward pass(es) or from before); this explains pass {p + 1} alone")
    if node in roots:
        ex.notes.append(f"{label} is where backward() started")
        return
    if ex.gradient is not None and not _real(ex.gradient):  # complex (or no plain numbers): the gradient alone
        ex.notes.append(f"{label} is not a real tensor: its gradient is what .grad holds (for complex tensors "
                        "torch's conjugate Wirtinger convention, dL/dz*); paths and chain-rule terms are shown for "
                        "real tensors only")
        return
    if ex.gradient is None:
        ex.notes.append(f"{label} got no gradient in backward pass {p + 1} that gradmagic saw, yet {label}.grad is "
                        f"{_text(accumulated)}: it came through code the capture does not record (a backward run "
                        "inside another, as torch.utils.checkpoint with use_reentrant=True does)"
                        if isinstance(accumulated, (float, list, dict)) and passes == 1 else
                        f"{label} got no gradient in backward pass {p + 1} (see gradmagic.analysis.diagnose)")
        return
    children = _named_children(graph, node, roots)
    paths = _enumerate(children, node, set(roots))
    if paths is None:
        ex.notes.append(f"more than {_PATH_LIMIT} paths: only the chain-rule terms are shown")
    found = sorted(_contributions(ex, graph, trace, children, paths or [], roots), key=lambda q: -q.magnitude)
    if found:
        ex.total, ex.paths = _sum([q.contribution for q in found]), found[:max_paths]
        ex.rest_count = len(found[max_paths:])
        ex.rest = _sum([q.contribution for q in found[max_paths:]]) if ex.rest_count else None
    if (found and not _close(ex.total, ex.gradient)) or (paths == [] and (text.norm(ex.gradient) or 0) > 0):
        on_paths = None if paths is None else {node, *(n for path in paths for n in path)}
        ex.notes += hook_changes(graph, p, on_paths) or [
            f"the recorded paths do not add up to what autograd gave {label}: part of the computation was not "
            "recorded (a custom torch.autograd.Function, an attribute such as .T or .data, or a gradient hook the "
            "capture did not see: a module's backward hook, or one registered before the run)"]
    ex.terms = _terms(graph, node, children, p, found)


def _pass_roots_node(graph, name: str, root: str | None, pass_index: int | None) -> tuple:
    """(pass index, its root nodes, the tensor node of `name`) for the pass asked for (see explain)."""
    passes = graph.graph.get("pass_roots", [])
    if not passes:
        raise ValueError("no backward pass ran, so there is no gradient to explain; call .backward() on a result")
    if pass_index is not None:
        if not -len(passes) <= pass_index < len(passes):
            raise ValueError(f"pass_index={pass_index}: the run had {len(passes)} backward pass(es); use 0 to "
                             f"{len(passes) - 1}, or -1 for the last")
        p = range(len(passes))[pass_index]
    elif root is not None:
        p, _ = _pass_and_roots(graph, root)
    else:
        node = _find(graph, name, prefer=[n for n in tensor_nodes(graph) if graph.nodes[n].get("pass_grads")])
        reached = graph.nodes[node].get("pass_grads") or {}
        p = max(reached) if reached else len(passes) - 1
    roots = list(passes[p]) if root is None else [_find(graph, root)]
    if not set(roots) <= set(passes[p]):
        raise ValueError(f"root={root!r} did not start backward pass {p + 1}; it started from: "
                         f"{', '.join(_label(graph, r) for r in passes[p])}")
    return p, roots, _find(graph, name, prefer=_ancestors(graph, roots))


def _pass_and_roots(graph, root: str) -> tuple:
    """(pass index, root nodes): the last backward pass started from `root`."""
    passes = graph.graph.get("pass_roots", [])
    node = _find(graph, root)
    started = [i for i, roots in enumerate(passes) if node in roots]
    if not started:
        names = ", ".join(_label(graph, r) for roots in passes for r in roots)
        raise ValueError(f"root={root!r}: no backward pass started from it; the passes started from: {names}")
    return started[-1], [node]


def _find(graph, name: str, prefer=()) -> str:
    """The tensor node labelled `name` (h₂) or named `name` (the last such on the way to the root)."""
    found = [n for n in tensor_nodes(graph) if graph.nodes[n]["label"] == name] or tensor_nodes(graph, name)
    if not found:
        labels = list(dict.fromkeys(d["label"] for n, d in graph.nodes(data=True) if d.get("label")))
        raise ValueError(f"no tensor named {name!r}; the named tensors are: {', '.join(labels) or 'none'}")
    return ([n for n in found if n in prefer] or found)[-1]


def _label(graph, node: str) -> str:
    d = graph.nodes[node]
    if d.get("label"):
        return d["label"]
    ops = list(graph.predecessors(node))
    return f"({graph.nodes[ops[0]]['label']})" if ops else node


def _grad(graph, node: str, p: int):
    grads = graph.nodes[node].get("pass_grads") or {}
    return grads.get(p)


def _differentiable(graph) -> nx.MultiDiGraph:
    """The graph without edges that carry no gradient."""
    return nx.subgraph_view(graph, filter_edge=lambda u, v, k: graph.edges[u, v, k].get("differentiable", True))


def _ancestors(graph, roots) -> set:
    view = _differentiable(graph)
    return set().union(*(nx.ancestors(view, r) for r in roots))


def _named_children(graph, node: str, roots: list) -> dict:
    """{u: {v: edges}}: the named variables between `node` and the roots, each joined to those it feeds directly."""
    stops = {n for n in tensor_nodes(graph) if graph.nodes[n]["name"] is not None} | set(roots) | {node}
    between = stops & (nx.descendants(_differentiable(graph), node) | {node}) & (_ancestors(graph, roots) | set(roots))
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
        found = [Path([_label(graph, n) for n in path], path, math.prod(f) * _grad(graph, path[-1], ex.pass_index), f)
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
            upstream = _grad(graph, v, p)
            if any(shared > 1 or not isinstance(f, float) for (_, _, shared), f in zip(edges, flows)) \
                    or not isinstance(upstream, float) or upstream == 0:
                return None
            factors[u, v] = math.fsum(flows) / upstream
    return factors


def _flow(graph, u: str, op: str, key, p: int):
    value = (graph.edges[u, op, key].get("pass_flows") or {}).get(p)
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
                seed = _grad(graph, suffix[0], p)
                if not isinstance(seed, (float, list)):
                    raise ReplayError(f"the gradient backward() started from at {_label(graph, suffix[0])} was not "
                                      "recorded exactly")
                cache[suffix] = torch.tensor(seed, dtype=torch.float64)
            else:
                after = gradient_at(suffix[1:])
                if rec[suffix[0]] not in run.inputs:
                    raise ReplayError(f"the re-run does not reach {_label(graph, suffix[0])}")
                out, leaf = run.values[rec[suffix[1]]], run.inputs[rec[suffix[0]]]
                g, = torch.autograd.grad(out, leaf, after, retain_graph=True, allow_unused=True)
                cache[suffix] = torch.zeros_like(leaf) if g is None else g.detach()
        return cache[suffix]

    def factor(u: str, v: str) -> float:
        """∂v/∂u through ops and anonymous tensors, for scalars."""
        g, = torch.autograd.grad(run.values[rec[v]], run.inputs[rec[u]], retain_graph=True, allow_unused=True)
        return 0.0 if g is None else g.item()

    scalar = all(run.values[r].dim() == 0 for r in rec.values())
    return [Path([_label(graph, n) for n in path], path, gradient_at(tuple(path)).tolist(),
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
        upstream = _grad(graph, child, p)
        contribution = _sum(flows)
        local = contribution / upstream if isinstance(contribution, float) and isinstance(upstream, float) \
            and upstream else None
        terms.append(Term(_label(graph, child), child, contribution, upstream, local))
    return terms


def _sum(values: list):
    """Elementwise sum of numbers or equally nested lists."""
    return _tensor(values).sum(0).tolist() if values else 0.0


def _tensor(value) -> torch.Tensor:
    """A number or nested list as a float64 tensor (complex128 for complex gradients)."""
    t = torch.tensor(value)
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


def _close(a, b) -> bool:
    """Equal within float32 rounding (elementwise, scaled by the larger norm)."""
    if not isinstance(a, (float, complex, list)) or not isinstance(b, (float, complex, list)):
        return False
    a, b = _tensor(a), _tensor(b)
    return a.shape == b.shape and (a - b).norm().item() <= 1e-4 * max(a.norm().item(), b.norm().item()) + 1e-12


def _real(value) -> bool:
    """Whether a gradient is real numbers (a number, nested list or stats dict of them)."""
    if isinstance(value, dict):
        return "kind" not in value and value.get("of") != "abs"
    return not any(isinstance(v, complex) for v in text.flatten(value))


def _text(value) -> str:
    if not _real(value):
        return text.value_text(value, None)
    if isinstance(value, list):
        flat = _tensor(value).reshape(-1).tolist()
        shown = text.value_text([float(f"{v:.6g}") for v in flat], None)
        return f"{shown} ‖{text.number(text.norm(value))}‖"
    if isinstance(value, dict):
        return text.stats_text(value)
    return "—" if value is None else text.number(float(f"{value:.6g}"))


def _path_formula(path: Path) -> str:
    """`∂z/∂y·∂y/∂x = 430·40 = 17200`, or the contribution alone for tensors."""
    if not path.factors:
        return f"= {_text(path.contribution)}"
    if len(path.factors) == 1:
        return f"∂{path.names[1]}/∂{path.names[0]} = {_text(path.contribution)}"
    names = path.names
    parts = [f"∂{b}/∂{a}" for a, b in zip(names, names[1:])][::-1]
    numbers = [_factor(f) for f in path.factors][::-1]
    return f"{'·'.join(parts)} = {' · '.join(numbers)} = {_text(path.contribution)}"


def _term_text(term: Term) -> str:
    if term.local is not None:
        return f"{_factor(term.upstream)}·{_factor(term.local)}"
    return f"{_text(term.contribution)}"


def _factor(value: float) -> str:
    """A number inside a product: negative ones in parentheses."""
    return f"({_text(value)})" if value < 0 else _text(value)
