"""Edges of the picture: where each leaves and enters its nodes, its curve, and the gradient that flowed along it.

A drawn edge can stand for several graph edges (a folded tensor, `y*y`, the edges into a module box or a folded
loop). Its flow is what arrived along all of them together: scalars are summed; lists of one shape are summed and
shown by the norm of the sum; anything else (stats-only flows of large tensors, mixed shapes) by the sum of the
parts' norms, an upper bound of the true norm. Its label says which: `2 × 215.0` (two edges of 215.0 each),
`Σ 7.0 (3 edges)`, `‖Σ‖ 5.0 (2 edges)`, `Σ‖·‖ 4.61 (29 steps)`; `flow_note` explains the notations shown. Edges
out of an op carry its output's gradient back: it sets their width, and the output's caption already prints it.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import networkx as nx
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.patches import FancyArrowPatch
from matplotlib.path import Path

from .labels import FLOW_FONT, place_labels
from ..text import number

__all__ = ["draw_edges", "edge_flows", "edge_texts", "edge_flow", "combine_flows", "flow_widths", "Flow",
           "EDGE_COLOUR", "MARK_COLOUR", "FLOW_FONT", "flow_note"]

#: Edges that carry gradient; diagnostic marks (the nodes and edges a finding points at).
EDGE_COLOUR, MARK_COLOUR = "#6b6b6b", "#d62728"  # grey: 5.3:1 on white, 3.5:1 on #111

_NO_GRAD, _FLOW_TEXT = "#a8a8a8", "#2b5797"
_LABEL_TEXT = {EDGE_COLOUR: "#505050", _NO_GRAD: "#5a5a5a", MARK_COLOUR: "#a50f15"}  # >= 4.5:1 on white backings
_WIDTH, _THIN = 1.0, 0.7  # points: edges of a picture without flows, edges with no or a zero flow
_LEAST, _THICK = 0.9, 3.0  # points: the smallest flow of a picture (or one _DECADES smaller), the largest
_MARKED = 1.6  # points: a marked edge is at least this wide, so that its red shows
_DECADES = 10.0  # a flow this many powers of ten below the largest is drawn as thin as possible (but not thinner)
_LINES = 0.6  # big pictures draw edges as plain lines this many times as wide
_SAMPLES = 24  # points per curve segment, to place labels off other edges


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


def combine_flows(parts) -> Flow | None:
    """Gradients as one: scalars summed, equal-shaped lists by ‖sum‖, else ≈ the sum of norms; None if none."""
    parts = [p for p in parts if _size(p) is not None]
    if not parts:
        return None
    if all(_is_real(p) for p in parts):
        total = math.fsum(parts) if all(math.isfinite(p) for p in parts) else sum(parts)  # fsum raises on inf - inf
        return Flow(abs(total), number(total))
    arrays = [np.asarray(p) for p in parts if isinstance(p, list)]
    if len(arrays) == len(parts) and all(a.shape == arrays[0].shape for a in arrays):
        size = float(np.linalg.norm(np.sum(arrays, axis=0).ravel()))
        return Flow(size, f"‖{number(size)}‖")
    size = math.fsum(_size(p) for p in parts)
    return Flow(size, f"‖{number(size)}‖" if len(parts) == 1 else f"≈‖{number(size)}‖")


def flow_widths(sizes: list) -> list:
    """Line widths in points: log-scaled from thin to thick against the largest finite size; None or 0 thin."""
    top = max((s for s in sizes if s is not None and 0 < s < math.inf), default=None)
    widths = []
    for size in sizes:
        if size is None or size == 0 or top is None and math.isfinite(size):
            widths.append(_THIN)
        elif not math.isfinite(size):  # nan and inf: as loud as the largest, a diagnostic says why
            widths.append(_THICK)
        else:
            share = min(1.0, max(0.0, 1.0 + math.log10(size / top) / _DECADES))
            widths.append(_THICK - (_THICK - _LEAST) * (1.0 - share))
    return widths


def edge_flows(view: nx.DiGraph) -> list:
    """The Flow (or None) of each edge of a drawing view, in `view.edges()` order."""
    return [edge_flow(data) for _, _, data in view.edges(data=True)]


def edge_texts(view: nx.DiGraph, found: list) -> list:
    """Each edge's label: `8600`, `2 × 215.0`, `Σ‖·‖ 4.61 (29 steps)`, `999 edges` or None."""
    texts = []
    for (u, v, data), flow in zip(view.edges(data=True), found):
        count = data.get("count", 1)
        parts = [p for p in data.get("flows") or () if _size(p) is not None]
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


