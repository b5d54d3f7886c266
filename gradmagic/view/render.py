"""Render stage: a drawing view and its positions become a matplotlib Figure (never pyplot, no global state).

Default pictures fit a notebook: at most 9 inches wide (900 CSS px at 1 inch = 100 px) with no text under 6.5
points (9 CSS px). To get there the renderer tries, in turn: top to bottom, left to right, fewer lines of detail,
then a more collapsed view; only then dots. The background is transparent; text sits on light fills or backings,
so the picture reads on light and dark notebook themes alike.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import networkx as nx
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from .blocks import BLOCK_KINDS
from .edges import EDGE_COLOUR, FLOW_FONT, MARK_COLOUR, draw_edges, edge_flows, edge_texts, flow_note
from .fonts import missing_note, use_fallback
from ..graph import ROLES
from .folding import drawing_view, view_marks
from .layout import DEFAULT_RANKDIR, PICTURE_RANKDIRS, check_rankdir, layered_layout
from .nodes import (BIG_VIEW, BLOCK_BORDER, BLOCK_COLOURS, DETAILS, FONT, MARK_BORDER, OP_COLOURS, ROLE_COLOURS,
                    TEXT_GREY, box_size, draw_nodes, node_lines)
from .placement import LAYER_GAP, Placement, text_width, wrap

__all__ = ["draw_graph", "render_figure", "ROLE_COLOURS", "OP_COLOURS", "BLOCK_COLOURS", "MAX_WIDTH", "MIN_POINTS"]

#: Inches: the widest default picture (a notebook's ~900 CSS px of output at 1 inch = 100 px).
MAX_WIDTH = 9.0
#: Points: the smallest text of a picture at the size it is drawn (9 CSS px).
MIN_POINTS = 6.5

_NO_GRAD = "#a8a8a8"
_NOTE_FONT = 8.0
_FLOW_GAP, _MAX_FLOW_GAP = 0.6, 1.0  # inches between layers with flow labels between them
_MAX_INCHES, _MARGIN, _MIN_WIDTH = 40.0, 0.15, 3.0
_MARK_KEYS = ("nodes", "edges", "notes")
_NOTE_LINE = 0.17  # inches per line of the note under the picture
_BACKING = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "none", "alpha": 0.92}  # light under any theme
_COLLAPSES = 6  # at most this many more collapsed views are tried to fit the width


class _Drawing(NamedTuple):
    """Everything a picture needs once its view, direction, detail and scale are chosen."""

    view: nx.DiGraph
    place: Placement
    lines: dict
    scale: float
    detail: int
    content: "_Content"
    note: str | None


class _Content:
    """A view's marks, flows and edge labels, worked out once however many arrangements are tried."""

    def __init__(self, view: nx.DiGraph, flows: bool, marks: dict | None):
        self.view = view
        self.marked, self.marked_edges, self.notes = view_marks(view, marks)
        passes = flows and view.graph.get("passes")
        self.found = edge_flows(view) if passes else [None] * view.number_of_edges()
        self.texts = edge_texts(view, self.found) if len(view) <= BIG_VIEW else [None] * len(self.found)
        self.flow_labels = [t for t, f in zip(self.texts, self.found) if t and f and f.text]
        self._lines = {}

    def lines(self, detail: int) -> dict:
        """node -> its (text, font key) lines at one level of detail."""
        if detail not in self._lines:
            self._lines[detail] = {n: node_lines(d, detail, n in self.marked, self.notes.get(n))
                                   for n, d in self.view.nodes(data=True)}
        return self._lines[detail]


