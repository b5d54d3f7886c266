"""Diagnose a captured graph: the usual reasons a gradient is missing, wrong or NaN, each with its fix.

Each kind of check has its module: where gradients stop (cuts.py), where NaN and inf begin (nans.py); the checks of
gradients that are there but surprising (added to an old `.grad`, `.grad` read on a non-leaf) are here."""
from __future__ import annotations

import networkx as nx

from .cuts import cuts, missing_gradients, rebuilt_links, roots_reach
from .diagnostic import KINDS, Diagnostic
from .nans import first_nan_gradient, first_nan_value
from .reading import describe, pass_gradient, value_words
from .values import nonzero
from ..text import error_summary, has_grad

__all__ = ["diagnose", "Diagnostic", "KINDS"]


def diagnose(graph: nx.MultiDiGraph) -> list:
    """Every problem found in the graph, most fundamental first (empty for a clean program).

    Never raises: a check that meets a state of the record it does not expect becomes one `incomplete` line."""
    found, rebuilt, reach = [], {}, set()
    try:
        rebuilt = rebuilt_links(graph)
        reach = roots_reach(graph, rebuilt)
    except Exception as error:
        found.append(Diagnostic("incomplete", f"gradmagic could not trace the paths to the backward roots "
                                              f"({type(error).__name__}: {error})"))
    for check, args in ((missing_gradients, (rebuilt, reach)), (cuts, (rebuilt, reach)), (accumulated, ()),
                        (nonleaf_grad_reads, ()), (first_nan_value, ()), (first_nan_gradient, ())):
        found.extend(_run(check, graph, *args))
    explained = {e for d in found if d.kind == "no_gradient" for e in d.edges}
    return [d for d in found if d.kind not in ("cut", "rebuilt") or not explained.issuperset(d.edges)]


def _run(check, graph, *args) -> list:
    """What one check found, or one `incomplete` line when it fails (gradmagic's bug or an unforeseen record)."""
    try:
        return check(graph, *args)
    except Exception as error:
        return [Diagnostic("incomplete", f"gradmagic could not finish one of its checks "
                                         f"({check.__name__.strip('_')}: {error_summary(error)})")]


def accumulated(graph) -> list:
    """Leaves whose .grad already held a gradient when the run started: backward() added to it."""
    found = []
    for node, d in graph.nodes(data=True):
        if d["kind"] != "tensor" or d["grad_before"] is None or not nonzero(d["grad_before"]):
            continue  # none, or zeroed with x.grad.zero_(): nothing was added to
        who = describe(graph, node)
        now = f", and it is now {value_words(d['grad'], d['grad_stats'])}" if has_grad(d) else ""
        message = (f"{who}.grad already held {value_words(d['grad_before'], None)} before this run, so backward() "
                   f"added this run's gradient to it{now}. Reset it before backward(): `{who}.grad = None` "
                   f"(or optimizer.zero_grad()).")
        found.append(Diagnostic("accumulated", message, [node], [], d["line"]))
    return found


def nonleaf_grad_reads(graph) -> list:
    """`.grad` read on a tensor that is not a leaf: it is always None there."""
    found = []
    for node, line in graph.graph.get("grad_reads", []):
        who = describe(graph, node)
        seen = pass_gradient(graph, node)  # .grad stays None on a non-leaf; the gradient of its last pass
        shown = f" (gradmagic saw its gradient: {value_words(seen, None)})" if seen is not None else ""
        message = (f"line {line} reads {who}.grad, which is None: {who} is computed from other tensors (not a leaf), "
                   f"and autograd keeps .grad only on leaves{shown}. Call {who}.retain_grad() before backward() "
                   f"to keep it.")
        found.append(Diagnostic("nonleaf_grad", message, [node], [], line))
    return found
