"""Edges of the picture: where each leaves and enters its nodes, its curve, its width and its label.

What flowed along each drawn edge, and the words of its label, are computed by flows.py; this module draws them:
a flow's size sets the edge's width (log-scaled), its text is placed beside the curve.
"""
from __future__ import annotations

import math

import networkx as nx
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.patches import FancyArrowPatch
from matplotlib.path import Path

from .flows import Flow
from .labels import FLOW_FONT, place_labels

__all__ = ["draw_edges", "flow_widths", "EDGE_COLOUR", "MARK_COLOUR", "NO_GRAD_COLOUR", "FLOW_FONT"]

#: Edges that carry gradient; diagnostic marks (the nodes and edges a finding points at).
EDGE_COLOUR, MARK_COLOUR = "#6b6b6b", "#d62728"  # grey: 5.3:1 on white, 3.5:1 on #111

NO_GRAD_COLOUR, _FLOW_TEXT = "#a8a8a8", "#2b5797"
_LABEL_TEXT = {EDGE_COLOUR: "#505050", NO_GRAD_COLOUR: "#5a5a5a", MARK_COLOUR: "#a50f15"}  # >= 4.5:1 on white backings
_WIDTH, _THIN = 1.0, 0.7  # points: edges of a picture without flows, edges with no or a zero flow
_LEAST, _THICK = 0.9, 3.0  # points: the smallest flow of a picture (or one _DECADES smaller), the largest
_MARKED = 1.6  # points: a marked edge is at least this wide, so that its red shows
_DECADES = 10.0  # a flow this many powers of ten below the largest is drawn as thin as possible (but not thinner)
_LINES = 0.6  # big pictures draw edges as plain lines this many times as wide
_SAMPLES = 24  # points per curve segment, to place labels off other edges


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


def draw_edges(ax, view: nx.DiGraph, place, boxes: dict, scale: float, *, found: list, texts: list | None,
               plain: bool, marked: set, measure) -> None:
    """Edges as curved arrows, or one LineCollection when `plain` (big pictures), as wide as their `found` flows.

    `place` is the renderer's placement (centres, sizes, `edge_points`, `xy`), `boxes` node -> (x, y, w, h) in
    data inches, `texts` the labels (None: none), `marked` the (u, v) edges drawn red and `measure(text, points)`
    the width of a line in inches.
    """
    edges = list(view.edges(data=True))
    colours, styles, widths = _strokes(edges, found, marked)
    ports = _ports(view, place)
    routes = [place.edge_points(u, v, *ports[u, v]) for u, v, _ in edges]
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


def _strokes(edges: list, found: list, marked: set) -> tuple:
    """(colours, line styles, widths in points) of the edges: grey by flow, dashed without gradient, marked red."""
    widths = flow_widths([f.size if f else None for f in found]) if any(found) else [_WIDTH] * len(edges)
    colours, styles = [], []
    for i, (u, v, data) in enumerate(edges):
        grad = data.get("differentiable", True)
        colours.append(MARK_COLOUR if (u, v) in marked else EDGE_COLOUR if grad else NO_GRAD_COLOUR)
        styles.append("-" if grad else "--")
        if (u, v) in marked:
            widths[i] = max(widths[i], _MARKED)
    return colours, styles, widths


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