def render_figure(graph: nx.MultiDiGraph, *, show_all: bool = False, rankdir: str | None = None,
                  title: str | None = None, depth: int | None = None, max_nodes: int | None = None,
                  flows: bool = True, marks: dict | None = None) -> Figure:
    """The picture of a captured graph: drawing_view -> layered_layout -> drawn, fitted to MAX_WIDTH unless show_all.

    `rankdir` None chooses (PICTURE_RANKDIRS): top to bottom, or left to right when only that fits. show_all draws
    everything at full size (up to 40 inches, a scrolling frame's job to show).
    """
    _check_marks(graph, marks)
    check_rankdir(rankdir, choosing=True)
    room = (_MAX_INCHES if show_all else MAX_WIDTH) - 2 * _MARGIN
    directions = (rankdir,) if rankdir else PICTURE_RANKDIRS
    for view, note in _views(graph, show_all=show_all, depth=depth, max_nodes=max_nodes):
        content, layouts = _Content(view, flows, marks), {}
        for detail in DETAILS[:-1]:
            for direction in directions:
                if direction not in layouts:
                    layouts[direction] = layered_layout(view, rankdir=direction)
                drawing = _arrange(content, layouts[direction], direction, detail, room, note)
                if drawing is not None:
                    return _figure(drawing, direction, title)
    turn = "" if rankdir is None else "the other --rankdir, "
    dots = (f"Nodes drawn as dots: their labels do not fit {room + 2 * _MARGIN:g} inches at a readable size; "
            f"{turn}--all or the table shows them.")
    note = "\n".join(n for n in (note, dots) if n)
    return _figure(_arrange(content, layouts[directions[0]], directions[0], 0, room, note), directions[0], title)


def draw_graph(view: nx.DiGraph, positions: dict, *, title: str | None = None, rankdir: str = DEFAULT_RANKDIR,
               flows: bool = True, marks: dict | None = None) -> Figure:
    """A Figure of `view` with nodes at layered `positions` (layer units), inputs left ("LR") or top ("TB").

    `flows`: after a backward pass, each edge is as wide as the gradient that flowed along it and labelled with it
    (see gradmagic.view.edges). `marks`: {"nodes": graph nodes, "edges": (u, v, key) graph edges, "notes": {node: text}}
    drawn red on whatever stands for them in the view, a ⚠ before the node's first line and its note under it.
    """
    check_rankdir(rankdir)
    missing = [n for n in view if n not in positions]
    if missing:
        raise ValueError(f"positions has no entry for {len(missing)} node(s), e.g. {missing[0]!r}; "
                         "use layered_layout(view) for the same view")
    content, room = _Content(view, flows, marks), _MAX_INCHES - 2 * _MARGIN
    for detail in DETAILS:
        drawing = _arrange(content, positions, rankdir, detail, room, None)
        if drawing is not None:
            return _figure(drawing, rankdir, title)


def _views(graph: nx.MultiDiGraph, *, show_all: bool, depth, max_nodes):
    """(view, note): the view asked for, then (unless show_all or max_nodes) ever more collapsed ones, saying so."""
    view = drawing_view(graph, show_all=show_all, depth=depth, max_nodes=max_nodes)
    yield view, None
    if show_all or max_nodes is not None:  # a limit the user chose is kept, even when it does not fit
        return
    size, target = len(view), len(view) // 2
    for _ in range(_COLLAPSES):
        smaller = drawing_view(graph, depth=depth, max_nodes=target) if target >= 1 else view
        if len(smaller) >= size:  # collapsing cannot go further
            return
        yield smaller, (f"Collapsed from {len(view)} to {len(smaller)} nodes to fit {MAX_WIDTH:g} inches "
                        "(--all or --max-nodes N to expand).")
        size, target = len(smaller), len(smaller) // 2


def _arrange(content: _Content, positions: dict, rankdir: str, detail: int, room: float,
             note: str | None) -> _Drawing | None:
    """The drawing at one level of detail scaled to `room` inches wide, or None if its text would be too small."""
    lines = content.lines(detail)
    smallest = min([FONT[key] for ls in lines.values() for _, key in ls]
                   + ([FLOW_FONT] if detail and content.flow_labels else []), default=None)
    least = MIN_POINTS / smallest if smallest else 0.0
    if detail and not _layers_fit(positions, rankdir, room, least):
        return None
    sizes = {n: box_size(lines[n], d) for n, d in content.view.nodes(data=True)}
    for gap in _gaps(rankdir, content.flow_labels if detail else []):
        place = Placement(positions, sizes, rankdir, gap)
        scale = min(1.0, room / place.width, (_MAX_INCHES - 1.0) / place.height)
        if scale >= least or detail == 0:
            return _Drawing(content.view, place, lines, scale, detail, content, note)
    return None


