"""The gradient that flowed along each drawn edge, and the words its label uses.

A drawn edge can stand for several graph edges (a folded tensor, `y*y`, the edges into a module box or a folded
loop). Its flow is what arrived along all of them together: scalars are summed; lists of one shape are summed and
shown by the norm of the sum; anything else (stats-only flows of large tensors, mixed shapes) by the sum of the
parts' norms, an upper bound of the true norm. Its label says which: `2 × 215.0` (two edges of 215.0 each),
`Σ 7.0 (3 edges)`, `‖Σ‖ 5.0 (2 edges)`, `Σ‖·‖ 4.61 (29 steps)`; `flow_note` explains the notations shown. Edges
out of an op carry its output's gradient back: it sets their width, and the output's caption already prints it.

This is arithmetic on the drawing view (its folded loops and module boxes), so it lives in view/; edges.py draws it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import networkx as nx
import numpy as np

from ..text import norm, norm_mark, number

__all__ = ["Flow", "edge_flow", "edge_flows", "combine_flows", "edge_texts", "flow_note"]


class Flow(NamedTuple):
    """The gradient along one drawn edge: its size (|value| or a norm) and its label (None: width only)."""

    size: float
    text: str | None


def edge_flow(data: dict) -> Flow | None:
    """The flow of a drawing-view edge: its tensor->op `flows` (labelled), else its `grads` (width only)."""
    flow = combine_flows(data.get("flows") or ())
    if flow is not None:
        return flow
    grad = combine_flows(data.get("grads") or ())
    return None if grad is None else Flow(grad.size, None)


def edge_flows(view: nx.DiGraph) -> list:
    """The Flow (or None) of each edge of a drawing view, in `view.edges()` order."""
    return [edge_flow(data) for _, _, data in view.edges(data=True)]


def combine_flows(parts) -> Flow | None:
    """Gradients as one: scalars summed, equal-shaped lists by ‖sum‖, else ≈ the sum of norms; None if none."""
    parts = _known(parts)
    if not parts:
        return None
    if all(_is_real(p) for p in parts):
        total = math.fsum(parts) if all(math.isfinite(p) for p in parts) else sum(parts)  # fsum raises on inf - inf
        return Flow(abs(total), number(total))
    arrays = _arrays(parts)
    if arrays is not None and all(a.shape == arrays[0].shape for a in arrays):
        size = norm(np.sum(arrays, axis=0).tolist())
        return Flow(size, norm_mark(size))
    size = math.fsum(norm(p) for p in parts)
    return Flow(size, norm_mark(size) if len(parts) == 1 else "≈" + norm_mark(size))


def edge_texts(view: nx.DiGraph, found: list) -> list:
    """Each edge's label: `8600`, `2 × 215.0`, `Σ‖·‖ 4.61 (29 steps)`, `999 edges` or None."""
    texts = []
    for (u, v, data), flow in zip(view.edges(data=True), found):
        count = data.get("count", 1)
        parts = _known(data.get("flows") or ())
        if flow is None or flow.text is None:
            texts.append(f"{count:,} edges" if count > 1 else None)
        elif len(parts) <= 1:
            texts.append(flow.text)
        else:
            unit = "steps" if "loop" in (view.nodes[u].get("kind"), view.nodes[v].get("kind")) else "edges"
            texts.append(_sum_text(parts, flow, unit))
    return texts


def _sum_text(parts: list, flow: Flow, unit: str) -> str:
    """What several gradients on one drawn edge add up to, saying how they were added."""
    n = len(parts)
    if all(_same(p, parts[0]) for p in parts):
        return f"{n} × {combine_flows(parts[:1]).text}"
    if flow.text.startswith("≈‖"):
        return f"Σ‖·‖ {flow.text[2:-1]} ({n:,} {unit})"
    if flow.text.startswith("‖"):
        return f"‖Σ‖ {flow.text[1:-1]} ({n:,} {unit})"
    return f"Σ {flow.text} ({n:,} {unit})"


def flow_note(texts: list) -> str | None:
    """What the edge labels in `texts` mean, with an example of each notation that appears; None if no labels."""
    shown = [t for t in texts if t]
    if not shown:
        return None
    parts = ["Edge labels: the gradient that flowed back along the edge"]
    if any("‖" in t for t in shown):
        parts.append("‖g‖ its norm")
    for text in shown:
        if " × " in text:
            n, g = text.split(" × ", 1)
            parts.append(f"{text.replace(' ', chr(0xA0))}: {n} edges drawn as one, {g} each")
            break
    if any(t.startswith(("Σ ", "‖Σ‖")) for t in shown):
        parts.append("Σ: the sum over the edges drawn as one")
    if any(t.startswith("Σ‖·‖") for t in shown):
        parts.append("Σ‖·‖: the sum of their norms (at least the norm of their sum)")
    return "; ".join(parts) + "."


def _known(parts) -> list:
    """The parts whose size is known (numbers, lists of numbers, stats with a norm)."""
    return [p for p in parts if norm(p) is not None]


def _arrays(parts: list) -> list | None:
    """The parts as numpy arrays when all are lists of one regular shape each, else None."""
    try:
        return [np.asarray(p) for p in parts] if all(isinstance(p, list) for p in parts) else None
    except ValueError:  # ragged: not a tensor's value
        return None


def _same(part, other) -> bool:
    """Two gradients equal in value (numbers, or nested lists of them)."""
    if isinstance(part, dict) or isinstance(other, dict):
        return False
    try:
        return bool(np.array_equal(np.asarray(part), np.asarray(other)))
    except ValueError:  # ragged
        return False


def _is_real(part) -> bool:
    """A real number, not a bool."""
    return isinstance(part, (int, float)) and not isinstance(part, bool)