def draw_edges(ax, view: nx.DiGraph, place, boxes: dict, scale: float, *, found: list, texts: list | None,
               plain: bool, marked: set, measure) -> None:
    """Edges as curved arrows, or one LineCollection when `plain` (big pictures), as wide as their `found` flows.

    `place` is the renderer's placement (centres, sizes, `edge_points`, `xy`), `boxes` node -> (x, y, w, h) in
    data inches, `texts` the labels (None: none), `marked` the (u, v) edges drawn red and `measure(text, points)`
    the width of a line in inches.
    """
    edges = list(view.edges(data=True))
    if any(found):
        widths = flow_widths([f.size if f else None for f in found])
    else:
        widths = [_WIDTH] * len(edges)
    ports = _ports(view, place)
    routes = [place.edge_points(u, v, *ports[u, v]) for u, v, _ in edges]
    colours, styles = [], []
    for i, (u, v, data) in enumerate(edges):
        grad = data.get("differentiable", True)
        colours.append(MARK_COLOUR if (u, v) in marked else EDGE_COLOUR if grad else _NO_GRAD)
        styles.append("-" if grad else "--")
        if (u, v) in marked:
            widths[i] = max(widths[i], _MARKED)
    if plain:
        lines = [[place.xy(*p) for p in points] for points in routes]
        ax.add_collection(LineCollection(lines, colors=colours, linestyles=styles, zorder=1,
                                         linewidths=[w * _LINES for w in widths]))
        return
    curves = [_segments(points) for points in routes]
    for (u, v, _), curve, colour, style, width in zip(edges, curves, colours, styles, widths):
        ax.add_artist(FancyArrowPatch(path=_path(curve, place), arrowstyle="-|>", mutation_scale=(8 + width) * scale,
                                     color=colour, linestyle=style, linewidth=width, zorder=1, shrinkA=0, shrinkB=0,
                                     gid=f"edge:{u}->{v}"))
    if texts:
        flowing = [c == EDGE_COLOUR and f is not None and f.text is not None for c, f in zip(colours, found)]
        place_labels(ax, [f"flow:{u}->{v}" for u, v, _ in edges], texts, ranks=[_rank(f) for f in found],
                     colours=[_FLOW_TEXT if f else _LABEL_TEXT[c] for f, c in zip(flowing, colours)],
                     curves=[_samples(curve, place) for curve in curves], place=place, boxes=boxes, scale=scale,
                     measure=measure)


def _ports(view: nx.DiGraph, place) -> dict:
    """(u, v) -> (offset where it leaves u, offset where it enters v), spread along each side in the order of
    where each edge heads next (its first or last bend, else the node at its other end), so they do not cross."""
    ports = {edge: [0.0, 0.0] for edge in view.edges()}
    for node in view:
        for side, edges in ((0, list(view.out_edges(node))), (1, list(view.in_edges(node)))):
            other = [_heading(place, edge, side) for edge in edges]
            order = sorted(range(len(edges)), key=lambda i: other[i])
            spread = place.sizes[node][1] * 0.7
            for rank, i in enumerate(order):
                ports[edges[i]][side] = spread * ((rank + 0.5) / len(edges) - 0.5)
    return ports


def _heading(place, edge: tuple, side: int) -> float:
    """Across-coordinate of the next point an edge reaches from its source (side 0) or its target (side 1)."""
    bends = place.bends.get(edge)
    if bends:
        return bends[0][1] if side == 0 else bends[-1][1]
    return place.centre[edge[1 - side]][1]


def _segments(points: list) -> list:
    """Cubic segments (four control points each, along/across frame) of S-curves leaving and entering along layers."""
    segments = []
    for (a0, c0), (a1, c1) in zip(points, points[1:]):
        bend = (a1 - a0) / 2 if a1 > a0 else 0.0
        segments.append(((a0, c0), (a0 + bend, c0), (a1 - bend, c1), (a1, c1)))
    return segments


def _path(segments: list, place) -> Path:
    """The curve as a matplotlib Path in data coordinates."""
    verts = [place.xy(*segments[0][0])] + [place.xy(*p) for segment in segments for p in segment[1:]]
    return Path(verts, [Path.MOVETO] + [Path.CURVE4] * (3 * len(segments)))


def _samples(segments: list, place) -> np.ndarray:
    """Points along the curve in data coordinates, evenly spaced in the Bézier parameter of each segment."""
    t = np.linspace(0.0, 1.0, _SAMPLES)[:, None]
    weights = ((1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3)
    along = [sum(w * np.array(p) for w, p in zip(weights, segment)) for segment in segments]
    points = np.concatenate(along) if along else np.zeros((0, 2))
    return points if place.lr else np.stack([points[:, 1], -points[:, 0]], 1)


def _rank(flow: Flow | None) -> float:
    """How soon an edge's label is placed: by flow size, unknown and nan last."""
    return flow.size if flow is not None and not math.isnan(flow.size) else -1.0


def _size(part) -> float | None:
    """|x| of a number, the norm of a nested list or of a stats dict; None when unknown."""
    if isinstance(part, bool) or part is None:
        return None
    if isinstance(part, (int, float, complex)):
        return abs(part)
    if isinstance(part, list):
        try:
            values = np.asarray(part)
        except ValueError:  # ragged: not a tensor's value
            return None
        return float(np.linalg.norm(values.ravel())) if values.dtype.kind in "iufc" else None
    if isinstance(part, dict) and isinstance(part.get("norm"), (int, float)) and not isinstance(part["norm"], bool):
        return float(part["norm"])
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
    return isinstance(part, (int, float)) and not isinstance(part, bool)