def _layers_fit(positions: dict, rankdir: str, room: float, least: float) -> bool:
    """Whether the layers alone, with only the gaps between them, leave room for readable text."""
    along = {round(x if rankdir == "LR" else y, 6) for x, y in positions.values()}
    return len(along) * LAYER_GAP * least <= (room if rankdir == "LR" else _MAX_INCHES)


def _gaps(rankdir: str, flow_labels: list) -> list:
    """Gaps between layers to try: room for the flow labels between them (if any), then the plain gap."""
    if not flow_labels:
        return [LAYER_GAP]
    widest = max(text_width(t, FLOW_FONT) for t in flow_labels)
    roomy = _FLOW_GAP if rankdir == "TB" else min(_MAX_FLOW_GAP, max(_FLOW_GAP, widest + 0.15))
    return list(dict.fromkeys((roomy, LAYER_GAP)))


def _figure(drawing: _Drawing, rankdir: str, title: str | None) -> Figure:
    """The Figure: legend band on top, the graph, the notes band under it; transparent behind everything."""
    view, place, scale, content = drawing.view, drawing.place, drawing.scale, drawing.content
    items = _legend_items(view, flowing=any(content.found), marked=bool(content.marked or content.marked_edges))
    width, height = place.width * scale, place.height * scale
    fw = max(width, _MIN_WIDTH) + 2 * _MARGIN
    rows = math.ceil(len(items) / _legend_columns(items, fw - 2 * _MARGIN)) if items else 0
    top = (0.35 if title else 0.0) + (0.25 * rows + 0.15 if items else 0.0)
    labelled = drawing.detail > 0 and any(content.texts)
    legend = [flow_note(content.texts) if labelled else None, _caption_note(drawing.lines),
              missing_note(drawing.lines)]
    notes = _notes(view.graph.get("hidden_note"), drawing.note, " ".join(n for n in legend if n) or None,
                   width=fw - 2 * _MARGIN - 0.1)
    band = _NOTE_LINE * sum(len(lines) for _, lines in notes) + 0.15 * len(notes)
    figure = Figure(figsize=(fw, height + 2 * _MARGIN + top + band))
    figure.set_facecolor((1.0, 1.0, 1.0, 0.0))  # the notebook's own background shows, light or dark
    FigureCanvasAgg(figure)
    fh = figure.get_figheight()
    ax = figure.add_axes(((fw - width) / 2 / fw, (_MARGIN + band) / fh, width / fw, height / fh))
    ax.set_axis_off()
    ax.set_xlim(place.xmin, place.xmin + place.width)
    ax.set_ylim(place.ymin, place.ymin + place.height)
    if not view:
        ax.text(0.5, 0.5, "(no tensors recorded)", transform=ax.transAxes, ha="center", va="center",
                fontsize=FONT["tensor"], color=TEXT_GREY, bbox=_BACKING)
    boxes = {node: place.box(node) for node in view}
    draw_edges(ax, view, place, boxes, scale, found=content.found, texts=content.texts if drawing.detail else None,
               plain=len(view) > BIG_VIEW, marked=content.marked_edges, measure=text_width)
    draw_nodes(ax, view, place, drawing.lines, scale, content.marked)
    _draw_legend(figure, items, title)
    _draw_notes(figure, notes)
    use_fallback(figure)  # after every text is placed: fonts for any script
    return figure


def _caption_note(lines: dict) -> str | None:
    """What ∂ in node captions means, when one shows it (∇ alone reads as the tensor's gradient)."""
    if any("∂" in text for node_lines in lines.values() for text, _ in node_lines):
        return "Captions: ∇ the tensor's .grad; ∂ the gradient that reached it in the last backward pass."
    return None


def _notes(hidden: str | None, fitted: str | None, flows: str | None, *, width: float) -> list:
    """(gid, wrapped lines) of the notes under the picture: what is hidden or collapsed, what edge labels mean."""
    collapsed = "\n".join(n for n in (hidden, fitted) if n)
    notes = [("hidden_note", collapsed), ("flow_note", flows)]
    return [(gid, wrap(text, width, _NOTE_FONT)) for gid, text in notes if text]


def _draw_notes(figure: Figure, notes: list) -> None:
    """The notes stacked upwards from the bottom margin, each on a light backing."""
    fw, fh = figure.get_size_inches()
    bottom = _MARGIN + 0.05
    for gid, lines in reversed(notes):
        figure.text((_MARGIN + 0.05) / fw, bottom / fh, "\n".join(lines), fontsize=_NOTE_FONT, ha="left",
                    va="bottom", color=TEXT_GREY, linespacing=1.5, gid=gid, parse_math=False, bbox=_BACKING)
        bottom += _NOTE_LINE * len(lines) + 0.15


def _check_marks(graph: nx.MultiDiGraph, marks: dict | None) -> None:
    """ValueError unless `marks` has only nodes, edges and notes, all of them in `graph`."""
    if marks is None:
        return
    if not isinstance(marks, dict) or set(marks) - set(_MARK_KEYS):
        extra = sorted(map(str, set(marks) - set(_MARK_KEYS))) if isinstance(marks, dict) else type(marks).__name__
        raise ValueError(f"marks: {extra} not understood; use a dict with {', '.join(_MARK_KEYS)}")
    nodes = [n for n in [*marks.get("nodes", ()), *marks.get("notes", {})] if n not in graph]
    edges = [e for e in marks.get("edges", ()) if not (len(e) == 3 and graph.has_edge(*e))]
    if nodes or edges:
        raise ValueError(f"marks names {(nodes or edges)[0]!r}, which is not a node or (u, v, key) edge of this graph")


def _legend_items(view: nx.DiGraph, *, flowing: bool, marked: bool) -> list:
    """Legend handles for the roles present, op nodes, gradient flows, dashed edges and diagnostic marks if any."""
    roles = {d.get("role") for _, d in view.nodes(data=True) if d.get("kind") == "tensor"}
    items = [Patch(facecolor=ROLE_COLOURS[r][0], edgecolor=ROLE_COLOURS[r][1], label=r) for r in ROLES if r in roles]
    if any(d.get("kind") == "op" for _, d in view.nodes(data=True)):
        items.append(Patch(facecolor=OP_COLOURS[0], edgecolor=OP_COLOURS[1], label="op"))
    kinds = {d.get("kind") for _, d in view.nodes(data=True)}
    items += [Patch(facecolor=fill, edgecolor=border, linewidth=BLOCK_BORDER, label=text)
              for kind, (fill, border, text) in BLOCK_COLOURS.items() if kind in kinds and kind in BLOCK_KINDS]
    if flowing:
        items.append(Line2D([], [], color=EDGE_COLOUR, linewidth=2.5, label="∇ flow"))
    if not all(d.get("differentiable", True) for _, _, d in view.edges(data=True)):
        items.append(Line2D([], [], color=_NO_GRAD, linestyle="--", label="no gradient"))
    if marked:
        items.append(Patch(facecolor="white", edgecolor=MARK_COLOUR, linewidth=MARK_BORDER, label="⚠ diagnostic"))
    return items


def _legend_columns(items: list, width: float) -> int:
    """The most legend columns that fit in `width` inches (filled top to bottom, as matplotlib does)."""
    entries = [0.36 + text_width(item.get_label(), _NOTE_FONT) for item in items]
    for ncol in range(len(entries), 1, -1):
        rows, tall = divmod(len(entries), ncol)
        ends = np.cumsum([rows + 1] * tall + [rows] * (ncol - tall)).tolist()
        if sum(max(entries[a:b]) for a, b in zip([0] + ends, ends)) <= width - 0.2:
            return ncol
    return 1


def _draw_legend(figure: Figure, items: list, title: str | None) -> None:
    """A small legend (and the title) on light backings in the band above the graph."""
    fw, fh = figure.get_size_inches()
    if title:
        figure.text((_MARGIN + 0.05) / fw, 1 - 0.1 / fh, title, fontsize=11, ha="left", va="top", parse_math=False,
                    bbox=_BACKING)
    if items:
        below = (0.4 if title else 0.05) / fh
        legend = figure.legend(handles=items, loc="upper left", bbox_to_anchor=(_MARGIN / fw, 1 - below),
                               frameon=True, fancybox=True, facecolor="white", edgecolor="none", framealpha=0.92,
                               fontsize=_NOTE_FONT, ncol=_legend_columns(items, fw - 2 * _MARGIN),
                               handlelength=1.4, borderaxespad=0, borderpad=0.3, columnspacing=1.0)
        legend.set_gid("legend")
